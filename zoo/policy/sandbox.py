"""The sandbox of the commands `run` starts: Linux Landlock, enforced by a small launcher.

Zoo builds a Landlock ruleset (through the landlockpy library) that grants what the
command may reach, and starts `python -I -S sandbox.py RULESET REPORT PROGRAM -- ARGV`
instead of the program, with the ruleset's descriptor. The runner has many threads, so
nothing runs in the child between fork and exec: the launcher is a fresh,
single-threaded process that sets no_new_privs, enforces the ruleset on itself (and so
on everything it will ever start), and becomes the program (execv): same pid, same
session, so a timeout still kills the whole process group. If either step fails, it
writes one line to the REPORT pipe and exits: the program never runs unconfined by
accident.

What `rules` grants: read and execute in the system folders and the Python in use, the
few devices a program needs, a few system-wide files of /proc, and the folders the
caller names. Everything else is denied: the rest of the zoo home, the person's home
folder, /tmp, every process's /proc folder. A system folder that holds the zoo home is
granted around it, never with it. TCP bind and connect are denied unless `network`;
abstract Unix sockets and signals are scoped to the command's own processes.

Landlock confines opening, creating, removing, renaming, linking, executing and (ABI 3)
truncating files. It does not confine reading a file's metadata (stat) or changing its
mode, owner or times (chmod, chown, touch), nor, before ABI 9, connecting to a Unix
socket by its path.

This file is also the launcher's program: it imports only the standard library at the
top and starts without `site`, so it costs little more than the interpreter's start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

MIN_ABI = 3
"""Landlock ABI 3 (Linux 6.2) is the first that stops a command truncating a file
outside; below it a command could empty any file it can name."""
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
"""Read and execute: programs, libraries, their configuration."""
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
"""Read and write: what programs open by name (not /dev/shm, /dev/tty or disks)."""
PROC = ("/proc/sys", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg",
        "/proc/uptime", "/proc/version")  # fmt: skip
"""Read only, and not all of /proc: another process's environ (the runner's holds the
API keys) stays readable under Landlock, and /proc/kcore is kernel memory. Not even
/proc/self: it would have to be granted as one pid's folder."""
HOME_PARTS = ("zoo.yaml", "MEMORY.md", "agents", "workspaces", ".zoo", ".git")
"""What of a zoo home a granted folder (a virtualenv kept in the home) must not be in."""


def rules(
    home: str,
    *,
    read: Iterable[str] = (),
    write: Iterable[str] = (),
    program: str | None = None,
    network: bool = False,
) -> list[tuple[str, str]]:
    """What a command may reach: the system, `read` and `write` (folders of the home).

    Each path comes with its kind: system, read, write or device.

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
    return [(path, kind) for path, kind in dict.fromkeys(granted) if os.path.exists(path)]


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


def ruleset(paths: Iterable[tuple[str, str]], *, network: bool = False) -> int:
    """A new Landlock ruleset granting `paths` (see `rules`): a descriptor the caller closes.

    Built here, in Zoo's process, by landlockpy: a ruleset restricts no one until a
    process enforces it on itself (the launcher). Rights this kernel does not know are
    left out (best effort). Raises `OSError` when the kernel will not make it.
    """
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
    net = AccessNet.NONE if network else None  # None: every network right it knows
    scoped = Scope.ABSTRACT_UNIX_SOCKET | Scope.SIGNAL
    with Ruleset(handled_net=net, scoped=scoped) as rules:
        for path, kind in paths:
            rights = access[kind] if os.path.isdir(path) else access[kind] & file_rights
            try:
                rules.allow_path(path, rights)
            except FileNotFoundError:
                continue  # gone meanwhile: less is reachable, not more
        return os.dup(rules.fileno())  # not inheritable: passed only to its launcher


def launcher(ruleset_fd: int, report: int, program: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` (its file `program`) under the ruleset `ruleset_fd`.

    Both descriptors must be passed to the child; the launcher writes to the pipe
    `report` why it could not start the program, if it could not.
    """
    here = os.path.abspath(__file__)
    return [sys.executable, "-I", "-S", here, str(ruleset_fd), str(report), program, "--", *argv]


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

PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_RESTRICT_SELF = 446
"""On every architecture of Linux's common syscall table (x86-64, arm64, riscv...); on
one with other numbers (MIPS, alpha) the call fails, and so the launcher does."""


def main(args: Sequence[str]) -> None:
    """Enforce the ruleset on this process, then become the program; or report and exit."""
    ruleset_fd, report, program, command = int(args[0]), int(args[1]), args[2], list(args[4:])
    os.set_inheritable(report, False)  # exec closes it: the program never sees it
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    long, no = ctypes.c_long, ctypes.c_ulong(0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), no, no, no) != 0 or (
        libc.syscall(long(SYS_LANDLOCK_RESTRICT_SELF), long(ruleset_fd), long(0)) != 0
    ):
        _fail(report, f"cannot confine the command: {os.strerror(ctypes.get_errno())}")
    os.close(ruleset_fd)
    try:
        os.execv(program, command)
    except OSError as e:
        _fail(report, f"cannot start '{command[0]}': {e.strerror}")


def _fail(report: int, line: str) -> None:
    os.write(report, line.encode("utf-8", errors="replace")[:4000])
    os._exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
