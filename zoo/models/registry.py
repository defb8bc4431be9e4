"""Which model answers for a tier: `provider: auto` resolved, providers built on first use."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from zoo.errors import ConfigError
from zoo.models.base import Model
from zoo.roster import Roster, Tier

BUILT = ("offline",)
"""Providers this version of Zoo can call; anthropic and openai arrive with the providers issue."""
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


@dataclass(frozen=True)
class Resolved:
    """What a tier turned out to be, and why (shown by `zoo status` and the runner)."""

    tier: str
    provider: str
    model: str
    why: str


def resolve(name: str, tier: Tier, env: Mapping[str, str]) -> Resolved:
    if tier.provider != "auto":
        return Resolved(name, tier.provider, tier.model, f"provider: {tier.provider}")
    for provider in ("anthropic", "openai"):
        key_env = tier.api_key_env or KEY_ENV[provider]
        if env.get(key_env):
            if provider in BUILT:
                return Resolved(name, provider, tier.model, f"auto: {key_env} is set")
            return Resolved(
                name, "offline", "offline",
                f"auto: {key_env} is set, but this version of Zoo has no {provider} provider yet",
            )  # fmt: skip
    return Resolved(name, "offline", "offline", "auto: no ANTHROPIC_API_KEY or OPENAI_API_KEY set")


class Models:
    """The models of one roster, built once per tier and shared by the runner's threads."""

    def __init__(
        self, roster: Roster, env: Mapping[str, str] | None = None, override: Model | None = None
    ) -> None:
        self.roster = roster
        self.env = os.environ if env is None else env
        self.override = override
        """A model that answers for every tier (tests, benchmarks)."""
        self._built: dict[str, Model] = {}
        self._lock = threading.Lock()

    def resolved(self, tier: str) -> Resolved:
        return resolve(tier, self.roster.tier(tier), self.env)

    def for_tier(self, tier: str) -> Model:
        if self.override is not None:
            return self.override
        with self._lock:
            if tier not in self._built:
                self._built[tier] = self._build(self.resolved(tier))
            return self._built[tier]

    def for_agent(self, agent: str) -> Model:
        return self.for_tier(self.roster.tier_name(agent))

    def _build(self, resolved: Resolved) -> Model:
        if resolved.provider == "offline":
            from zoo.models.offline import OfflineModel

            return OfflineModel()
        raise ConfigError(
            "zoo.yaml", None, f"models.{resolved.tier}.provider",
            f"'{resolved.provider}' is not available in this version of Zoo "
            "(use provider: auto or offline)",
        )  # fmt: skip
