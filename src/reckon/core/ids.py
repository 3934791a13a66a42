"""Request ids: one object per request, hashed once, passed by reference.

A request is named by its *parts* (strings, integers, bytes and nested tuples of these). The parts
are turned into canonical bytes that are type-tagged and length-prefixed, so different part
structures never produce the same bytes: ``("a", "b")``, ``("ab",)``, ``1``, ``"1"`` and ``b"1"``
all differ. Two keys are derived from those bytes:

- ``memory_key``: xxh3-128, computed once in ``__init__``; the memory tier and the in-flight table
  are keyed by it, and ``__eq__``/``__hash__`` use it. 128 bits make collisions within a process
  practically impossible while costing far less than a cryptographic hash.
- ``disk_key``: SHA-256 hex, computed on first use only (most requests never reach a store). It is
  the name of the value in every store, so it must never change between processes, machines and
  Python versions: the encoding below uses no ``hash()``, no ``repr()`` and no pickle.
"""

from __future__ import annotations

import hashlib
from typing import Any, NoReturn, TypeAlias

import xxhash

from reckon.errors import InvalidRequestIdError

__all__ = ["Part", "RequestId"]

Part: TypeAlias = "str | int | bytes | tuple[Part, ...]"

# A domain prefix: changing the canonical encoding means changing this version, which changes
# every disk key (old store entries simply stop matching instead of being misread).
_PREFIX = b"reckon.id.v1\x00"
_DIGEST_PREFIX = b"reckon.digest.v1\x00"

_xxh3_128 = xxhash.xxh3_128_intdigest


def _encode(part: object, out: list[bytes]) -> None:
    # Each item: one tag byte, an 8-byte little-endian length (or count), then the payload.
    # Tags and lengths make the encoding prefix-free, hence injective over nested parts.
    t = type(part)
    if t is str:
        raw = part.encode("utf-8")  # type: ignore[attr-defined]
        out.append(b"s" + len(raw).to_bytes(8, "little") + raw)
    elif t is int or t is bool:
        # Two's complement, big-endian, minimal length (bool counts as the int it equals).
        value: int = part  # type: ignore[assignment]
        raw = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
        out.append(b"i" + len(raw).to_bytes(8, "little") + raw)
    elif t is bytes:
        out.append(b"b" + len(part).to_bytes(8, "little") + part)  # type: ignore[arg-type, operator]
    elif t is tuple:
        out.append(b"t" + len(part).to_bytes(8, "little"))  # type: ignore[arg-type]
        for item in part:  # type: ignore[attr-defined]
            _encode(item, out)
    elif isinstance(part, str):
        _encode(str(part), out)
    elif isinstance(part, int):
        _encode(int(part), out)
    elif isinstance(part, bytes | bytearray | memoryview):
        _encode(bytes(part), out)
    elif isinstance(part, tuple):
        _encode(tuple(part), out)
    else:
        raise InvalidRequestIdError(
            f"RequestId parts must be str, int, bytes or tuples of these; got "
            f"{type(part).__name__} ({part!r:.60}). Hash other values to bytes first "
            f"(reckon.memo does this for function arguments)."
        )


def canonical_bytes(parts: tuple[Any, ...]) -> bytes:
    """The stable byte encoding both keys are computed from (exposed for tests and tools)."""
    # The top level inlined for the common flat ids (same bytes as _encode(parts, out)).
    out: list[bytes] = [_PREFIX, b"t", len(parts).to_bytes(8, "little")]
    append = out.append
    for part in parts:
        t = type(part)
        if t is str:
            raw = part.encode("utf-8")
            append(b"s")
            append(len(raw).to_bytes(8, "little"))
            append(raw)
        elif t is bytes:
            append(b"b")
            append(len(part).to_bytes(8, "little"))
            append(part)
        else:
            _encode(part, out)
    return b"".join(out)


class RequestId:
    """The identity of one request: a fast in-process key and a stable on-disk key.

    Build it once per request and pass it around; it is never copied or re-hashed.
    """

    __slots__ = ("_digest", "_hash", "memory_key", "parts")

    memory_key: int
    parts: tuple[Any, ...] | None
    # The disk key once known (str); until then the bytes it is made from: the canonical bytes
    # of a parts-built id, the raw digest of a digest-built one (``parts`` is None). One slot for
    # both keeps construction to four slot stores.
    _digest: str | bytes
    _hash: int

    def __init__(self, *parts: Part) -> None:
        canonical = canonical_bytes(parts)
        key = _xxh3_128(canonical)
        _set_key(self, key)
        _set_hash(self, hash(key))
        _set_parts(self, parts)
        _set_digest(self, canonical)

    @classmethod
    def from_digest(cls, digest: bytes | str) -> RequestId:
        """An id for a request already named by a SHA-256 digest (32 bytes or 64 hex digits).

        Its ``disk_key`` is that digest, so it addresses the same store entry as any other id with
        the same digest.
        """
        # Memoized calls name their requests this way, and a fresh process makes one id per
        # hit: the common case (32 bytes) goes straight through, and the hex of the digest is
        # made only when the disk key is first asked for.
        if type(digest) is bytes and len(digest) == 32:
            raw = digest
        elif isinstance(digest, str):
            try:
                raw = bytes.fromhex(digest)
            except ValueError:
                raw = b""
            if len(digest) != 64 or len(raw) != 32:
                raise InvalidRequestIdError(
                    f"RequestId.from_digest needs 64 hexadecimal digits; got {digest!r:.80}"
                )
        elif isinstance(digest, bytes | bytearray | memoryview):
            raw = bytes(digest)
            if len(raw) != 32:
                raise InvalidRequestIdError(
                    f"RequestId.from_digest needs a 32-byte SHA-256 digest; got {len(raw)} bytes"
                )
        else:
            raise InvalidRequestIdError(
                f"RequestId.from_digest needs bytes or a hex str; got {type(digest).__name__}"
            )
        self = _new(cls)
        key = _xxh3_128(_DIGEST_PREFIX + raw)
        _set_key(self, key)
        _set_hash(self, hash(key))
        _set_parts(self, None)
        _set_digest(self, raw)
        return self

    @property
    def disk_key(self) -> str:
        """SHA-256 hex of the canonical bytes: the key of this request in every store."""
        digest = self._digest
        if type(digest) is str:
            return digest
        assert type(digest) is bytes
        # (The canonical bytes, kept only for this, are let go.)
        text = digest.hex() if self.parts is None else hashlib.sha256(digest).hexdigest()
        _set_digest(self, text)
        return text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RequestId):
            return self.memory_key == other.memory_key
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, RequestId):
            return self.memory_key != other.memory_key
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"RequestId is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"RequestId is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        if self.parts is None:
            return (RequestId.from_digest, (self.disk_key,))
        return (RequestId, self.parts)

    def __copy__(self) -> RequestId:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RequestId:
        return self

    def short(self, width: int = 60) -> str:
        """A readable label: the parts, or the digest prefix for digest-built ids."""
        if self.parts is None:
            return f"<{self.disk_key[:16]}>"
        text = ", ".join(repr(p) for p in self.parts)
        return text if len(text) <= width else text[: width - 3] + "..."

    def __repr__(self) -> str:
        if self.parts is None:
            return f"RequestId.from_digest({self.disk_key!r})"
        return f"RequestId({self.short(200)})"


# Slot setters that bypass the immutability guard of __setattr__ (a C call each, cheaper than
# object.__setattr__): only the constructors and the lazy disk key use them.
_set_key = RequestId.__dict__["memory_key"].__set__
_set_hash = RequestId.__dict__["_hash"].__set__
_set_parts = RequestId.__dict__["parts"].__set__
_new = object.__new__
_set_digest = RequestId.__dict__["_digest"].__set__
