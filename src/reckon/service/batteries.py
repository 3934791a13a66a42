"""Per-service resources: a SQLite database with migrations and typed queries, and a file area.

Each service owns ``<data_dir>/<service>/``: ``db.sqlite3`` and ``files/``. The database is
migrated from the implementation's ``migrations`` list (applied once each, counted by ``PRAGMA
user_version``). Queries return instances of a row type (a dataclass or NamedTuple) whose fields
must match the selected columns, so a schema change that breaks a query fails loudly.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from reckon.errors import DatabaseError, PathEscapeError

RowT = TypeVar("RowT")


@dataclasses.dataclass(frozen=True)
class Query(Generic[RowT]):
    """A typed query: ``GET = Query(Record, "SELECT id, title FROM records WHERE id = ?")``."""

    row: type[RowT]
    sql: str


def _fields(row: type[Any]) -> tuple[str, ...]:
    if dataclasses.is_dataclass(row):
        return tuple(f.name for f in dataclasses.fields(row))
    names = getattr(row, "_fields", None)
    if names is None:
        raise DatabaseError(f"row type {row!r} must be a dataclass or a NamedTuple")
    return tuple(names)


class Database:
    """A SQLite connection owned by one service (WAL mode, autocommit outside ``transaction``)."""

    def __init__(self, path: Path, migrations: Sequence[str] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate(list(migrations))

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DatabaseError(f"{self.path}: the database was closed (the service stopped)")
        return self._conn

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: list[str]) -> None:
        current = self.version
        if current > len(migrations):
            raise DatabaseError(
                f"{self.path} is at migration {current} but the service knows only "
                f"{len(migrations)}; it was written by a newer version of the service"
            )
        for i in range(current, len(migrations)):
            try:
                with self.transaction():
                    for stmt in _statements(migrations[i]):
                        self.conn.execute(stmt)
                    self.conn.execute(f"PRAGMA user_version = {i + 1}")
            except sqlite3.Error as exc:
                raise DatabaseError(f"{self.path}: migration {i + 1} failed: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows changed."""
        try:
            return self.conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise DatabaseError(f"{sql!r}: {exc}") from exc

    def fetch(self, query: Query[RowT], params: Sequence[Any] = ()) -> list[RowT]:
        """All rows of a typed query, as instances of its row type."""
        names = _fields(query.row)
        try:
            cur = self.conn.execute(query.sql, params)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{query.sql!r}: {exc}") from exc
        columns = tuple(d[0] for d in cur.description or ())
        if columns != names:
            raise DatabaseError(
                f"{query.sql!r} selects columns {columns} but {query.row.__name__} has fields "
                f"{names}; make them match"
            )
        return [query.row(*r) for r in cur.fetchall()]

    def fetch_one(self, query: Query[RowT], params: Sequence[Any] = ()) -> RowT | None:
        rows = self.fetch(query, params)
        return rows[0] if rows else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _statements(script: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part
        if sqlite3.complete_statement(buf + ";"):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
        else:
            buf += ";"
    if buf.strip():
        out.append(buf.strip())
    return out


class FileArea:
    """Files under one root; every path is resolved and refused if it leaves the root."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def path(self, relative: str | Path) -> Path:
        p = (self.root / relative).resolve()
        if p != self.root and not p.is_relative_to(self.root):
            raise PathEscapeError(
                f"{str(relative)!r} resolves to {p}, outside this service's file area "
                f"{self.root}; use a path relative to the area without '..' or absolute parts"
            )
        return p

    def write_bytes(self, relative: str | Path, data: bytes) -> Path:
        p = self.path(relative)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
        return p

    def read_bytes(self, relative: str | Path) -> bytes:
        return self.path(relative).read_bytes()

    def write_text(self, relative: str | Path, text: str) -> Path:
        return self.write_bytes(relative, text.encode())

    def read_text(self, relative: str | Path) -> str:
        return self.read_bytes(relative).decode()

    def exists(self, relative: str | Path) -> bool:
        return self.path(relative).exists()

    def list(self, relative: str | Path = ".") -> list[str]:
        base = self.path(relative)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())
