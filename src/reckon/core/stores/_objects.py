"""Content-addressed object files: the on-disk format of values too large to live in the index.

A file is named by the xxh3-128 hash of the value it holds and starts with a small header (magic,
version, value size, value hash, the key that wrote it, that key's signature of the value (see
``signing``), a checksum of the header itself). The
header lets a reader reject a truncated or foreign file before trusting it, and lets a rebuild of
a lost index recover entries from the files alone. The value starts at a 64-byte boundary so a
memory-mapped numpy buffer inside it is aligned.

Files appear atomically: the bytes go to a temporary file on the same filesystem, which is then
renamed over the final name, so a reader sees either nothing or a complete file.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import xxhash

MAGIC = b"RKNO"
VERSION = 1
ALIGN = 64
_FIXED = struct.Struct(
    "<4sBBHQ16sII"
)  # magic, version, tag length, reserved, size, digest, klen, offset; then key, tag, padding
_CHECK = struct.Struct("<Q")
_PREFIX = _FIXED.size + _CHECK.size  # 48: where the key starts
TMP_DIR = "tmp"
MAX_KEY = 16_384  # bytes of UTF-8 key a header may hold
MAX_TAG = 255
MAX_HEADER = _PREFIX + MAX_KEY + MAX_TAG + ALIGN


def content_digest(data: bytes | memoryview | tuple[bytes | memoryview, ...]) -> bytes:
    """The 16-byte xxh3-128 hash that names an object file and verifies its contents (of the
    concatenation, when ``data`` is a tuple of pieces: computed piece by piece)."""
    if isinstance(data, tuple):
        hasher = xxhash.xxh3_128()
        for piece in data:
            hasher.update(piece)
        return hasher.digest()
    return xxhash.xxh3_128_digest(data)


_IOV_MAX = 512  # iovecs per writev (the OS limit is 1024 on Linux)


def write_all(fd: int, pieces: list[bytes | memoryview]) -> None:
    """Write every piece, in order, with as few system calls as possible (writev gathers them
    straight from where they are: nothing is joined in memory)."""
    views = [p for p in pieces if len(p)]
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i : i + _IOV_MAX])
        while n > 0:
            size = len(views[i])
            if n >= size:
                n -= size
                i += 1
            else:
                views[i] = memoryview(views[i])[n:]
                n = 0


def data_offset(key_bytes: int, tag_bytes: int = 0) -> int:
    """Where the value starts in a file written for a key of ``key_bytes`` UTF-8 bytes and a
    signature of ``tag_bytes``."""
    return -(-(_PREFIX + key_bytes + tag_bytes) // ALIGN) * ALIGN


@dataclass(frozen=True, slots=True)
class Header:
    key: str
    size: int
    digest: bytes
    offset: int
    tag: bytes  # the writer's signature of (key, value); b"" in files written before signing


def encode_header(key: str, size: int, digest: bytes, tag: bytes) -> bytes:
    kb = key.encode("utf-8")
    offset = data_offset(len(kb), len(tag))
    fixed = _FIXED.pack(MAGIC, VERSION, len(tag), 0, size, digest, len(kb), offset)
    rest = kb + tag + b"\0" * (offset - _PREFIX - len(kb) - len(tag))
    return fixed + _CHECK.pack(xxhash.xxh3_64_intdigest(fixed + rest)) + rest


def parse_header(buf: bytes | memoryview | mmap.mmap) -> Header | None:
    """The header at the start of ``buf``, or None when it is not a valid, complete header."""
    if len(buf) < _PREFIX:
        return None
    try:
        magic, version, tlen, _res, size, digest, klen, offset = _FIXED.unpack_from(buf, 0)
    except struct.error:
        return None
    if magic != MAGIC or version != VERSION or offset != data_offset(klen, tlen):
        return None
    if len(buf) < offset:
        return None
    rest = bytes(buf[_PREFIX:offset])  # the key and its padding: every header byte is checked
    (check,) = _CHECK.unpack_from(buf, _FIXED.size)
    if check != xxhash.xxh3_64_intdigest(bytes(buf[: _FIXED.size]) + rest):
        return None
    kb = rest[:klen]
    try:
        key = kb.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Header(key, size, digest, offset, rest[klen : klen + tlen])


def object_path(objects_dir: str, hexdigest: str) -> str:
    return os.path.join(objects_dir, hexdigest[:2], hexdigest[2:])


def write_temp(
    objects_dir: str,
    key: str,
    data: bytes | memoryview | tuple[bytes | memoryview, ...],
    digest: bytes,
    tag: bytes,
    fsync: bool,
    size: int | None = None,
) -> str:
    """Write a complete object file under a temporary name; the caller renames it into place."""
    tmp_dir = os.path.join(objects_dir, TMP_DIR)
    name = os.path.join(tmp_dir, f"{os.getpid()}-{os.urandom(8).hex()}")
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        os.makedirs(tmp_dir, exist_ok=True)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    pieces = list(data) if isinstance(data, tuple) else [data]
    if size is None:
        size = sum(len(p) for p in pieces)
    try:
        try:
            write_all(fd, [encode_header(key, size, digest, tag), *pieces])
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(name)
        raise
    return name


_CHUNK = 1 << 20  # bytes hashed then written while still in the CPU cache


def write_temp_hashing(
    objects_dir: str,
    key: str,
    data: bytes | memoryview | tuple[bytes | memoryview, ...],
    size: int,
    fsync: bool,
    tag: bytes,
) -> tuple[str, bytes]:
    """Write a complete object file under a temporary name in one pass over ``data``: each
        chunk is hashed and written while it is in the CPU cache (for large values, reading them
        twice from memory costs as much as the write). The header, which holds the hash, goes in
        last, at the start of the file. ``tag`` is the writer's signature of the value. Returns
    the file's name and the value's digest."""
    tmp_dir = os.path.join(objects_dir, TMP_DIR)
    name = os.path.join(tmp_dir, f"{os.getpid()}-{os.urandom(8).hex()}")
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        os.makedirs(tmp_dir, exist_ok=True)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    hasher = xxhash.xxh3_128()
    update = hasher.update
    try:
        try:
            os.lseek(fd, data_offset(len(key.encode("utf-8")), len(tag)), os.SEEK_SET)
            batch: list[bytes | memoryview] = []
            nbatch = 0
            for piece in data if isinstance(data, tuple) else (data,):
                view = memoryview(piece)
                for start in range(0, len(view), _CHUNK):
                    chunk = view[start : start + _CHUNK]
                    update(chunk)
                    batch.append(chunk)
                    nbatch += len(chunk)
                    if nbatch >= _CHUNK or len(batch) >= _IOV_MAX:
                        write_all(fd, batch)
                        batch, nbatch = [], 0
            write_all(fd, batch)
            digest = hasher.digest()
            header = encode_header(key, size, digest, tag)
            if os.pwrite(fd, header, 0) != len(header):
                raise OSError(f"short write of an object header ({name})")
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(name)
        raise
    return name, digest


def place(temp: str, final: str, fsync: bool) -> None:
    """Rename a finished temporary file over its final, content-addressed name."""
    try:
        os.replace(temp, final)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(temp, final)
    if fsync:
        dfd = os.open(os.path.dirname(final), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def clean_temps(objects_dir: str, older_than: float, now: float) -> int:
    """Remove temporary files left by writers that died, judged by their pid and age."""
    tmp_dir = os.path.join(objects_dir, TMP_DIR)
    removed = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except OSError:
        return 0
    for entry in entries:
        pid_text = entry.name.split("-", 1)[0]
        dead = False
        if pid_text.isdigit():
            pid = int(pid_text)
            if pid != os.getpid():
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    dead = True
                except OSError:
                    pass
        try:
            old = now - entry.stat().st_mtime > older_than
        except OSError:
            continue
        if dead or old:
            _unlink_quietly(entry.path)
            removed += 1
    return removed


def any_objects(objects_dir: str) -> bool:
    """Whether the directory holds at least one object file (cheap: stops at the first)."""
    try:
        subdirs = list(os.scandir(objects_dir))
    except OSError:
        return False
    for sub in subdirs:
        if sub.name != TMP_DIR and len(sub.name) == 2 and sub.is_dir():
            with contextlib.suppress(OSError), os.scandir(sub.path) as it:
                if any(True for _ in it):
                    return True
    return False


_HEX = frozenset("0123456789abcdef")


def iter_object_names(objects_dir: str) -> Iterator[tuple[str, str, float]]:
    """(path, hex digest, mtime) of every file named like an object file; contents unread."""
    try:
        subdirs = list(os.scandir(objects_dir))
    except OSError:
        return
    for sub in subdirs:
        if len(sub.name) != 2 or not _HEX.issuperset(sub.name) or not sub.is_dir():
            continue
        try:
            files = list(os.scandir(sub.path))
        except OSError:
            continue
        for entry in files:
            if len(entry.name) != 30 or not _HEX.issuperset(entry.name):
                continue
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            yield entry.path, sub.name + entry.name, mtime


def iter_objects(objects_dir: str) -> Iterator[tuple[str, Header, float]]:
    """Every object file whose header is valid and whose length matches it (for a rebuild)."""
    try:
        subdirs = sorted(os.scandir(objects_dir), key=lambda e: e.name)
    except OSError:
        return
    for sub in subdirs:
        if sub.name == TMP_DIR or len(sub.name) != 2 or not sub.is_dir():
            continue
        try:
            files = list(os.scandir(sub.path))
        except OSError:
            continue
        for entry in files:
            try:
                with open(entry.path, "rb") as f:
                    head = f.read(4096)
                    st = os.fstat(f.fileno())
            except OSError:
                continue
            header = parse_header(head)
            if header is None or header.digest.hex() != sub.name + entry.name:
                continue
            if st.st_size != header.offset + header.size:
                continue
            yield entry.path, header, st.st_mtime
