"""The lead router: `routes` words first (no model call), else the lead's model.

The model answers through a `route` tool call (agent, reason, confidence). An answer
below `defaults.min_confidence`, naming an unknown agent, or a failed call sends the
brief to escalations/ with the reason. The route and its reason go in the front matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from zoo.engine.context import fit
from zoo.engine.zoo import Zoo, attempt_events, reply_fields
from zoo.errors import (
    BudgetExceeded,
    ModelError,
    NotFound,
    RunStopped,
    UsageError,
    did_you_mean,
    stops_run,
)
from zoo.models.base import Message, Request, ToolSpec
from zoo.roster import Roster, playbooks
from zoo.state import leases, tasks
from zoo.state.tasks import Task


@dataclass(frozen=True)
class Route:
    """Where a brief goes; `agent` None means a person must route it."""

    agent: str | None
    by: str
    """rules | model | cli | schedule"""
    reason: str
    confidence: float | None = None

    def as_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"by": self.by, "reason": self.reason}
        if self.confidence is not None:
            meta["confidence"] = self.confidence
        return meta


def by_rules(roster: Roster, text: str) -> Route | None:
    """The agent whose `routes` words the brief matches most; None when none or a tie."""
    lowered = text.lower()
    scores: dict[str, list[str]] = {}
    for name, agent in roster.agents.items():
        hits = [w for w in agent.routes if _matches(w.lower(), lowered)]
        if hits and name != roster.lead:
            scores[name] = hits
    if not scores:
        return None
    best = max(len(hits) for hits in scores.values())
    winners = [name for name, hits in scores.items() if len(hits) == best]
    if len(winners) > 1:
        return None
    hits = scores[winners[0]]
    return Route(winners[0], "rules", "matched " + ", ".join(f"'{w}'" for w in hits))


_pattern_cache: dict[str, re.Pattern[str]] = {}


def _matches(word: str, text: str) -> bool:
    pattern = _pattern_cache.get(word)
    if pattern is None:
        pattern = _pattern_cache[word] = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)")
    return pattern.search(text) is not None


ROUTE_TOOL_NAME = "route"


def route_tool(roster: Roster) -> ToolSpec:
    names = [n for n in roster.agents if n != roster.lead]
    return ToolSpec(
        ROUTE_TOOL_NAME,
        "Choose the agent who should take this brief.",
        {
            "type": "object",
            "properties": {
                "agent": {"type": "string", "enum": [*names, "none"]},
                "reason": {"type": "string", "description": "one line: why this agent"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["agent", "reason", "confidence"],
            "additionalProperties": False,
        },
    )


def router_prompt(zoo: Zoo) -> str:
    """The team and the lead's playbook; `PlaybookError` when the playbook cannot be used."""
    roster = zoo.roster
    lines = [
        f"You are {roster.lead}, the lead of the {roster.name} team. Route each brief to the "
        "one agent whose role fits it best, by calling the route tool with the agent, a "
        "one-line reason and your confidence from 0 to 1. Use agent 'none' with a low "
        "confidence when no agent fits: a person will route it.",
        "",
        "The team:",
    ]
    for name, agent in roster.agents.items():
        if name == roster.lead:
            continue
        routes = f" (routes: {', '.join(agent.routes)})" if agent.routes else ""
        lines.append(f"- {name}: {agent.role}. {agent.description}{routes}")
    lines += ["", playbooks.read(zoo.home, roster.lead)]
    return "\n".join(lines)


def by_model(zoo: Zoo, text: str, task_id: str | None = None, purpose: str = "route") -> Route:
    """The lead's model routes the brief (a call within the budget, journaled)."""
    return _ask_lead(zoo, text, task_id, purpose)[0]


def _ask_lead(zoo: Zoo, text: str, task_id: str | None, purpose: str) -> tuple[Route, bool]:
    """The lead model's route, and whether a call was made (not refused by the budget)."""
    roster = zoo.roster
    lead, tier = roster.lead, roster.tier_name(roster.lead)
    try:
        system = router_prompt(zoo)
    except playbooks.PlaybookError as e:
        return Route(None, "model", f"the lead's {e}"), False
    request = Request(
        system=system,
        messages=(Message("user", text),),
        tools=(route_tool(roster),),
        require_tool=ROUTE_TOOL_NAME,
        max_tokens=512,
        meta={"agent": lead, "task": task_id, "purpose": purpose},
    )
    try:
        request = fit(request, zoo.models.window(tier), tier).request  # or ContextExceeded
        reply, usd = zoo.paid_call(lead, tier, request, task=task_id)
    except (ModelError, BudgetExceeded) as e:
        events = attempt_events(getattr(e, "attempts", ()), task_id, lead, purpose)
        stopped = stops_run(e)
        if stopped is not None:  # a key, a server or the budget: the brief waits, unrouted
            stopped.events = events
            raise stopped from e
        zoo.journal.write_many(events)
        if isinstance(e, BudgetExceeded):
            return Route(None, "model", f"not routed: {e}"), False
        return Route(None, "model", f"router model failed: {e}"), True
    answered = reply.tier or tier
    zoo.journal.write_many([
        *attempt_events(reply.attempts, task_id, lead, purpose),
        ("model.reply", {"task": task_id, "agent": lead, "purpose": purpose, "tier": answered,
                         **reply_fields(reply), "usd": usd}),
    ])  # fmt: skip
    call = next((c for c in reply.tool_calls if c.name == ROUTE_TOOL_NAME), None)
    if call is None:
        return Route(None, "model", "router model gave no route"), True
    return _judge(roster, call.arguments), True


def _judge(roster: Roster, args: dict[str, Any]) -> Route:
    agent, reason, confidence = args.get("agent"), args.get("reason"), args.get("confidence")
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else "no reason given"
    if not isinstance(confidence, int | float) or isinstance(confidence, bool):
        return Route(None, "model", f"router gave no usable confidence ({reason})")
    conf = round(float(confidence), 2)
    if agent == "none":
        return Route(None, "model", f"no agent fits: {reason}", conf)
    if not isinstance(agent, str) or agent not in roster.agents or agent == roster.lead:
        return Route(None, "model", f"router chose unknown agent {agent!r} ({reason})", conf)
    threshold = roster.defaults.min_confidence
    if conf < threshold:
        return Route(None, "model", f"low confidence {conf} < {threshold}: {reason}", conf)
    return Route(agent, "model", reason, conf)


def choose(zoo: Zoo, text: str, task_id: str | None = None) -> Route:
    return by_rules(zoo.roster, text) or by_model(zoo, text, task_id)


def explicit(roster: Roster, agent: str) -> Route:
    """`--to AGENT`: the person routes; the name is checked (`--to` the lead routes as usual)."""
    if agent not in roster.agents:
        raise NotFound(f"no agent '{agent}' in zoo.yaml{did_you_mean(agent, roster.agents)}")
    return Route(agent, "cli", "sent with --to")


def route_task(zoo: Zoo, task: Task, route: Route | None = None) -> Route:
    """Route an inbox task (unless `route` is given) and move it where it goes."""
    if route is None:
        route = choose(zoo, task.body, task.id)
    task.meta["route"] = route.as_meta()
    if route.agent is None:
        task.meta["agent"] = zoo.roster.lead
        zoo.escalate(task, f"could not route: {route.reason}", by=zoo.roster.lead)
    else:
        zoo.assign(task, route.agent, event="task.routed", extra=route.as_meta())
    return route


class Dispatched(NamedTuple):
    """A brief written and routed: the task (its file where routing put it) and its route."""

    task: Task
    route: Route

    def document(self) -> dict[str, Any]:
        return {"id": self.task.id, "agent": self.route.agent,
                "workspace": self.task.meta["workspace"], "path": str(self.task.path),
                "route": self.route.as_meta()}  # fmt: skip


def dispatch(
    zoo: Zoo,
    text: str,
    *,
    source: str | None = None,
    to: str | None = None,
    title: str | None = None,
    file: Path | None = None,
) -> Dispatched:
    """Write a brief into the inbox and route it now.

    `file`: the brief is that file's text, read like a file dropped in the inbox: the
    title from its front matter (else its first heading or line), its own keys kept.
    `source` is `cli`, or `file` when there is one."""
    if "\x00" in text:
        at = len(text[: text.index("\x00")].encode("utf-8", errors="surrogatepass"))
        raise UsageError(f"the brief is not text: a NUL byte at byte {at}")
    extra = None
    if file is not None:
        meta, text = tasks.parse(file, text, strict_id=False)
        if text.strip() or meta.get("title"):
            fallback = "Untitled brief" if str(file) == "-" else file.stem
            title, extra = tasks.from_brief(meta, text, fallback)
    if not text.strip() and not title:
        raise UsageError("the brief is empty")
    source = source or ("cli" if file is None else "file")
    route = explicit(zoo.roster, to) if to and to != zoo.roster.lead else None
    task_id = tasks.allocate_id(zoo.home)
    # the lease keeps a running runner from routing the brief too while this does
    with leases.hold(zoo.home, task_id, zoo.roster.lead, tasks.utc_now()):
        brief_title = title or tasks.title_of(text, "Untitled brief")
        task = tasks.create(zoo.home, brief_title, text, source=source, task_id=task_id,
                            extra=extra)  # fmt: skip
        zoo.journal.write("task.created", task=task.id, source=source, title=task.title)
        try:
            route = route_task(zoo, task, route)
        except RunStopped as stopped:
            why = {"task": task.id, "agent": zoo.roster.lead, "reason": str(stopped)}
            zoo.journal.write_many([*stopped.events, ("run.stopped", why)])
            raise RunStopped(f"{stopped}; {task.id} waits in the inbox, unrouted, until then "
                             "(zoo run routes it)") from None  # fmt: skip
    zoo.ledger.flush()
    return Dispatched(task, route)


@dataclass(frozen=True)
class Plan:
    route: Route
    chain: list[str]
    """The default handoff chain from the chosen agent (first targets); on a cycle it ends
    with the agent it comes back to."""
    asked_model: bool = False
    """No routes word matched, so the lead's model was asked: a call journaled (purpose
    `plan`) and counted in spend like any other."""

    @property
    def cycle(self) -> bool:
        """The chain comes back to an agent: `max_handoffs` ends it, not `done`."""
        return len(set(self.chain)) < len(self.chain)

    def document(self) -> dict[str, Any]:
        return {"agent": self.route.agent, "route": self.route.as_meta(), "chain": self.chain,
                "cycle": self.cycle, "asked_model": self.asked_model}  # fmt: skip


def plan(zoo: Zoo, text: str, to: str | None = None) -> Plan:
    """Who would get this brief and where it would go, without creating anything."""
    if not text.strip():
        raise UsageError("the brief is empty")
    asked = False
    if to and to != zoo.roster.lead:
        route = explicit(zoo.roster, to)
    else:
        found = by_rules(zoo.roster, text)
        if found is None:
            found, asked = _ask_lead(zoo, text, None, "plan")
            zoo.ledger.flush()
        route = found
    chain = zoo.roster.chain(route.agent) if route.agent else []
    return Plan(route, chain, asked)
