"""What a service sees: its own context (locate, log, db, files, random) and each call's context.

A :class:`ServiceContext` lives as long as the service instance; a :class:`CallContext` is made per
call and carries the caller's user and credentials so nested calls act for the same user, in
process or over the wire. The current call is kept in a context variable so a handler's outgoing
calls inherit it without passing it by hand.
"""

from __future__ import annotations

import contextvars
import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from reckon.service.batteries import Database, FileArea
    from reckon.service.definition import ServiceDef
    from reckon.service.logs import ServiceLogger

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated caller. ``name`` is the basic-auth user name."""

    name: str


class ServiceContext:
    """Per-service handle on the runtime; set as ``self.ctx`` before ``ready()`` runs."""

    def __init__(
        self,
        name: str,
        definition: ServiceDef[Any],
        *,
        locate: Callable[[ServiceDef[Any]], Any],
        log: ServiceLogger,
        data_dir: Path,
        tmp_dir: Path,
        seed: int | None,
        config: Mapping[str, Any],
        clock: Callable[[], float],
        open_db: Callable[[], Database],
        open_files: Callable[[], FileArea],
    ) -> None:
        self.name = name
        self.definition = definition
        self.log = log
        self.data_dir = data_dir
        self.tmp_dir = tmp_dir
        self.config = dict(config)
        self.random = _random.Random(seed)
        self._locate = locate
        self._clock = clock
        self._open_db = open_db
        self._open_files = open_files
        self._db: Database | None = None
        self._files: FileArea | None = None

    def locate(self, definition: ServiceDef[T]) -> T:
        """A typed client for a service this one requires (in-process or remote alike)."""
        result: T = self._locate(definition)
        return result

    def now(self) -> float:
        """Seconds on the runtime's clock (virtual under ``reckon.testing``)."""
        return self._clock()

    @property
    def db(self) -> Database:
        """This service's SQLite database, migrated to the class's ``migrations`` on first use."""
        if self._db is None:
            self._db = self._open_db()
        return self._db

    @property
    def files(self) -> FileArea:
        """This service's file area; paths escaping it raise PathEscapeError."""
        if self._files is None:
            self._files = self._open_files()
        return self._files

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@dataclass(slots=True)
class CallContext:
    """Per-call information handed to every handler as its second argument."""

    service: ServiceContext
    method: str
    user: User | None = None
    authorization: str | None = None
    deadline: float | None = None
    #: The caller's metadata: text values as str, ``-bin`` keys as bytes, on every transport.
    metadata: dict[str, str | bytes] = field(default_factory=dict)

    def locate(self, definition: ServiceDef[T]) -> T:
        return self.service.locate(definition)

    @property
    def log(self) -> ServiceLogger:
        return self.service.log

    def time_remaining(self) -> float | None:
        """Seconds left before this call's deadline, or None when it has none."""
        if self.deadline is None:
            return None
        return self.deadline - self.service.now()


current_call: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "reckon_service_call", default=None
)
