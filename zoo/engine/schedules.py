"""Schedules: zoo.yaml's `schedules:` become tasks when their cron time comes (UTC).

`fire_due` is what `zoo run` and `zoo run --once` call; they hold the runner lock, so
there is one caller at a time per home. Its state is `.zoo/schedules.json`, always
replaced atomically, so it survives restarts. The guarantees, as cron users expect:

- A schedule seen for the first time, or whose cron expression changed, starts at that
  moment (its baseline): no slot before it fires.
- A due schedule fires once, for its latest slot, however many slots passed while
  nothing ran (catch-up, not one task per slot); its `schedule.fired` event says how
  many slots it skipped (`missed`, counted up to MISSED_CAP) and since when.
- Exactly once across `kill -9`: the slot and the task id are written to the state
  (`pending`) before the task file exists, and the slot is marked done only after the
  task is queued. The next call finishes a pending firing (creating, journaling or
  routing whatever is missing) and never fires that slot again.
- `zoo status` reads the next times from the state and imports croniter only for a
  schedule no runner has seen yet, and then only when its cached next time has passed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from zoo.roster import Roster
from zoo.state.fs import atomic_write
from zoo.state.home import Home

if TYPE_CHECKING:
    from zoo.engine.zoo import Zoo
    from zoo.state.tasks import Task

STATE_FILE = "schedules.json"
"""In `.zoo/`: per schedule, the slots done, the next one, the last run, a pending firing."""
MISSED_CAP = 1000
"""Missed slots are counted up to this many; past it the latest slot is found directly."""
STAMP = "%Y-%m-%dT%H:%M:%SZ"
Entry = dict[str, Any]


@dataclass(frozen=True)
class Fired:
    """One schedule that fired: a task is now queued for its agent."""

    name: str
    """The schedule's name in zoo.yaml."""
    task: str
    """The id of the task it created."""
    agent: str
    slot: str
    """The cron time it fired for (UTC, `YYYY-MM-DDTHH:MM:SSZ`): the latest one due."""
    missed: int | None
    """Earlier slots skipped by catching up (None when none; at most MISSED_CAP)."""
    recovered: bool = False
    """True when this finishes a firing a crash interrupted."""


@dataclass(frozen=True)
class _Due:
    slot: datetime
    """The latest slot <= now."""
    missed: int
    """Slots before it that are skipped."""
    since: datetime
    """The first slot not yet fired."""
    capped: bool


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)


def _utc(now: datetime | None) -> datetime:
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


# --- cron arithmetic (croniter: here, and in roster.check.valid_cron, the one cron rule) -


def next_after(cron: str, moment: datetime) -> datetime:
    """The first slot strictly after `moment`."""
    from croniter import croniter

    result: datetime = croniter(cron, moment).get_next(datetime)
    return result.astimezone(UTC)


def _due(cron: str, after: datetime, now: datetime) -> _Due | None:
    """The latest slot in (after, now] and how many slots before it were missed."""
    from croniter import croniter

    slots = croniter(cron, after)
    first: datetime = slots.get_next(datetime)
    if first > now:
        return None
    latest, missed = first, 0
    while missed < MISSED_CAP:
        nxt: datetime = slots.get_next(datetime)
        if nxt > now:
            return _Due(latest.astimezone(UTC), missed, first.astimezone(UTC), False)
        latest, missed = nxt, missed + 1
    # too many to count: jump to the latest slot <= now (slots are whole minutes)
    latest = croniter(cron, now + timedelta(seconds=1)).get_prev(datetime)
    return _Due(latest.astimezone(UTC), MISSED_CAP, first.astimezone(UTC), True)


# --- the state file ------------------------------------------------------------------


def read_state(home: Home) -> dict[str, Entry]:
    """The entries of `.zoo/schedules.json` by schedule name; {} when it is missing."""
    try:
        doc = json.loads((home.state / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    entries = doc.get("schedules") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {str(k): v for k, v in entries.items() if isinstance(v, dict)}


def _usable(entry: Entry | None, cron: str) -> bool:
    """True if `entry` is this cron's state: invalid, or with readable `after` and `next`."""
    if entry is None or entry.get("cron") != cron:
        return False
    if entry.get("invalid"):
        return True
    try:
        parse_stamp(entry["after"])
        parse_stamp(entry["next"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _pending(entry: Entry | None) -> dict[str, Any] | None:
    pending = entry.get("pending") if entry is not None else None
    keys = ("slot", "task", "agent", "title", "brief")
    if isinstance(pending, dict) and all(isinstance(pending.get(k), str) for k in keys):
        return pending
    return None


class _State:
    """`.zoo/schedules.json` while `fire_due` works on it."""

    def __init__(self, zoo: Zoo) -> None:
        self.path = zoo.home.state / STATE_FILE
        self.home = zoo.home
        self.entries = read_state(zoo.home)
        self.changed = False
        if not self.entries and self.path.exists():
            self._set_aside(zoo)

    def _set_aside(self, zoo: Zoo) -> None:
        """An unreadable state file (a person's edit?) is kept beside, and Zoo starts over."""
        try:
            json.loads(self.path.read_bytes())["schedules"].items()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            kept = self.path.with_name(f"{STATE_FILE}.bad")
            os.replace(self.path, kept)
            zoo.journal.write("schedule.state_reset", kept=zoo.home.relative(kept),
                              error=f"{type(e).__name__}: {e}")  # fmt: skip

    def save(self) -> None:
        """Write the state durably (before and after each firing)."""
        self.home.ensure_state()
        doc = {"version": 1, "schedules": self.entries}
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        self.changed = False


# --- firing --------------------------------------------------------------------------


def fire_due(zoo: Zoo, now: datetime | None = None) -> list[Fired]:
    """Fire every schedule whose cron time has come; the caller holds the runner lock.

    Call it at the start of each pass of the runner, before the inbox is routed.
    """
    moment = _utc(now)
    state = _State(zoo)
    fired = [_recover(zoo, state, name) for name in list(state.entries)
             if _pending(state.entries[name]) is not None]  # fmt: skip
    for name in [n for n in state.entries if n not in zoo.roster.schedules]:
        del state.entries[name]
        state.changed = True
        zoo.journal.write("schedule.dropped", schedule=name)
    for name, sched in zoo.roster.schedules.items():
        entry = state.entries.get(name)
        if not _usable(entry, sched.cron):
            _baseline(zoo, state, name, moment)
        elif entry is not None and not entry.get("invalid"):
            if parse_stamp(entry["next"]) <= moment:
                due = _due(sched.cron, parse_stamp(entry["after"]), moment)
                if due is not None:
                    fired.append(_fire(zoo, state, name, due))
    if state.changed:
        state.save()
    return fired


def _baseline(zoo: Zoo, state: _State, name: str, now: datetime) -> None:
    """A new or changed schedule starts now; a cron that does not parse is journaled once."""
    cron = zoo.roster.schedules[name].cron
    old = state.entries.get(name) or {}
    kept = {k: old[k] for k in ("last_run", "last_task") if old.get(k) is not None}
    if not valid_cron(cron):
        state.entries[name] = {"cron": cron, "invalid": True, **kept}
        problem = "not a cron expression: it never fires (see 'zoo check')"
        zoo.journal.write("schedule.invalid", schedule=name, cron=cron, error=problem)
    else:
        nxt = stamp(next_after(cron, now))
        state.entries[name] = {"cron": cron, "after": stamp(now), "next": nxt, **kept}
        zoo.journal.write("schedule.armed", schedule=name, cron=cron, since=stamp(now), next=nxt)
    state.changed = True


def _fire(zoo: Zoo, state: _State, name: str, due: _Due) -> Fired:
    """Record the firing as pending (durably), then create and queue its task."""
    from zoo.state import tasks

    sched = zoo.roster.schedules[name]
    pending = {
        "slot": stamp(due.slot), "task": tasks.allocate_id(zoo.home), "agent": sched.agent,
        "title": tasks.title_of(sched.brief, name), "brief": sched.brief,
        "missed": due.missed or None, "since": stamp(due.since) if due.missed else None,
        "capped": due.capped or None,
    }  # fmt: skip
    state.entries[name]["pending"] = pending
    state.save()  # from here on the slot is this task's, whatever happens
    return _complete(zoo, state, name, pending, None, journaled=False)


def _recover(zoo: Zoo, state: _State, name: str) -> Fired:
    """Finish a firing a crash interrupted: make what is missing, fire nothing twice."""
    from zoo.errors import NotFound, TaskFileError
    from zoo.state import tasks

    pending = _pending(state.entries[name])
    assert pending is not None
    task: Task | None = None
    journaled = False
    try:
        task = tasks.find(zoo.home, pending["task"])
    except NotFound:
        pass
    except TaskFileError:  # someone broke the file: it exists; the runner reports it
        return _done(state, name, pending, recovered=True)
    if task is not None:
        journaled = _journaled(zoo, task.id)
    return _complete(zoo, state, name, pending, task, journaled=journaled, recovered=True)


def _journaled(zoo: Zoo, task_id: str) -> bool:
    """Whether the journal has this task's `schedule.fired` (read only after a crash)."""
    from zoo.state.journal import read_events

    return any(
        e.get("event") == "schedule.fired" and e.get("task") == task_id
        for e in read_events(zoo.home.journal_path)
    )


def _complete(
    zoo: Zoo,
    state: _State,
    name: str,
    pending: dict[str, Any],
    task: Task | None,
    *,
    journaled: bool,
    recovered: bool = False,
) -> Fired:
    """Create the task unless it exists, journal it unless done, queue it, mark the slot done."""
    from zoo.state import leases, tasks
    from zoo.state.home import INBOX

    task_id, source = pending["task"], f"schedule:{name}"
    with leases.hold(zoo.home, task_id, zoo.roster.lead, tasks.utc_now()):
        if task is None:
            extra = {"schedule": name, "slot": pending["slot"]}
            task = tasks.create(zoo.home, pending["title"], pending["brief"], source=source,
                                extra=extra, task_id=task_id)  # fmt: skip
        if not journaled:
            zoo.journal.write_many([
                ("task.created", {"task": task_id, "source": source, "title": task.title}),
                ("schedule.fired", _fired_fields(name, pending, recovered)),
            ])  # fmt: skip
        if task.folder == INBOX and task.status == "queued" and "route" not in task.meta:
            _queue(zoo, task, name, pending["agent"])
    return _done(state, name, pending, recovered=recovered)


def _fired_fields(name: str, pending: dict[str, Any], recovered: bool) -> dict[str, Any]:
    return {
        "schedule": name, "slot": pending["slot"], "task": pending["task"],
        "agent": pending["agent"], "missed": pending.get("missed"),
        "since": pending.get("since"), "capped": pending.get("capped"),
        "recovered": recovered or None,
    }  # fmt: skip


def _queue(zoo: Zoo, task: Task, name: str, agent: str) -> None:
    """Queue the task for the schedule's agent; the lead's stays in the inbox to route."""
    from zoo.engine.router import Route, route_task

    if agent == zoo.roster.lead:
        return
    if agent in zoo.roster.agents:
        route = Route(agent, "schedule", f"schedule '{name}'")
    else:
        route = Route(None, "schedule", f"schedule '{name}' names unknown agent '{agent}'")
    route_task(zoo, task, route)


def _done(state: _State, name: str, pending: dict[str, Any], *, recovered: bool) -> Fired:
    """Mark the pending slot fired and save the state."""
    entry = state.entries[name]
    slot = pending["slot"]
    entry.update(after=slot, last_run=slot, last_task=pending["task"], pending=None)
    entry["next"] = stamp(next_after(entry["cron"], parse_stamp(slot)))
    state.save()
    missed = pending.get("missed")
    return Fired(name, pending["task"], pending["agent"], slot,
                 missed if isinstance(missed, int) else None, recovered)  # fmt: skip


def valid_cron(cron: str) -> bool:
    """`zoo check`'s rule (engine/check.py), imported when used: `zoo status` reads the
    next times from the state and need not load the checks."""
    from zoo.engine.check import valid_cron as check

    return check(cron)


# --- when next ------------------------------------------------------------------------


def next_due(roster: Roster, home: Home, now: datetime | None = None) -> datetime | None:
    """When `fire_due` next has something to fire (in the past: now); None if never.

    A runner sleeps until then. A schedule no runner has seen yet counts from `now`.
    """
    moment = _utc(now)
    entries = read_state(home)
    times: list[datetime] = []
    for name, sched in roster.schedules.items():
        entry = entries.get(name)
        if _pending(entry) is not None:
            times.append(moment)
        elif entry is not None and _usable(entry, sched.cron):
            if not entry.get("invalid"):
                times.append(parse_stamp(entry["next"]))
        elif valid_cron(sched.cron):
            times.append(next_after(sched.cron, moment))
    return min(times, default=None)


# --- what `zoo status` shows ---------------------------------------------------------


def overview(roster: Roster, home: Home, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each schedule: name, cron, agent, next_run, last_run, last_task, due.

    `next_run` is when it fires next (None when its cron does not parse); `due` is true
    when that time has passed and no runner has fired it yet (a missed run that the
    next `zoo run` catches up). Reads the state; croniter only for unseen schedules.
    """
    moment = _utc(now)
    now_stamp = stamp(moment)
    entries = read_state(home)
    cache = _NextRuns(home)
    rows = []
    for name, sched in roster.schedules.items():
        entry = entries.get(name)
        pending = _pending(entry)
        next_run: str | None
        if pending is not None:
            next_run = str(pending["slot"])
        elif entry is not None and _usable(entry, sched.cron):
            next_run = None if entry.get("invalid") else str(entry["next"])
        else:
            next_run = cache.next_after(sched.cron, moment)
        last = entry or {}
        rows.append({
            "name": name, "cron": sched.cron, "agent": sched.agent, "next_run": next_run,
            "last_run": last.get("last_run"), "last_task": last.get("last_task"),
            "due": next_run is not None and next_run <= now_stamp,
        })  # fmt: skip
    cache.save()
    return rows


class _NextRuns:
    """Next cron times of schedules no runner has seen, cached in `.zoo/next-runs.json`.

    For any moment before a cached next time, the next time is that same one, so the
    cache is exact; croniter is only imported when a cached time has passed.
    """

    def __init__(self, home: Home) -> None:
        self.path = home.state / "next-runs.json"
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            doc = {}
        self.doc: dict[str, str] = doc if isinstance(doc, dict) else {}
        self.changed = False

    def next_after(self, cron: str, now: datetime) -> str | None:
        cached = self.doc.get(cron)
        if isinstance(cached, str) and cached > stamp(now):
            return cached
        if not valid_cron(cron):
            return None
        self.doc[cron] = stamp(next_after(cron, now))
        self.changed = True
        return self.doc[cron]

    def save(self) -> None:
        if self.changed:
            try:
                self.path.parent.mkdir(exist_ok=True)
                atomic_write(self.path, json.dumps(self.doc), durable=False)
            except OSError:
                pass
