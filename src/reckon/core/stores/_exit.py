"""Work a store must finish before its process ends, in every kind of process.

A store that queues writes (a LocalStore's background writer, a near tier's far writes, an
object store's lease removals) must send them before the process ends. ``atexit`` covers an
ordinary exit, but multiprocessing's children (Dask's worker processes among them) end with
``os._exit``, where only multiprocessing's own finalizers run; and a forked child starts with
none of its parent's finalizers. So each hook is registered with ``atexit`` once, and with
multiprocessing's finalizers once per process, the first time that process queues work
(``arm``): the cost where work is queued is one attribute read.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable


class ExitHook:
    """``fn`` run at the end of every process that armed it. Among multiprocessing's
    finalizers a higher ``priority`` runs first (as a hook registered later runs first under
    ``atexit``): a store whose exit work feeds another's registers with a higher one."""

    def __init__(self, fn: Callable[[], None], priority: int) -> None:
        self.fn = fn
        self.priority = priority
        #: registered with multiprocessing's finalizers in this process
        self.armed = False
        atexit.register(fn)
        os.register_at_fork(after_in_child=self._forked)

    def arm(self) -> None:
        """Called where work is queued: make sure this process runs ``fn`` at its end."""
        if self.armed:
            return
        self.armed = True
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            mp_util.Finalize(None, self.fn, exitpriority=self.priority)

    def _forked(self) -> None:
        self.armed = False  # (a child clears the finalizers it inherits)
