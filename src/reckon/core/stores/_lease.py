"""Cross-process single-flight leases on OS file locks.

A lease is ``flock`` on a per-key lock file: the kernel releases it when its holder dies, even by
SIGKILL, so a waiter never waits on a dead process. The holder unlinks the lock file before
releasing it; a waiter that then wins the lock on the unlinked inode notices that the path now
names another file (or none) and tries again, so lock files do not pile up and two holders never
believe they hold the same key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator

from reckon.core._waiting import Pause, waiting

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


def _lock(fd: int, deadline: float | None) -> bool:
    """Take the lock on ``fd``; False when ``deadline`` passed first."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    with waiting():
        if deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        pause = Pause(0.001, 0.05)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause.next(), remaining))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                continue


def acquire(path: str, timeout: float | None) -> tuple[int | None, bool]:
    """(fd holding the lock or None on timeout, whether another holder made us wait)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            if not _lock(fd, deadline):
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
