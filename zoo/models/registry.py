"""Which model answers for a tier: `provider: auto` resolved, providers built on first use.

A tier's model is its provider's model wrapped in `Resilient`: Zoo's retries, then the
tier's declared fallbacks, each call taking a slot of its provider's shared `Limiter`.
Provider SDKs are imported only when a tier that uses them makes its first call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zoo.errors import ConfigError, ModelUnavailable
from zoo.models.base import Model
from zoo.models.limits import Limiter
from zoo.models.window import Window
from zoo.models.wire import KEY_ENV, api_key
from zoo.roster import Roster, Tier

DEFAULT_MODEL = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}
"""What `provider: auto` uses when the tier's model is another provider's."""


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
            model, why = tier.model, f"auto: {key_env} is set"
            if not tier.model or _other_providers(tier.model, provider):
                model = DEFAULT_MODEL[provider]
                why += f"; '{tier.model}' is not a {provider} model, so {model}"
            return Resolved(name, provider, model, why)
    return Resolved(name, "offline", "offline", "auto: no ANTHROPIC_API_KEY or OPENAI_API_KEY set")


def _other_providers(model: str, provider: str) -> bool:
    claude = model.startswith("claude")
    return claude if provider == "openai" else not claude


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
        self._limiters: dict[str, Limiter] = {}
        self._lock = threading.Lock()
        self._windows: dict[str, Window] = {}
        self._asking: dict[str, threading.Lock] = {}

    def resolved(self, tier: str) -> Resolved:
        return resolve(tier, self.roster.tier(tier), self.env)

    def for_tier(self, tier: str) -> Model:
        if self.override is not None:
            return self.override
        with self._lock:
            if tier not in self._built:
                self._built[tier] = self._chain(tier)
            return self._built[tier]

    def ready(self, tier: str) -> None:
        """Raise `ModelUnavailable` unless the tier (or a fallback) can be called now."""
        self.for_tier(tier).ready()

    def window(self, tier: str) -> Window:
        """The tier's context window: its `context_tokens`, else what its server says (asked
        once, and again only while it does not answer), else a default (models/window.py)."""
        with self._lock:
            asking = self._asking.setdefault(tier, threading.Lock())
        with asking:
            known = self._windows.get(tier)
            if known is not None:
                return known
            found, final = self._find_window(tier)
            if final:
                self._windows[tier] = found
            return found

    def _find_window(self, name: str) -> tuple[Window, bool]:
        from zoo.models import window

        tier = self.roster.tier(name)
        if tier.context_tokens is not None:
            return Window(tier.context_tokens, "set in zoo.yaml"), True
        resolved = self.resolved(name)
        if resolved.provider != "openai" or tier.base_url is None:
            return window.hosted(resolved.provider), True
        if self.override is not None:  # another model answers for the server: not asked
            return Window(window.LOCAL_CONTEXT_TOKENS, "a default for local servers"), True
        try:
            key: str | None = api_key(resolved.provider, name, tier, self.env)
        except ModelUnavailable:
            key = None  # the call will say so; the question goes without a key
        try:
            return window.ask(tier.base_url, resolved.model, key), True
        except window.Unreachable:
            unsaid = Window(window.LOCAL_CONTEXT_TOKENS, f"a default: {tier.base_url} did not "
                                                         "answer")  # fmt: skip
            return unsaid, False

    def for_agent(self, agent: str) -> Model:
        return self.for_tier(self.roster.tier_name(agent))

    def _chain(self, tier: str) -> Model:
        from zoo.models.resilient import Link, Resilient

        links: list[Link] = []
        name: str | None = tier
        while name is not None and name not in [link.tier for link in links]:
            resolved = self.resolved(name)
            limit = self.roster.limits.get(resolved.provider)
            limiter = None
            if limit is not None:
                limiter = self._limiters.setdefault(resolved.provider, Limiter(limit))
            links.append(Link(name, resolved.model, _builder(self, resolved), limiter))
            name = self.roster.tier(name).fallback
        defaults = self.roster.defaults
        return Resilient(links, defaults.retries, backoff_s=defaults.backoff_s)

    def build(self, resolved: Resolved) -> Model:
        """The provider's model for a resolved tier (the SDK is imported here)."""
        tier = self.roster.tier(resolved.tier)
        timeout = self.roster.defaults.timeout_s
        if resolved.provider == "offline":
            from zoo.models.offline import OfflineModel

            return OfflineModel()
        key = api_key(resolved.provider, resolved.tier, tier, self.env)
        if resolved.provider == "anthropic":
            from zoo.models.anthropic import AnthropicModel

            return AnthropicModel(resolved.model, key, tier.base_url, timeout)
        if resolved.provider == "openai":
            from zoo.models.openai import OpenAIModel

            return OpenAIModel(resolved.model, key, tier.base_url, timeout, tier.tools_as())
        raise ConfigError("zoo.yaml", None, f"models.{resolved.tier}.provider",
                          f"unknown provider '{resolved.provider}'")  # fmt: skip


def _builder(models: Models, resolved: Resolved) -> Callable[[], Model]:
    return lambda: models.build(resolved)
