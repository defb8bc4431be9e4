"""What `zoo status` and `zoo show` report, as plain JSON-able documents.

`status` reads only what is live (the active workspaces, escalations, leases, small
state files) and counts done/ by listing it, so its cost stays flat as done/ grows.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from zoo.engine.schedules import overview
from zoo.errors import TaskFileError
from zoo.roster import load_roster
from zoo.state import leases, tasks
from zoo.state.home import DONE, ESCALATIONS, INBOX, Home
from zoo.state.tasks import STATUSES, Task


def status(home: Home, *, now: datetime | None = None) -> dict[str, Any]:
    roster = load_roster(home)
    working = leases.live(home)
    counts = dict.fromkeys(STATUSES, 0)
    queued: dict[str, int] = {}
    broken: list[str] = []
    titles: dict[str, str] = {}
    for folder in tasks.active_folders(home):
        paths = tasks.briefs(folder) if folder.name == INBOX else tasks.task_files(folder)
        for path in paths:
            task = _try_read(path, broken)
            if task is None:
                continue
            if "id" in task.meta:
                titles[task.id] = task.title
            state = "working" if task.meta.get("id") in working else task.status
            counts[state] = counts.get(state, 0) + 1
            if state == "queued":
                agent = task.agent or roster.lead
                queued[agent] = queued.get(agent, 0) + 1
    needs_person = []
    for path in tasks.task_files(home.workspace(ESCALATIONS)):
        task = _try_read(path, broken)
        if task is not None:
            counts["escalated"] += 1
            reason = str(task.meta.get("escalation") or "escalated")
            needs_person.append({"kind": "escalation", "id": task.id, "title": task.title,
                                 "reason": reason, "agent": task.agent})  # fmt: skip
    needs_person += _approvals(home, titles)
    counts["done"] += tasks.count(home.workspace(DONE))
    busy: dict[str, int] = {}
    for lease in working.values():
        busy[lease["agent"]] = busy.get(lease["agent"], 0) + 1
    agents = [
        {"name": name, "role": a.role, "model": roster.tier_name(name),
         "workspace": roster.workspace_of(name), "queued": queued.get(name, 0),
         "working": busy.get(name, 0)}
        for name, a in roster.agents.items()
    ]  # fmt: skip
    from zoo.state.runnerlock import runner_up

    return {
        "zoo": {"name": roster.name, "home": str(home.root)},
        "runner": runner_up(home),
        "agents": agents,
        "tasks": counts,
        "working": _working(working),
        "needs_person": needs_person,
        "schedules": overview(roster, home, now),
        "spend": spend_today(home, roster.budget.daily_usd, now),
        "broken": broken,
    }


def _working(working: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Live leases, oldest first, with how long ago their runner last beat."""
    now = time.time()
    out = []
    for lease in sorted(working.values(), key=lambda w: str(w.get("since"))):
        beat = lease.pop("heartbeat", None)
        age = round(max(0.0, now - beat), 1) if isinstance(beat, float | int) else None
        out.append({**lease, "heartbeat_age_s": age})
    return out


def _approvals(home: Home, titles: dict[str, str]) -> list[dict[str, Any]]:
    try:
        if not any(name.endswith(".json") for name in os.listdir(home.approvals)):
            return []
    except FileNotFoundError:
        return []
    from zoo.engine.approvals import pending  # only when something waits: status starts fast

    return [
        {"kind": "approval", "id": a.id, "task": a.task, "title": titles.get(a.task, a.task),
         "reason": f"approve? {a.preview} ({a.why})", "agent": a.agent}
        for a in pending(home)
    ]  # fmt: skip


def _try_read(path: Any, broken: list[str]) -> Task | None:
    try:
        return tasks.read(path)
    except TaskFileError as e:
        broken.append(str(e))
    except FileNotFoundError:
        pass
    return None


def spend_today(home: Home, budget: float | None, now: datetime | None = None) -> dict[str, Any]:
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    try:
        doc = json.loads((home.state / "spend.json").read_bytes())
    except (OSError, ValueError):
        doc = {}
    today = doc.get(day, {}) if isinstance(doc, dict) else {}
    return {
        "date": day,
        "input_tokens": int(today.get("input_tokens", 0)),
        "output_tokens": int(today.get("output_tokens", 0)),
        "usd": round(float(today.get("usd", 0.0)), 4),
        "budget_usd": budget,
        "by_agent": today.get("by_agent", {}),
    }


def show(home: Home, task_id: str) -> dict[str, Any]:
    from zoo.state.journal import read_events

    task = tasks.find(home, task_id)
    events = [e for e in read_events(home.journal_path) if e.get("task") == task.id]
    return {
        "path": home.relative(task.path),
        "front_matter": task.meta,
        "body": task.body,
        "events": events,
    }
