"""Playbooks: one loader, used by `zoo check` and by every step, so both judge a playbook the
same way; a playbook that breaks while the runner runs fails its step with the reason."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.conftest import open_zoo
from zoo.engine.router import dispatch
from zoo.engine.runner import run_once
from zoo.models.base import Reply, Request
from zoo.models.scripted import ScriptedModel, says
from zoo.roster import playbooks
from zoo.roster.playbooks import PlaybookError
from zoo.state import tasks
from zoo.state.home import Home
from zoo.state.journal import read_events
from zoo.state.runnerlock import runner_lock

MISSING = "does not exist (write the agent's instructions there)"
LINK = "is a symbolic link or lies behind one; Zoo uses only files inside the home"


def test_a_playbook_is_read_as_text(home: Home) -> None:
    home.playbook("owl").write_text("# Owl\n\nTest it — carefully.\n", encoding="utf-8")
    assert playbooks.read(home, "owl") == "# Owl\n\nTest it — carefully.\n"


def _missing(home: Home) -> None:
    home.playbook("owl").unlink()


def _no_agents_folder(home: Home) -> None:
    for path in home.agents_dir.iterdir():
        path.unlink()
    home.agents_dir.rmdir()


def _link(home: Home) -> None:
    real = home.root / "owl-playbook.md"
    home.playbook("owl").rename(real)
    home.playbook("owl").symlink_to(real)


def _agents_folder_is_a_link(home: Home) -> None:
    home.agents_dir.rename(home.root / "elsewhere")
    home.agents_dir.symlink_to(home.root / "elsewhere")


def _not_utf8(home: Home) -> None:
    home.playbook("owl").write_bytes(b"# Owl\n\nCaf\xe9\n")


def _folder(home: Home) -> None:
    home.playbook("owl").unlink()
    home.playbook("owl").mkdir()


def _fifo(home: Home) -> None:
    home.playbook("owl").unlink()
    os.mkfifo(home.playbook("owl"))


def _hard_link(home: Home) -> None:
    os.link(home.playbook("owl"), home.root / "owl-copy.md")


@pytest.mark.parametrize(
    ("breaks", "why"),
    [
        (_missing, MISSING),
        (_no_agents_folder, MISSING),
        (_link, LINK),
        (_agents_folder_is_a_link, LINK),
        (_not_utf8, "is not UTF-8 text (byte 10; save it as UTF-8)"),
        (_folder, "is not a regular file; Zoo uses only files inside the home"),
        (_fifo, "is not a regular file; Zoo uses only files inside the home"),
        (_hard_link, "has other hard links, which may lead outside; it is not used; "
                     "Zoo uses only files inside the home"),
    ],
    ids=["missing", "no-agents-folder", "link", "agents-folder-link", "not-utf8", "folder",
         "fifo", "hard-link"],
)  # fmt: skip
def test_a_playbook_that_cannot_be_used_says_why(
    home: Home, breaks: Callable[[Home], None], why: str
) -> None:
    breaks(home)
    with pytest.raises(PlaybookError) as caught:
        playbooks.read(home, "owl")
    assert str(caught.value) == f"playbook agents/owl.md {why}"
    assert (caught.value.agent, caught.value.why) == ("owl", why)


def test_a_playbook_that_disappears_while_the_runner_runs_fails_its_step(
    home: Home, scripted: ScriptedModel
) -> None:
    """The home passed the check when the run started; then owl's playbook went away
    during beaver's turn. owl's step does not run without it: the task is escalated with
    the reason, and the model is never asked for owl."""

    def beaver_works_while_the_playbook_goes(request: Request) -> Reply:
        home.playbook("owl").unlink()
        return says("fixed")

    scripted.add(beaver_works_while_the_playbook_goes)
    task, _ = dispatch(open_zoo(home, scripted), "Fix the bug", to="beaver")
    with runner_lock(home):
        report = run_once(open_zoo(home, scripted))
    reason = f"playbook agents/owl.md {MISSING}"
    assert (report.steps, report.escalated, report.done) == (2, 1, 0)
    assert report.failed == [f"{task.id} owl: {reason}"]
    escalated = tasks.read(home.workspace("escalations") / task.path.name)
    assert escalated.meta["escalation"] == reason
    assert escalated.agent == "owl"
    assert f"- failed: {reason}" in escalated.body
    assert [r.meta["agent"] for r in scripted.requests] == ["beaver"]
    refused = [e for e in read_events(home.journal_path) if e["event"] == "step.refused"]
    assert [(e["agent"], e["error"], e["kind"]) for e in refused] == [
        ("owl", reason, "PlaybookError")
    ]


def test_a_brief_is_not_routed_by_a_lead_without_its_playbook(
    home: Home, scripted: ScriptedModel
) -> None:
    """No routes word matches, so the lead's model would route it: not without the lead's
    playbook. The brief goes to a person with the reason; the model is never asked."""
    home.playbook("roo").unlink()
    task, route = dispatch(open_zoo(home, scripted), "Plan the offsite")
    assert route.agent is None
    reason = f"could not route: the lead's playbook agents/roo.md {MISSING}"
    assert tasks.read(home.workspace("escalations") / task.path.name).meta["escalation"] == reason
    assert scripted.requests == []


def test_a_route_by_words_needs_no_playbook_of_the_lead(home: Home) -> None:
    home.playbook("roo").unlink()
    _, route = dispatch(open_zoo(home), "Fix the bug")
    assert (route.agent, route.by) == ("beaver", "rules")
