"""What a memoized call stores: the value plus what a hit needs to behave like the call.

Kept in its own tiny module because its import path is written into every stored pickle: it must
never move.
"""

from __future__ import annotations

from typing import Any


class Entry:
    """A cached result: ``value``, the ``stdout`` the computing call printed and the log records
    it emitted, as (logger, level, message) (when captured),
    when it was computed and how long it took (what a hit saves), and whether ``value`` carries
    files to put back on a hit.

    ``seen`` and ``meta`` are process-local (not pickled): ``seen`` is False on an entry just
    loaded from a store; ``meta`` is what a computed entry is stored with as the store's
    metadata of it (which function and arguments: see ``reckon.memo.entries``).
    """

    __slots__ = ("compute_seconds", "created", "files", "logs", "meta", "seen", "stdout", "value")

    def __init__(
        self,
        value: Any,
        stdout: str | None,
        created: float,
        compute_seconds: float,
        files: bool = False,
        logs: tuple[tuple[str, int, str], ...] | None = None,
    ) -> None:
        self.value = value
        self.stdout = stdout
        self.created = created
        self.compute_seconds = compute_seconds
        self.files = files
        self.logs = logs
        self.seen = False
        self.meta: dict[str, Any] | None = None

    def __reckon_meta__(self) -> dict[str, Any] | None:
        """The engine stores this with the entry (see ``reckon.core.stores.metadata``)."""
        return self.meta

    def __reduce__(self) -> tuple[Any, ...]:
        args: tuple[Any, ...] = (
            self.value,
            self.stdout,
            self.created,
            self.compute_seconds,
            self.files,
        )
        if self.logs is not None:  # entries without logs keep the older, shorter form
            args += (self.logs,)
        return (Entry, args)
