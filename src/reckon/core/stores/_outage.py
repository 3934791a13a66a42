"""When a network store cannot be reached: compute without it, say so once, and try again later.

Every call to a store that is down would otherwise wait for its timeout. So the first failure
opens an *outage*: one warning, then every operation is a miss (or a no-op) at once until the
next probe is due; a probe that succeeds closes the outage (one info line) and the store is used
again. Probes back off from ``first_retry`` to ``max_retry`` seconds while the outage lasts.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("reckon.core.store")


class Outage:
    """The reachability of one store (thread-safe; cheap to ask while reachable)."""

    __slots__ = ("_first", "_lock", "_max", "_next", "_since", "_wait", "errors", "store")

    def __init__(self, store: str, first_retry: float = 1.0, max_retry: float = 30.0) -> None:
        self.store = store
        self._first = first_retry
        self._max = max_retry
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic start of the current outage
        self._next = 0.0  # monotonic time of the next probe
        self._wait = first_retry
        self.errors = 0  # failed operations, over the store's life

    @property
    def down(self) -> bool:
        return self._since is not None

    def skip(self) -> bool:
        """True when the store is down and the next probe is not due: do not call it."""
        if self._since is None:
            return False
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return True
            self._next = now + self._wait  # this caller probes; others keep skipping
            return False

    def failed(self, what: str, exc: BaseException) -> None:
        """An operation could not reach the store: open (or extend) the outage."""
        with self._lock:
            self.errors += 1
            now = time.monotonic()
            if self._since is None:
                self._since = now
                self._wait = self._first
                log.warning(
                    "store %s unreachable (%s: %s: %s): computing without it, retrying in "
                    "the background of calls; this is said once per outage",
                    self.store,
                    what,
                    type(exc).__name__,
                    exc,
                )
            else:
                self._wait = min(self._wait * 2, self._max)
            self._next = now + self._wait

    def ok(self) -> None:
        """An operation reached the store: close the outage if one was open."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            self._since = None
            self._wait = self._first
        log.warning("store %s reachable again after %.1f s", self.store, lasted)
