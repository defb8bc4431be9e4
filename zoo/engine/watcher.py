"""The file watcher: wakes the runner when a task file under `workspaces/` is ready.

With inotify (Linux) it keys on a file closed after writing and on a rename into a
folder, never on created/modified, which fire while a writer is still writing: a
person's editor, `cp`, or Zoo's own atomic saves (a temporary file renamed into place)
all end in one of the two. Where inotify is unavailable (no inotify, or its watch limit
reached) it falls back to polling the folders, and says so.

It only wakes the runner and says which paths changed; what is due is the runner's to
decide. `None` from `wait` means "look at everything" (a folder appeared or moved, or the
watcher may have missed events).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.state.fs import TMP_SUFFIX
from zoo.state.tasks import CLOSED

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

POLL_S = 1.0
"""How often the polling fallback looks at the folders."""
_QUIET = CLOSED
"""Folders whose files are never due: changes there wake nobody."""


class Watcher:
    """Collects the paths that changed under `root` until the runner takes them."""

    def __init__(self, root: Path, *, polling: bool = False, roster: Path | None = None) -> None:
        self.root = root
        self.roster = roster
        """zoo.yaml: a change to it pokes the runner, which reloads the roster."""
        self.mode = ""
        """`inotify`, or `polling (why)` once started."""
        self._polling = polling
        self._cond = threading.Condition()
        self._paths: set[Path] = set()
        self._everything = False
        self._poked = False
        self._observer: Any = None

    def start(self) -> str:
        """Start watching; returns how (`inotify` or `polling every 1s (why)`)."""
        from watchdog.observers.polling import PollingObserver

        self.root.mkdir(parents=True, exist_ok=True)
        why = "asked for" if self._polling else ""
        if not self._polling:
            try:
                self._observer = self._inotify()
                self.mode = "inotify"
            except (ImportError, OSError) as e:
                why = f"inotify unavailable: {e}"
        if self._observer is None:
            self._observer = PollingObserver(timeout=POLL_S)
            self._observer.schedule(_Handler(self, polling=True), str(self.root), recursive=True)
            if self.roster is not None:
                self._observer.schedule(_RosterHandler(self), str(self.roster.parent))
            self._observer.start()
            self.mode = f"polling every {POLL_S:g}s ({why})"
        return self.mode

    def _inotify(self) -> Any:
        from watchdog.events import DirCreatedEvent, DirMovedEvent, FileClosedEvent, FileMovedEvent
        from watchdog.observers.inotify import InotifyObserver

        # full events: a file moved in from outside the tree is a move with no source,
        # not a creation (which would look like a file still being written)
        observer: Any = InotifyObserver(generate_full_events=True)
        kinds = [FileClosedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]
        observer.schedule(_Handler(self, polling=False), str(self.root), recursive=True,
                          event_filter=kinds)  # fmt: skip
        if self.roster is not None:  # the home's own folder, not below it
            observer.schedule(_RosterHandler(self), str(self.roster.parent),
                              event_filter=[FileClosedEvent, FileMovedEvent])  # fmt: skip
        observer.start()
        return observer

    def wait(self, timeout: float | None) -> set[Path] | None:
        """The paths changed since the last call, waiting up to `timeout` for one.

        An empty set: nothing changed in time. `None`: look at everything.
        """
        with self._cond:
            if not self._paths and not self._everything and not self._poked:
                self._cond.wait(timeout)
            paths, everything = self._paths, self._everything
            self._paths, self._everything, self._poked = set(), False, False
        return None if everything else paths

    def poke(self) -> None:
        """Make `wait` return now (or, if no one waits, the next call at once).

        Call it from another thread than the one in `wait`: a signal handler runs in
        the waiting thread itself, between its check and its wait, and would be lost.
        """
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def _changed(self, path: Path | None) -> None:
        with self._cond:
            if path is None:
                self._everything = True
            else:
                self._paths.add(path)
            self._cond.notify_all()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self.poke()


class _Handler:
    """Turns watchdog events into changed task-file paths (a watchdog handler)."""

    def __init__(self, watcher: Watcher, *, polling: bool) -> None:
        self.watcher = watcher
        self.polling = polling

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                self.watcher._changed(None)  # a new workspace folder, or one moved in
            return
        kind = event.event_type
        if kind == "moved":
            path = event.dest_path
        elif kind == "closed" or (self.polling and kind in ("created", "modified")):
            path = event.src_path
        else:
            return
        target = Path(path if isinstance(path, str) else path.decode())
        if _is_task_like(target, self.watcher.root):
            self.watcher._changed(target)


class _RosterHandler:
    """Pokes the runner when zoo.yaml is written or renamed into place (a watchdog handler)."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        path = event.dest_path if event.event_type == "moved" else event.src_path
        name = Path(path if isinstance(path, str) else path.decode()).name
        if not event.is_directory and self.watcher.roster is not None:
            if name == self.watcher.roster.name:
                self.watcher.poke()


def _is_task_like(path: Path, root: Path) -> bool:
    """A markdown file directly in a workspace folder that may hold due work."""
    name = path.name
    if not name.endswith(".md") or name.startswith(".") or name.endswith(TMP_SUFFIX):
        return False
    return path.parent.parent == root and path.parent.name not in _QUIET
