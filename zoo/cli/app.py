"""The `zoo` command: parse, call one core function, render. Errors are one line on stderr.

Heavy modules are imported inside the commands that use them, so `zoo --help` and
`zoo status` start fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from zoo import __version__
from zoo.errors import ExitStatus, UsageError, UserError, ZooError
from zoo.secrets import scan_environment
from zoo.state.home import Home, find_home

if TYPE_CHECKING:
    from collections.abc import Callable

    from zoo.engine import approvals
    from zoo.engine.loop import RunReport
    from zoo.engine.zoo import Zoo

app = typer.Typer(
    name="zoo",
    help="Run a team of AI agents from the terminal, with plain files for state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="The zoo home (else $ZOO_HOME, else the nearest zoo.yaml upward)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


class _State:
    home: Path | None = None
    debug: bool = False


_state = _State()


def _home(home: Path | None) -> Home:
    return find_home(home if home is not None else _state.home)


def _version(value: bool) -> None:
    if value:
        print(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    home: HomeOption = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also ZOO_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _state.home = home
    _state.debug = debug or _state.debug


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the zoo home.")] = Path("."),
    name: Annotated[
        str | None, typer.Option("--name", help="The team's name (default: the folder's).")
    ] = None,
    no_git: Annotated[
        bool, typer.Option("--no-git", help="Make no git repository; autocommit off.")
    ] = False,
) -> None:
    """Scaffold a new zoo home (a small working roster) and a git repository."""
    import shlex

    from zoo.cli import render
    from zoo.roster import scaffold

    created = scaffold.init(directory, name=name, git=not no_git)
    count = len(created.written)
    render.line(f"created a zoo home in {created.root} (team {created.name!r}, {count} files)")
    for note in created.notes:
        render.line(f"  {note}")
    typed = str(directory)  # as the user typed it, unless a shell would read it otherwise
    where = str(created.root) if typed.startswith(("-", "~")) else typed
    go = "" if created.root == Path.cwd().resolve() else f"cd {shlex.quote(where)} && "
    render.line(f'next: {go}zoo dispatch "Write a short post about our launch" && zoo run --once')


@app.command()
def check(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Validate zoo.yaml, playbooks, handoffs and schedules."""
    from zoo.cli import render
    from zoo.roster.check import check as run_check

    report = run_check(_home(home))
    if json_out:
        render.as_json({"ok": report.ok, "errors": report.errors, "warnings": report.warnings,
                        "created": report.created})  # fmt: skip
    else:
        for problem in report.errors:
            render.error(problem)
        for warning in report.warnings:
            render.line(f"warning: {warning}")
        for folder in report.created:
            render.line(f"created {folder}/")
        if report.ok and report.roster is not None:
            r = report.roster
            agents, schedules = len(r.agents), len(r.schedules)
            counts = f"{render.plural(agents, 'agent')}, {render.plural(schedules, 'schedule')}"
            render.line(f"zoo.yaml is valid: {counts}")
    if not report.ok:
        raise typer.Exit(ExitStatus.ERROR)


def _brief(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise UsageError("give the brief as TEXT or with --file F (one of the two)")
    if file is None:
        return str(text)
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    try:
        raw = stdin.read() if str(file) == "-" else file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read --file {file}: {e.strerror}") from None
    raw = raw.encode("utf-8") if isinstance(raw, str) else raw
    if b"\x00" in raw:
        raise UsageError(f"--file {file} is not text: a NUL byte at byte {raw.index(0)}")
    try:
        return raw.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read --file {file}: not UTF-8 text") from None


@app.command()
def dispatch(
    text: Annotated[str | None, typer.Argument(help="The brief.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the brief from a file ('-': stdin).")
    ] = None,  # noqa: E501
    to: Annotated[
        str | None, typer.Option("--to", help="Send it to this agent, skipping routing.")
    ] = None,  # noqa: E501
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write a brief into the inbox and route it now."""
    from zoo.cli import render
    from zoo.engine.router import dispatch as do_dispatch
    from zoo.engine.zoo import Zoo

    brief = _brief(text, file)
    zoo = Zoo.open(_home(home))
    task, route = do_dispatch(zoo, brief, to=to, file=file)
    doc = {"id": task.id, "agent": route.agent, "workspace": task.meta["workspace"],
           "path": str(task.path), "route": route.as_meta()}  # fmt: skip
    if json_out:
        render.as_json(doc)
    else:
        where = route.agent or "escalations (needs a person)"
        render.line(f"{task.id} -> {where} · {route.by}: {route.reason}")
        render.line(f"  {zoo.home.relative(task.path)}")


@app.command()
def plan(
    text: Annotated[str, typer.Argument(help="The brief.")],
    to: Annotated[str | None, typer.Option("--to", help="Plan for this agent.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show who would get a brief and its handoff chain, without creating it."""
    from zoo.cli import render
    from zoo.engine.router import plan as do_plan
    from zoo.engine.zoo import Zoo

    zoo = Zoo.open(_home(home))
    result = do_plan(zoo, text, to)
    if json_out:
        render.as_json({"agent": result.route.agent, "route": result.route.as_meta(),
                        "chain": result.chain, "cycle": result.cycle,
                        "asked_model": result.asked_model})  # fmt: skip
        return
    if result.asked_model:
        lead = zoo.roster.lead
        render.line(f"no routes word matched: asked the lead's model ({lead}, tier "
                    f"{zoo.roster.tier_name(lead)}; journaled, counted in spend)")  # fmt: skip
    if result.route.agent is None:
        render.line(f"escalations (needs a person) · {result.route.reason}")
    else:
        render.line(f"{result.route.agent} · {result.route.by}: {result.route.reason}")
        end = ["... (a cycle: max_handoffs applies)"] if result.cycle else ["done"]
        render.line("chain: " + " -> ".join([*result.chain, *end]))


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Do the work due now, then exit (cron).")
    ] = False,  # noqa: E501
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll the folders every second instead of inotify.")
    ] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run the agents: route briefs, work tasks, hand off, fire schedules, until stopped."""
    from zoo.cli import render
    from zoo.engine.runner import run_once
    from zoo.engine.zoo import Zoo
    from zoo.roster.check import require_ok
    from zoo.state.runnerlock import RunnerBusy, runner_lock

    zoo_home = _home(home)
    require_ok(zoo_home)  # no run on a home `zoo check` rejects: its first error, exit 1
    try:
        with runner_lock(zoo_home, "once" if once else "live"):
            zoo = Zoo.open(zoo_home)
            if not once:
                _announce_models(zoo)
                raise typer.Exit(_run_live(zoo, poll))
            report = run_once(zoo, on_line=None if json_out else render.line)
    except RunnerBusy as e:
        if not once:  # a person started it: they must know it is not running
            raise UserError(f"another runner ({e}) holds {zoo_home.root}: stop it first "
                            "(zoo status shows it)") from None  # fmt: skip
        render.error(f"another runner ({e}) holds {zoo_home.root}; nothing to do")
        return
    if json_out:
        render.as_json({"ok": report.ok, "steps": report.steps, "routed": report.routed,
                        "handoffs": report.handoffs, "done": report.done,
                        "escalated": report.escalated, "failed": report.failed,
                        "seconds": round(report.seconds, 3)})  # fmt: skip
    else:
        render.line(_summary(report))
        for failure in report.failed:
            render.error(failure)
    if not report.ok:
        raise typer.Exit(ExitStatus.ERROR)


def _summary(report: RunReport) -> str:
    from zoo.cli.render import plural

    return (
        f"{plural(report.steps, 'step')}, {report.routed} routed, {report.done} done, "
        f"{report.escalated} escalated in {report.seconds:.2f}s"
    )


def _announce_models(zoo: Zoo) -> None:
    from zoo.cli import render

    for tier in sorted({zoo.roster.tier_name(a) for a in zoo.roster.agents}):
        resolved = zoo.models.resolved(tier)
        render.line(f"tier {tier}: {resolved.provider} ({resolved.why})")


def _in_thread(work: Callable[[], RunReport]) -> RunReport:
    """`work()` in a thread of its own; the main thread only waits, so that a signal
    handler (which runs in the main thread) can wake the work instead of interrupting it."""
    import threading

    done: list[RunReport] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            done.append(work())
        except BaseException as e:  # handed to the main thread, raised there
            failed.append(e)

    thread = threading.Thread(target=target, name="zoo-runner")
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
    if failed:
        raise failed[0]
    return done[0]


def _run_live(zoo: Zoo, poll: bool) -> int:
    """`zoo run`: watch and work until SIGINT or SIGTERM; the exit status.

    The first signal stops cleanly: no new step starts and the steps under way finish.
    A second one exits at once; the steps it cuts short resume on the next run.
    """
    import contextlib
    import signal

    from zoo.cli import liveview, render
    from zoo.engine.live import Live
    from zoo.engine.watcher import Watcher

    watcher = Watcher(zoo.home.workspaces, polling=poll, roster=zoo.home.roster_path)
    live = Live(zoo, watcher, on_line=render.line)
    mode = watcher.start()
    tty = sys.stdout.isatty()
    got: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if got:
            render.error("stopped at once: the steps cut short resume on the next run")
            os._exit(ExitStatus.INTERRUPTED)
        got.append(signum)
        live.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: live.reload())
    render.line(f"zoo runner on {zoo.home.root}: watching workspaces/ ({mode}); Ctrl-C stops")
    try:
        with liveview.View(live, zoo.roster) if tty else contextlib.nullcontext():
            report = _in_thread(live.run)
    finally:
        watcher.stop()
    for failure in report.failed:
        render.error(failure)
    render.line(f"zoo runner stopped: {_summary(report)}")
    if report.stopped is not None or report.uncommitted is not None:
        return ExitStatus.ERROR  # it stopped for a fault a person must fix
    return ExitStatus.INTERRUPTED if got == [signal.SIGINT] else ExitStatus.OK


@app.command()
def status(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Agents, queues, work in progress, what needs a person, schedules, spend."""
    from zoo.cli import render
    from zoo.engine import reports

    doc = reports.status(_home(home))
    if json_out:
        render.as_json(doc)
    else:
        render.status(doc)


@app.command()
def show(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="A task id, e.g. T-0042.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """One task: its front matter, its body and its history."""
    from zoo.cli import render
    from zoo.engine import reports

    doc = reports.show(_home(home), task_id)
    if json_out:
        render.as_json(doc)
    else:
        render.show(doc)


@app.command()
def cron(
    every: Annotated[int, typer.Option("--every", min=1, max=59, help="Minutes between runs.")] = 1,  # noqa: E501
    home: HomeOption = None,
) -> None:
    """Print the crontab line that runs this zoo (add it with 'crontab -e')."""
    import shlex
    import shutil

    from zoo.cli import render
    from zoo.models.wire import KEY_ENV
    from zoo.roster import load_roster

    zoo_home = _home(home)
    roster = load_roster(zoo_home)
    script = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "zoo" else None
    exe = str(script) if script is not None and script.is_file() else shutil.which("zoo") or "zoo"
    when = "* * * * *" if every == 1 else f"*/{every} * * * *"
    log = zoo_home.state / "cron.log"
    keys: set[str] = set()
    for tier in roster.models.values():
        if tier.api_key_env:
            keys.add(tier.api_key_env)
        elif tier.provider == "auto":
            keys.update(KEY_ENV.values())
        elif tier.provider in KEY_ENV:
            keys.add(KEY_ENV[tier.provider])
    render.line(f"# zoo '{roster.name}': do the work that is due, every {every} min "
                "(a run still busy makes the next one exit at once)")  # fmt: skip
    if keys:
        names = ", ".join(sorted(keys))
        render.line(f"# real models read {names} from cron's environment; keep keys out of here")
    command = f"{shlex.quote(exe)} --home {shlex.quote(str(zoo_home.root))} run --once"
    render.line(f"{when} {command} >> {shlex.quote(str(log))} 2>&1")


ApprovalId = Annotated[
    str, typer.Argument(metavar="ID", help="An approval id (A-0001), or a task id (T-0042).")
]


@app.command("approvals")
def approvals_(
    approval_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Show this approval's whole action.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """The approval queue: actions that wait for a person (with ID: all of one)."""
    from zoo.cli import render
    from zoo.engine import approvals

    zoo_home = _home(home)
    if approval_id is not None:
        approval = approvals.find(zoo_home, approval_id)
        if json_out:
            render.as_json(approval.document())
        else:
            render.approval(approval.document())
        return
    waiting = [a.document() for a in approvals.pending(zoo_home)]
    if json_out:
        render.as_json(waiting)
    else:
        render.approvals(waiting)


@app.command()
def approve(approval_id: ApprovalId, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Run the action an approval previews, once; its task goes back to its agent."""
    from zoo.engine import approvals
    from zoo.engine.zoo import Zoo

    decision = approvals.approve(Zoo.open(_home(home)), approval_id)
    _decided(decision, json_out)
    if decision.failed:
        raise typer.Exit(ExitStatus.ERROR)


@app.command()
def deny(
    approval_id: ApprovalId,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why; the agent reads it.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Refuse the action an approval previews; its task goes back to its agent."""
    from zoo.engine import approvals
    from zoo.engine.zoo import Zoo

    _decided(approvals.deny(Zoo.open(_home(home)), approval_id, reason=reason), json_out)


def _decided(decision: approvals.Decision, json_out: bool) -> None:
    from zoo.cli import render

    a = decision.approval
    if json_out:
        render.as_json({**a.document(), "failed": decision.failed})
        return
    render.line(f"{a.id} {a.status}: {a.preview} ({decision.task}, {a.agent})")
    if decision.result is not None:
        render.line(decision.result)
    render.line(f"{decision.task} is queued for {decision.agent} again")


@app.command()
def retry(
    task_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Escalated tasks (T-0042).")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every escalated task.")] = False,
    to: Annotated[
        str | None, typer.Option("--to", help="Send them to this agent instead of their own.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Send escalated tasks back to work: each to its agent, or to --to AGENT."""
    from zoo.cli import render
    from zoo.engine.zoo import Zoo

    if bool(task_ids) == every:
        raise UsageError("name the escalated tasks (ID...) or give --all (one of the two)")
    zoo = Zoo.open(_home(home))
    retried = zoo.retry_many(task_ids or None, to)
    docs = [{"id": t.id, "agent": t.agent, "workspace": t.folder, "path": str(t.path)}
            for t in retried.tasks]  # fmt: skip
    if json_out:
        one = not every and len(task_ids or ()) == 1 and not retried.failed
        render.as_json(docs[0] if one else {"retried": docs, "failed": retried.failed})
    else:
        for task in retried.tasks:
            render.line(f"{task.id} is queued for {task.agent} again "
                        f"({zoo.home.relative(task.path)}); zoo run picks it up")  # fmt: skip
        if every and not retried.tasks and not retried.failed:
            render.line("no escalated tasks")
    for failure in retried.failed:
        render.error(failure["error"])
    if retried.failed:
        raise typer.Exit(ExitStatus.ERROR)


@app.command()
def log(
    task: Annotated[str | None, typer.Option("--task", help="Only this task's events.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's events.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only newer events: an ISO time, or 30m, 2h, 1d.")
    ] = None,  # noqa: E501
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,  # noqa: E501
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the hash chain; name the first bad line.")
    ] = False,  # noqa: E501
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """The event journal, filtered; --verify checks that nobody edited it."""
    from zoo.cli import render
    from zoo.engine.logview import check_chain, events

    zoo_home = _home(home)
    if verify:
        count, bad = check_chain(zoo_home)
        if json_out:
            render.as_json({"ok": bad is None, "lines": count,
                            "bad_line": bad.line if bad else None,
                            "problem": bad.problem if bad else None})  # fmt: skip
        elif bad is None:
            render.line(f"journal ok: {render.plural(count, 'event')}, hash chain intact")
        if bad is not None:
            if not json_out:
                render.error(
                    f"{zoo_home.relative(zoo_home.journal_path)}:{bad.line}: {bad.problem}"
                )
            raise typer.Exit(ExitStatus.ERROR)
        return
    found = events(zoo_home, task=task, agent=agent, since=since, follow=follow)
    if json_out and not follow:
        render.as_json(list(found))
        return
    for event in found:
        if json_out:
            render.json_line(event)
        else:
            render.event_line(event)


@app.command()
def memory(
    query: Annotated[str | None, typer.Argument(help="Only entries with all these words.")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="This agent's own memory instead.")
    ] = None,  # noqa: E501
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="Show at most this many (newest).")
    ] = 20,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show or search MEMORY.md (or an agent's own memory)."""
    from zoo.cli import render
    from zoo.errors import NotFound, did_you_mean
    from zoo.roster import load_roster
    from zoo.state.memory import Memory, search

    zoo_home = _home(home)
    if agent is not None and agent not in (names := load_roster(zoo_home).agents):
        raise NotFound(f"no agent '{agent}' in zoo.yaml{did_you_mean(agent, names)}")
    path = zoo_home.agent_memory(agent) if agent else zoo_home.memory_path
    entries = Memory(zoo_home).entries(path)
    if query:
        entries = search(entries, query)
    entries = entries[len(entries) - limit :] if limit < len(entries) else entries
    if json_out:
        render.as_json([e.__dict__ for e in entries])
        return
    if not entries and limit:
        render.line(
            f"no entries in {zoo_home.relative(path)}" + (f" matching {query!r}" if query else "")
        )
    for e in entries:
        render.line(f"{e.time} · {e.agent} · {e.task}")
        render.line(f"  {e.text}")


@app.command()
def doctor(
    call: Annotated[
        bool, typer.Option("--call", help="Also make a one-line call per tier (it costs).")
    ] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check what the zoo needs: keys, model servers, playbooks, git, watches, disk."""
    from zoo.cli import render
    from zoo.engine import doctor as checks

    report = checks.diagnose(_home(home), call=call)
    if json_out:
        render.as_json(report.document())
    else:
        for check in report.checks:
            render.line(f"{check.verdict:<4} {check.name}: {check.detail}")
    if not report.ok:
        raise typer.Exit(ExitStatus.ERROR)


def main() -> None:
    """Entry point: run the app, turn expected errors into one line and an exit code."""
    _state.debug = os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    sys.exit(_invoke(sys.argv[1:]))


def _invoke(args: list[str]) -> int:
    debug = _state.debug or "--debug" in args
    scan_environment()  # every secret in the environment is redacted from what Zoo writes
    try:
        result = app(args=args, prog_name="zoo", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitStatus.OK
    except ZooError as e:
        return _failed(str(e), e.exit_status, debug)
    except click.UsageError as e:
        return _usage(e)
    except (click.Abort, KeyboardInterrupt):
        return _failed("interrupted", ExitStatus.INTERRUPTED, debug=False)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _failed(f"{where}{e.strerror or e}", ExitStatus.ERROR, debug)
    except Exception as e:  # a bug: one line, and the traceback with --debug
        said = f": {str(e).strip()}" if str(e).strip() else ""
        line = f"internal error: {type(e).__name__}{said} (run with --debug for the traceback)"
        return _failed(line, ExitStatus.ERROR, debug)


_NO_SUCH_COMMAND = getattr(click.exceptions, "NoSuchCommand", ())
_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage(e: click.UsageError) -> int:
    """A usage error in one line; bare `zoo` prints the help (on stdout, as git does)."""
    if isinstance(e, _NO_ARGS) and e.ctx is not None:
        sys.stdout.write(e.ctx.get_help() + "\n")
        return ExitStatus.USAGE
    # typer has put its "Did you mean" in the message; click would add its own again
    message = e.message if isinstance(e, _NO_SUCH_COMMAND) else e.format_message()
    command = f" {e.ctx.info_name}" if e.ctx and e.ctx.parent else ""
    return _failed(f"{message} (see 'zoo{command} --help')", ExitStatus.USAGE, debug=False)


def _failed(message: str, status: int, debug: bool) -> int:
    """One line on stderr; with `--debug` the traceback instead (every secret redacted)."""
    import traceback

    from zoo.cli import render

    if debug:
        sys.stderr.write(render.shown(traceback.format_exc()))
    else:
        render.error(message)
    return status
