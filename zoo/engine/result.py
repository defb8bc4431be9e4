"""What one step decided: a `StepResult`, plain data, with its explicit next step.

A turn (turn.py) computes it; the runner (step.py) applies it to the task. Nothing in it
refers to a live object, so a turn computed elsewhere (a worker) can be sent back and
applied the same way. The shape follows the agents SDK's `SingleStepResult` and its
`NextStepHandoff | NextStepFinalOutput | NextStepRunAgain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.engine.zoo import Event


@dataclass(frozen=True)
class Handoff:
    """The task goes to another agent."""

    to: str
    note: str = ""
    """What the agent said to the next one (`handoff {to, note}`); empty when it named none."""


@dataclass(frozen=True)
class Finish:
    """The task is done: the agent had no one to hand it to."""


@dataclass(frozen=True)
class Escalate:
    """The task goes to a person, with the reason."""

    reason: str
    by: str
    """Who sent it: the agent (its `escalate` call, or its failure), or "runner"."""
    failed: bool = False
    """The step failed (a model error, max_turns, a refused playbook): the run fails too."""


@dataclass(frozen=True)
class Wait:
    """The task waits in its folder for a person's decision on an approval."""

    approval: str


NextStep = Handoff | Finish | Escalate | Wait


@dataclass(frozen=True)
class StepResult:
    """One agent's turn on one task: what it said, did and decided, not yet saved."""

    agent: str
    texts: tuple[str, ...]
    """What the agent said, one entry per model reply with text."""
    effects: tuple[str, ...]
    """One line per effect of its tool calls, for its section (notes kept, files written,
    the handoff or escalation it asked for)."""
    next: NextStep
    events: tuple[Event, ...]
    """The step's events not written yet: they go with the task's move, durably."""
    tokens: int | None = None
    """Tokens its model replies used (None: it had no reply)."""
    error: str | None = None
    """Why the step failed (then `next` escalates it)."""


def next_step(
    agent: str,
    *,
    handoff_to: str | None,
    handoff_note: str,
    escalation: str | None,
    waiting: str | None,
    error: str | None,
    targets: Sequence[str],
    handoffs: int,
    max_handoffs: int,
) -> NextStep:
    """What happens to the task after `agent`'s turn, in this order: a failure escalates
    it; then the agent's escalation (even over an approval it also asked for); then an
    approval it waits on; then the handoff it chose, else its first `handoff` target,
    else it is done; a handoff over `max_handoffs` (counting this one) escalates it."""
    if error is not None:
        return Escalate(error, by=agent, failed=True)
    if escalation is not None:
        return Escalate(escalation, by=agent)
    if waiting is not None:
        return Wait(waiting)
    target = handoff_to or (targets[0] if targets else None)
    if target is None:
        return Finish()
    if handoffs + 1 > max_handoffs:
        reason = f"handed off {handoffs + 1} times, more than max_handoffs ({max_handoffs})"
        return Escalate(reason, by="runner")
    return Handoff(target, handoff_note)


def section(result: StepResult) -> str:
    """The agent's section of the task file: what it said, then its effects."""
    parts = ["\n\n".join(result.texts) if result.texts else "*(no text)*"]
    effects = [f"- {effect}" for effect in result.effects]
    if result.error:
        effects.append(f"- failed: {result.error}")
    if effects:
        parts.append("\n".join(effects))
    return "\n\n".join(parts)
