"""Confinement: every path an agent names stays inside the workspaces it may use.

A path is checked twice, in two different ways:

1. As text (`place`, here): its workspace must be one the roster grants for that use, and
   the path below it must be relative and free of `..`, `~`, NUL and control characters,
   backslashes, hidden names and names longer than 255 bytes.
2. On disk, by the kernel (`state/files.py`): the path is opened one name at a time from
   an open descriptor of the home, never through a link.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from zoo.errors import ToolRefused
from zoo.state.files import Place

MAX_NAME_BYTES = 255
MAX_PATH_CHARS = 1024
MAX_DEPTH = 16
_PREFIX = re.compile(r"^([a-z][a-z0-9_-]{0,31}):(.*)$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def place(spec: str, *, own: str, allowed: Sequence[str], who: str, verb: str) -> Place:
    """Check `spec` ('file.md', 'sub/file.md' or 'ws:file.md') as text."""
    if "\x00" in spec:
        raise ToolRefused("path contains a NUL byte")
    if len(spec) > MAX_PATH_CHARS:
        raise ToolRefused(f"path is longer than {MAX_PATH_CHARS} characters")
    match = _PREFIX.match(spec)
    workspace, rel = (match.group(1), match.group(2)) if match else (own, spec)
    if workspace not in allowed:
        raise ToolRefused(f"{who} may not {verb} workspace '{workspace}'")
    return Place(workspace, _names(rel))


def _names(rel: str) -> tuple[str, ...]:
    if _CONTROL.search(rel):
        raise ToolRefused("path contains a control character")
    if "\\" in rel:
        raise ToolRefused("use '/' in paths, not '\\'")
    if rel.startswith("/"):
        raise ToolRefused("path must be relative to the workspace, not absolute")
    if rel.startswith("~"):
        raise ToolRefused("'~' is not expanded: paths are relative to the workspace")
    names = [name for name in rel.split("/") if name not in ("", ".")]
    if len(names) > MAX_DEPTH:
        raise ToolRefused(f"path is deeper than {MAX_DEPTH} folders")
    for name in names:
        if name == "..":
            raise ToolRefused("'..' is not allowed: paths stay inside their workspace")
        if name.startswith("."):
            raise ToolRefused(f"hidden names are not allowed ('{name[:40]}')")
        if ":" in name:
            raise ToolRefused("':' only separates a workspace from its path, as in 'qa:x.md'")
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            raise ToolRefused("path is not valid Unicode text") from None
        if size > MAX_NAME_BYTES:
            raise ToolRefused(f"a name in the path is longer than {MAX_NAME_BYTES} bytes")
    return tuple(names)
