"""The roster: zoo.yaml as frozen dataclasses (model), validated (validate), its playbooks
(playbooks), and scaffolded by `zoo init` (scaffold). `zoo check`'s verdict, which also needs
the tool registry and the disk, is engine/check.py."""

from zoo.roster.model import (
    OFFLINE_TIER,
    Agent,
    Budget,
    Defaults,
    GitSettings,
    Limit,
    Price,
    Range,
    Roster,
    SandboxSettings,
    Schedule,
    Tier,
    load_roster,
)

__all__ = [
    "OFFLINE_TIER",
    "Agent",
    "Budget",
    "Defaults",
    "GitSettings",
    "Limit",
    "Price",
    "Range",
    "Roster",
    "SandboxSettings",
    "Schedule",
    "Tier",
    "load_roster",
]
