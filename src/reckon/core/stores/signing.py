"""Signed values: every store entry carries a MAC under the deployment's secret key.

A value read from a store is unpickled, and unpickling runs code. Anyone who can write a store
(a shared directory, a Redis server, a bucket) could otherwise run code in every process that
reads it. So every put computes a tag over the entry's key and bytes with a secret key, and every
get checks the tag before a single byte is handed to the codec: an entry without a valid tag is a
miss, dropped, and reported once per store with the fix.

The tag is 33 bytes: one byte naming the algorithm, then 32 bytes of keyed BLAKE2b (the standard
library; the cheapest per call, so every small value uses it), keyed BLAKE3 (values of 16 KiB and
more when the optional ``blake3`` package is installed: fast enough for values of hundreds of MB,
on every core) or HMAC-SHA256 (on request). Readers check any. The entry's key is inside the tag,
so a valid value cannot be replayed under another key.

What is signed: a domain string, the key's length and the key, then the value. For BLAKE2B the
key's length is followed by zero bytes, as many as put the key's end one byte past a 128-byte
block, then the key. Everything before the key depends on its length only, so it is hashed once
per length (``Signer._b2_start``): a first check of a value under a key costs one copy of that
hasher and two updates (the key, the value), no joining of pieces in Python. A hasher fed the key
too has compressed every block before the value, so the one kept per key written
(``Signer._b2_of``) finishes a small value's tag with one compression.

``BLAKE2B_V1`` (algorithm byte 3) is the layout of earlier versions: the same parts, but the zero
bytes after the key, under another domain and key. It is only read (entries stored before stay
hits); nothing is signed with it any more.

Where the secret comes from (first match wins):

1. ``RECKON_CACHE_KEY``: any string; the key is derived from it. A team shares a cache by
   sharing this string.
2. A per-user key file, ``$RECKON_CACHE_KEY_FILE`` or ``$XDG_CONFIG_HOME/reckon/cache-key``
   (``~/.config/reckon/cache-key``), created with mode 0600 on first use. It lives outside the
   cache directory on purpose: whoever can write the cache must not be able to read the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import struct
import threading
from collections.abc import Sequence
from hmac import compare_digest as _compare
from typing import Any, Final

from reckon.errors import ConfigurationError

log = logging.getLogger("reckon.core.store")

TAG_SIZE: Final = 33
HMAC_SHA256: Final = 1
BLAKE3: Final = 2
BLAKE2B_V1: Final = 3  # read only: the BLAKE2b layout of earlier versions (module docstring)
BLAKE2B: Final = 4
_DOMAIN = b"reckon-store-v1\0"  # BLAKE3, HMAC-SHA256 and BLAKE2B_V1
_B2_DOMAIN = b"reckon-store-v2\0"  # BLAKE2B
_SEAL_DOMAIN = b"reckon-seal-v1\0"
_THREADED = 8 << 20  # values this large are hashed by blake3 on several threads
_SMALL = 16 << 10  # below this, the default signs with BLAKE2b (its per-call cost is lowest)
_LEN = struct.Struct("<I").pack
_B2_BLOCK = 128
_B2_KEYS = 1024  # per-key BLAKE2b hashers kept (see Signer._b2_of); all dropped when full
_BUFFERS = (bytes, memoryview, bytearray)
_B2_HEAD = bytes((BLAKE2B,))
_B2_STARTS = 256  # key lengths whose BLAKE2B start is kept (see Signer._b2_start)
# BLAKE2B_V1's zero padding after a key of n bytes (mod a block), made once: see _b2_v1_prefix
_B2_V1_PAD = [bytes((1 - len(_DOMAIN) - 4 - n) % _B2_BLOCK) for n in range(_B2_BLOCK)]
# the length field of keys up to 255 bytes (every RequestId.disk_key), made once
_B2_LENS = [_LEN(n) for n in range(256)]
_ALGORITHMS = ("auto", "blake3", "blake2b", "hmac-sha256")

Buffer = bytes | memoryview | bytearray


def _blake3() -> Any:
    try:
        import blake3
    except ImportError:
        return None
    return blake3


def _derive(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hashlib.sha256(b"reckon cache key v1\0" + raw).digest()


def _prefix(key: str) -> bytes:
    kb = key.encode("utf-8")
    return _DOMAIN + _LEN(len(kb)) + kb


class Signer:
    """Signs and verifies store entries under one secret (see the module docstring).

    ``algorithm`` is ``"auto"`` (the default: keyed BLAKE2b for values under 16 KiB, whose
    per-call cost is the lowest, keyed BLAKE3 on every core above when the ``blake3`` package is
    installed, else BLAKE2b), or one algorithm for every value: ``"blake3"``, ``"blake2b"``,
    ``"hmac-sha256"``. Readers check every algorithm, whichever the writer used.

    Hashers keyed once (domain included) are copied per call: a small value's tag costs one
    copy, two updates and a digest, no key schedule."""

    __slots__ = (
        "_b2",
        "_b2keys",
        "_b2starts",
        "_b2v1",
        "_b3",
        "_b3base",
        "_b3key",
        "_hkey",
        "_seal",
        "_sign_big",
        "algorithm",
        "key_id",
    )

    def __init__(self, secret: str | bytes, *, algorithm: str | None = None) -> None:
        if not secret:
            raise ConfigurationError(
                "the cache key is empty: set RECKON_CACHE_KEY to a long random string, e.g. "
                "the output of `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        master = _derive(secret)
        self._hkey = hashlib.sha256(b"hmac-sha256\0" + master).digest()
        self._b3key = hashlib.sha256(b"blake3\0" + master).digest()
        b2key = hashlib.sha256(b"blake2b\0" + master).digest()
        self._b2v1 = hashlib.blake2b(_DOMAIN, key=b2key, digest_size=32)
        b2key2 = hashlib.sha256(b"blake2b v2\0" + master).digest()
        self._b2 = hashlib.blake2b(_B2_DOMAIN, key=b2key2, digest_size=32)
        self._b2starts: list[Any] = [None] * _B2_STARTS  # key length -> its start (_b2_start)
        self._b2keys: dict[str, Any] = {}  # key -> its hasher, for keys written (_b2_of)
        self._seal = hashlib.blake2b(_SEAL_DOMAIN, key=b2key, digest_size=32)
        self._b3 = _blake3()
        self._b3base = None if self._b3 is None else self._b3.blake3(_DOMAIN, key=self._b3key)
        algorithm = algorithm or "auto"
        if algorithm not in _ALGORITHMS:
            raise ConfigurationError(
                f"unknown signing algorithm {algorithm!r}: use one of {', '.join(_ALGORITHMS)}"
            )
        if algorithm == "blake3" and self._b3 is None:
            raise ConfigurationError(
                "algorithm 'blake3' needs the blake3 package: pip install blake3"
            )
        self.algorithm = algorithm
        big = {"blake3": BLAKE3, "blake2b": BLAKE2B, "hmac-sha256": HMAC_SHA256}.get(algorithm)
        self._sign_big = big or (BLAKE3 if self._b3 is not None else BLAKE2B)
        # A public name for the key (safe to log): lets two machines see whether they agree.
        self.key_id = hashlib.sha256(b"key id\0" + master).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, algorithm={self.algorithm!r})"

    def sign(self, key: str, data: Buffer | Sequence[Buffer]) -> bytes:
        """The 33-byte tag of ``data`` (one buffer, or pieces of one value) stored under ``key``."""
        pieces: Sequence[Buffer] = data if isinstance(data, list | tuple) else (data,)
        alg = self._sign_big
        if self.algorithm == "auto" and sum(map(len, pieces)) < _SMALL:
            alg = BLAKE2B
        tag = self._tag(alg, key, pieces)
        assert tag is not None
        return bytes((alg,)) + tag

    def verify(self, key: str, data: Buffer | Sequence[Buffer], tag: bytes | None) -> bool:
        """True when ``tag`` is a valid tag of ``data`` under ``key``, by any algorithm."""
        if tag is None:
            return False
        if tag[:1] == _B2_HEAD and isinstance(data, _BUFFERS):  # small values: the fast path
            h = self._b2keys.get(key)  # a key this signer wrote under: one compression
            h = self._b2_fed(key) if h is None else h.copy()
            h.update(data)
            # One constant-time compare checks the algorithm byte, the length and the MAC.
            return _compare(_B2_HEAD + h.digest(), tag)
        if len(tag) != TAG_SIZE:
            return False
        alg = tag[0]
        expected = self._tag(alg, key, data if isinstance(data, list | tuple) else (data,))
        return expected is not None and hmac.compare_digest(expected, tag[1:])

    def seal(self, record: bytes) -> bytes:
        """A 32-byte MAC of a record the store keeps about an entry (see ``LocalStore``), under
        its own domain: never valid as an entry's tag, nor the reverse."""
        h = self._seal.copy()
        h.update(record)
        return h.digest()

    def check_seal(self, record: bytes, seal: bytes | None) -> bool:
        return seal is not None and hmac.compare_digest(self.seal(record), seal)

    def why_not(self, tag: bytes | None) -> str:
        """Why a tag that failed :meth:`verify` failed, as advice for the log."""
        if tag is None or len(tag) != TAG_SIZE:
            return "it carries no signature (written by an older reckon, or not by reckon)"
        if tag[0] == BLAKE3 and self._b3 is None:
            return (
                "it is signed with keyed BLAKE3, which this process cannot check: "
                "pip install blake3"
            )
        return (
            "it was signed with another key, or forged, or corrupted. If this store is shared, "
            "set RECKON_CACHE_KEY to the same secret in every process that uses it "
            f"(this process's key id is {self.key_id})"
        )

    def verifier(self, key: str, tag: bytes | None, size: int) -> Verifier:
        """An incremental :meth:`verify` of a value of ``size`` bytes that arrives in blocks:
        feed each block to ``update`` as it comes, then ask ``ok()``. Lets a store check a
        large value while reading it, without holding a second copy."""
        alg = tag[0] if tag is not None and len(tag) == TAG_SIZE else 0
        h = self._hasher(alg, key, size)
        return Verifier(h, None if h is None or tag is None else tag[1:])

    def _hasher(self, alg: int, key: str, size: int) -> Any:
        """A keyed hasher for algorithm ``alg``, already fed the key; None for an algorithm
        this process cannot compute (unknown, or BLAKE3 without the package)."""
        h: Any
        if alg == BLAKE2B:
            return (self._b2keys.get(key) or self._b2_of(key)).copy()
        if alg == BLAKE2B_V1:
            h = self._b2v1.copy()
            h.update(self._b2_v1_prefix(key))
            return h
        kb = key.encode("utf-8")
        if alg == BLAKE3:
            if self._b3base is None:
                return None
            if size >= _THREADED:  # large: hash on every core
                b3 = self._b3.blake3
                h = b3(_DOMAIN, key=self._b3key, max_threads=b3.AUTO)
            else:
                h = self._b3base.copy()
        elif alg == HMAC_SHA256:
            h = hmac.new(self._hkey, _DOMAIN, "sha256")
        else:
            return None
        h.update(_LEN(len(kb)) + kb)
        return h

    @staticmethod
    def _b2_v1_prefix(key: str) -> bytes:
        """What BLAKE2B_V1 tags (read only) sign after the domain and before the value: the
        key's length, the key, and zero bytes up to one byte past a block."""
        kb = key.encode("utf-8")
        n = len(kb)
        return b"".join((_LEN(n), kb, _B2_V1_PAD[n % _B2_BLOCK]))

    def _b2_start(self, n: int) -> Any:
        """The BLAKE2B hasher of keys of ``n`` bytes, before the key: keyed, fed the domain,
        the length and the zero bytes that put the key's end one byte past a block (see the
        module docstring); kept for keys shorter than ``_B2_STARTS``. Callers copy it."""
        h = self._b2.copy()
        h.update(_B2_LENS[n] if n < 256 else _LEN(n))
        h.update(bytes((1 - len(_B2_DOMAIN) - 4 - n) % _B2_BLOCK))
        if n < _B2_STARTS:
            self._b2starts[n] = h
        return h

    def _b2_fed(self, key: str) -> Any:
        """A new BLAKE2B hasher of ``key``, not kept: its length's start, fed the key."""
        kb = key.encode("utf-8")
        n = len(kb)
        start = self._b2starts[n] if n < _B2_STARTS else None
        h = (start or self._b2_start(n)).copy()
        h.update(kb)
        return h

    def _b2_of(self, key: str) -> Any:
        """The BLAKE2B hasher of ``key``: its length's start fed the key, so every block before
        the value is compressed; kept for the next call (up to ``_B2_KEYS`` keys, those signed
        or checked in pieces: a first read of a whole buffer keeps nothing). Callers copy it."""
        h = self._b2_fed(key)
        keys = self._b2keys
        if len(keys) >= _B2_KEYS:
            keys.clear()
        keys[key] = h
        return h

    def _tag(self, alg: int, key: str, pieces: Sequence[Buffer]) -> bytes | None:
        """The 32-byte MAC of (key, pieces) by algorithm ``alg``; None for one this process
        cannot compute (unknown, or BLAKE3 without the package)."""
        h = self._hasher(alg, key, sum(map(len, pieces)))
        if h is None:
            return None
        for piece in pieces:
            h.update(piece)
        digest: bytes = h.digest()
        return digest


class Verifier:
    """A MAC being checked block by block (see :meth:`Signer.verifier`)."""

    __slots__ = ("_expected", "_h")

    def __init__(self, hasher: Any, expected: bytes | None) -> None:
        self._h = hasher
        self._expected = expected

    def update(self, block: Buffer) -> None:
        if self._h is not None:
            self._h.update(block)

    def ok(self) -> bool:
        """True when every byte fed so far is exactly the value the tag was made for."""
        if self._h is None or self._expected is None:
            return False
        return hmac.compare_digest(self._h.digest(), self._expected)


# -- the process's key ------------------------------------------------------------------------

_lock = threading.Lock()
_default: list[Signer] = []


def key_file_path() -> str:
    """Where the per-user key file lives (it need not exist yet)."""
    env = os.environ.get("RECKON_CACHE_KEY_FILE")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(os.path.abspath(base), "reckon", "cache-key")


def _read_or_create_key_file(path: str) -> str:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        temp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # atomic and exclusive: of two first users, one key wins
            log.info("created the cache key file %s (mode 0600)", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the cache key file {path}: {exc}. Set RECKON_CACHE_KEY to a secret "
            "string, or RECKON_CACHE_KEY_FILE to a file you can write"
        ) from exc
    return _read_key_file(path)


def _read_key_file(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "the cache key file %s can be read by others (mode %o): anyone who can read it can "
            "write values every reader will trust; chmod 600 %s",
            path,
            stat.S_IMODE(info.st_mode),
            path,
        )
    if not text:
        raise ConfigurationError(
            f"the cache key file {path} is empty: delete it (a new key is made on next use) or "
            "write a long random string into it"
        )
    return text


def default_signer() -> Signer:
    """The process's signer: from ``RECKON_CACHE_KEY``, else the per-user key file (created on
    first use). Resolved once per process."""
    if _default:
        return _default[0]
    with _lock:
        if not _default:
            secret = os.environ.get("RECKON_CACHE_KEY", "").strip()  # as a key file's contents
            if not secret:
                secret = _read_or_create_key_file(key_file_path())
            _default.append(Signer(secret))
    return _default[0]


def reset_default_signer() -> None:
    """Forget the process's signer (after changing ``RECKON_CACHE_KEY``, e.g. in tests)."""
    with _lock:
        _default.clear()


def check_outside(directory: str) -> None:
    """Refuse a key file inside ``directory`` (a cache directory): whoever can write the cache
    could then read the key. Only the key file is checked; ``RECKON_CACHE_KEY`` has no path."""
    if os.environ.get("RECKON_CACHE_KEY"):
        return
    path = os.path.realpath(key_file_path())
    root = os.path.realpath(directory)
    if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
        raise ConfigurationError(
            f"the cache key file {path} is inside the cache directory {root}: anyone who can "
            "write the cache could read it. Set RECKON_CACHE_KEY_FILE to a path outside it, or "
            "set RECKON_CACHE_KEY"
        )


class Rejections:
    """Counts entries a store refused as unauthenticated, and logs the first one with the fix
    (then at debug level): one warning per store, not one per read."""

    __slots__ = ("count", "store")

    def __init__(self, store: str) -> None:
        self.store = store
        self.count = 0

    def report(self, key: str, reason: str) -> None:
        self.count += 1
        level = logging.WARNING if self.count == 1 else logging.DEBUG
        log.log(
            level,
            "store %s: entry %s failed authentication and was dropped (a miss, never decoded): %s",
            self.store,
            key[:64],
            reason,
        )
