"""`Zoo`: a home open for work, the API that the CLI, the page and MCP clients call.

Every change of a task's hands goes through `assign`, `wait`, `escalate` or `finish`, so
that the file move, the front matter and the journal event always agree. `before` are
events of the same step, written with the move's own event in one durable append.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from zoo.errors import NotFound, UserError, did_you_mean
from zoo.models.base import Attempt, Model, Reply, Request, Usage
from zoo.models.registry import Models
from zoo.roster import Roster, load_roster
from zoo.state import leases, tasks
from zoo.state.home import DONE, ESCALATIONS, Home
from zoo.state.journal import Journal
from zoo.state.memory import Memory
from zoo.state.spend import Ledger, Spend, cost
from zoo.state.tasks import Task

Event = tuple[str, dict[str, Any]]


def attempt_events(
    attempts: Sequence[Attempt], task: str | None, agent: str, purpose: str | None = None
) -> list[Event]:
    """One `model.attempt` event per failed try of a model call (retries, fallbacks)."""
    return [
        ("model.attempt", {"task": task, "agent": agent, "purpose": purpose, "tier": a.tier,
                           "model": a.model, "error": a.error, "kind": a.kind,
                           "wait_s": a.wait_s, "then": a.then})
        for a in attempts
    ]  # fmt: skip


def reply_fields(reply: Reply) -> dict[str, Any]:
    """What a `model.reply` event says of a reply: model, tokens (`estimated` when the
    server sent no usage), and its tool calls (`tool_format: text` when written in text)."""
    return {
        "model": reply.model or None, "input_tokens": reply.usage.input_tokens,
        "output_tokens": reply.usage.output_tokens, "estimated": reply.usage_estimated or None,
        "tool_calls": len(reply.tool_calls) or None,
        "tool_format": "text" if any(c.written for c in reply.tool_calls) else None,
    }  # fmt: skip


@dataclass
class Retried:
    """What `zoo retry` did: the tasks queued again, and why the others were not."""

    tasks: list[Task] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    """{id, error} for each task that could not be retried."""
    one: bool = False
    """One task was named (`zoo retry ID`): retried, the document is that task's own."""

    def document(self) -> dict[str, Any]:
        docs = [{"id": t.id, "agent": t.agent, "workspace": t.folder, "path": str(t.path)}
                for t in self.tasks]  # fmt: skip
        if self.one and self.tasks and not self.failed:
            return docs[0]
        return {"retried": docs, "failed": self.failed}


def edited(task: Task, edit: tasks.HandEdit | None) -> list[Event]:
    """The `task.edit_kept` event of a save that kept a person's edit (none if none)."""
    if edit is None:
        return []
    return [("task.edit_kept", {"task": task.id, **edit.fields()})]


@dataclass
class Zoo:
    """A zoo home open for work: its roster, journal, memory, models and spend, and the
    moves a task makes (`assign`, `wait`, `escalate`, `finish`, `retry`).

    `Zoo.open(home)` loads it; the engine's operations take it (router, runner, approvals)
    and return dataclasses that the CLI, the page and `zoo mcp serve` show; nothing here
    prints. The runner's worker threads share one.
    """

    home: Home
    """The folder: zoo.yaml, agents/, workspaces/, MEMORY.md, .zoo/."""
    roster: Roster
    """zoo.yaml, loaded and validated."""
    journal: Journal
    """`.zoo/events.jsonl`: every event, appended durably and hash-chained."""
    memory: Memory
    """MEMORY.md and the agents' own memory notes."""
    models: Models
    """A model for each tier, built when first called."""
    ledger: Ledger
    """This process's spend and the calls under way; `spend` prices it within `budget:`."""

    @classmethod
    def open(
        cls, home: Home, *, env: Mapping[str, str] | None = None, model: Model | None = None
    ) -> Zoo:
        """Load and validate the roster; `model` answers for every tier (tests)."""
        roster = load_roster(home)
        models = Models(roster, env, model)
        return cls(home, roster, Journal(home), Memory(home), models, Ledger(home))

    def with_roster(self, roster: Roster) -> Zoo:
        """This home with another roster (zoo.yaml read again): new models for its tiers;
        the journal, memory and spend stay the same."""
        models = Models(roster, self.models.env, self.models.override)
        return replace(self, roster=roster, models=models)

    @property
    def spend(self) -> Spend:
        """The ledger within this roster's `budget:`, at its tiers' prices."""
        return Spend(self.ledger, self.roster.budget, self._price)

    def paid_call(
        self, agent: str, tier: str, request: Request, *, task: str | None = None,
        task_tokens: int = 0,
    ) -> tuple[Reply, float]:  # fmt: skip
        """One call of `tier`'s model within the budget (`Spend.call`): the reply, its cost."""

        def complete(request: Request) -> Reply:  # the model is built once the call may start
            return self.models.for_tier(tier).complete(request)

        return self.spend.call(agent, tier, request, complete, task=task,
                               task_tokens=task_tokens)  # fmt: skip

    def spent(self, agent: str, tier: str, usage: Usage) -> float:
        """Account one reply's usage to `agent` (a call not reserved); returns its cost."""
        return self.spend.add(agent, tier, usage)

    def daily_budget_spent(self) -> bool:
        return self.spend.daily_spent()

    def _price(self, tier: str, usage: Usage) -> float:
        return cost(self.roster.tier(tier), self.models.resolved(tier).provider, usage)

    def assign(
        self,
        task: Task,
        agent: str,
        *,
        event: str,
        extra: Mapping[str, Any] | None = None,
        before: Sequence[Event] = (),
    ) -> None:
        """Queue `task` for `agent`, moving it into the agent's workspace."""
        workspace = self.roster.workspace_of(agent)
        task.meta.update(status="queued", agent=agent, workspace=workspace)
        task.meta.pop("escalation", None)
        task.meta.pop("approval", None)
        edit = tasks.save(task, self.home.workspace(workspace))
        fields = {"task": task.id, "agent": agent, "workspace": workspace, **(extra or {})}
        self.journal.write_many([*before, *edited(task, edit), (event, fields)])

    def escalate(
        self,
        task: Task,
        reason: str,
        *,
        by: str,
        failed: bool = False,
        before: Sequence[Event] = (),
    ) -> None:
        """Send `task` to escalations/ with the reason a person must act."""
        task.meta.update(status="escalated", workspace=ESCALATIONS, escalation=reason)
        edit = tasks.save(task, self.home.workspace(ESCALATIONS))
        fields = {"task": task.id, "agent": task.agent, "by": by, "reason": reason,
                  "failed": failed or None}  # fmt: skip
        self.journal.write_many([*before, *edited(task, edit), ("task.escalated", fields)])

    def wait(self, task: Task, approval: str, *, before: Sequence[Event] = ()) -> None:
        """Park `task` in its folder until a person decides on `approval`."""
        task.meta.update(status="waiting-approval", approval=approval)
        edit = tasks.save(task)
        fields = {"task": task.id, "agent": task.agent, "approval": approval}
        self.journal.write_many([*before, *edited(task, edit), ("task.waiting", fields)])

    def retry(self, task_id: str, to: str | None = None) -> Task:
        """Send an escalated task back to work: to `to`, else to the agent that had it.

        The task gets a fresh count of handoffs. Sent to the lead (or when it had no
        agent), it goes back to the inbox to be routed again.
        """
        task = tasks.find(self.home, task_id)
        if task.status != "escalated":
            raise UserError(f"{task.id} is {task.status}, not escalated: only an escalated "
                            "task can be retried")  # fmt: skip
        agent = to or task.agent or self.roster.lead
        if agent not in self.roster.agents:
            hint = did_you_mean(agent, list(self.roster.agents))
            raise NotFound(f"no agent '{agent}' in zoo.yaml{hint}")
        with leases.hold(self.home, task.id, agent, tasks.utc_now()):
            reason = task.meta.get("escalation")
            task.meta["handoffs"] = 0
            self.assign(task, agent, event="task.retried",
                        extra={"by": "person", "escalation": reason})  # fmt: skip
        return task

    def retry_many(self, task_ids: Sequence[str] | None, to: str | None = None) -> Retried:
        """`retry` each task of `task_ids`, or every escalated task when None.

        `to` is checked first, so a wrong name changes nothing; a task that cannot be
        retried is one line of `failed`, and the others go on.
        """
        if to is not None and to not in self.roster.agents:
            raise NotFound(f"no agent '{to}' in zoo.yaml{did_you_mean(to, self.roster.agents)}")
        retried = Retried(one=task_ids is not None and len(task_ids) == 1)
        if task_ids is None:
            folder = self.home.workspace(ESCALATIONS)
            task_ids = [m.group(1) for p in tasks.task_files(folder)
                        if (m := tasks.TASK_NAME.match(p.name))]  # fmt: skip
        for task_id in dict.fromkeys(task_ids):
            try:
                retried.tasks.append(self.retry(task_id, to))
            except UserError as e:
                retried.failed.append({"id": task_id, "error": str(e)})
        return retried

    def finish(self, task: Task, *, before: Sequence[Event] = ()) -> None:
        task.meta.update(status="done", workspace=DONE)
        edit = tasks.save(task, self.home.workspace(DONE))
        done = ("task.done", {"task": task.id, "agent": task.agent})
        self.journal.write_many([*before, *edited(task, edit), done])
