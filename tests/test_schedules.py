"""Schedules: cron times fire tasks once, catch up once, survive restarts and kill -9."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_ROSTER, ZooCli, make_home, open_zoo
from zoo.engine import reports
from zoo.engine.schedules import MISSED_CAP, Fired, fire_due, next_due, read_state
from zoo.engine.zoo import Zoo
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events, verify

WEEKLY = (
    "schedules:\n"
    "  weekly:\n"
    "    cron: '0 9 * * MON'\n"
    "    agent: lark\n"
    "    brief: Draft this week's post from MEMORY.md.\n"
)
NIGHTLY = "  nightly: {cron: '0 2 * * *', agent: beaver, brief: Update the dependencies.}\n"


def at(text: str) -> datetime:
    """A fixed UTC moment, e.g. at('2026-11-23 09:00:30')."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SUNDAY = at("2026-11-01 12:00")
"""First sight: the Monday 9:00 slots after it are 2026-11-02, 11-09, 11-16, 11-23."""


def scheduled_home(tmp_path: Path, schedules: str = WEEKLY) -> Home:
    return make_home(tmp_path / "zoo", SMALL_ROSTER + schedules)


def events(home: Home, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(home.journal_path) if e["event"] == kind]


def task_files(home: Home) -> list[str]:
    return sorted(home.relative(p) for p in home.workspaces.rglob("T-*.md"))


def fields(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("ts", "prev", "hash")}


def test_first_sight_does_not_fire_and_sets_a_baseline(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path)
    zoo = open_zoo(home)
    assert fire_due(zoo, at("2026-11-02 09:30")) == []  # after Monday's slot, but first seen
    assert read_state(home) == {"weekly": {"cron": "0 9 * * MON", "after": "2026-11-02T09:30:00Z",
                                           "next": "2026-11-09T09:00:00Z"}}  # fmt: skip
    assert task_files(home) == []
    armed = [fields(e) for e in events(home, "schedule.armed")]
    assert armed == [{"event": "schedule.armed", "schedule": "weekly", "cron": "0 9 * * MON",
                      "since": "2026-11-02T09:30:00Z", "next": "2026-11-09T09:00:00Z"}]  # fmt: skip
    assert fire_due(zoo, at("2026-11-09 08:59:59")) == []
    assert len(events(home, "schedule.armed")) == 1


def test_a_due_schedule_fires_once_and_queues_a_task_for_its_agent(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path)
    zoo = open_zoo(home)
    fire_due(zoo, SUNDAY)
    now = at("2026-11-02 09:00:30")
    assert fire_due(zoo, now) == [Fired("weekly", "T-0001", "lark", "2026-11-02T09:00:00Z", None)]
    assert task_files(home) == ["workspaces/lark/T-0001-draft-this-week-s-post-from-memory-md.md"]
    task = tasks.find(home, "T-0001")
    assert {k: task.meta[k] for k in ("title", "status", "agent", "workspace", "source", "route",
                                      "schedule", "slot")} == {
        "title": "Draft this week's post from MEMORY.md.", "status": "queued", "agent": "lark",
        "workspace": "lark", "source": "schedule:weekly",
        "route": {"by": "schedule", "reason": "schedule 'weekly'"},
        "schedule": "weekly", "slot": "2026-11-02T09:00:00Z",
    }  # fmt: skip
    kinds = [e["event"] for e in read_events(home.journal_path) if e.get("task") == "T-0001"]
    assert kinds == ["task.created", "schedule.fired", "task.routed"]
    assert [fields(e) for e in events(home, "schedule.fired")] == [
        {"event": "schedule.fired", "schedule": "weekly", "slot": "2026-11-02T09:00:00Z",
         "task": "T-0001", "agent": "lark"}
    ]  # fmt: skip
    assert fire_due(zoo, now) == []  # the same moment again: nothing new
    assert fire_due(zoo, at("2026-11-08 23:59")) == []
    assert task_files(home) == ["workspaces/lark/T-0001-draft-this-week-s-post-from-memory-md.md"]
    assert read_state(home)["weekly"] == {
        "cron": "0 9 * * MON", "after": "2026-11-02T09:00:00Z", "next": "2026-11-09T09:00:00Z",
        "last_run": "2026-11-02T09:00:00Z", "last_task": "T-0001", "pending": None,
    }  # fmt: skip
    assert verify(home.journal_path)[1] is None


def test_a_restart_does_not_fire_again(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path)
    fire_due(open_zoo(home), SUNDAY)
    assert len(fire_due(open_zoo(home), at("2026-11-02 09:01"))) == 1
    assert fire_due(open_zoo(home), at("2026-11-02 09:01")) == []
    assert fire_due(open_zoo(home), at("2026-11-02 10:00")) == []
    nxt = fire_due(open_zoo(home), at("2026-11-09 09:00"))
    assert nxt == [Fired("weekly", "T-0002", "lark", "2026-11-09T09:00:00Z", None)]
    assert len(events(home, "schedule.fired")) == 2


def test_missed_slots_fire_once_for_the_latest_and_the_journal_says_so(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path)
    zoo = open_zoo(home)
    fire_due(zoo, SUNDAY)
    fire_due(zoo, at("2026-11-02 09:00"))
    # nothing ran on 11-09 nor on 11-16: one task, for the 11-16 slot
    fired = fire_due(open_zoo(home), at("2026-11-17 08:00"))
    assert fired == [Fired("weekly", "T-0002", "lark", "2026-11-16T09:00:00Z", 1)]
    assert fields(events(home, "schedule.fired")[-1]) == {
        "event": "schedule.fired", "schedule": "weekly", "slot": "2026-11-16T09:00:00Z",
        "task": "T-0002", "agent": "lark", "missed": 1, "since": "2026-11-09T09:00:00Z",
    }  # fmt: skip
    assert task_files(home) == [
        "workspaces/lark/T-0001-draft-this-week-s-post-from-memory-md.md",
        "workspaces/lark/T-0002-draft-this-week-s-post-from-memory-md.md",
    ]
    assert read_state(home)["weekly"]["next"] == "2026-11-23T09:00:00Z"
    assert fire_due(zoo, at("2026-11-17 08:00")) == []


def test_a_year_of_missed_minutes_fires_once_and_counts_up_to_the_cap(tmp_path: Path) -> None:
    every_minute = "schedules:\n  tick: {cron: '* * * * *', agent: owl, brief: Tick.}\n"
    home = scheduled_home(tmp_path, every_minute)
    zoo = open_zoo(home)
    fire_due(zoo, at("2025-11-01 00:00:10"))
    fired = fire_due(zoo, at("2026-11-01 12:34:56"))
    assert fired == [Fired("tick", "T-0001", "owl", "2026-11-01T12:34:00Z", MISSED_CAP)]
    last = fields(events(home, "schedule.fired")[-1])
    assert (last["missed"], last["since"], last["capped"]) == (
        MISSED_CAP,
        "2025-11-01T00:01:00Z",
        True,
    )
    assert read_state(home)["tick"]["next"] == "2026-11-01T12:35:00Z"


def test_a_changed_cron_starts_over_and_a_removed_schedule_is_dropped(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path, WEEKLY + NIGHTLY)
    fire_due(open_zoo(home), SUNDAY)
    assert set(read_state(home)) == {"weekly", "nightly"}
    home.roster_path.write_text(SMALL_ROSTER + WEEKLY.replace("0 9 * * MON", "0 9 * * TUE"),
                                encoding="utf-8")  # fmt: skip
    zoo = open_zoo(home)
    assert fire_due(zoo, at("2026-11-03 10:00")) == []  # Tuesday 9:00 is before the change
    assert read_state(home) == {"weekly": {"cron": "0 9 * * TUE", "after": "2026-11-03T10:00:00Z",
                                           "next": "2026-11-10T09:00:00Z"}}  # fmt: skip
    assert [e["schedule"] for e in events(home, "schedule.dropped")] == ["nightly"]
    assert task_files(home) == []


def test_a_cron_that_does_not_parse_is_journaled_once_and_never_fires(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path, WEEKLY.replace("0 9 * * MON", "61 * * * *"))
    zoo = open_zoo(home)
    assert fire_due(zoo, SUNDAY) == []
    assert fire_due(open_zoo(home), at("2026-11-09 09:00")) == []
    assert [e["cron"] for e in events(home, "schedule.invalid")] == ["61 * * * *"]
    assert next_due(zoo.roster, home, SUNDAY) is None
    assert reports.status(home, now=SUNDAY)["schedules"][0]["next_run"] is None


@pytest.mark.parametrize("cron", ["0 9 * * MON", "61 * * * *", "0 9 * * MON 30", "@daily"])
def test_zoo_check_and_the_runner_apply_one_cron_rule(
    tmp_path: Path, zoo_cli: ZooCli, cron: str
) -> None:
    """Five fields croniter accepts: croniter alone would take a sixth field or `@daily`."""
    home = scheduled_home(tmp_path, WEEKLY.replace("0 9 * * MON", cron))
    checked = zoo_cli("check", "--home", str(home.root)).code == 0
    fire_due(open_zoo(home), SUNDAY)
    armed = not events(home, "schedule.invalid")
    assert checked == armed == (cron == "0 9 * * MON")


def test_an_unreadable_state_file_is_kept_aside_and_schedules_start_over(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path)
    home.ensure_state()
    (home.state / "schedules.json").write_text("{not json", encoding="utf-8")
    assert fire_due(open_zoo(home), at("2026-11-02 09:30")) == []
    assert (home.state / "schedules.json.bad").read_text(encoding="utf-8") == "{not json"
    assert [e["kept"] for e in events(home, "schedule.state_reset")] == [".zoo/schedules.json.bad"]
    assert read_state(home)["weekly"]["after"] == "2026-11-02T09:30:00Z"


class Killed(BaseException):
    """Stands for kill -9 at a point of the firing: nothing after it runs."""


def _kill_at(point: str, zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args: object, **kwargs: object) -> None:
        raise Killed(point)

    if point == "before the task file":
        monkeypatch.setattr(tasks, "create", die)
    elif point == "before the journal":
        monkeypatch.setattr(zoo.journal, "write_many", die)
    elif point == "before routing":
        monkeypatch.setattr("zoo.engine.router.route_task", die)
    else:
        monkeypatch.setattr("zoo.engine.schedules._done", die)


@pytest.mark.parametrize(
    "point", ["before the task file", "before the journal", "before routing", "before the state"]
)
def test_a_kill_mid_firing_fires_neither_twice_nor_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    home = scheduled_home(tmp_path)
    fire_due(open_zoo(home), SUNDAY)
    dying = open_zoo(home)
    with monkeypatch.context() as patch:
        _kill_at(point, dying, patch)
        with pytest.raises(Killed):
            fire_due(dying, at("2026-11-02 09:00:30"))
    pending = read_state(home)["weekly"]["pending"]
    assert (pending["slot"], pending["task"]) == ("2026-11-02T09:00:00Z", "T-0001")
    assert next_due(dying.roster, home, at("2026-11-02 09:05")) == at("2026-11-02 09:05")

    fired = fire_due(open_zoo(home), at("2026-11-02 09:05"))
    assert fired == [Fired("weekly", "T-0001", "lark", "2026-11-02T09:00:00Z", None, True)]
    assert task_files(home) == ["workspaces/lark/T-0001-draft-this-week-s-post-from-memory-md.md"]
    assert tasks.find(home, "T-0001").meta["route"] == {"by": "schedule",
                                                        "reason": "schedule 'weekly'"}  # fmt: skip
    assert len(events(home, "schedule.fired")) == 1
    assert len(events(home, "task.created")) == 1
    assert len(events(home, "task.routed")) == 1
    state = read_state(home)["weekly"]
    assert (state["last_run"], state["last_task"], state["pending"]) == (
        "2026-11-02T09:00:00Z",
        "T-0001",
        None,
    )
    assert fire_due(open_zoo(home), at("2026-11-02 09:10")) == []
    assert len(events(home, "schedule.fired")) == 1


def test_a_pending_firing_of_a_removed_schedule_is_still_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = scheduled_home(tmp_path)
    fire_due(open_zoo(home), SUNDAY)
    with monkeypatch.context() as patch:
        patch.setattr(tasks, "create", lambda *a, **k: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            fire_due(open_zoo(home), at("2026-11-02 09:00"))
    home.roster_path.write_text(SMALL_ROSTER, encoding="utf-8")
    fired = fire_due(open_zoo(home), at("2026-11-02 09:05"))
    assert [(f.task, f.recovered) for f in fired] == [("T-0001", True)]
    assert task_files(home) == ["workspaces/lark/T-0001-draft-this-week-s-post-from-memory-md.md"]
    assert read_state(home) == {}


def test_next_due_is_the_earliest_next_time(tmp_path: Path) -> None:
    bare = make_home(tmp_path / "bare")
    assert next_due(open_zoo(bare).roster, bare, SUNDAY) is None
    home = scheduled_home(tmp_path, WEEKLY + NIGHTLY)
    roster = open_zoo(home).roster
    assert next_due(roster, home, SUNDAY) == at("2026-11-02 02:00")  # not seen yet: from now
    home.roster_path.write_text(SMALL_ROSTER + WEEKLY, encoding="utf-8")
    zoo = open_zoo(home)
    fire_due(zoo, SUNDAY)
    assert next_due(zoo.roster, home, at("2026-11-01 13:00")) == at("2026-11-02 09:00")
    assert next_due(zoo.roster, home, at("2026-11-05 13:00")) == at("2026-11-02 09:00")  # missed


def test_status_json_shows_next_and_last_runs(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path, WEEKLY + NIGHTLY)
    zoo = open_zoo(home)
    fire_due(zoo, SUNDAY)
    fire_due(zoo, at("2026-11-02 09:00"))
    doc = reports.status(home, now=at("2026-11-02 12:00"))
    assert doc["schedules"] == [
        {"name": "weekly", "cron": "0 9 * * MON", "agent": "lark",
         "next_run": "2026-11-09T09:00:00Z", "last_run": "2026-11-02T09:00:00Z",
         "last_task": "T-0001", "due": False},
        {"name": "nightly", "cron": "0 2 * * *", "agent": "beaver",
         "next_run": "2026-11-03T02:00:00Z", "last_run": "2026-11-02T02:00:00Z",
         "last_task": "T-0002", "due": False},
    ]  # fmt: skip
    later = reports.status(home, now=at("2026-11-04 12:00"))["schedules"]
    assert [(s["next_run"], s["due"]) for s in later] == [
        ("2026-11-09T09:00:00Z", False),
        ("2026-11-03T02:00:00Z", True),
    ]


def test_status_text_renders_schedules(tmp_path: Path, zoo_cli: ZooCli) -> None:
    home = scheduled_home(tmp_path, WEEKLY + NIGHTLY)
    zoo = open_zoo(home)
    fire_due(zoo, at("2020-01-05 12:00"))
    fire_due(zoo, at("2020-01-06 09:00"))  # both fire; then no runner until today: missed
    result = zoo_cli("status", "--home", str(home.root))
    assert result.code == 0, result.err
    assert result.out.split("\nschedules\n")[1].splitlines()[:2] == [
        "  weekly   0 9 * * MON  -> lark    due now (missed 2020-01-13T09:00:00Z)  "
        "last 2020-01-06T09:00:00Z (T-0001)",
        "  nightly  0 2 * * *    -> beaver  due now (missed 2020-01-07T02:00:00Z)  "
        "last 2020-01-06T02:00:00Z (T-0002)",
    ]
    fire_due(zoo, at("2099-01-05 09:00"))  # a Monday: both catch up
    result = zoo_cli("status", "--home", str(home.root))
    assert result.out.split("\nschedules\n")[1].splitlines()[:2] == [
        "  weekly   0 9 * * MON  -> lark    next 2099-01-12T09:00:00Z  "
        "last 2099-01-05T09:00:00Z (T-0003)",
        "  nightly  0 2 * * *    -> beaver  next 2099-01-06T02:00:00Z  "
        "last 2099-01-05T02:00:00Z (T-0004)",
    ]
    doc = json.loads(zoo_cli("status", "--json", "--home", str(home.root)).out)
    assert [(s["name"], s["next_run"], s["due"]) for s in doc["schedules"]] == [
        ("weekly", "2099-01-12T09:00:00Z", False),
        ("nightly", "2099-01-06T02:00:00Z", False),
    ]


def test_status_reads_next_runs_without_importing_croniter(tmp_path: Path) -> None:
    home = scheduled_home(tmp_path)
    zoo = open_zoo(home)
    fire_due(zoo, at("2099-01-04 12:00"))  # the next run, 2099-01-05, is in the future
    code = (
        "import sys\nfrom pathlib import Path\nfrom zoo.engine import reports\n"
        "from zoo.state.home import Home\n"
        "doc = reports.status(Home(Path(sys.argv[1])))\n"
        "print(doc['schedules'][0]['next_run'], 'croniter' in sys.modules)\n"
    )
    run = [sys.executable, "-c", code, str(home.root)]
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2099-01-05T09:00:00Z", "False"]
