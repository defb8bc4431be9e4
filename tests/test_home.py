"""Finding the zoo home like git finds a repository: --home, then $ZOO_HOME, then upward."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, make_home
from zoo.errors import HomeNotFound
from zoo.state.home import Home, find_home

ZooCli = Callable[..., Result]

HINT = "(run 'zoo init DIR', pass --home DIR or set ZOO_HOME)"


@pytest.fixture
def two_homes(tmp_path: Path) -> tuple[Home, Home]:
    return make_home(tmp_path / "one"), make_home(tmp_path / "two")


def test_explicit_home_beats_zoo_home(two_homes: tuple[Home, Home]) -> None:
    one, two = two_homes
    found = find_home(one.root, env={"ZOO_HOME": str(two.root)}, cwd=two.root)
    assert found == one


def test_zoo_home_beats_the_upward_search(two_homes: tuple[Home, Home]) -> None:
    one, two = two_homes
    assert find_home(None, env={"ZOO_HOME": str(two.root)}, cwd=one.root) == two


def test_an_empty_zoo_home_is_ignored(two_homes: tuple[Home, Home]) -> None:
    one, _ = two_homes
    assert find_home(None, env={"ZOO_HOME": ""}, cwd=one.root) == one


def test_the_current_folder_is_a_home(home: Home) -> None:
    assert find_home(None, env={}, cwd=home.root) == home


def test_a_nested_subfolder_finds_the_home_above(home: Home) -> None:
    nested = home.root / "workspaces" / "dev" / "deep"
    nested.mkdir(parents=True)
    assert find_home(None, env={}, cwd=nested) == home


def test_the_nearest_home_upward_wins(home: Home) -> None:
    inner = make_home(home.root / "projects" / "inner")
    nested = inner.root / "sub"
    nested.mkdir()
    assert find_home(None, env={}, cwd=nested) == inner


def test_the_found_root_is_absolute_and_resolved(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(home.root.parent)
    found = find_home(Path("zoo/../zoo"), env={})
    assert found.root == home.root
    assert found.root.is_absolute()


def test_a_tilde_in_the_explicit_path_is_expanded(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(home.root.parent))
    assert find_home(Path("~/zoo"), env={}) == home


def test_no_home_anywhere_upward(tmp_path: Path) -> None:
    start = tmp_path / "empty"
    start.mkdir()
    with pytest.raises(HomeNotFound) as caught:
        find_home(None, env={}, cwd=start)
    assert str(caught.value) == (
        f"no zoo home: no zoo.yaml in {start.resolve()} or any folder above it {HINT}"
    )


def test_a_folder_named_zoo_yaml_does_not_make_a_home(tmp_path: Path) -> None:
    (tmp_path / "zoo.yaml").mkdir()
    with pytest.raises(HomeNotFound):
        find_home(None, env={}, cwd=tmp_path)


def test_explicit_home_without_zoo_yaml(tmp_path: Path) -> None:
    with pytest.raises(HomeNotFound) as caught:
        find_home(tmp_path, env={}, cwd=tmp_path)
    assert str(caught.value) == f"no zoo home at {tmp_path} (--home): it has no zoo.yaml"


def test_zoo_home_without_zoo_yaml_does_not_fall_back(home: Home, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HomeNotFound) as caught:
        find_home(None, env={"ZOO_HOME": str(empty)}, cwd=home.root)
    assert str(caught.value) == f"no zoo home at {empty} ($ZOO_HOME): it has no zoo.yaml"


def test_home_paths() -> None:
    home = Home(Path("/z"))
    assert home.roster_path == Path("/z/zoo.yaml")
    assert home.playbook("owl") == Path("/z/agents/owl.md")
    assert home.agent_memory("owl") == Path("/z/agents/owl.memory.md")
    assert home.workspace("qa") == Path("/z/workspaces/qa")
    assert home.journal_path == Path("/z/.zoo/events.jsonl")
    assert home.relative(Path("/z/workspaces/qa")) == "workspaces/qa"
    assert home.relative(Path("/elsewhere/x")) == "/elsewhere/x"


# --- through the CLI --------------------------------------------------------------------------


def test_status_without_a_home_is_one_clean_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    monkeypatch.chdir(tmp_path)
    result = zoo_cli("status")
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("zoo: no zoo home:")
    assert result.err == (
        f"zoo: no zoo home: no zoo.yaml in {tmp_path.resolve()} or any folder above it {HINT}\n"
    )


def test_status_with_a_home_option_without_zoo_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nothing").mkdir()
    result = zoo_cli("status", "--home", "nothing")
    assert (result.code, result.out) == (1, "")
    assert result.err == "zoo: no zoo home at nothing (--home): it has no zoo.yaml\n"


def test_status_honours_zoo_home(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_HOME", str(home.root))
    result = zoo_cli("status")
    assert result.code == 0
    assert result.out.startswith(f"test · {home.root} · ")


def test_status_finds_the_home_from_a_subfolder(
    home: Home, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    nested = home.root / "agents"
    monkeypatch.chdir(nested)
    result = zoo_cli("status")
    assert result.code == 0
    assert result.out.startswith(f"test · {home.root} · ")


@pytest.mark.parametrize(
    "args",
    [["--home", "{home}", "status"], ["status", "--home", "{home}"]],
    ids=["global-option", "command-option"],
)
def test_home_option_before_or_after_the_command(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = zoo_cli(*(a.format(home=home.root) for a in args))
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith(f"test · {home.root} · ")


def test_the_commands_home_option_beats_the_global_one(
    home: Home, tmp_path: Path, zoo_cli: ZooCli
) -> None:
    other = make_home(
        tmp_path / "other", "version: 1\nname: other\nlead: a\nagents:\n  a: {role: A}\n"
    )
    result = zoo_cli("--home", str(home.root), "status", "--home", str(other.root))
    assert result.code == 0
    assert result.out.startswith(f"other · {other.root} · ")


def test_the_home_option_beats_zoo_home(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zoo_cli: ZooCli
) -> None:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "missing"))
    result = zoo_cli("status", "--home", str(home.root))
    assert result.code == 0
    assert result.out.startswith(f"test · {home.root} · ")
