"""The code keeps its taste: ruff clean, and README's command list matches `zoo --help`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(ruff is None, reason="ruff is installed with the test extras")
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff_is_clean(args: list[str]) -> None:
    result = subprocess.run(
        [str(ruff), *args, "zoo", "tests", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_lists_every_command() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "zoo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = set(re.findall(r"^  (\w+)\s", help_text.split("Commands:")[1], re.MULTILINE))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `zoo (\w+)", readme, re.MULTILINE))
    assert commands == documented


mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")


@pytest.mark.skipif(mypy is None, reason="mypy is installed with the test extras")
def test_mypy_is_clean() -> None:
    result = subprocess.run([str(mypy)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
