"""Showing results: rich tables for people, one JSON document for scripts. Decides nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from zoo.secrets import redact

out = Console(highlight=False, soft_wrap=True)


def as_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")


def error(message: str) -> None:
    """The one line a person reads when something is wrong."""
    sys.stderr.write(f"zoo: {redact(message)}\n")


def line(text: str) -> None:
    out.print(escape(redact(text)))


def status(doc: dict[str, Any]) -> None:
    zoo = doc["zoo"]
    counts = doc["tasks"]
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    out.print(f"[bold]{escape(zoo['name'])}[/] · {escape(zoo['home'])} · {summary or 'no tasks'}")
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
        line(f"working: {w['task']} · {w['agent']} since {w['since']} (pid {w['pid']}{beat})")
    if doc["needs_person"]:
        out.print("\n[bold]needs a person[/]")
        for item in doc["needs_person"]:
            task = f"{item['task']} " if item.get("task") else ""
            line(f"  {item['id']}  {task}{item['title']} · {item['reason']}")
    for problem in doc["broken"]:
        line(f"broken: {problem}")
    if doc["schedules"]:
        out.print("\n[bold]schedules[/]")
        table([(s["name"], s["cron"], "-> " + s["agent"], _next_run(s), _last_run(s))
               for s in doc["schedules"]], indent="  ")  # fmt: skip
    spend = doc["spend"]
    budget = f" of ${spend['budget_usd']:.2f}" if spend["budget_usd"] is not None else ""
    line(
        f"\nspend {spend['date']}: ${spend['usd']:.2f}{budget} · "
        f"{spend['input_tokens']:,} tokens in, {spend['output_tokens']:,} out"
    )
    by_agent = sorted(spend["by_agent"].items(), key=lambda kv: -kv[1].get("usd", 0))
    if any(totals.get("usd") or totals.get("input_tokens") for _, totals in by_agent):
        table([(f"{name}", f"${totals.get('usd', 0):.2f}",
                f"{totals.get('input_tokens', 0):,} in", f"{totals.get('output_tokens', 0):,} out")
               for name, totals in by_agent], right=(1, 2, 3), indent="  ")  # fmt: skip


def table(rows: Sequence[Sequence[str]], right: tuple[int, ...] = (), indent: str = "") -> None:
    """Aligned columns, plain text (fast: `zoo status` must start quickly)."""
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
    out.print(f"[bold]{meta.get('id')}[/] {escape(str(meta.get('title')))}  ({doc['path']})")
    for key, value in meta.items():
        if key not in ("id", "title"):
            out.print(f"  {key}: {escape(str(value))}")
    out.print()
    out.print(escape(doc["body"].rstrip()))
    if doc["events"]:
        out.print("\n[bold]history[/]")
        for event in doc["events"]:
            event_line(event)


def approvals(waiting: list[dict[str, Any]]) -> None:
    if not waiting:
        line("no approvals waiting")
        return
    rows = [("id", "task", "agent", "action", "requested")]
    rows += [(a["id"], a["task"], a["agent"], a["preview"], a["requested"]) for a in waiting]
    table(rows)
    line("\n'zoo approvals ID' shows all of one; 'zoo approve ID' runs it, 'zoo deny ID' refuses")


def approval(a: dict[str, Any]) -> None:
    out.print(f"[bold]{a['id']}[/] {a['status']} · {a['task']} · {a['agent']} · {a['tool']}")
    line(f"  {a['preview']}")
    line(f"  why: {a['why']}")
    line(f"  requested {a['requested']}, action sha256 {a['hash'][:16]}")
    if a.get("decided"):
        reason = f": {a['reason']}" if a.get("reason") else ""
        line(f"  {a['status']} by {a['by']} at {a['decided']}{reason}")
    line("")
    args = a["arguments"]
    if a["tool"] == "write_file":
        line(f"--- {args['path']} ---")
        line(args["content"])
    else:
        line(json.dumps(args, indent=2, ensure_ascii=False))
    if a.get("result"):
        line(f"\nresult:\n{a['result']}")


_HIDDEN = {"ts", "event", "prev", "hash", "task"}


def event_line(event: dict[str, Any]) -> None:
    fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in _HIDDEN)
    task = f" {event['task']}" if event.get("task") else ""
    out.print(f"{event.get('ts', '')[:19]} {event.get('event', '?'):<15}{task} {escape(fields)}")
