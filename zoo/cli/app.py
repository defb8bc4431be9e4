"""The `zoo` command: parse, call one engine function, render. Errors are one line on stderr.

Each command calls an operation of the engine (the API that the page and `zoo mcp serve`
call too), which returns a dataclass that knows its JSON document; `render` shows it.
The global options live in click's context object (`Options`), not in a module global.
Heavy modules are imported inside the commands that use them, so `zoo --help` and
`zoo status` start fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, runtime_checkable

import click
import typer

from zoo import __version__
from zoo.errors import ExitStatus, UsageError, UserError, ZooError
from zoo.secrets import scan_environment
from zoo.state.home import Home, find_home

if TYPE_CHECKING:
    from collections.abc import Callable

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


@dataclass(frozen=True)
class Options:
    """The options given before the command (`zoo --home DIR --debug CMD`): `ctx.obj`."""

    home: Path | None = None
    debug: bool = False


def _home(ctx: typer.Context, home: Path | None) -> Home:
    """The home a command works on: its own `--home`, else the global one, else found."""
    given = ctx.find_object(Options) or Options()
    return find_home(home if home is not None else given.home)


@runtime_checkable
class Documented(Protocol):
    """What an engine operation returns: a value that knows its JSON document."""

    def document(self) -> Any: ...


def _show(result: Any, json_out: bool, human: Callable[[Any], None]) -> None:
    """`result` as one JSON document (its `document()`, or itself when it is one already),
    or as `human` shows it to people."""
    from zoo.cli import render

    if not json_out:
        human(result)
    else:
        render.as_json(result.document() if isinstance(result, Documented) else result)


def _version(value: bool) -> None:
    if value:
        print(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    home: HomeOption = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also ZOO_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = Options(home, debug)


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
    from zoo.cli import render
    from zoo.roster import scaffold

    render.created(scaffold.init(directory, name=name, git=not no_git), typed=str(directory))


@app.command()
def check(ctx: typer.Context, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Validate zoo.yaml, playbooks, handoffs and schedules."""
    from zoo.cli import render
    from zoo.engine.check import check as run_check

    report = run_check(_home(ctx, home))
    _show(report, json_out, render.check)
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
    ctx: typer.Context,
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
    zoo = Zoo.open(_home(ctx, home))
    _show(do_dispatch(zoo, brief, to=to, file=file), json_out,
          lambda done: render.dispatched(done, zoo.home))  # fmt: skip


@app.command()
def plan(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The brief.")],
    to: Annotated[str | None, typer.Option("--to", help="Plan for this agent.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show who would get a brief and its handoff chain, without creating it."""
    from zoo.cli import render
    from zoo.engine.router import plan as do_plan
    from zoo.engine.zoo import Zoo

    zoo = Zoo.open(_home(ctx, home))
    _show(do_plan(zoo, text, to), json_out, lambda result: render.plan(result, zoo.roster))


@app.command()
def run(
    ctx: typer.Context,
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
    from zoo.engine.check import require_ok
    from zoo.engine.runner import run_once
    from zoo.engine.zoo import Zoo
    from zoo.state.runnerlock import RunnerBusy, runner_lock

    zoo_home = _home(ctx, home)
    require_ok(zoo_home)  # no run on a home `zoo check` rejects: its first error, exit 1
    try:
        with runner_lock(zoo_home, "once" if once else "live"):
            zoo = Zoo.open(zoo_home)
            if not once:
                from zoo.cli.live import run_live

                raise typer.Exit(run_live(zoo, poll))
            report = run_once(zoo, on_line=None if json_out else render.line)
    except RunnerBusy as e:
        if not once:  # a person started it: they must know it is not running
            raise UserError(f"another runner ({e}) holds {zoo_home.root}: stop it first "
                            "(zoo status shows it)") from None  # fmt: skip
        render.error(f"another runner ({e}) holds {zoo_home.root}; nothing to do")
        return
    if json_out:
        render.as_json(report.document())
    else:
        render.line(render.run_summary(report))
        for failure in report.failed:
            render.error(failure)
    if not report.ok:
        raise typer.Exit(ExitStatus.ERROR)


@app.command()
def status(ctx: typer.Context, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Agents, queues, work in progress, what needs a person, schedules, spend."""
    from zoo.cli import render
    from zoo.engine import reports

    _show(reports.status(_home(ctx, home)), json_out, render.status)


@app.command()
def show(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID", help="A task id, e.g. T-0042.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """One task: its front matter, its body and its history."""
    from zoo.cli import render
    from zoo.engine import reports

    _show(reports.show(_home(ctx, home), task_id), json_out, render.show)


@app.command()
def cron(
    ctx: typer.Context,
    every: Annotated[int, typer.Option("--every", min=1, max=59, help="Minutes between runs.")] = 1,  # noqa: E501
    home: HomeOption = None,
) -> None:
    """Print the crontab line that runs this zoo (add it with 'crontab -e')."""
    from zoo.cli import render
    from zoo.engine.cron import crontab, executable

    for text in crontab(_home(ctx, home), every, executable(sys.argv[0])).lines:
        render.line(text)


ApprovalId = Annotated[
    str, typer.Argument(metavar="ID", help="An approval id (A-0001), or a task id (T-0042).")
]


@app.command("approvals")
def approvals_(
    ctx: typer.Context,
    approval_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Show this approval's whole action.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """The approval queue: actions that wait for a person (with ID: all of one)."""
    from zoo.cli import render
    from zoo.engine import approvals

    zoo_home = _home(ctx, home)
    if approval_id is not None:
        _show(approvals.find(zoo_home, approval_id).document(), json_out, render.approval)
    else:
        waiting = [a.document() for a in approvals.pending(zoo_home)]
        _show(waiting, json_out, render.approvals)


@app.command()
def approve(
    ctx: typer.Context, approval_id: ApprovalId, home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:  # fmt: skip
    """Run the action an approval previews, once; its task goes back to its agent."""
    from zoo.cli import render
    from zoo.engine import approvals
    from zoo.engine.zoo import Zoo

    decision = approvals.approve(Zoo.open(_home(ctx, home)), approval_id)
    _show(decision, json_out, render.decision)
    if decision.failed:
        raise typer.Exit(ExitStatus.ERROR)


@app.command()
def deny(
    ctx: typer.Context,
    approval_id: ApprovalId,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why; the agent reads it.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Refuse the action an approval previews; its task goes back to its agent."""
    from zoo.cli import render
    from zoo.engine import approvals
    from zoo.engine.zoo import Zoo

    decision = approvals.deny(Zoo.open(_home(ctx, home)), approval_id, reason=reason)
    _show(decision, json_out, render.decision)


@app.command()
def retry(
    ctx: typer.Context,
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
    zoo = Zoo.open(_home(ctx, home))
    retried = zoo.retry_many(task_ids or None, to)
    _show(retried, json_out, lambda done: render.retried(done, zoo.home, every))
    for failure in retried.failed:
        render.error(failure["error"])
    if retried.failed:
        raise typer.Exit(ExitStatus.ERROR)


@app.command()
def log(
    ctx: typer.Context,
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
    from zoo.engine.logview import events, verify_journal

    zoo_home = _home(ctx, home)
    if verify:
        checked = verify_journal(zoo_home)
        _show(checked, json_out, render.verified)
        if not checked.ok:
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
    ctx: typer.Context,
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
    from zoo.engine.recall import recall

    _show(recall(_home(ctx, home), query, agent=agent, limit=limit), json_out, render.memory)


@app.command()
def doctor(
    ctx: typer.Context,
    call: Annotated[
        bool, typer.Option("--call", help="Also make a one-line call per tier (it costs).")
    ] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check what the zoo needs: keys, model servers, playbooks, git, watches, disk."""
    from zoo.cli import render
    from zoo.engine import doctor as checks

    report = checks.diagnose(_home(ctx, home), call=call)
    _show(report, json_out, render.doctor)
    if not report.ok:
        raise typer.Exit(ExitStatus.ERROR)


def main() -> None:
    """Entry point: run the app, turn expected errors into one line and an exit code."""
    sys.exit(_invoke(sys.argv[1:], debug=os.environ.get("ZOO_DEBUG", "") not in ("", "0")))


def _invoke(args: list[str], *, debug: bool = False) -> int:
    """`zoo ARGS`: the exit status; `debug` (ZOO_DEBUG) shows tracebacks as `--debug` does."""
    debug = debug or "--debug" in args
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
