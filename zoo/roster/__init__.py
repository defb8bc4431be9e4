"""The roster: zoo.yaml as frozen dataclasses (model), validated (validate), checked against
the disk (check, playbooks), and scaffolded by `zoo init` (scaffold)."""

from zoo.roster.model import (
    GATEABLE,
    OFFLINE_TIER,
    TOOLS,
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
    "GATEABLE",
    "OFFLINE_TIER",
    "TOOLS",
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
