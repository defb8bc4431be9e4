"""Helpers shared by Zoo's benchmark scripts: temporary homes, timing, tables.

Every benchmark works in a folder made by `temp_folder()` under /tmp and removed
afterwards; none touches the repository's own workspaces. Child processes get
`child_env()`: no API keys (the offline model answers), no ZOO_HOME, and bytecode
caching on, as users have it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.state.home import DONE, Home
from zoo.state.tasks import Task

REPO = Path(__file__).resolve().parent.parent
"""The repository; only its example roster, playbooks and MEMORY.md are read."""
PYTHON = Path(sys.executable)
"""The venv's python (run the benchmarks with it)."""
ZOO = PYTHON.parent / "zoo"
"""The venv's `zoo` console script."""

SMALL_ROSTER = (REPO / "tests" / "small-roster.yaml").read_text(encoding="utf-8")
"""The 3-agent chain of tests/conftest.py: roo routes, beaver -> owl -> lark."""

_UNSET = ("PYTHONDONTWRITEBYTECODE", "ZOO_HOME", "ZOO_DEBUG", "ANTHROPIC_API_KEY", "OPENAI_API_KEY")


# --- homes ------------------------------------------------------------------------------


@contextmanager
def temp_folder(prefix: str = "zoo-bench-") -> Iterator[Path]:
    """A fresh folder under /tmp, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def example_home(root: Path) -> Home:
    """A copy of the repository's example zoo (roster, playbooks, MEMORY.md) at `root`."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "zoo.yaml", root / "zoo.yaml")
    shutil.copytree(REPO / "agents", root / "agents")
    shutil.copy(REPO / "MEMORY.md", root / "MEMORY.md")
    return Home(root.resolve())


def small_home(root: Path) -> Home:
    """A home with SMALL_ROSTER and a short playbook per agent."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zoo.yaml").write_text(SMALL_ROSTER, encoding="utf-8")
    home = Home(root.resolve())
    home.agents_dir.mkdir(exist_ok=True)
    for name in ("roo", "beaver", "owl", "lark"):
        home.playbook(name).write_text(
            f"# {name.title()} · Agent\n\n## How you work\n1. Read the brief.\n2. Do the work.\n",
            encoding="utf-8",
        )
    return home


def add_done_tasks(home: Home, count: int, first: int = 1) -> None:
    """Write `count` finished tasks into done/ (as the runner leaves them, not fsync'd).

    Also sets the id counter in `.zoo/last-id`, as a home that made them would have it.
    """
    done = home.workspace(DONE)
    done.mkdir(parents=True, exist_ok=True)
    stamp = "2026-01-05T10:00:00Z"
    for number in range(first, first + count):
        task_id = f"T-{number:04d}"
        title = f"Fix bug {number} in the login code"
        meta: dict[str, Any] = {
            "id": task_id, "title": title, "status": "done", "agent": "lark",
            "workspace": DONE, "created": stamp, "updated": stamp, "source": "cli",
            "route": {"by": "rules", "reason": "matched 'bug'"}, "steps": 3, "handoffs": 2,
        }  # fmt: skip
        task = Task(done / f"{task_id}-fix-bug-{number}-in-the-login-code.md", meta, "")
        task.body = f"# {title}\n\nUsers get logged out after one minute.\n"
        for agent in ("beaver", "owl", "lark"):
            task.append_section(f"{agent} · {stamp}", f"{agent} did its part of {task_id}.")
        task.path.write_text(task.render(), encoding="utf-8")
    home.ensure_state()
    (home.state / "last-id").write_text(f"{first + count - 1}\n", encoding="utf-8")


# --- timing -----------------------------------------------------------------------------


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of timed child processes: as a user's shell, minus keys and homes."""
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env.update(extra or {})
    return env


def run_checked(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run `argv` once, fail loudly if it fails; returns its stderr."""
    done = subprocess.run(
        list(argv), env=dict(env), cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"benchmark: {' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done.stderr


def time_once(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> float:
    """Wall seconds of one run of `argv`, output discarded."""
    started = time.perf_counter()
    done = subprocess.run(
        list(argv), env=dict(env), cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace")
        raise SystemExit(f"benchmark: {' '.join(argv)} exited {done.returncode}:\n{why}")
    return elapsed


def time_commands(
    commands: Mapping[str, Sequence[str]],
    *,
    runs: int,
    warmup: int,
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> dict[str, list[float]]:
    """Seconds per run of each command, interleaved round-robin so drift hits all alike."""
    for _ in range(warmup):
        for argv in commands.values():
            run_checked(argv, env, cwd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(time_once(argv, env, cwd))
    return times


def median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000


def spread_ms(seconds: Sequence[float]) -> str:
    """The interquartile range, `p25-p75`, in ms."""
    if len(seconds) < 4:
        return "-"
    q = statistics.quantiles(seconds, n=4)
    return f"{q[0] * 1000:.1f}-{q[2] * 1000:.1f}"


def install_note() -> str:
    """Where `zoo` is imported from and how it is installed (editable installs start slower)."""
    import zoo

    try:
        from importlib.metadata import distribution

        direct = distribution("zoo-agents").read_text("direct_url.json") or "{}"
        editable = bool(json.loads(direct).get("dir_info", {}).get("editable"))
    except (ImportError, OSError, ValueError):
        editable = False
    kind = "editable install" if editable else "regular install"
    load = os.getloadavg()[0]
    return (
        f"zoo {zoo.__version__} from {Path(zoo.__file__).parent} ({kind}); "
        f"{os.cpu_count()} CPUs, load average {load:.2f} (other work skews the figures)"
    )


# --- output -----------------------------------------------------------------------------


def parse_args(doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON document instead.")
    parser.add_argument(
        "--profile", action="store_true", help="Also print the top costs (where supported)."
    )
    return parser.parse_args()


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[0].ljust(widths[0]),
            *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def emit(as_json: bool, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, indent=2) if as_json else text)
