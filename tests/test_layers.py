"""The package's layers, as STYLE.md draws them: each folder imports only from those below.

    errors, secrets  <  state  <  roster  <  models  <  policy  <  engine  <  cli

(state may name the roster's and the models' types, but only for type checking.) Nothing
outside cli/ imports typer or rich, and `zoo --help` loads no SDK.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parent.parent / "zoo"
ORDER = ["state", "roster", "models", "policy", "engine", "cli"]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, only for type checking) of every import in a file, nested ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(name, id(node) in typing_only) for name in names]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "zoo" and parts[1] in ORDER else None


def _files(layer: str) -> list[Path]:
    return sorted((ZOO / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", ORDER)
def test_a_layer_imports_only_from_the_layers_below(layer: str) -> None:
    rank = ORDER.index(layer)
    wrong = []
    for path in _files(layer):
        for module, typing_only in _imports(path):
            other = _layer(module)
            if other is None or ORDER.index(other) <= rank:
                continue
            if layer == "state" and other in ("roster", "models") and typing_only:
                continue
            if layer == "state" and module.startswith("zoo.models.base"):
                continue  # a step log keeps replies: the one plain data type state stores
            wrong.append(f"{path.relative_to(ZOO)} imports {module}")
    assert wrong == []


def test_nothing_outside_the_cli_imports_typer_or_rich() -> None:
    wrong = [
        f"{path.relative_to(ZOO)} imports {module}"
        for path in ZOO.rglob("*.py")
        if path.parent.name != "cli"
        for module, _ in _imports(path)
        if module.split(".")[0] in ("typer", "rich", "click")
    ]
    assert wrong == []


def test_the_cli_imports_no_sdk() -> None:
    code = ("import sys, zoo.cli.app; print(sorted(m for m in ('anthropic', 'openai', 'git', "
            "'watchdog', 'pydantic', 'httpx', 'croniter') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
