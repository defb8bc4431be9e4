"""`zoo init`: a new zoo home with a small working roster, in a git repository."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from zoo.errors import UserError
from zoo.home import ROSTER_FILE, SPECIAL_FOLDERS, Home
from zoo.roster import load_roster


@dataclass
class Created:
    root: Path
    notes: list[str] = field(default_factory=list)


def init(directory: Path) -> Created:
    root = directory.expanduser().resolve()
    if (root / ROSTER_FILE).exists():
        raise UserError(f"{root} is already a zoo home (it has {ROSTER_FILE})")
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a folder")
    template = resources.files("zoo") / "templates" / "init"
    root.mkdir(parents=True, exist_ok=True)
    created = Created(root)
    with resources.as_file(template) as source:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            target = root / (".gitignore" if rel.name == "gitignore" else rel)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            elif target.exists():
                created.notes.append(f"kept your {rel} (not overwritten)")
            else:
                shutil.copyfile(path, target)
    roster = load_roster(Home(root))
    for folder in {*SPECIAL_FOLDERS, *(roster.workspace_of(a) for a in roster.agents)}:
        ws = root / "workspaces" / folder
        ws.mkdir(parents=True, exist_ok=True)
        (ws / ".gitkeep").touch()
    created.notes.append(_git_init(root))
    return created


def _git_init(root: Path) -> str:
    try:
        import git
    except ImportError:
        return "git is not installed: the home works the same, without history"
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    reader = repo.config_reader()
    if reader.has_option("user", "name") and reader.has_option("user", "email"):
        repo.index.commit("zoo init")
    else:
        who = git.Actor("zoo", "zoo@localhost")
        repo.index.commit("zoo init", author=who, committer=who)
    return "git repository with a first commit (autocommit is on in zoo.yaml)"
