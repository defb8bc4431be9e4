"""`zoo init`: a new zoo home with a small working roster, in a git repository.

The home is named after its folder unless a name is given. Only the files init writes
are created and committed: a file already there is kept and left to its owner, and so
is whatever else the folder holds. A folder inside a git work tree is part of that
repository: no repository is made in it (git would see a nested one as a stranger).
"""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from zoo.errors import UsageError, UserError
from zoo.roster import load_roster
from zoo.state.home import ROSTER_FILE, SPECIAL_FOLDERS, Home

DEFAULT_NAME = "my-team"
"""The name when the folder's name has no letter or digit to make one from."""
_TEMPLATE_NAME = f"name: {DEFAULT_NAME}\n"
_TEMPLATE_GIT = "git: {autocommit: true}\n"
MAX_NAME = 64


@dataclass
class Created:
    root: Path
    name: str
    """The team's name in zoo.yaml."""
    notes: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    """The files init wrote, relative to the home: what its first commit holds."""


def team_name(folder: str) -> str:
    """A name for the team in `folder`: its letters and digits, lower-case, words joined
    by '-' (`My Team` -> `my-team`, `Équipe Ω` -> `équipe-ω`), or `my-team`."""
    text = unicodedata.normalize("NFKC", folder).lower()
    slug = "-".join(re.findall(r"[^\W_]+", text))[:MAX_NAME].strip("-")
    return slug or DEFAULT_NAME


def checked_name(name: str) -> str:
    """`--name`: one line of printable text, not empty; else a usage error."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME or not cleaned.isprintable():
        raise UsageError(
            f"--name {name!r}: a team's name is one line of printable text, 1 to "
            f"{MAX_NAME} characters (e.g. --name acme)"
        )
    return cleaned


def init(directory: Path, *, name: str | None = None, git: bool = True) -> Created:
    """Scaffold a zoo home in `directory`; `git=False` (`--no-git`) leaves git alone and
    autocommit off."""
    root = directory.expanduser().resolve()
    if (root / ROSTER_FILE).exists():
        raise UserError(f"{root} is already a zoo home (it has {ROSTER_FILE})")
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a folder")
    chosen = checked_name(name) if name is not None else team_name(root.name)
    root.mkdir(parents=True, exist_ok=True)
    created = Created(root, chosen)
    _copy_template(created, git)
    roster = load_roster(Home(root))
    for folder in sorted({*SPECIAL_FOLDERS, *(roster.workspace_of(a) for a in roster.agents)}):
        keep = root / "workspaces" / folder / ".gitkeep"
        keep.parent.mkdir(parents=True, exist_ok=True)
        if not keep.exists():
            keep.touch()
            created.written.append(f"workspaces/{folder}/.gitkeep")
    if git:
        created.notes.append(_git_init(created))
    else:
        created.notes.append("no git repository (--no-git): autocommit is off in zoo.yaml")
    return created


def _copy_template(created: Created, git: bool) -> None:
    root = created.root
    template = resources.files("zoo") / "templates" / "init"
    with resources.as_file(template) as source:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            shown = ".gitignore" if rel.name == "gitignore" else rel.as_posix()
            target = root / shown
            if path.is_dir():
                target.mkdir(exist_ok=True)
            elif target.exists():
                created.notes.append(f"kept your {shown} (not overwritten)")
            elif rel.as_posix() == ROSTER_FILE:
                target.write_text(_roster(path.read_text(encoding="utf-8"), created.name, git),
                                  encoding="utf-8")  # fmt: skip
                created.written.append(shown)
            else:
                shutil.copyfile(path, target)
                created.written.append(shown)


def _roster(text: str, name: str, git: bool) -> str:
    """The template's zoo.yaml with the team's name (quoted where YAML needs it)."""
    import yaml

    plain = re.fullmatch(r"[^\W_][\w.-]*", name) is not None and yaml.safe_load(name) == name
    text = text.replace(_TEMPLATE_NAME, f"name: {name if plain else json.dumps(name)}\n", 1)
    if not git:
        text = text.replace(_TEMPLATE_GIT, "git: {autocommit: false}\n", 1)
    return text


def _git_init(created: Created) -> str:
    """Make the home a repository holding what init wrote, unless it is inside one."""
    try:
        import git
    except ImportError:
        return "git is not installed: the home works the same, without history"
    root = created.root
    try:
        top = git.Git(str(root)).rev_parse("--show-toplevel")
    except git.exc.CommandError:  # not in a work tree (or git cannot run: init says why)
        top = None
    if top:
        return (
            f"inside the git repository at {top}: no new repository, the home is part of "
            "that one (commit its files there when you like; autocommit adds Zoo's work)"
        )
    repo = git.Repo.init(root)
    repo.index.add(created.written)
    reader = repo.config_reader()
    if reader.has_option("user", "name") and reader.has_option("user", "email"):
        repo.index.commit("zoo init")
    else:
        who = git.Actor("zoo", "zoo@localhost")
        repo.index.commit("zoo init", author=who, committer=who)
    return "git repository with a first commit of those files (autocommit is on in zoo.yaml)"
