"""Child processes for crash and cross-process tests (the stores' and Redis's): forked, so a
child shares the test's imports and objects, and never returns into pytest.

At the top of ``tests/`` (on ``sys.path`` through its conftest) so the core suite, which runs in
an environment of its own, and the other suites share one copy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback
from collections.abc import Callable


def fork_child(body: Callable[[], None]) -> int:
    """Run ``body`` in a forked child that never returns into pytest. Exit code 0 on success,
    1 (with the traceback on stderr) on an exception."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_exit(pid: int) -> int:
    """The child's exit code, or minus the signal that killed it."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def kill9(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
