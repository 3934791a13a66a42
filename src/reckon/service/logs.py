"""Structured logging per service: one event name plus fields, three renderings.

``dev`` prints a rich console line, ``json`` writes one JSON object per line (for production log
shippers), ``test`` appends records to memory stamped with the (virtual) clock: under
``reckon.testing`` scheduling is deterministic, so the record list is too. ``off`` drops them.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class LogRecord:
    time: float
    service: str
    level: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "time": round(self.time, 6),
                "service": self.service,
                "level": self.level,
                "event": self.event,
                **{k: _plain(v) for k, v in self.fields.items()},
            },
            sort_keys=True,
        )


def _plain(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return str(v)


class Sink(Protocol):
    def emit(self, record: LogRecord) -> None: ...


class JsonSink:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, record: LogRecord) -> None:
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(record.to_json() + "\n")
            stream.flush()


class ConsoleSink:
    _STYLES = {"debug": "dim", "info": "cyan", "warning": "yellow", "error": "bold red"}

    def __init__(self, level: str = "info") -> None:
        from rich.console import Console

        self._console = Console(stderr=True, highlight=False)
        self._min = LEVELS.index(level)

    def emit(self, record: LogRecord) -> None:
        from rich.markup import escape

        if LEVELS.index(record.level) < self._min:
            return

        style = self._STYLES.get(record.level, "")
        extra = " ".join(f"[dim]{k}=[/dim]{escape(repr(v))}" for k, v in record.fields.items())
        self._console.print(
            f"[{style}]{record.level:<7}[/{style}] [bold]{escape(record.service)}[/bold] "
            f"{escape(record.event)} {extra}"
        )


class MemorySink:
    """Keeps records in emission order; the test runner reads ``records``."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def emit(self, record: LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.to_json() for r in self.records]


class NullSink:
    def emit(self, record: LogRecord) -> None:
        pass


def make_sink(mode: str) -> Sink:
    if mode == "json":
        return JsonSink()
    if mode == "test":
        return MemorySink()
    if mode == "off":
        return NullSink()
    return ConsoleSink()


class ServiceLogger:
    """``log.info("order placed", order=42)``: an event name and key/value fields."""

    __slots__ = ("_clock", "_sink", "service")

    def __init__(self, service: str, sink: Sink, clock: Callable[[], float]) -> None:
        self.service = service
        self._sink = sink
        self._clock = clock

    def log(self, level: str, event: str, **fields: Any) -> None:
        self._sink.emit(LogRecord(self._clock(), self.service, level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)
