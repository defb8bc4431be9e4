"""The sandbox of the commands `run` starts: Linux Landlock, applied by a small launcher.

The runner has many threads, so nothing is called in a child between fork and exec.
`commands.run` starts this file instead, as `python -I -S sandbox.py RULES -- ARGV...`:
a fresh, single-threaded process that asks the kernel (Landlock, through the landlockpy
library) to let it, and everything it will ever start, reach only what RULES names,
sets no_new_privs, and then becomes the program (execv): same pid, same session, so a
timeout still kills the whole process group. If anything fails before the program runs,
the launcher writes one line to a report pipe and exits; the program never runs
unconfined by accident.

What RULES grants (built by `rules`): read and execute in the system folders and the
Python in use, the few devices a program needs, its own /proc/self and a few of /proc's
system-wide files, and the folders the caller names. Everything else is denied: the
rest of the zoo home, the person's home folder, /tmp. A system folder that holds the
zoo home is granted around it, never with it. TCP bind and connect are denied unless
`network`; abstract Unix sockets and signals are scoped to the command's own processes.

Landlock confines opening, creating, removing, renaming, linking, executing and (ABI 3)
truncating files. It does not confine reading a file's metadata (stat) or changing its
mode, owner or times (chmod, chown, touch), nor, before ABI 9, connecting to a Unix
socket by its path.

This file is also the launcher's program: it imports only the standard library at the
top, and the launcher starts without `site`, so that it costs little more than the
interpreter's own start and landlockpy's import.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

MIN_ABI = 3
"""Landlock ABI 3 (Linux 6.2) is the first that stops a command truncating a file
outside; below it a command could empty any file it can name."""
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
"""Read and execute: programs, libraries, their configuration."""
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
"""Read and write: what programs open by name (not /dev/shm, /dev/tty or disks)."""
PROC = ("/proc/self", "/proc/sys", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
        "/proc/loadavg", "/proc/uptime", "/proc/version")  # fmt: skip
"""Read only, and not all of /proc: another process's environ (the runner's holds the
API keys) and maps stay readable under Landlock, and /proc/kcore is kernel memory.
/proc/self is the launcher's own folder, which the program keeps (same pid)."""
HOME_PARTS = ("zoo.yaml", "MEMORY.md", "agents", "workspaces", ".zoo", ".git")
"""What of a zoo home a granted folder (a virtualenv kept in the home) must not be in."""


def rules(
    home: str,
    *,
    read: Iterable[str] = (),
    write: Iterable[str] = (),
    program: str | None = None,
    network: bool = False,
) -> dict[str, Any]:
    """The launcher's RULES: the system, plus `read` and `write` (folders of the home).

    `program` (the file that will be executed, resolved) is granted when it lies outside
    the home: the one file, so that a program PATH finds elsewhere still starts.
    """
    home = os.path.realpath(home)
    granted: list[tuple[str, str]] = []
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    for top in (*SYSTEM, *sorted(prefixes)):
        granted += [(path, "system") for path in _without(os.path.realpath(top), home)]
    if program is not None and not _within(os.path.realpath(program), home):
        granted.append((os.path.realpath(program), "system"))
    if network:  # resolv.conf is often a link into /run
        granted.append((os.path.realpath("/etc/resolv.conf"), "system"))
    granted += [(path, "device") for path in DEVICES]
    granted += [(path, "read") for path in PROC]
    granted += [(path, "read") for path in read]
    granted += [(path, "write") for path in write]
    found = [[path, kind] for path, kind in dict.fromkeys(granted) if os.path.exists(path)]
    return {"paths": found, "network": network}


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _without(top: str, home: str) -> list[str]:
    """`top` as folders that reach nothing of the zoo home's own parts."""
    if _within(top, home):  # a virtualenv kept in the home: fine outside Zoo's parts
        parts = [os.path.join(home, part) for part in HOME_PARTS]
        return [] if top == home or any(_within(top, p) for p in parts) else [top]
    if not _within(home, top):
        return [top]
    around, here = [], top
    for name in os.path.relpath(home, top).split(os.sep):
        try:
            with os.scandir(here) as entries:  # a link here could lead anywhere: not granted
                around += [e.path for e in entries if e.name != name and not e.is_symlink()]
        except OSError:
            break
        here = os.path.join(here, name)
    return around


def launcher(spec: dict[str, Any], program: str, argv: Sequence[str], report: int) -> list[str]:
    """The argv that runs `argv` (its file `program`) confined by `spec` (see `rules`).

    The launcher writes why it could not, if it could not, to the pipe `report`.
    """
    doc = {**spec, "program": program, "report": report, "lib": _library_folder()}
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), json.dumps(doc), "--", *argv]


def _library_folder() -> str:
    """Where landlockpy is installed: the launcher starts without site (-S) and adds it."""
    from importlib.util import find_spec

    spec = find_spec("landlockpy")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return os.path.dirname(list(spec.submodule_search_locations)[0])


def abi() -> tuple[int, str]:
    """The kernel's Landlock ABI version, and why it is 0 when it is (or "")."""
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock is a Linux feature and this is {sys.platform}"
    try:
        import landlockpy
    except ImportError:
        return 0, "the landlockpy package is not installed"
    try:
        version = landlockpy.abi_version()
    except OSError as e:  # e.g. a seccomp filter around Zoo itself refusing the call
        return 0, f"the kernel refused to say which Landlock it has: {e.strerror}"
    if version == 0:
        return 0, "this kernel has no Landlock, or it is not enabled at boot"
    return version, ""


# --- the launcher: runs in the command's own process, before the program -----------------


def main(args: Sequence[str]) -> None:
    doc, command = json.loads(args[0]), list(args[2:])
    report = int(doc["report"])
    os.set_inheritable(report, False)  # the program never sees it; exec closes it
    try:
        _confine(doc)
    except (OSError, ImportError, ValueError) as e:
        _fail(report, f"cannot confine the command: {getattr(e, 'strerror', None) or e}")
    try:
        os.execv(str(doc["program"]), command)
    except OSError as e:
        _fail(report, f"cannot start '{command[0]}': {e.strerror}")


def _confine(doc: dict[str, Any]) -> None:
    if doc["lib"]:
        sys.path.append(str(doc["lib"]))
    from landlockpy import AccessFS as A
    from landlockpy import AccessNet, Ruleset, Scope

    read = A.READ_FILE | A.READ_DIR
    write = A.WRITE_FILE | A.TRUNCATE | A.REMOVE_DIR | A.REMOVE_FILE | A.MAKE_DIR | A.MAKE_REG
    access = {  # never MAKE_CHAR, MAKE_BLOCK or IOCTL_DEV: no new devices, no ioctls
        "system": read | A.EXECUTE,
        "read": read,
        "write": read | A.EXECUTE | write | A.MAKE_SOCK | A.MAKE_FIFO | A.MAKE_SYM | A.REFER
        | A.RESOLVE_UNIX,
        "device": A.READ_FILE | A.WRITE_FILE | A.TRUNCATE,
    }  # fmt: skip
    file_rights = A.EXECUTE | A.READ_FILE | A.WRITE_FILE | A.TRUNCATE
    net = AccessNet.NONE if doc["network"] else None  # None: every network right it knows
    scoped = Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL
    with Ruleset(handled_net=net, scoped=scoped) as ruleset:  # best effort for the ABI
        for path, kind in doc["paths"]:
            rights = access[kind] if os.path.isdir(path) else access[kind] & file_rights
            try:
                ruleset.allow_path(path, rights)
            except FileNotFoundError:
                continue  # gone since the rules were made: less is reachable, not more
        ruleset.restrict()


def _fail(report: int, line: str) -> None:
    os.write(report, line.encode("utf-8", errors="replace")[:4000])
    os._exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
