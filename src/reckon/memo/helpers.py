"""Arguments that make impure-looking functions safe to memoize.

``FileContents(path)`` stands for a file *and what is in it*: as an argument its key is the path
and the bytes of the file (so editing the file is a miss); as a return value it carries the bytes,
so a hit puts the file back the way the computing call left it. ``TTL(seconds)`` is an argument
whose key changes every ``seconds``: pass it to make an answer expire (or use ``ttl=`` on
``@memoize`` for per-entry expiry).
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from pathlib import Path
from typing import Any

import xxhash

from reckon.errors import ConfigurationError

_CHUNK = 1 << 20
_digest_cache: dict[tuple[str, int, int, int, int], bytes] = {}
_digest_lock = threading.Lock()


def file_digest(path: str | os.PathLike[str]) -> bytes | None:
    """xxh3-128 of a file's bytes (None when it does not exist); re-read only when it changed."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return None
    sig = (p, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    cached = _digest_cache.get(sig)
    if cached is not None:
        return cached
    h = xxhash.xxh3_128()
    with open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.digest()
    with _digest_lock:
        if len(_digest_cache) > 4096:
            _digest_cache.clear()
        _digest_cache[sig] = digest
    return digest


class FileContents(os.PathLike[str]):
    """A path whose cache key includes the file's contents, and whose pickle carries them.

    Use it wherever a path is accepted (``open(fc)``, ``Path(fc)``, ``fc + ".out"``). When a
    memoized function returns a ``FileContents`` (or a tuple/list of them), the file's bytes are
    kept with the cached value and written back on a hit, so the side effect is replayed too.
    """

    __slots__ = ("_contents", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._contents: bytes | None = None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        return f"FileContents({os.fspath(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileContents) and self.path == other.path

    def __hash__(self) -> int:
        return hash(("FileContents", self.path))

    def __add__(self, suffix: str) -> FileContents:
        return FileContents(os.fspath(self.path) + suffix)

    def __radd__(self, prefix: str) -> FileContents:
        return FileContents(prefix + os.fspath(self.path))

    def __reckon_hash__(self) -> object:
        digest = file_digest(self.path)
        return ("reckon.FileContents", os.fspath(self.path), digest)

    # -- carrying the bytes -----------------------------------------------------------------

    def snapshot(self) -> None:
        """Remember the file's current bytes (done when a memoized call returns this object)."""
        try:
            self._contents = self.path.read_bytes()
        except FileNotFoundError:
            self._contents = None

    def restore(self) -> None:
        """Write the remembered bytes back if the file is missing or differs."""
        if self._contents is None:
            return
        try:
            if file_digest(self.path) == xxhash.xxh3_128_digest(self._contents):
                return
        except OSError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.reckon-{os.getpid()}.tmp")
        tmp.write_bytes(self._contents)
        os.replace(tmp, self.path)

    def __getstate__(self) -> tuple[str, bytes | None]:
        if self._contents is None:
            self.snapshot()
        return (os.fspath(self.path), self._contents)

    def __setstate__(self, state: tuple[str, bytes | None]) -> None:
        self.path = Path(state[0])
        self._contents = state[1]
        self.restore()


def restore_files(value: object) -> None:
    """Put back the files a cached value carries (top level, or inside a tuple/list)."""
    if type(value) is FileContents:
        value.restore()
    elif type(value) in (tuple, list):
        for item in value:  # type: ignore[attr-defined]
            if type(item) is FileContents:
                item.restore()


def snapshot_files(value: object) -> None:
    """Capture the bytes of the files a freshly computed value refers to."""
    if type(value) is FileContents:
        value.snapshot()
    elif type(value) in (tuple, list):
        for item in value:  # type: ignore[attr-defined]
            if type(item) is FileContents:
                item.snapshot()


def to_seconds(value: float | int | datetime.timedelta, what: str = "ttl") -> float:
    """Seconds from a number or a timedelta; positive only."""
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
    if not seconds > 0:
        raise ConfigurationError(
            f"{what} must be a positive number of seconds or a timedelta, got {value!r}"
        )
    return seconds


class TTL:
    """An argument whose key changes every ``seconds`` (buckets aligned on the epoch).

    ``f(x, TTL(3600))`` recomputes at most once an hour. Pass it as an ordinary argument; the
    function can ignore it.
    """

    __slots__ = ("seconds",)

    def __init__(self, seconds: float | int | datetime.timedelta) -> None:
        self.seconds = to_seconds(seconds, "TTL")

    def bucket(self, now: float | None = None) -> int:
        return int((time.time() if now is None else now) // self.seconds)

    def __reckon_hash__(self) -> object:
        return ("reckon.TTL", self.seconds, self.bucket())

    def __repr__(self) -> str:
        return f"TTL({self.seconds:g})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TTL) and other.seconds == self.seconds

    def __hash__(self) -> int:
        return hash(("TTL", self.seconds))
