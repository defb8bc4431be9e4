"""The roster: zoo.yaml loads into dataclasses with defaults, is cached, and every mistake in it
is one exact `zoo.yaml:LINE: key: problem` line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_ROSTER, Result, make_home
from zoo.errors import ConfigError
from zoo.roster import Defaults, Roster, Tier, load_roster
from zoo.roster import model as roster_module
from zoo.state.home import Home

ZooCli = Callable[..., Result]

# SMALL_ROSTER's lines, for reading the expected line numbers below:
#  5 roo · 6 beaver (9 workspace, 10 routes, 11 handoff, 12 tools) · 13 owl (14 role,
#  16 workspace, 17 routes, 18 handoff, 20 can_read) · 21 lark (24 routes, 25 tools).
# Text appended to SMALL_ROSTER starts at line 26.


def edited(old: str, new: str) -> str:
    """SMALL_ROSTER with `old` (which occurs exactly once) replaced by `new`."""
    assert SMALL_ROSTER.count(old) == 1, old
    return SMALL_ROSTER.replace(old, new)


def bad_home(root: Path, roster_text: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A home with `roster_text` as zoo.yaml; the current folder is its root."""
    home = make_home(root, roster_text, playbooks=False)
    monkeypatch.chdir(home.root)
    return home


def error_lines(result: Result) -> list[str]:
    """The stderr lines of a failed command; it failed cleanly (exit 1, no traceback)."""
    assert result.code == 1
    assert "Traceback" not in result.err
    assert result.out == ""
    return result.err.splitlines()


# --- loading and defaults ---------------------------------------------------------------------


def test_the_example_zoo_loads(example_home: Home) -> None:
    roster = load_roster(example_home)
    assert roster.name == "acme"
    assert roster.lead == "roo"
    assert list(roster.agents) == ["roo", "beaver", "owl", "lark", "fox", "otter", "badger"]
    assert list(roster.schedules) == ["weekly-blog", "nightly-deps"]
    assert roster.models["deep"].fallback == "fast"
    assert roster.models["fast"].price.output_per_mtok == 5.0
    assert roster.limits["anthropic"].requests_per_minute == 50
    assert roster.budget.daily_usd == 25
    assert roster.git.autocommit is False


def test_the_example_zoo_resolves_tiers_and_workspaces(example_home: Home) -> None:
    roster = load_roster(example_home)
    assert roster.tier_name("beaver") == "deep"
    assert roster.tier_name("owl") == "fast"  # defaults.model
    assert roster.workspace_of("roo") == "inbox"
    assert roster.workspace_of("beaver") == "dev"
    assert roster.readable("beaver") == ("dev", "qa", "ops")
    assert roster.writable("beaver") == ("dev",)


def test_the_small_roster_loads_with_defaults(home: Home) -> None:
    roster = load_roster(home)
    assert roster.name == "test"
    assert roster.models == {}
    assert roster.schedules == {}
    assert roster.defaults.model is None
    assert roster.defaults.max_turns == 8
    assert roster.defaults.max_handoffs == 10
    assert roster.git.autocommit is False
    assert roster.agents["owl"].can_read == ("dev",)
    assert roster.agents["lark"].handoff == ()


def test_workspace_defaults_to_the_agents_name(home: Home) -> None:
    roster = load_roster(home)
    assert roster.agents["lark"].workspace is None
    assert roster.workspace_of("lark") == "lark"
    assert roster.workspace_of("owl") == "qa"
    assert roster.agents_in("dev") == ["beaver"]


def test_the_lead_works_in_the_inbox(home: Home) -> None:
    roster = load_roster(home)
    assert roster.workspace_of("roo") == "inbox"
    assert roster.agents_in("inbox") == ["roo"]


def test_tier_name_falls_back_to_defaults_model(tmp_path: Path) -> None:
    text = edited("    workspace: dev\n", "    workspace: dev\n    model: deep\n")
    text += "models:\n  fast: {provider: offline}\n  deep: {provider: offline}\n"
    text += "defaults: {model: fast}\n"
    roster = load_roster(make_home(tmp_path / "zoo", text))
    assert roster.tier_name("beaver") == "deep"
    assert roster.tier_name("owl") == "fast"


def test_tier_name_falls_back_to_the_builtin_offline_tier(home: Home) -> None:
    roster = load_roster(home)
    assert roster.tier_name("owl") == "offline"
    assert roster.tier("offline") == Tier(provider="offline", model="offline")


def test_an_unknown_tier_is_a_key_error(home: Home) -> None:
    with pytest.raises(KeyError):
        load_roster(home).tier("fast")


def test_max_turns_of_an_agent_overrides_the_default(tmp_path: Path) -> None:
    text = edited("    workspace: qa\n", "    workspace: qa\n    max_turns: 3\n")
    roster = load_roster(make_home(tmp_path / "zoo", text))
    assert roster.max_turns("owl") == 3
    assert roster.max_turns("beaver") == 8


def test_chain_follows_first_handoff_targets_to_the_end(home: Home) -> None:
    roster = load_roster(home)
    assert roster.chain("beaver") == ["beaver", "owl", "lark"]
    assert roster.chain("lark") == ["lark"]
    assert roster.chain("roo") == ["roo"]


def test_chain_stops_at_a_repeat(tmp_path: Path) -> None:
    roster = load_roster(make_home(tmp_path / "zoo", edited("[lark]", "[beaver]")))
    assert roster.chain("beaver") == ["beaver", "owl", "beaver"]


# --- the cache --------------------------------------------------------------------------------


def test_a_load_writes_the_cache(home: Home) -> None:
    load_roster(home)
    doc = json.loads((home.state / "roster.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"[0-9a-f]+-[0-9a-f]{8}-[0-9a-f]{8}", doc["key"])
    assert doc["roster"]["name"] == "test"


def test_the_cached_roster_equals_the_validated_one(example_home: Home) -> None:
    validated = load_roster(example_home)
    cached = load_roster(example_home)
    assert cached == validated
    assert isinstance(cached.agents["beaver"].routes, tuple)


def test_a_second_load_does_not_validate_again(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_roster(home)

    def fail(raw: bytes, path: Path) -> Roster:
        raise AssertionError("validated again")

    monkeypatch.setattr("zoo.roster.validate.validate_roster", fail)
    assert load_roster(home) == first


def test_a_second_load_does_not_import_the_validator(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_roster(home)
    monkeypatch.setitem(sys.modules, "zoo.roster.validate", None)  # importing it now fails
    assert load_roster(home) == first


def test_editing_zoo_yaml_invalidates_the_cache(home: Home) -> None:
    assert load_roster(home).name == "test"
    stat = home.roster_path.stat()
    home.roster_path.write_text(edited("name: test", "name: tost"), encoding="utf-8")
    os.utime(home.roster_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime
    assert load_roster(home).name == "tost"


def _count_validations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths zoo.yaml is validated from (not read from the cache), from now on."""
    import zoo.roster.validate

    calls: list[Path] = []
    real = zoo.roster.validate.validate_roster

    def counting(raw: bytes, path: Path) -> Roster:
        calls.append(path)
        return real(raw, path)

    monkeypatch.setattr(zoo.roster.validate, "validate_roster", counting)
    return calls


def test_another_zoo_version_invalidates_the_cache(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_roster(home)
    calls = _count_validations(monkeypatch)
    monkeypatch.setattr(roster_module, "__version__", "999.0.0")
    load_roster(home)
    assert calls == [home.roster_path]


@pytest.mark.parametrize(
    "cache",
    [b"", b"\xff not json", b"{", b'{"key": 1}', b"{}"],
    ids=["empty", "binary", "truncated", "wrong-hash", "empty-object"],
)
def test_a_corrupt_cache_falls_back_to_validation(home: Home, cache: bytes) -> None:
    home.ensure_state()
    (home.state / "roster.json").write_bytes(cache)
    assert load_roster(home).name == "test"
    assert json.loads((home.state / "roster.json").read_bytes())["roster"]["name"] == "test"


def test_a_cache_with_the_right_hash_but_a_broken_roster_falls_back(home: Home) -> None:
    load_roster(home)
    cache = home.state / "roster.json"
    doc = json.loads(cache.read_bytes())
    doc["roster"] = {"name": "broken", "unknown_field": 1}
    cache.write_text(json.dumps(doc), encoding="utf-8")
    assert load_roster(home).name == "test"


@pytest.mark.parametrize("cache", [b"[]", b"null"])
def test_a_cache_that_is_json_but_not_an_object_falls_back(home: Home, cache: bytes) -> None:
    home.ensure_state()
    (home.state / "roster.json").write_bytes(cache)
    assert load_roster(home).name == "test"


def test_a_missing_zoo_yaml_is_a_config_error(tmp_path: Path) -> None:
    home = Home(tmp_path.resolve())
    with pytest.raises(ConfigError) as caught:
        load_roster(home)
    assert str(caught.value) == f"{home.roster_path}: cannot read: No such file or directory"


# --- bad inputs: one exact line each ----------------------------------------------------------


def mistake(case: str, text: str, *expected: str, command: str = "check") -> Any:
    """A row of `test_a_mistake_is_one_exact_line`: `zoo COMMAND` on a home whose zoo.yaml
    is `text` fails cleanly with exactly the `expected` lines (each after `zoo: `)."""
    return pytest.param(command, text, [f"zoo: {line}" for line in expected], id=case)


MISTAKES = [
    mistake("unknown-top-level-key-suggests-the-right-one", edited("agents:", "agnets:"),
            "zoo.yaml:4: agnets: unknown key (did you mean 'agents'?)",
            "zoo.yaml:1: agents: required key is missing"),
    mistake("status-names-a-misspelt-top-level-key", edited("agents:", "agnets:"),
            "zoo.yaml:4: agnets: unknown key (did you mean 'agents'?)", command="status"),
    mistake("unknown-agent-key-suggests-the-right-one",
            edited("Routes briefs.}", "Routes briefs., modle: fast}"),
            "zoo.yaml:5: agents.roo.modle: unknown key (did you mean 'model'?)"),
    mistake("a-wrong-type-names-the-expected-type",
            edited("    workspace: dev\n", "    workspace: dev\n    max_turns: many\n"),
            "zoo.yaml:10: agents.beaver.max_turns: expected a whole number from 1 to 1000, "
            "got 'many'", command="status"),
    mistake("a-provider-outside-the-list-suggests-the-right-one",
            SMALL_ROSTER + "models:\n  fast: {provider: antropic, model: claude-haiku-4-5}\n",
            "zoo.yaml:27: models.fast.provider: expected 'anthropic', 'openai', 'offline' "
            "or 'auto', got 'antropic' (did you mean 'anthropic'?)"),
    mistake("a-missing-required-key-is-named", edited("    role: QA\n", ""),
            "zoo.yaml:13: agents.owl.role: required key is missing"),
    mistake("an-unknown-handoff-target-suggests-an-agent", edited("[owl]", "[owll]"),
            "zoo.yaml:11: agents.beaver.handoff: unknown agent 'owll' (did you mean 'owl'?)",
            command="status"),
    mistake("an-unknown-handoff-target-points-at-its-list-item",
            edited("handoff: [owl]", "handoff:\n      - owl\n      - owll"),
            "zoo.yaml:13: agents.beaver.handoff: unknown agent 'owll' (did you mean 'owl'?)"),
    mistake("an-unknown-lead-suggests-an-agent", edited("lead: roo", "lead: rooo"),
            "zoo.yaml:3: lead: unknown agent 'rooo' (did you mean 'roo'?)"),
    mistake("an-unknown-tool-suggests-a-tool",
            edited("tools: [remember, escalate]", "tools: [remember, escalte]"),
            "zoo.yaml:25: agents.lark.tools: unknown tool 'escalte' (did you mean 'escalate'?)"),
    mistake("an-unknown-model-tier-suggests-a-tier",
            edited("    workspace: dev\n", "    workspace: dev\n    model: fsat\n")
            + "models:\n  fast: {provider: offline}\n",
            "zoo.yaml:10: agents.beaver.model: unknown model tier 'fsat' (did you mean 'fast'?)"),
    mistake("a-fallback-to-an-unknown-tier",
            SMALL_ROSTER + "models:\n  fast: {provider: offline, fallback: slow}\n",
            "zoo.yaml:27: models.fast.fallback: unknown model tier 'slow'"),
    mistake("a-duplicate-key-points-at-the-second-one",
            edited("    workspace: qa\n", "    workspace: qa\n    workspace: dev\n"),
            "zoo.yaml:17: agents.owl.workspace: duplicate key"),
    mistake("invalid-yaml-gives-the-parsers-line", edited("    role: QA", "\trole: QA"),
            "zoo.yaml:14: invalid YAML: found character that cannot start any token"),
    # the line where the list opens, not the next one where the parser noticed
    mistake("an-unclosed-flow-list-is-invalid-yaml", edited("routes: [test]", "routes: [test"),
            "zoo.yaml:17: invalid YAML: did not find expected ',' or ']'"),
    *(mistake(f"a-zoo-yaml-that-is-not-a-mapping-{case}", text,
              "zoo.yaml:1: expected a mapping of keys (version, name, agents, ...)")
      for case, text in [("list", "- roo\n- beaver\n"), ("empty", ""), ("words", "just words\n")]),
    mistake("agents-that-is-a-list", "version: 1\nname: test\nlead: roo\nagents: [roo]\n",
            "zoo.yaml:4: agents: expected a mapping, got ['roo']"),
    *(mistake(f"a-reserved-or-invalid-workspace-name-{folder}",
              edited("workspace: qa", f"workspace: {folder}"),
              f"zoo.yaml:16: agents.owl.workspace: '{folder}' cannot be a workspace "
              "(a lower-case name other than inbox, done, escalations)")
      for folder in ["done", "inbox", "escalations", "Dev"]),
    mistake("can-read-of-an-unknown-workspace-suggests-one",
            edited("can_read: [dev]", "can_read: [deev]"),
            "zoo.yaml:20: agents.owl.can_read: unknown workspace 'deev' (did you mean 'dev'?)"),
    mistake("a-schedule-for-an-unknown-agent-suggests-one",
            SMALL_ROSTER + "schedules:\n  nightly: {cron: '0 2 * * *', agent: larc, brief: Go.}\n",
            "zoo.yaml:27: schedules.nightly.agent: unknown agent 'larc' (did you mean 'lark'?)"),
    mistake("version-2-is-not-understood", edited("version: 1", "version: 2"),
            "zoo.yaml:1: version: expected 1, got 2", command="status"),
    mistake("an-empty-name-is-an-error", edited("name: test", "name: ' '"),
            "zoo.yaml:2: name: must not be empty"),
    mistake("approval-of-a-tool-not-in-tools",
            edited("    tools: [remember, escalate]\n",
                   "    tools: [remember, escalate]\n    approval: [write_file]\n"),
            "zoo.yaml:26: agents.lark.approval: 'write_file' is not in this agent's tools"),
    mistake("approval-of-a-tool-that-cannot-wait",
            edited("    tools: [remember, escalate]\n",
                   "    tools: [remember, escalate]\n    approval: [escalate]\n"),
            "zoo.yaml:26: agents.lark.approval: 'escalate' cannot wait for approval "
            "(one of read_file, write_file, list_files, run, remember)"),
    mistake("commands-without-the-run-tool",
            edited("    tools: [remember, escalate]\n",
                   "    tools: [remember, escalate]\n    commands: [pytest]\n"),
            "zoo.yaml:26: agents.lark.commands: commands are for the run tool, which is not in "
            "tools"),
    mistake("a-command-that-cannot-be-split",
            edited("    tools: [remember, escalate]\n",
                   "    tools: [run]\n    commands: ['git \"status']\n"),
            "zoo.yaml:26: agents.lark.commands: cannot split 'git \"status': No closing quotation"),
]  # fmt: skip
"""Mistakes in zoo.yaml that `zoo check` (or `zoo status`) reports as exact lines; the numbers
out of their ranges (below) are rows of the same table."""


def test_an_agent_without_a_mapping_does_not_name_internal_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    text = edited("  roo: {role: Lead, description: Routes briefs.}", "  roo:")
    home = bad_home(tmp_path / "zoo", text, monkeypatch)
    lines = error_lines(zoo_cli("check", "--home", str(home.root)))
    assert len(lines) == 1
    assert lines[0].startswith("zoo: zoo.yaml:5: agents.roo: expected a ")
    assert "instance of" not in lines[0]


def test_zoo_yaml_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = bad_home(tmp_path / "zoo", SMALL_ROSTER, monkeypatch)
    home.roster_path.write_bytes(b"version: 1\nname: \xff\n")
    lines = error_lines(zoo_cli("check", "--home", str(home.root)))
    assert lines == ["zoo: zoo.yaml: not UTF-8 text (byte 17)"]


def test_the_path_is_absolute_when_outside_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = make_home(tmp_path / "zoo", edited("lead: roo", "lead: rooo"), playbooks=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    lines = error_lines(zoo_cli("check", "--home", str(home.root)))
    assert lines == [f"zoo: {home.roster_path}:3: lead: unknown agent 'rooo' (did you mean 'roo'?)"]


def test_debug_shows_the_traceback_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    home = bad_home(tmp_path / "zoo", edited("lead: roo", "lead: rooo"), monkeypatch)
    result = zoo_cli("--debug", "status", "--home", str(home.root))
    assert result.code == 1 and result.err.startswith("Traceback (most recent call last):")
    assert "zoo.roster.validate.RosterInvalid: zoo.yaml:3: lead: unknown agent 'rooo'" in result.err


@pytest.mark.parametrize(
    "text",
    [
        edited("agents:", "agnets:"),
        edited("[owl]", "[owll]"),
        edited("    workspace: qa\n", "    workspace: qa\n    workspace: dev\n"),
        edited("routes: [test]", "routes: [test"),
        "- a list\n",
    ],
    ids=["pydantic", "reference", "duplicate", "syntax", "not-a-mapping"],
)
def test_a_failed_load_never_modifies_zoo_yaml(tmp_path: Path, text: str) -> None:
    home = make_home(tmp_path / "zoo", text, playbooks=False)
    before = home.roster_path.read_bytes()
    with pytest.raises(ConfigError):
        load_roster(home)
    assert home.roster_path.read_bytes() == before
    assert not (home.state / "roster.json").exists()


# --- numbers: each has a range, and a number outside it is one exact line ----------------------

WHOLE_1_1000 = "expected a whole number from 1 to 1000"

NUMBERS = [
    mistake("max_turns-0", SMALL_ROSTER + "defaults: {max_turns: 0}\n",
            f"zoo.yaml:26: defaults.max_turns: {WHOLE_1_1000}, got 0"),
    mistake("max_turns-1001", SMALL_ROSTER + "defaults: {max_turns: 1001}\n",
            f"zoo.yaml:26: defaults.max_turns: {WHOLE_1_1000}, got 1001"),
    mistake("max_turns-true", SMALL_ROSTER + "defaults: {max_turns: true}\n",
            f"zoo.yaml:26: defaults.max_turns: {WHOLE_1_1000}, got true"),
    mistake("max_turns-2.5", SMALL_ROSTER + "defaults: {max_turns: 2.5}\n",
            f"zoo.yaml:26: defaults.max_turns: {WHOLE_1_1000}, got 2.5"),
    mistake("max_turns-string", SMALL_ROSTER + "defaults: {max_turns: '8'}\n",
            f"zoo.yaml:26: defaults.max_turns: {WHOLE_1_1000}, got '8'"),
    mistake("agent-max_turns-0",
            edited("    workspace: qa\n", "    workspace: qa\n    max_turns: 0\n"),
            f"zoo.yaml:17: agents.owl.max_turns: {WHOLE_1_1000}, got 0"),
    mistake("timeout_s-0", SMALL_ROSTER + "defaults: {timeout_s: 0}\n",
            "zoo.yaml:26: defaults.timeout_s: expected a number above 0 and at most 86400, got 0"),
    mistake("timeout_s-day+1", SMALL_ROSTER + "defaults: {timeout_s: 86401}\n",
            "zoo.yaml:26: defaults.timeout_s: expected a number above 0 and at most 86400, "
            "got 86401"),
    mistake("timeout_s-inf", SMALL_ROSTER + "defaults: {timeout_s: .inf}\n",
            "zoo.yaml:26: defaults.timeout_s: expected a number above 0 and at most 86400, "
            "got inf"),
    mistake("retries--1", SMALL_ROSTER + "defaults: {retries: -1}\n",
            "zoo.yaml:26: defaults.retries: expected a whole number from 0 to 100, got -1"),
    mistake("backoff_s-negative", SMALL_ROSTER + "defaults: {backoff_s: -0.5}\n",
            "zoo.yaml:26: defaults.backoff_s: expected a number from 0 to 30, got -0.5"),
    mistake("max_handoffs--1", SMALL_ROSTER + "defaults: {max_handoffs: -1}\n",
            "zoo.yaml:26: defaults.max_handoffs: expected a whole number of 0 or more, got -1"),
    mistake("min_confidence-5", SMALL_ROSTER + "defaults: {min_confidence: 5}\n",
            "zoo.yaml:26: defaults.min_confidence: expected a number from 0 to 1, got 5"),
    mistake("concurrency-0", SMALL_ROSTER + "defaults: {concurrency: 0}\n",
            "zoo.yaml:26: defaults.concurrency: expected a whole number from 1 to 100, got 0"),
    mistake("daily_usd--5", SMALL_ROSTER + "budget: {daily_usd: -5}\n",
            "zoo.yaml:26: budget.daily_usd: expected a number of 0 or more, got -5"),
    mistake("daily_usd-false", SMALL_ROSTER + "budget: {daily_usd: false}\n",
            "zoo.yaml:26: budget.daily_usd: expected a number of 0 or more, got false"),
    mistake("task_tokens-0", SMALL_ROSTER + "budget: {task_tokens: 0}\n",
            "zoo.yaml:26: budget.task_tokens: expected a whole number of 1 or more, got 0"),
    mistake("limit-concurrency-0", SMALL_ROSTER + "limits:\n  anthropic: {concurrency: 0}\n",
            "zoo.yaml:27: limits.anthropic.concurrency: expected a whole number of 1 or more, "
            "got 0"),
    mistake("requests_per_minute-0", SMALL_ROSTER + "limits:\n  openai: {requests_per_minute: 0}\n",
            "zoo.yaml:27: limits.openai.requests_per_minute: expected a whole number of 1 or "
            "more, got 0"),
    mistake("tokens_per_minute-negative",
            SMALL_ROSTER + "limits:\n  openai: {tokens_per_minute: -1000}\n",
            "zoo.yaml:27: limits.openai.tokens_per_minute: expected a whole number of 1 or "
            "more, got -1000"),
    mistake("input_per_mtok--1",
            SMALL_ROSTER + "models:\n  fast:\n    provider: offline\n"
            "    price: {input_per_mtok: -1, output_per_mtok: 5}\n",
            "zoo.yaml:29: models.fast.price.input_per_mtok: expected a number of 0 or more, "
            "got -1"),
    mistake("output_per_mtok-nan",
            SMALL_ROSTER + "models:\n  fast:\n    provider: offline\n"
            "    price: {output_per_mtok: .nan}\n",
            "zoo.yaml:29: models.fast.price.output_per_mtok: expected a number of 0 or more, "
            "got nan"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "text", "expected"), [*MISTAKES, *NUMBERS])
def test_a_mistake_is_one_exact_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli, command: str, text: str,
    expected: list[str],
) -> None:  # fmt: skip
    home = bad_home(tmp_path / "zoo", text, monkeypatch)
    assert error_lines(zoo_cli(command, "--home", str(home.root))) == expected


def test_numbers_at_the_ends_of_their_ranges_load(tmp_path: Path) -> None:
    text = SMALL_ROSTER + (
        "defaults: {max_turns: 1000, timeout_s: 86400, retries: 0, backoff_s: 0,\n"
        "           max_handoffs: 0, min_confidence: 1, concurrency: 100}\n"
        "budget: {daily_usd: 0, task_tokens: 1}\n"
        "limits:\n  openai: {concurrency: 1, requests_per_minute: 1, tokens_per_minute: 1}\n"
        "models:\n  free: {provider: offline, price: {input_per_mtok: 0, output_per_mtok: 0}}\n"
    )
    roster = load_roster(make_home(tmp_path / "zoo", text))
    assert roster.defaults.max_turns == 1000
    assert roster.defaults.min_confidence == 1 and roster.budget.daily_usd == 0
    assert roster.defaults.max_handoffs == 0 and roster.defaults.retries == 0
    # a float field holds a float, also when zoo.yaml wrote a whole number
    assert type(roster.defaults.timeout_s) is float and type(roster.budget.daily_usd) is float
    assert load_roster(make_home(tmp_path / "zoo", text)) == roster  # and so does the cache


def test_importing_the_roster_imports_no_pydantic() -> None:
    code = "import sys, zoo.roster; print(sorted({'pydantic', 'annotated_types'} & {*sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_a_cache_the_old_checks_wrote_for_an_invalid_roster_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    """Before numbers had ranges, `max_turns: 0` was valid and cached under the hash of
    zoo.yaml and the version only; that verdict must not outlive the old checks."""
    home = bad_home(tmp_path / "zoo", SMALL_ROSTER + "defaults: {max_turns: 0}\n", monkeypatch)
    raw = home.roster_path.read_bytes()
    old_key = hashlib.sha256(raw + roster_module.__version__.encode()).hexdigest()
    valid_then = load_roster(make_home(tmp_path / "other", SMALL_ROSTER))
    valid_then = dataclasses.replace(valid_then, defaults=Defaults(max_turns=0))
    home.ensure_state()
    doc = {"sha256": old_key, "roster": dataclasses.asdict(valid_then)}
    (home.state / "roster.json").write_text(json.dumps(doc), encoding="utf-8")
    lines = error_lines(zoo_cli("status", "--home", str(home.root)))
    assert lines == [f"zoo: zoo.yaml:26: defaults.max_turns: {WHOLE_1_1000}, got 0"]


def test_a_change_to_the_checks_code_invalidates_the_cache(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = tmp_path / "validate.py"
    checks.write_text("# the checks, version 1\n", encoding="utf-8")
    monkeypatch.setattr(roster_module, "CHECKS", (checks,))
    load_roster(home)
    calls = _count_validations(monkeypatch)
    load_roster(home)
    assert calls == []  # the same code: the cache is used
    checks.write_text("# the checks, version 2\n", encoding="utf-8")
    load_roster(home)
    assert calls == [home.roster_path]


def test_the_checks_code_is_the_roster_and_its_validator() -> None:
    assert [p.name for p in roster_module.CHECKS] == ["model.py", "validate.py"]
    assert all(p.is_file() for p in roster_module.CHECKS)


def test_loading_the_roster_leaves_tool_names_to_zoo_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    """The roster lies below the tool registry: it loads with any tool name, and `zoo check`
    (and so `zoo run`) rejects a name the registry lacks."""
    text = edited("tools: [remember, escalate]", "tools: [remember, escalte]")
    home = bad_home(tmp_path / "zoo", text, monkeypatch)
    assert load_roster(home).agents["lark"].tools == ("remember", "escalte")
    assert zoo_cli("status", "--home", str(home.root)).code == 0
    run = zoo_cli("run", "--once", "--home", str(home.root))
    assert (run.code, run.err) == (1, "zoo: zoo.yaml:25: agents.lark.tools: unknown tool "
                                      "'escalte' (did you mean 'escalate'?)\n")  # fmt: skip
