"""Side effects seen while a memoized body runs: the run-time half of impurity detection.

The static scan (:mod:`reckon.memo.impurity`) reads the user's bytecode and cannot see inside
installed packages: ``pandas.read_csv(path)`` opens a file it never mentions. While a memoized
body computes (never on a hit), this module watches what actually happens:

- **audit events** (PEP 578), when turned on (:func:`audit_side_effects` or
  ``RECKON_AUDIT=1``): files opened, directories listed or changed, processes started, sockets
  connected, ``os.environ`` written. Opt-in because an audit hook can never be removed and
  CPython then calls it for *every* audited operation of the process (``id()``,
  ``sys._getframe()`` in each log call, ``open``...): about 0.2 µs each, for the process's life.
  Opens that are part of running Python (imports: ``.py``, ``.pyc``, extension modules), of the
  cache itself (paths under a store directory, nested memoized calls) or of the function's
  declared files (its ``FileContents`` arguments and return values) are not side effects.
- **arguments changed in place**: the arguments are hashed again after the call and compared to
  the key they were called with (a hit returns the result without repeating that change);
- **globals rebound** that the function reads (``global counter; counter += 1``);
- **the global random generators advanced** (``random`` and numpy's legacy ``np.random``): a hit
  leaves them where they were, so code after the call draws other numbers than without the cache.

What is found becomes one :class:`~reckon.errors.ImpurityWarning` per function (the static one
included); ``assume_pure=True`` turns the watch off. The result is still cached: whether a file
read makes a result stale is the user's call (``FileContents`` makes it part of the key).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["Watch", "add_quiet_root", "audit_side_effects", "random_state", "start", "stop"]

#: Audit events that are side effects, and how to describe them (``{0}``: the first argument).
_EVENTS: dict[str, str] = {
    "open": "opens {0}",
    "os.listdir": "lists the directory {0}",
    "os.scandir": "lists the directory {0}",
    "os.remove": "removes {0}",
    "os.rename": "renames {0}",
    "os.rmdir": "removes the directory {0}",
    "os.mkdir": "creates the directory {0}",
    "os.chmod": "changes the mode of {0}",
    "os.truncate": "truncates {0}",
    "os.putenv": "sets the environment variable {0}",
    "os.unsetenv": "unsets the environment variable {0}",
    "os.system": "runs the shell command {0}",
    "subprocess.Popen": "starts the process {0}",
    "os.exec": "executes {0}",
    "os.posix_spawn": "starts the process {0}",
    "os.spawn": "starts the process {1}",
    "socket.connect": "connects a socket to {1}",
    "socket.sendto": "sends a datagram to {1}",
    "socket.getaddrinfo": "resolves the host name {0}",
    "urllib.Request": "requests {0}",
    "http.client.connect": "connects to {1}",
    "sqlite3.connect": "opens the database {0}",
    "shutil.rmtree": "removes the tree {0}",
    "shutil.copyfile": "copies {0}",
    "shutil.move": "moves {0}",
}
_PATH_EVENTS = frozenset(
    {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
     "os.chmod", "os.truncate", "sqlite3.connect", "shutil.rmtree", "shutil.copyfile",
     "shutil.move"}
)  # fmt: skip
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pth", ".pyi", ".dylib")
#: Most side effects remembered per computation (the warning names a few).
_MAX_EVENTS = 20

#: The watch of the computation running in this context (None: nothing is watched).
current: contextvars.ContextVar[Watch | None] = contextvars.ContextVar(
    "reckon_memo_watch", default=None
)
_current = current
_installed = False
_install_lock = threading.Lock()
_audit_wanted = os.environ.get("RECKON_AUDIT", "").strip() not in ("", "0")
_quiet_roots: set[str] = set()


def add_quiet_root(path: str | os.PathLike[str] | None) -> None:
    """A directory whose files the cache itself reads and writes (a store): not side effects."""
    if path is not None:
        _quiet_roots.add(os.path.join(os.path.abspath(os.fspath(path)), ""))


def _python_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return tuple(os.path.join(os.path.abspath(r), "lib", "") for r in roots)


_PY_ROOTS = _python_roots()


class Watch:
    """What one computation did; filled by the audit hook on the computing thread/task."""

    __slots__ = ("events", "paths")

    def __init__(self) -> None:
        self.events: list[str] = []
        self.paths: list[str | None] = []

    def note(self, event: str, args: tuple[Any, ...]) -> None:
        path: str | None = None
        if event in _PATH_EVENTS and args:
            first = args[0]
            if isinstance(first, int):  # an already open file descriptor
                return
            try:
                path = os.path.abspath(os.fsdecode(first))
            except (TypeError, ValueError):
                path = None
            if path is not None and _is_quiet(path):
                return
        if len(self.events) >= _MAX_EVENTS:
            return
        text = _EVENTS[event]
        shown = [_short(a) for a in args[:2]] + ["", ""]
        self.events.append(text.format(*shown))
        self.paths.append(path)

    def side_effects(self, declared: Iterable[str] = ()) -> list[str]:
        """The side effects seen, less those on ``declared`` paths (FileContents)."""
        allowed = {os.path.abspath(p) for p in declared}
        out: list[str] = []
        for text, path in zip(self.events, self.paths, strict=True):
            if path is not None and path in allowed:
                continue
            if text not in out:
                out.append(text)
        return out


def _short(value: object) -> str:
    if isinstance(value, bytes | os.PathLike):
        with contextlib.suppress(TypeError, ValueError):
            value = os.fsdecode(value)
    if isinstance(value, list | tuple) and value and isinstance(value[0], str | bytes):
        value = " ".join(map(str, value))
    text = value if isinstance(value, str) else repr(value)
    # cut from the middle: a path's end (its file name) is what tells it apart
    return text if len(text) <= 80 else text[:38] + "..." + text[-39:]


def _is_quiet(path: str) -> bool:
    if path.endswith(_CODE_SUFFIXES) or path.startswith(_PY_ROOTS):
        return True  # importing code, reading the interpreter's own files
    return any(path.startswith(root) or path + os.sep == root for root in _quiet_roots)


def _from_import_system() -> bool:
    """Whether the audited call comes from the import system (finders list sys.path entries)."""
    frame = sys._getframe(3)
    for _ in range(40):
        if frame is None:
            return False
        name = frame.f_code.co_filename
        if name.startswith(("<frozen importlib", "<frozen zipimport")):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    watch = _current.get()
    if watch is not None and event in _EVENTS and not _from_import_system():
        with contextlib.suppress(Exception):  # an audit hook must never break the audited call
            watch.note(event, args)


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


def audit_side_effects() -> None:
    """Also watch memoized bodies through audit events (files, processes, sockets) from now on.

    Process-wide and irreversible (an audit hook cannot be removed): see the module docstring
    for its cost. ``RECKON_AUDIT=1`` in the environment does the same at the first computation.
    """
    global _audit_wanted
    _audit_wanted = True
    _install()


def start() -> tuple[Watch, contextvars.Token[Watch | None]]:
    """Watch the current thread/task until :func:`stop` (nested watches stack)."""
    if _audit_wanted and not _installed:
        _install()
    watch = Watch()
    return watch, _current.set(watch)


def stop(token: contextvars.Token[Watch | None]) -> None:
    _current.reset(token)


def random_state() -> tuple[object, ...]:
    """A cheap token of the global random generators' states (to compare before/after)."""
    import random

    state: tuple[object, ...] = (random.getstate(),)
    nprandom = sys.modules.get("numpy.random")
    rng = getattr(getattr(nprandom, "mtrand", None), "_rand", None)
    if rng is not None:
        try:
            st = rng.get_state(legacy=False)
            state += (st["state"]["key"].tobytes(), st["state"]["pos"])
        except Exception:
            pass
    return state
