"""Intake: what is due for an agent, from every way work arrives (DESIGN §3, §5).

Briefs dropped in the inbox are adopted (a fresh id, Zoo's front matter) and routed;
schedules that came due queue their task; and a person's hand edits are followed: a
file moved into another folder, a changed `agent:`, a done or escalated task moved back
into a workspace. A copy left by a crash mid-move is settled first (the newer copy
stays). A broken task file is reported once and left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engine.router import route_task
from zoo.engine.zoo import Zoo, edited
from zoo.errors import NotFound, RunStopped, TaskFileError
from zoo.state import leases, tasks
from zoo.state.fs import atomic_move
from zoo.state.home import INBOX
from zoo.state.tasks import Task, utc_now

if TYPE_CHECKING:
    from zoo.engine.runreport import RunReport


def collect_due(zoo: Zoo, report: RunReport, seen_broken: set[tuple[str, int]]) -> list[Task]:
    """Route the inbox, follow hand edits, and return every task queued for an agent."""
    due: dict[str, Task] = {}
    folders = tasks.task_folders(zoo.home)
    for folder in tasks.active_folders(zoo.home):
        paths = tasks.briefs(folder) if folder.name == INBOX else tasks.task_files(folder)
        for path in paths:
            match = tasks.TASK_NAME.match(path.name)
            if match and match.group(1) in due:
                continue  # routed from the inbox into this folder a moment ago
            task = due_at(zoo, path, report, seen_broken, folders)
            if task is not None:
                due.setdefault(task.id, task)
    return list(due.values())


def due_at(
    zoo: Zoo,
    path: Path,
    report: RunReport,
    seen_broken: set[tuple[str, int]],
    folders: list[Path],
    *,
    leased: bool = True,
) -> Task | None:
    """The task at `path` if it is due for an agent now, routing it if it is a brief.

    `leased=False`: the caller has checked that no other process holds the task.
    """
    task = _read(zoo, path, report, seen_broken)
    if task is not None and "id" in task.meta:
        if leased and leases.held_by_other(zoo.home, task.id):
            return None  # `zoo dispatch` is routing it right now
        task = settle_copies(zoo, task, folders)
    if task is None or task.path.parent != path.parent:
        return None
    if task.status in ("done", "escalated"):  # a person moved it back into a workspace
        _requeue(zoo, task, report)
    if task.status != "queued":
        return None
    if path.parent.name == INBOX:
        return _route_inbox(zoo, task, report)
    return task if _follow_hand_edit(zoo, task, report) else None


def settle_copies(zoo: Zoo, task: Task, folders: list[Path]) -> Task | None:
    """After a crash mid-move a task can be in two folders: keep the newer copy only.

    A move writes the new file before it removes the old one, and a copy only ever
    grows, so the copy with more steps (then the later `updated`) holds everything.
    """
    copies = [task]
    for folder in folders:
        other = folder / task.path.name
        if folder != task.path.parent and other.exists():
            try:
                copies.append(tasks.read(other))
            except (NotFound, TaskFileError):
                continue
    if len(copies) == 1:
        return task
    keep = max(copies, key=lambda t: (t.steps, str(t.meta.get("updated", "")), t.mtime_ns))
    for copy in copies:
        if copy is not keep:
            copy.path.unlink(missing_ok=True)
            zoo.journal.write("task.copy_removed", task=task.id, path=zoo.home.relative(copy.path),
                              kept=zoo.home.relative(keep.path))  # fmt: skip
    return keep


def _read(zoo: Zoo, path: Any, report: RunReport, seen_broken: set[tuple[str, int]]) -> Task | None:
    """The task at `path` (a broken file is reported once); an inbox id not its own is renewed."""
    try:
        task = tasks.read(path)
    except NotFound:
        return None  # moved away since the folder was listed
    except TaskFileError as e:
        key = (str(path), path.stat().st_mtime_ns if path.exists() else 0)
        if key not in seen_broken:
            seen_broken.add(key)
            report.add(None, failure=str(e))
            zoo.journal.write("task.invalid", path=zoo.home.relative(path), error=e.problem,
                              line=e.line, key=e.key)  # fmt: skip
        return None
    if path.parent.name == INBOX and "id" in task.meta and not tasks.keeps_id(zoo.home, task):
        return _adopt(zoo, task)
    return task


def _requeue(zoo: Zoo, task: Task, report: RunReport) -> None:
    """A done or escalated task a person moved into a workspace folder is work again:
    for that folder's agent (or, in the inbox, to be routed anew), with a fresh count
    of handoffs, as `zoo retry` gives."""
    was, reason = task.status, task.meta.get("escalation")
    task.meta.update(status="queued", handoffs=0)
    task.meta.pop("escalation", None)
    if task.folder == INBOX:
        task.meta.update(agent=zoo.roster.lead, workspace=INBOX)
    events = [*edited(task, tasks.save(task)),
              ("task.requeued", {"task": task.id, "was": was, "folder": task.folder,
                                 "escalation": reason, "by": "person"})]  # fmt: skip
    zoo.journal.write_many(events)
    report.add(None, f"{task.id} ({was}) moved by hand to {task.folder}/: queued again")


def _route_inbox(zoo: Zoo, task: Task, report: RunReport) -> Task | None:
    """Route a brief; the task if it is now queued for an agent."""
    if "id" not in task.meta:
        task = _adopt(zoo, task)
    try:
        route = route_task(zoo, task)
    except RunStopped as stopped:  # the brief waits in the inbox
        zoo.journal.write_many([*stopped.events, ("run.stopped", {"task": task.id,
                                "agent": zoo.roster.lead, "reason": str(stopped)})])  # fmt: skip
        report.halt(stopped)
        return None
    where = route.agent or "escalations"
    report.add("routed", f"{task.id} routed to {where} ({route.by}: {route.reason})")
    if route.agent is None:
        report.add("escalated")
    return task if route.agent is not None else None


def _adopt(zoo: Zoo, dropped: Task) -> Task:
    """Give a brief in the inbox a fresh id and Zoo's front matter (its own keys stay)."""
    title, extra = tasks.from_brief(dropped.meta, dropped.body, dropped.path.stem)
    task_id = tasks.allocate_id(zoo.home)
    meta = {**extra, "id": task_id, "title": title, "status": "queued", "workspace": INBOX,
            "created": utc_now(), "source": "file", "steps": 0}  # fmt: skip
    body = (
        dropped.body if dropped.body.lstrip().startswith("# ") else f"# {title}\n\n{dropped.body}"
    )
    task = Task(dropped.path.with_name(f"{task_id}-{tasks.slugify(title)}.md"), meta, body)
    task.meta["updated"] = utc_now()
    atomic_move(dropped.path, task.path, task.render())
    events = [("task.created", {"task": task_id, "source": "file", "title": title,
                                "file": dropped.path.name})]  # fmt: skip
    if dropped.meta.get("id") is not None:  # it said an id it cannot keep
        events.append(("task.renumbered", {"task": task_id, "from": str(dropped.meta["id"]),
                                           "file": dropped.path.name}))  # fmt: skip
    zoo.journal.write_many(events)
    return task


def _follow_hand_edit(zoo: Zoo, task: Task, report: RunReport) -> bool:
    """Make folder and front matter agree after a person's edit; True if the task is due."""
    roster = zoo.roster
    folder = task.folder
    if task.meta.get("workspace") != folder:  # the person moved the file: the folder wins
        owners = roster.agents_in(folder)
        if task.agent in owners:
            task.meta["workspace"] = folder
            zoo.journal.write_many(edited(task, tasks.save(task)))
            return True
        if len(owners) != 1:
            reason = f"moved to '{folder}/', which no single agent works in"
            zoo.escalate(task, reason, by="runner")
            report.add("escalated", f"{task.id} escalated: {reason}")
            return False
        zoo.assign(task, owners[0], event="task.moved", extra={"folder": folder})
        report.add(None, f"{task.id} moved by hand to {folder}/: now {owners[0]}'s")
        return True
    if task.agent not in roster.agents:
        reason = f"unknown agent '{task.agent}' in its front matter"
        zoo.escalate(task, reason, by="runner")
        report.add("escalated", f"{task.id} escalated: {reason}")
        return False
    if roster.workspace_of(task.agent) != folder:  # the person changed `agent:`
        zoo.assign(task, task.agent, event="task.reassigned", extra={"folder": folder})
        report.add(None, f"{task.id} reassigned by hand to {task.agent}")
    return True


def fire_schedules(zoo: Zoo, report: RunReport) -> None:
    """Queue a task for every schedule whose time has come (schedules.py)."""
    if not zoo.roster.schedules:
        return
    from zoo.engine import schedules

    for fired in schedules.fire_due(zoo):
        missed = f", catching up {fired.missed} missed run(s)" if fired.missed else ""
        report.add(None, f"schedule {fired.name} fired for {fired.slot}{missed}: "
                         f"{fired.task} queued for {fired.agent}")  # fmt: skip
