"""`zoo doctor`: what the zoo needs to work, one check a line (DESIGN §4).

Each check says ok, warn or fail, and what it saw. The checks: the roster; each tier an
agent uses (its key is set; a `base_url` server answers and lists the model; with
`call=True` a one-line call, its latency, and whether the model called a tool natively,
wrote the call as text, or neither); the memory files; whether agents' commands can be
confined; git (a repository,
an identity for autocommit); the inotify watch limit against the folders `zoo run`
watches; free disk space; whether a runner is up. Nothing here changes the home, but a
`call` is a real model call: it is journaled and its cost counted like any other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.errors import ModelError
from zoo.state.home import Home

Verdict = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES = 100 * 1024 * 1024
"""Below this, a full disk is near: fail (Zoo refuses no write, but the disk will)."""
LOW_FREE_BYTES = 1024 * 1024 * 1024
"""Below this: warn."""


@dataclass(frozen=True)
class Check:
    """One line of `zoo doctor`."""

    name: str
    """What was checked: `roster`, `key`, `server`, `call`, `playbook`, `memory`, `git`,
    `watches`, `disk`, `runner`."""
    verdict: Verdict
    detail: str
    """What was seen, in words; for a fail, how to fix it."""

    def document(self) -> dict[str, str]:
        return {"check": self.name, "verdict": self.verdict, "detail": self.detail}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.verdict != "fail" for c in self.checks)

    def document(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.document() for c in self.checks]}


def diagnose(home: Home, *, call: bool = False, env: Mapping[str, str] | None = None) -> Report:
    """Every check, in order; a broken roster ends the list (the rest need it)."""
    from zoo.engine.check import verdict
    from zoo.engine.zoo import Zoo

    report = Report()
    found = verdict(home)  # what `zoo check` says: zoo.yaml, playbooks, cron expressions
    report.checks += [Check("roster", "fail", error) for error in found.errors]
    if found.roster is None:
        return report
    zoo = Zoo.open(home, env=env)
    roster = zoo.roster
    if not found.errors:
        report.checks.append(Check("roster", "ok", f"{home.relative(home.roster_path)} and the "
                                   f"playbooks: {_count(len(roster.agents), 'agent')}, "
                                   f"{_count(len(roster.schedules), 'schedule')}"))  # fmt: skip
    for tier in sorted({roster.tier_name(a) for a in roster.agents}):
        report.checks += _tier(zoo, tier, call)
    report.checks += _files(zoo)
    if any("run" in a.tools for a in roster.agents.values()):
        report.checks.append(_sandbox(roster))
    report.checks.append(_git(zoo))
    report.checks.append(_watches(home))
    report.checks.append(_disk(home))
    report.checks.append(_runner(home))
    return report


def _tier(zoo: Any, tier: str, call: bool) -> Iterator[Check]:
    resolved = zoo.models.resolved(tier)
    spec = zoo.roster.tier(tier)
    if resolved.provider == "offline":
        yield Check("key", "ok", f"tier {tier}: the built-in offline model, no key needed "
                                 f"({resolved.why})")  # fmt: skip
        return
    from zoo.models.wire import KEY_ENV

    name = spec.api_key_env or KEY_ENV[resolved.provider]
    local = spec.base_url is not None and spec.api_key_env is None and resolved.provider == "openai"
    if zoo.models.env.get(name):
        yield Check("key", "ok", f"tier {tier}: {name} is set")
    elif local:
        yield Check("key", "ok", f"tier {tier}: no key needed by {spec.base_url}")
    else:
        yield Check(
            "key",
            "fail",
            f"tier {tier}: {name} is not set (export it in the "
            "environment zoo runs in; keys are never read from files)",
        )
        return  # fmt: skip
    if spec.base_url is not None:
        try:
            zoo.models.ready(tier)
            window = zoo.models.window(tier)
            held = f"{window.tokens:,} tokens" if window.tokens else "not limited"
            yield Check("server", "ok", f"tier {tier}: {spec.base_url} answers and serves "
                                        f"'{resolved.model}', context {held} "
                                        f"({window.source})")  # fmt: skip
        except ModelError as e:
            yield Check("server", "fail", f"tier {tier}: {e}")
            return
    if call:
        yield _call(zoo, tier)


PING = "ping"


def _call(zoo: Any, tier: str) -> Check:
    """A one-line call offering one tool: its latency, and how the model calls tools."""
    from zoo.engine.zoo import reply_fields
    from zoo.models.base import Message, Request, ToolSpec
    from zoo.models.textcalls import parse

    tool = ToolSpec(PING, "Call this to answer.", {"type": "object", "properties": {}})
    request = Request(
        system="You are checking that tool calls work. Call the ping tool, nothing else.",
        messages=(Message("user", "Call the ping tool now."),),
        tools=(tool,),
        max_tokens=64,
        meta={"agent": None, "task": None, "purpose": "doctor"},
    )
    started = time.perf_counter()
    try:
        reply = zoo.models.for_tier(tier).complete(request)
    except ModelError as e:
        zoo.journal.write("model.error", tier=tier, purpose="doctor", error=str(e))
        return Check("call", "fail", f"tier {tier}: {e}")
    ms = (time.perf_counter() - started) * 1000
    usd = zoo.spent("doctor", reply.tier or tier, reply.usage)
    zoo.ledger.flush()
    zoo.journal.write("model.reply", tier=reply.tier or tier, purpose="doctor",
                      **reply_fields(reply), usd=usd)  # fmt: skip
    pings = [c for c in reply.tool_calls if c.name == PING]
    if pings and not pings[0].written:
        how = "tool calls: native"
    elif pings or any(c.name == PING for c in parse(reply.text, [PING]).calls):
        how = "tool calls: written as text (tool_format: text or auto reads them)"
    else:
        how = "tool calls: none seen (the model answered in prose)"
    verdict: Verdict = "ok" if "none seen" not in how else "warn"
    return Check("call", verdict, f"tier {tier}: {reply.model or '?'} answered in {ms:.0f} ms; "
                                  f"{how}")  # fmt: skip


def _files(zoo: Any) -> Iterator[Check]:
    home = zoo.home
    memories = [home.memory_path, *sorted(home.agents_dir.glob("*.memory.md"))]
    unreadable = [m for m in memories if m.exists() and not os.access(m, os.R_OK)]
    if unreadable:
        names = ", ".join(home.relative(m) for m in unreadable)
        yield Check("memory", "fail", f"cannot read {names}")
    else:
        size = home.memory_path.stat().st_size if home.memory_path.exists() else 0
        yield Check("memory", "ok", f"memory files readable; MEMORY.md {size / 1024:.1f} KiB")


def _sandbox(roster: Any) -> Check:
    """Whether the commands agents `run` can be confined here, as zoo.yaml asks."""
    from zoo.policy import sandbox

    confine = roster.sandbox.confine
    if confine == "never":
        return Check("sandbox", "warn", "commands run unconfined (sandbox: {confine: never})")
    version, why = sandbox.abi()
    if version >= sandbox.MIN_ABI:
        net = "network allowed" if roster.sandbox.network else "no network"
        return Check("sandbox", "ok", f"commands run confined (Landlock ABI {version}, {net})")
    why = why or f"Landlock ABI {version} is older than {sandbox.MIN_ABI} (Linux 6.2)"
    if confine == "required":
        return Check("sandbox", "fail", f"commands cannot be confined here: {why}; agents' "
                                        "run is refused (sandbox: {confine: best-effort} runs "
                                        "them unconfined)")  # fmt: skip
    return Check("sandbox", "warn", f"commands run unconfined: {why} (best-effort)")


def _git(zoo: Any) -> Check:
    root = str(zoo.home.root)
    git = shutil.which("git")
    wanted = zoo.roster.git.autocommit
    if git is None:
        return Check("git", "warn" if wanted else "ok", "git is not installed: no history kept")
    inside = _run_git(git, root, "rev-parse", "--is-inside-work-tree")
    if inside != "true":
        verdict: Verdict = "warn" if wanted else "ok"
        return Check("git", verdict, f"{root} is not in a git repository: no history kept "
                                     "(git init keeps one)")  # fmt: skip
    name = _run_git(git, root, "config", "user.name")
    email = _run_git(git, root, "config", "user.email")
    if not (name and email):
        return Check(
            "git",
            "warn",
            "no git user.name/user.email: autocommits are by "
            "zoo <zoo@localhost> (git config --global user.name ...)",
        )
    on = "autocommit on" if wanted else "autocommit off"
    return Check("git", "ok", f"a git repository; commits by {name} <{email}> ({on})")


def _run_git(git: str, cwd: str, *args: str) -> str:
    try:
        done = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _watches(home: Home) -> Check:
    """inotify needs a watch per folder under workspaces/ (and one for the home)."""
    folders = 1 + sum(1 for _ in _folders(home.workspaces))
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Check("watches", "ok", f"{folders} folders to watch; no inotify here: zoo run "
                                      "polls every second")  # fmt: skip
    detail = f"{folders} folders to watch, inotify allows {limit:,} per user"
    if folders >= limit:
        return Check("watches", "fail", f"{detail}: zoo run would poll; raise "
                                        "fs.inotify.max_user_watches (sysctl)")  # fmt: skip
    return Check("watches", "warn" if folders > limit // 2 else "ok", detail)


def _folders(root: Path) -> Iterator[str]:
    for _top, dirs, _files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from dirs


def _disk(home: Home) -> Check:
    free = shutil.disk_usage(home.root).free
    shown = (
        f"{free / 1024**3:.1f} GiB free" if free >= 1024**3 else f"{free / 1024**2:.0f} MiB free"
    )
    if free < MIN_FREE_BYTES:
        return Check("disk", "fail", f"{shown} on {home.root}: free some space")
    return Check("disk", "warn" if free < LOW_FREE_BYTES else "ok", f"{shown} on {home.root}")


def _runner(home: Home) -> Check:
    from zoo.state.runnerlock import runner_up

    up = runner_up(home)
    if up is None:
        return Check("runner", "ok", "no runner up (zoo run, or cron: zoo cron)")
    return Check("runner", "ok", f"runner up: pid {up['pid']} since {up['since']} ({up['mode']})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
