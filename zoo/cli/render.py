"""Showing results: rich tables for people, one JSON document for scripts. Decides nothing.

Everything printed for people passes through `shown`: secrets redacted, and control
characters (a terminal's escape sequences among them) shown escaped, so a brief or a
model's output can never drive the terminal that displays it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from zoo.secrets import redact

if TYPE_CHECKING:
    from zoo.engine.approvals import Decision
    from zoo.engine.check import CheckReport
    from zoo.engine.doctor import Report
    from zoo.engine.logview import Verified
    from zoo.engine.recall import Recalled
    from zoo.engine.router import Dispatched, Plan
    from zoo.engine.runreport import RunReport
    from zoo.engine.zoo import Retried
    from zoo.roster import Roster
    from zoo.roster.scaffold import Created
    from zoo.state.home import Home

out = Console(highlight=False, soft_wrap=True)


_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in _BIDI})
_ESCAPES_LINES = {c: text for c, text in _ESCAPES.items() if c not in (0x09, 0x0A)}
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), *_BIDI)}
"""What `json.dumps(ensure_ascii=False)` leaves raw that a terminal acts on (C1, bidi)."""


def printable(text: str, *, lines: bool = True) -> str:
    """`text` safe to show on a terminal: control characters (ESC, C0, C1, DEL, bidi
    overrides) written as escapes like `\\x1b`. With `lines`, newlines and tabs stay."""
    if lines:
        return text.replace("\r\n", "\n").translate(_ESCAPES_LINES)
    return text.translate(_ESCAPES)


def shown(text: object, *, lines: bool = True) -> str:
    """What a person is shown of `text`: redacted, then `printable`."""
    return printable(redact(str(text)), lines=lines)


def safe_markup(text: object, *, lines: bool = False) -> str:
    """`shown`, safe inside rich markup too."""
    return escape(shown(text, lines=lines))


def json_text(doc: Any, indent: int | None = 2) -> str:
    """`doc` as JSON text: what JSON leaves raw that a terminal acts on is escaped."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False, default=str)
    return text.translate(_JSON_ESCAPES)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 schedule`, `2 schedules`, `1,200 tokens`."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def as_json(doc: Any) -> None:
    sys.stdout.write(json_text(doc) + "\n")


def json_line(doc: Any) -> None:
    """One JSON document on one line (`zoo log -f --json`), flushed at once."""
    sys.stdout.write(json_text(doc, indent=None) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """The one line a person reads when something is wrong."""
    sys.stderr.write(f"zoo: {shown(message, lines=False)}\n")


def line(text: str, *, lines: bool = True) -> None:
    """A line for people; `lines=False` keeps it one line whatever `text` holds."""
    out.print(escape(shown(text, lines=lines)))


def status(doc: dict[str, Any]) -> None:
    zoo = doc["zoo"]
    counts = doc["tasks"]
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    name, where = safe_markup(zoo["name"]), safe_markup(zoo["home"])
    out.print(f"[bold]{name}[/] · {where} · {summary or 'no tasks'}")
    rows = [("agent", "role", "model", "workspace", "queued", "working")]
    rows += [
        (a["name"], a["role"], a["model"], a["workspace"] + "/", _n(a["queued"]), _n(a["working"]))
        for a in doc["agents"]
    ]
    table(rows, right=(4, 5))
    up = doc.get("runner")
    if up is not None:
        line(f"runner: up, pid {up['pid']} since {up['since']} ({up['mode']})")
    else:
        line("runner: none up (start one with zoo run, or from cron: zoo cron)")
    for w in doc["working"]:
        beat = f", heartbeat {w['heartbeat_age_s']:.0f}s ago" if w.get("heartbeat_age_s") else ""
        line(
            f"working: {w['task']} · {w['agent']} since {w['since']} (pid {w['pid']}{beat})",
            lines=False,
        )
    if doc["needs_person"]:
        out.print("\n[bold]needs a person[/]")
        for item in doc["needs_person"]:
            task = f"{item['task']} " if item.get("task") else ""
            line(f"  {item['id']}  {task}{item['title']} · {item['reason']}", lines=False)
    for problem in doc["broken"]:
        line(f"broken: {problem}", lines=False)
    if doc["schedules"]:
        out.print("\n[bold]schedules[/]")
        table([(s["name"], s["cron"], "-> " + s["agent"], _next_run(s), _last_run(s))
               for s in doc["schedules"]], indent="  ")  # fmt: skip
    spend = doc["spend"]
    budget = f" of ${spend['budget_usd']:.2f}" if spend["budget_usd"] is not None else ""
    line(
        f"\nspend {spend['date']}: ${spend['usd']:.2f}{budget} · "
        f"{plural(spend['input_tokens'], 'token')} in, {spend['output_tokens']:,} out"
    )
    by_agent = sorted(spend["by_agent"].items(), key=lambda kv: -kv[1].get("usd", 0))
    if any(totals.get("usd") or totals.get("input_tokens") for _, totals in by_agent):
        table([(f"{name}", f"${totals.get('usd', 0):.2f}",
                f"{totals.get('input_tokens', 0):,} in", f"{totals.get('output_tokens', 0):,} out")
               for name, totals in by_agent], right=(1, 2, 3), indent="  ")  # fmt: skip


def table(rows: Sequence[Sequence[str]], right: tuple[int, ...] = (), indent: str = "") -> None:
    """Aligned columns, plain text (fast: `zoo status` must start quickly)."""
    rows = [[shown(cell, lines=False) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.file.write(indent + "  ".join(cells).rstrip() + "\n")


def _n(value: int) -> str:
    return str(value) if value else "·"


def _next_run(schedule: dict[str, Any]) -> str:
    if schedule["next_run"] is None:
        return "never: the cron does not parse (see 'zoo check')"
    if schedule.get("due"):
        return f"due now (missed {schedule['next_run']})"
    return f"next {schedule['next_run']}"


def _last_run(schedule: dict[str, Any]) -> str:
    if not schedule.get("last_run"):
        return "not run yet"
    task = f" ({schedule['last_task']})" if schedule.get("last_task") else ""
    return f"last {schedule['last_run']}{task}"


def show(doc: dict[str, Any]) -> None:
    meta = doc["front_matter"]
    title, path = safe_markup(meta.get("title")), safe_markup(doc["path"])
    out.print(f"[bold]{safe_markup(meta.get('id'))}[/] {title}  ({path})")
    for key, value in meta.items():
        if key not in ("id", "title"):
            out.print(f"  {safe_markup(key)}: {safe_markup(_readable(key, value))}")
    out.print()
    out.print(escape(shown(doc["body"].rstrip())))
    if doc["events"]:
        out.print("\n[bold]history[/]")
        for event in doc["events"]:
            event_line(event)


def _readable(key: str, value: Any) -> str:
    """A front matter value as people read it: `rules: matched 'bug'`, not a Python repr."""
    if key == "route" and isinstance(value, dict) and {"by", "reason"} <= set(value):
        confidence = value.get("confidence")
        sure = f" (confidence {confidence})" if confidence is not None else ""
        return f"{value['by']}: {value['reason']}{sure}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_readable(str(k), v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_readable(key, v) for v in value)
    return "" if value is None else str(value)


def approvals(waiting: list[dict[str, Any]]) -> None:
    if not waiting:
        line("no approvals waiting")
        return
    rows = [("id", "task", "agent", "action", "requested")]
    rows += [(a["id"], a["task"], a["agent"], a["preview"], a["requested"]) for a in waiting]
    table(rows)
    line("\n'zoo approvals ID' shows all of one; 'zoo approve ID' runs it, 'zoo deny ID' refuses")


def approval(a: dict[str, Any]) -> None:
    head = " · ".join(safe_markup(a[k]) for k in ("status", "task", "agent", "tool"))
    out.print(f"[bold]{safe_markup(a['id'])}[/] {head}")
    line(f"  {a['preview']}", lines=False)
    line(f"  why: {a['why']}", lines=False)
    line(f"  requested {a['requested']}, action sha256 {a['hash'][:16]}")
    if a.get("decided"):
        reason = f": {a['reason']}" if a.get("reason") else ""
        line(f"  {a['status']} by {a['by']} at {a['decided']}{reason}", lines=False)
    line("")
    args = a["arguments"]
    if a["tool"] == "write_file":
        line(f"--- {args['path']} ---", lines=False)
        line(args["content"])
    else:
        line(json_text(args))
    if a.get("result"):
        line(f"\nresult:\n{a['result']}")


_HIDDEN = {"ts", "event", "prev", "hash", "task"}


def event_line(event: dict[str, Any]) -> None:
    fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in _HIDDEN)
    task = f" {event['task']}" if event.get("task") else ""
    text = f"{str(event.get('ts', ''))[:19]} {str(event.get('event', '?')):<15}{task} {fields}"
    out.print(safe_markup(text))


def created(done: Created, typed: str) -> None:
    """What `zoo init` made, and the next command: `cd` as the user `typed` the folder,
    unless a shell would read that otherwise."""
    import shlex
    from pathlib import Path

    line(f"created a zoo home in {done.root} (team {done.name!r}, {len(done.written)} files)")
    for note in done.notes:
        line(f"  {note}")
    where = str(done.root) if typed.startswith(("-", "~")) else typed
    go = "" if done.root == Path.cwd().resolve() else f"cd {shlex.quote(where)} && "
    line(f'next: {go}zoo dispatch "Write a short post about our launch" && zoo run --once')


def check(report: CheckReport) -> None:
    for problem in report.errors:
        error(problem)
    for warning in report.warnings:
        line(f"warning: {warning}")
    for folder in report.created:
        line(f"created {folder}/")
    if report.ok and report.roster is not None:
        agents, schedules = len(report.roster.agents), len(report.roster.schedules)
        line(f"zoo.yaml is valid: {plural(agents, 'agent')}, {plural(schedules, 'schedule')}")


def dispatched(done: Dispatched, home: Home) -> None:
    where = done.route.agent or "escalations (needs a person)"
    line(f"{done.task.id} -> {where} · {done.route.by}: {done.route.reason}")
    line(f"  {home.relative(done.task.path)}")


def plan(result: Plan, roster: Roster) -> None:
    route = result.route
    if result.asked_model:
        lead = roster.lead
        line(f"no routes word matched: asked the lead's model ({lead}, tier "
             f"{roster.tier_name(lead)}; journaled, counted in spend)")  # fmt: skip
    if route.agent is None:
        line(f"escalations (needs a person) · {route.reason}")
    else:
        line(f"{route.agent} · {route.by}: {route.reason}")
        end = ["... (a cycle: max_handoffs applies)"] if result.cycle else ["done"]
        line("chain: " + " -> ".join([*result.chain, *end]))


def run_summary(report: RunReport) -> str:
    return (
        f"{plural(report.steps, 'step')}, {report.routed} routed, {report.done} done, "
        f"{report.escalated} escalated in {report.seconds:.2f}s"
    )


def decision(done: Decision) -> None:
    a = done.approval
    line(f"{a.id} {a.status}: {a.preview} ({done.task}, {a.agent})")
    if done.result is not None:
        line(done.result)
    line(f"{done.task} is queued for {done.agent} again")


def retried(done: Retried, home: Home, every: bool) -> None:
    for task in done.tasks:
        line(f"{task.id} is queued for {task.agent} again ({home.relative(task.path)}); "
             "zoo run picks it up")  # fmt: skip
    if every and not done.tasks and not done.failed:
        line("no escalated tasks")


def verified(checked: Verified) -> None:
    if checked.problem is None:
        line(f"journal ok: {plural(checked.lines, 'event')}, hash chain intact")
    else:
        error(checked.problem)


def memory(found: Recalled) -> None:
    if not found.entries and found.limit:
        line(f"no entries in {found.where}" + (f" matching {found.query!r}" if found.query else ""))
    for e in found.entries:
        line(f"{e.time} · {e.agent} · {e.task}")
        line(f"  {e.text}")


def doctor(report: Report) -> None:
    for c in report.checks:
        line(f"{c.verdict:<4} {c.name}: {c.detail}")
