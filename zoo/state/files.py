"""Files inside the home, opened one name at a time and never through a link.

A path is opened from an open descriptor of the home, name by name, with `O_NOFOLLOW`,
so a symbolic link anywhere on the way is never followed, not even one swapped in between
a check and the use: there is no separate check to race. A file with more than one hard
link is refused, because its other name may be outside. The agents' file tools use it for
the places `policy/confine.py` admits; playbooks and memory files are opened the same way
(`open_in_home`), so they load only from inside the home.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ToolRefused, UserError
from zoo.state.fs import TMP_SUFFIX, pid_alive, write_all

_LINK = "is a symbolic link; links are not followed"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ConfinementError(UserError):
    """A file Zoo itself was about to use is a link or otherwise leads out of the home."""


@dataclass(frozen=True)
class Place:
    """A path that passed the text check: a workspace and the names below its folder."""

    workspace: str
    names: tuple[str, ...]

    @property
    def shown(self) -> str:
        return f"{self.workspace}:{'/'.join(self.names)}"

    @property
    def folder(self) -> tuple[str, ...]:
        """The names from the home to this place's folder (the place itself if no file)."""
        return ("workspaces", self.workspace, *self.names)


# --- on disk: one name at a time, never following a link ------------------------------


def _walk(root: Path, names: Sequence[str], *, create: bool = False) -> int:
    """An open descriptor of the folder `root/names...`; no link below `root` is followed."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, "a symbolic link", name) from None
                raise
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _refusal(e: OSError, shown: str) -> ToolRefused:
    if e.errno == errno.ELOOP:
        return ToolRefused(f"'{shown}' goes through a symbolic link; links are not followed")
    if e.errno == errno.ENOENT:
        return ToolRefused(f"no such file or folder: '{shown}'")
    if e.errno == errno.ENOTDIR:
        return ToolRefused(f"'{shown}' goes through something that is not a folder")
    if e.errno == errno.EISDIR:
        return ToolRefused(f"'{shown}' is a folder")
    return ToolRefused(f"cannot use '{shown}': {e.strerror}")


def _file_problem(st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return _LINK
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_nlink > 1:
        return "has other hard links, which may lead outside; it is not used"
    return None


def _check_file(st: os.stat_result, shown: str) -> None:
    problem = _file_problem(st)
    if problem is not None:
        raise ToolRefused(f"'{shown}' {problem}")


def read_file(root: Path, where: Place, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of the file at `where` below the home `root`."""
    if not where.names:
        raise ToolRefused("name a file to read")
    try:
        folder = _walk(root, where.folder[:-1])
    except OSError as e:
        raise _refusal(e, where.shown) from None
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(where.names[-1], flags, dir_fd=folder)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ToolRefused(f"'{where.shown}' {_LINK}") from None
        raise _refusal(e, where.shown) from None
    finally:
        os.close(folder)
    try:
        _check_file(os.fstat(fd), where.shown)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def write_file(root: Path, where: Place, data: bytes) -> None:
    """Replace or create the file at `where` atomically (temp file, fsync, rename)."""
    if not where.names:
        raise ToolRefused("name a file to write")
    name = where.names[-1]
    try:
        folder = _walk(root, where.folder[:-1], create=True)
    except OSError as e:
        raise _refusal(e, where.shown) from None
    try:
        try:
            _check_file(os.stat(name, dir_fd=folder, follow_symlinks=False), where.shown)
        except FileNotFoundError:
            pass
        _sweep_dead_tmp(folder)
        tmp = f".{os.urandom(4).hex()}.{os.getpid()}{TMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=folder)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:  # a rename replaces a link swapped in meanwhile; it never writes through one
            os.rename(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as e:
            os.unlink(tmp, dir_fd=folder)
            raise _refusal(e, where.shown) from None
        os.fsync(folder)
    finally:
        os.close(folder)


def _sweep_dead_tmp(folder: int) -> None:
    """Remove the temporary files of writes cut short by a kill (their process is gone)."""
    for name in os.listdir(folder):
        pid = name[: -len(TMP_SUFFIX)].rsplit(".", 1)[-1] if name.endswith(TMP_SUFFIX) else ""
        if pid and not (pid.isdigit() and pid_alive(int(pid))):
            try:
                os.unlink(name, dir_fd=folder)
            except FileNotFoundError:
                pass


def list_folder(root: Path, where: Place) -> list[tuple[str, str]]:
    """(name, kind) of what the folder at `where` holds; kind is file, folder or link."""
    try:
        folder = _walk(root, where.folder)
    except OSError as e:
        raise _refusal(e, where.shown) from None
    try:
        found = []
        for name in os.listdir(folder):
            if name.startswith("."):
                continue
            try:
                mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            kind = "folder" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "file"
            found.append((name, kind))
        return sorted(found)
    finally:
        os.close(folder)


def workspace_folder(root: Path, workspace: str) -> Path:
    """The real folder of `workspace`, created if needed; refused if any part is a link."""
    try:
        os.close(_walk(root, ("workspaces", workspace), create=True))
    except OSError as e:
        raise _refusal(e, f"{workspace}:") from None
    return root / "workspaces" / workspace


# --- Zoo's own files: playbooks and memory ---------------------------------------------


def open_in_home(root: Path, rel: str, flags: int = os.O_RDONLY) -> int:
    """An open descriptor of `root/rel`, a file of Zoo's own (a playbook, a memory file).

    No link on the way is followed and the file must be a regular file with one link,
    so nothing outside the home is ever read or written through it. `FileNotFoundError`
    when it does not exist (and `flags` does not create it).
    """
    names = rel.split("/")
    outside = "Zoo uses only files inside the home"
    try:
        folder = _walk(root, names[:-1])
        try:
            fd = os.open(names[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder)
        finally:
            os.close(folder)
    except FileNotFoundError:
        raise
    except OSError as e:
        why = "is a symbolic link or lies behind one" if e.errno == errno.ELOOP else e.strerror
        raise ConfinementError(f"{rel}: {why}; {outside}") from None
    problem = _file_problem(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise ConfinementError(f"{rel}: {problem}; {outside}")
    return fd


def read_in_home(root: Path, rel: str) -> bytes | None:
    """The bytes of Zoo's own file `root/rel`, or None when it does not exist."""
    try:
        fd = open_in_home(root, rel)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()
