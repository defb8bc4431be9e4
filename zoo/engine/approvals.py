"""The approval queue: actions that wait for a person (DESIGN §2 `approval:`, §4).

When the roster says a call needs a person (a tool in the agent's `approval:` list, or a
`run` command outside its `commands`), the runner does not run it. It writes
`.zoo/approvals/A-0001.json` instead: the exact action (task, agent, tool, arguments), a
preview for people, and the SHA-256 of the action, which the journal's
`approval.requested` event records too. The task waits (`status: waiting-approval`).

`zoo approve` runs the action only if the journal verifies and the file's action still
hashes to what the journal recorded (an action altered after it was previewed never
runs), only while the task still waits on it, and only once: the approval is marked
approved, durably, before the action starts. Nothing the model writes can approve
anything: approving is `zoo approve`, run by a person; the runner never runs a gated
action. Decided approvals move to `.zoo/approvals/decided/`.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import NotFound, UserError
from zoo.policy.registry import Registry, UnknownTool
from zoo.state import leases, tasks
from zoo.state.fs import atomic_move, atomic_write, create_exclusive
from zoo.state.home import Home
from zoo.state.locks import lock
from zoo.state.tasks import Task, utc_now

if TYPE_CHECKING:
    from zoo.engine.zoo import Zoo

_FILE = re.compile(r"^(A-\d{4,})\.json$")


class ApprovalRefused(UserError):
    """An approval that cannot be approved or denied as asked; nothing ran."""


@dataclass
class Approval:
    """One action that waits (or waited) for a person."""

    id: str
    task: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    """Exactly what runs when approved."""
    hash: str
    """SHA-256 of the action (task, agent, tool, arguments), as the journal recorded it."""
    why: str
    """Why a person must decide: the roster rule that applies."""
    requested: str
    status: str = "pending"
    """pending | approved | denied | void (its task no longer waits on it)."""
    decided: str | None = None
    by: str | None = None
    reason: str | None = None
    result: str | None = None
    path: Path = field(default=Path(), repr=False, compare=False)

    @property
    def preview(self) -> str:
        """Made from the arguments each time it is shown, never read back from the file."""
        try:
            return preview(self.tool, self.arguments)
        except UnknownTool:
            raise ApprovalRefused(
                f"approval {self.id} is for '{self.tool}', which is not a tool Zoo has; "
                "nothing can run it"
            ) from None

    @property
    def action(self) -> dict[str, Any]:
        return {"task": self.task, "agent": self.agent, "tool": self.tool,
                "arguments": self.arguments}  # fmt: skip

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("path")
        return {**doc, "preview": self.preview}


def digest(action: dict[str, Any]) -> str:
    body = json.dumps(action, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8", errors="surrogatepass")).hexdigest()


def preview(tool: str, args: dict[str, Any], registry: Registry | None = None) -> str:
    """One line a person reads to know what they approve (the file holds all of it): the
    tool's own (registry.py). A tool the registry does not hold is `UnknownTool`."""
    from zoo.policy.tools import BUILTINS  # only where an approval is shown: status starts fast

    return (BUILTINS if registry is None else registry).preview(tool, args)


def _folder(home: Home) -> Path:
    return home.approvals


def _decided(home: Home) -> Path:
    return _folder(home) / "decided"


def request(
    home: Home,
    task_id: str,
    agent: str,
    tool: str,
    args: dict[str, Any],
    why: str,
    *,
    once: bool = False,
) -> Approval:
    """Queue an action for a person; the caller journals `approval.requested`.

    With `once` (a step redone after a crash), the same action of the same task already
    waiting is that approval, not a second one.
    """
    folder = _folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    action = {"task": task_id, "agent": agent, "tool": tool, "arguments": args}
    for waiting in pending(home) if once else ():
        if waiting.task == task_id and waiting.hash == digest(action):
            return waiting
    approval = Approval(
        id="", task=task_id, agent=agent, tool=tool, arguments=args, hash=digest(action),
        why=why, requested=utc_now(),
    )  # fmt: skip
    while True:
        approval.id = _allocate(home)
        approval.path = folder / f"{approval.id}.json"
        if create_exclusive(approval.path, _dump(approval)):
            return approval


def _allocate(home: Home) -> str:
    return f"A-{tasks.count_on(home, 'last-approval', lambda: _highest(home)):04d}"


def _highest(home: Home) -> int:
    """The highest approval number in use: the counter's value when `.zoo/` was lost."""
    return max((_number(p.name) for p in _all_files(home)), default=0)


def _number(name: str) -> int:
    match = _FILE.match(name)
    return int(match.group(1)[2:]) if match else 0


def _all_files(home: Home) -> Iterator[Path]:
    for folder in (_folder(home), _decided(home)):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        yield from (folder / name for name in names if _FILE.match(name))


def _dump(approval: Approval) -> str:
    return json.dumps(approval.document(), indent=2, ensure_ascii=False) + "\n"


def read(path: Path) -> Approval:
    try:
        doc = json.loads(path.read_bytes())
        approval = Approval(**{k: v for k, v in doc.items() if k not in ("path", "preview")})
    except (ValueError, TypeError) as e:
        raise ApprovalRefused(f"{path.name}: not a readable approval ({e})") from None
    approval.path = path
    return approval


def pending(home: Home) -> list[Approval]:
    """Every approval that waits for a person, oldest first."""
    try:
        names = sorted(os.listdir(_folder(home)), key=_number)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not _FILE.match(name) or (_decided(home) / name).exists():
            continue  # a crash mid-decision leaves both copies: the decided one counts
        try:
            found.append(read(_folder(home) / name))
        except (ApprovalRefused, FileNotFoundError):
            continue
    return found


def find(home: Home, wanted: str) -> Approval:
    """The approval `A-0001`, or the one pending approval of task `T-0042`."""
    key = wanted.strip().upper()
    if re.fullmatch(r"T-\d+", key):
        task_id = f"T-{int(key[2:]):04d}"
        waiting = [a for a in pending(home) if a.task == task_id]
        if len(waiting) == 1:
            return waiting[0]
        if not waiting:
            raise NotFound(f"task {task_id} has no pending approval (see 'zoo approvals')")
        ids = ", ".join(a.id for a in waiting)
        raise NotFound(f"task {task_id} has {len(waiting)} pending approvals ({ids}): name one")
    if not re.fullmatch(r"A-\d+", key):
        raise NotFound(f"no approval {wanted!r}: ids look like A-0001 (or a task's id, T-0042)")
    name = f"A-{int(key[2:]):04d}.json"
    for path in (_decided(home) / name, _folder(home) / name):
        if path.exists():
            return read(path)
    raise NotFound(f"no approval {name[:-5]} (see 'zoo approvals')")


# --- deciding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What `zoo approve` / `zoo deny` did."""

    approval: Approval
    task: str
    agent: str
    result: str | None = None
    """For an approved action: what it returned (as the agent will read it)."""
    failed: bool = False

    def document(self) -> dict[str, Any]:
        return {**self.approval.document(), "failed": self.failed}


def approve(zoo: Zoo, wanted: str, *, by: str | None = None) -> Decision:
    """Run the approved action exactly once, record it, and queue the task again."""
    home = zoo.home
    person = by or _person()
    with _deciding(home):
        approval = find(home, wanted)
        task = _waiting_task(zoo, approval, person)
        interrupted = approval.status == "approved"
        if not interrupted:
            _check_untampered(zoo, approval)
            _settle(home, approval, "approved", person)  # before it runs: never twice
    fields: dict[str, Any] = {"task": task.id, "agent": approval.agent, "approval": approval.id}
    with leases.hold(home, task.id, person, utc_now()):
        if interrupted:  # a `zoo approve` died after approving: finish, never run it again
            result = approval.result or "(unknown: Zoo stopped while the action ran)"
            text = (f"Approved by {approval.by} at {approval.decided}: {approval.preview}. "
                    f"It ran once; it is not run again.\n\n{_fenced(result)}")  # fmt: skip
            _back_to_agent(zoo, task, approval, text, [("approval.finished", fields)])
            return Decision(approval, task.id, approval.agent, result)
        result, failed, event = _perform(zoo, approval, fields)
        approval.result = result[:2000]
        atomic_write(approval.path, _dump(approval))
        shown = f"Approved by {person}: {approval.preview}."
        _back_to_agent(zoo, task, approval, f"{shown}\n\n{_fenced(result)}",
                       [("approval.approved", {**fields, "by": person}), event])  # fmt: skip
    return Decision(approval, task.id, approval.agent, result, failed)


def _perform(
    zoo: Zoo, approval: Approval, fields: dict[str, Any]
) -> tuple[str, bool, tuple[str, dict[str, Any]]]:
    """Run the approved action: (result, failed, its journal event)."""
    from zoo.errors import ToolRefused
    from zoo.policy.tools import ToolContext, perform

    ctx = ToolContext(zoo.home, zoo.roster, approval.agent, approval.task, zoo.memory,
                      env=dict(zoo.models.env))  # fmt: skip
    try:
        done = perform(ctx, approval.tool, approval.arguments)
    except ToolRefused as e:
        return f"error: {e}", True, ("tool.refused", {**fields, "tool": approval.tool,
                                                      "error": str(e)})  # fmt: skip
    return done.text, False, ("tool.call", {**fields, **done.fields})


def deny(zoo: Zoo, wanted: str, *, reason: str | None, by: str | None = None) -> Decision:
    """Refuse the action; the task goes back to its agent with the reason."""
    home = zoo.home
    person = by or _person()
    with _deciding(home):
        approval = find(home, wanted)
        task = _waiting_task(zoo, approval, person)
        if approval.status != "pending":
            raise ApprovalRefused(
                f"approval {approval.id} is already approved; 'zoo approve {approval.id}' "
                "finishes what was interrupted"
            )
        approval.reason = reason
        _settle(home, approval, "denied", person)
    with leases.hold(home, task.id, person, utc_now()):
        why = f": {reason}" if reason else ""
        fields = {"task": task.id, "agent": approval.agent, "approval": approval.id,
                  "by": person, "reason": reason}  # fmt: skip
        text = f"Denied by {person}{why}. The action did not run: {approval.preview}."
        _back_to_agent(zoo, task, approval, text, [("approval.denied", fields)])
    return Decision(approval, task.id, approval.agent)


@contextmanager
def _deciding(home: Home) -> Iterator[None]:
    """One decision at a time: two `zoo approve` at once never both run an action."""
    with lock(home.state / "approvals.lock"):
        yield


def _person() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "a person"


def _waiting_task(zoo: Zoo, approval: Approval, person: str) -> Task:
    """The task that waits on `approval`, which is pending (or was approved by a decision
    that died before it finished); else the approval is void or already decided."""
    try:
        task: Task | None = tasks.find(zoo.home, approval.task)
    except NotFound:
        task = None
    if task is not None and (task.status, task.meta.get("approval")) == (
        "waiting-approval",
        approval.id,
    ):
        if approval.status in ("pending", "approved"):
            return task
    if approval.status != "pending":
        when = f" by {approval.by} at {approval.decided}" if approval.by else ""
        raise ApprovalRefused(f"approval {approval.id} is already {approval.status}{when}")
    _settle(zoo.home, approval, "void", person)  # its task moved on: nothing may run it now
    zoo.journal.write("approval.void", approval=approval.id, task=approval.task, by=person)
    raise ApprovalRefused(
        f"approval {approval.id} is void: task {approval.task} no longer waits on it; nothing ran"
    )


def _check_untampered(zoo: Zoo, approval: Approval) -> None:
    """Refuse unless the journal verifies and recorded this very action's hash."""
    from zoo.state.journal import read_events, verify

    _, bad = verify(zoo.home.journal_path)
    if bad is not None:
        raise ApprovalRefused(
            f"the journal does not verify (line {bad.line}: {bad.problem}), so approval "
            f"{approval.id} cannot be checked; nothing ran (see 'zoo log --verify')"
        )
    recorded = [
        e.get("action_hash")
        for e in read_events(zoo.home.journal_path)
        if e.get("event") == "approval.requested" and e.get("approval") == approval.id
    ]
    actual = digest(approval.action)
    if recorded != [actual] or approval.hash != actual:
        zoo.journal.write("approval.refused", approval=approval.id, task=approval.task,
                          reason="altered after it was requested")  # fmt: skip
        raise ApprovalRefused(
            f"approval {approval.id} was altered after it was requested: its action does not "
            "match the hash the journal recorded; nothing ran (deny it: "
            f"zoo deny {approval.id})"
        )


def _settle(home: Home, approval: Approval, status: str, person: str) -> None:
    """Record the decision durably, moving the file to decided/."""
    approval.status, approval.by, approval.decided = status, person, utc_now()
    target = _decided(home) / approval.path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_move(approval.path, target, _dump(approval))
    approval.path = target


def _back_to_agent(
    zoo: Zoo, task: Task, approval: Approval, text: str, events: list[tuple[str, dict[str, Any]]]
) -> None:
    task.append_section(f"approval {approval.id} · {utc_now()}", text)
    task.meta.pop("approval", None)
    zoo.assign(task, approval.agent, event="task.resumed",
               extra={"approval": approval.id}, before=events)  # fmt: skip


def _fenced(text: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}\n{text.rstrip()}\n{fence}"
