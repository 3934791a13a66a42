"""What a computing call prints and logs, kept so a hit can do it again.

``replay_stdout`` and ``replay_logs`` promise that a hit looks like the call: it prints what the
call printed and logs what it logged. Swapping ``sys.stdout`` or adding a handler per call would
be wrong as soon as two calls run at once (threads, asyncio tasks), so both are installed once
for the process and route by context variable: a write or record lands in the buffer of the call
that made it, whatever runs beside it, and passes through unchanged otherwise.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["LogRecords", "captured"]

#: The log records of a call: (logger name, level, message).
LogRecords = list[tuple[str, int, str]]

_capture: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "reckon_memo_stdout", default=None
)
_log_capture: contextvars.ContextVar[LogRecords | None] = contextvars.ContextVar(
    "reckon_memo_logs", default=None
)


class _StdoutTee:
    """Passes writes through to the real stdout and copies those of capturing calls."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        buf = _capture.get()
        if buf is not None:
            buf.append(text)
        return int(self._inner.write(text))

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _ensure_tee() -> None:
    # Installed lazily (first capturing call), and again if something replaced sys.stdout since.
    if not isinstance(sys.stdout, _StdoutTee):
        sys.stdout = _StdoutTee(sys.stdout)


class _LogCapture(logging.Handler):
    """On the root logger: copies the records of calls that replay their logs (reckon's own
    cache events excluded: a hit writes its own)."""

    def emit(self, record: logging.LogRecord) -> None:
        logs = _log_capture.get()
        if logs is not None and not record.name.startswith("reckon."):
            try:
                logs.append((record.name, record.levelno, record.getMessage()))
            except Exception:
                self.handleError(record)


_log_handler: _LogCapture | None = None


def _ensure_log_handler() -> None:
    # Re-added if the application reset the root logger's handlers (logging.basicConfig(force)).
    global _log_handler
    root = logging.getLogger()
    if _log_handler is None or _log_handler not in root.handlers:
        _log_handler = _LogCapture()
        root.addHandler(_log_handler)


@contextlib.contextmanager
def captured(stdout: bool, logs: bool) -> Iterator[tuple[list[str] | None, LogRecords | None]]:
    """Collect what the body prints (``stdout``) and logs (``logs``); None for what is not
    collected."""
    buf: list[str] | None = None
    records: LogRecords | None = None
    tokens: list[Any] = []
    if stdout:
        _ensure_tee()
        buf = []
        tokens.append((_capture, _capture.set(buf)))
    if logs:
        _ensure_log_handler()
        records = []
        tokens.append((_log_capture, _log_capture.set(records)))
    try:
        yield buf, records
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
