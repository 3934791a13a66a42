"""Cross-process single-flight leases on OS file locks.

A lease is ``flock`` on a per-key lock file: the kernel releases it when its holder dies, even by
SIGKILL, so a waiter never waits on a dead process. The holder unlinks the lock file before
releasing it; a waiter that then wins the lock on the unlinked inode notices that the path now
names another file (or none) and tries again, so lock files do not pile up and two holders never
believe they hold the same key.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import queue
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator

from reckon.core._waiting import waiting

log = logging.getLogger("reckon.core.store")

_SAFE = re.compile(r"[0-9A-Za-z_.-]{1,128}")


def lock_path(leases_dir: str, key: str) -> str:
    name = (
        key
        if _SAFE.fullmatch(key) and not key.startswith(".")
        else ("h-" + hashlib.sha256(key.encode("utf-8")).hexdigest())
    )
    return os.path.join(leases_dir, name + ".lock")


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


Alive = tuple[float, Callable[[], bool]]
"""How a waiter checks, every so many seconds, that the holder it waits for still works: a
holder that is alive but stuck (frozen by SIGSTOP, say) keeps its file lock forever."""


Locker = Callable[[int, bool], bool]
"""Takes a lock on an open file: ``(fd, wait)``, whether it is taken (``wait``: block until it
is). Either kind below belongs to the open file (not the process): it goes when the last
descriptor of that open file closes, which the kernel does when its process dies."""


def _whole_file(fd: int, wait: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


BYTE_LOCKS = hasattr(fcntl, "F_OFD_SETLK")
"""Whether this OS has open-file-description byte locks (Linux): one file then serves every key
(a byte each), and taking a lease creates and removes no file."""

_FLOCK = "hhqqi4x"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (0), padding


def byte_locker(offset: int) -> Locker:
    """The lock of the byte at ``offset`` (an open-file-description lock: see :data:`Locker`)."""
    take = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)

    def lock(fd: int, wait: bool) -> bool:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, take)
        except OSError as exc:
            if not wait and exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    return lock


def acquire_byte(
    path: str, locker: Locker, timeout: float | None, alive: Alive | None = None
) -> tuple[int | None, bool]:
    """:func:`acquire` on one byte of a file that many keys share (never removed): (fd holding
    the lock, or None on timeout or when ``alive`` said no; whether another holder made us
    wait). Closing the fd releases it."""
    fd = _open(path)
    try:
        if locker(fd, False):
            return fd, False
        got = _lock(fd, None if timeout is None else time.monotonic() + timeout, alive, locker)
    except BaseException:
        os.close(fd)
        raise
    if not got:
        os.close(fd)
        return None, True
    return fd, True


def _lock(
    fd: int, deadline: float | None, alive: Alive | None, locker: Locker = _whole_file
) -> bool:
    """Take the lock on ``fd``; False when ``deadline`` passed first, or ``alive`` said the
    holder stopped working.

    A waiter wakes the moment the holder lets go (a blocking ``flock``: the kernel wakes it),
    never at its next poll: copies of a short computation must not each lose a polling pause.
    With a deadline or a check, the blocking call runs on a helper thread and the caller waits
    for it (see :func:`_lock_by`)."""
    if locker(fd, False):
        return True
    with waiting():
        if deadline is None and alive is None:
            return locker(fd, True)
        return _lock_by(fd, deadline, alive, locker)


def _lock_by(fd: int, deadline: float | None, alive: Alive | None, locker: Locker) -> bool:
    """A blocking ``flock`` on a helper thread, the caller waiting for it until ``deadline``
    and asking ``alive`` at its pace.

    The helper locks a duplicate of ``fd`` (the same open file, so the lock it takes is the
    caller's). When the caller gives up first, it closes ``fd`` as usual, and the helper, once the
    lock comes, closes its duplicate: the open file goes, and the lock with it, at once."""
    dup = os.dup(fd)
    done = threading.Event()
    guard = threading.Lock()
    state = {"got": False, "gave_up": False}

    def take() -> None:
        try:
            locker(dup, True)
            with guard:
                state["got"] = not state["gave_up"]
        except OSError:
            pass
        finally:
            os.close(dup)  # the caller's fd keeps the lock when the caller still wants it
            done.set()

    _blockers.run(take)
    try:
        while True:
            wait = None if alive is None else alive[0]
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            if done.wait(wait):
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if alive is not None and not alive[1]():
                break
    finally:
        with guard:
            got = state["got"]
            state["gave_up"] = not got
    return got


class _Blockers:
    """Threads that make blocking calls for callers who want a deadline: started when none is
    idle, kept for the next wait (starting a thread costs hundreds of microseconds on a busy
    machine, which a waiter woken by its holder would pay on every wait)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._guard = threading.Lock()

    def run(self, job: Callable[[], None]) -> None:
        with self._guard:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, daemon=True, name="reckon-lease-wait").start()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._guard:
                self._idle += 1

    def forked(self) -> None:
        """In a forked child: the parent's threads are not there."""
        self.__init__()  # type: ignore[misc]


_blockers = _Blockers()
os.register_at_fork(after_in_child=_blockers.forked)


def acquire(
    path: str, timeout: float | None, alive: Alive | None = None
) -> tuple[int | None, bool]:
    """(fd holding the lock or None on timeout, whether another holder made us wait).

    ``alive``: (seconds, check) to ask every so many seconds while waiting whether the holder
    still works; when it says no, None (the caller decides what to do without the lock)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            try:
                got = _lock(fd, deadline, alive)
            except BaseException:  # (interrupted while waiting: the lock goes with the fd)
                os.close(fd)
                raise
            if not got:
                os.close(fd)
                return None, True
        except BaseException:
            os.close(fd)
            raise
        mine = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
            return fd, waited
        os.close(fd)  # the holder we waited for unlinked this file: lock the current one
        waited = True


def release(path: str, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)


@contextlib.contextmanager
def lease(
    path: str,
    timeout: float | None,
    present: Callable[[], bool],
    before_release: Callable[[], None],
) -> Iterator[bool]:
    """Yield True when the caller should compute, False when the value is present now."""
    fd, _waited = acquire(path, timeout)
    if fd is None:
        log.info("lease %s not granted within %.3gs: computing without it", path, timeout)
        yield True
        return
    try:
        if present():
            yield False
        else:
            try:
                yield True
            finally:
                before_release()
    finally:
        release(path, fd)
