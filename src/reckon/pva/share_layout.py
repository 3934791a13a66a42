"""What a deployment of shared PVs keeps in Redis, and how it is written and read.

Under one key prefix per deployment (``redis://host:port/db?prefix=NAME``, ``reckon:pva`` by
default), in msgpack (:mod:`reckon.pva.packing`):

- ``PREFIX:types`` (hash): PV name -> its type description;
- ``PREFIX:value:NAME`` (hash): dotted field path -> that field's value, for every field ever
  given one;
- ``PREFIX:log`` (stream, trimmed to about a given length): the posts, one entry per PV per
  batch an instance writes, with the instance's GUID (``g``), the PV's name (``n``), each
  post's sequence number (``s``) and the fields it changed (``d``), and the PV's type (``t``)
  when the batch announces a PV created while running;
- ``PREFIX:epoch``: a token set when the store was first filled (a Redis restarted empty has
  none, so instances know to fill it again);
- ``PREFIX:instances`` (hash) and ``PREFIX:alive:GUID`` (expiring): who serves, on which host.

This module holds that layout and nothing of what instances do with it
(:mod:`reckon.pva.share`): the keys, the stream entry both ways, the one transaction that
writes a batch of posts, and the reads tools make (the live instances, a PV's stored value,
the names shared).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from reckon.errors import ConfigurationError, PvaShareError
from reckon.pva.packing import pack, unpack, unpack_type, value_from_obj, value_to_obj
from reckon.pva.protocol import FieldDesc, Structure

DEFAULT_PREFIX = "reckon:pva"

#: how long an instance's liveness key lasts without a heartbeat (seconds)
ALIVE_TTL = 10


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is unreachable, slow or still loading: the share
    then serves its last values and retries."""
    import redis.exceptions

    return (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.BusyLoadingError,
        OSError,
        asyncio.TimeoutError,
    )


def split_url(url: str) -> tuple[str, str]:
    """``redis://h:p/0?prefix=plant1`` -> (``redis://h:p/0``, ``plant1``); the prefix defaults
    to ``reckon:pva``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"--share takes a Redis URL like redis://127.0.0.1:6379/0, not {url!r}"
        )
    query = parse_qsl(parts.query)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def entry_id(raw: Any) -> tuple[int, int]:
    """A stream entry id (``b"1700000000000-3"``) as a comparable pair."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


# ---------------------------------------------------------------------- a value as field paths
_LEAVES: dict[Structure, tuple[tuple[str, int, FieldDesc], ...]] = {}


def leaves(t: Structure) -> tuple[tuple[str, int, FieldDesc], ...]:
    """(path, bit, type) of every field of ``t`` that is not a structure: what the value hash
    holds, one entry each."""
    out = _LEAVES.get(t)
    if out is None:
        out = tuple(
            (path, bit, t.field_at(bit)[1])
            for path, bit in t.offsets.items()
            if not isinstance(t.field_at(bit)[1], Structure)
        )
        _LEAVES[t] = out
    return out


def field(value: dict[str, Any], path: str) -> Any:
    """The field at dotted ``path`` of a value."""
    v: Any = value
    for part in path.split("."):
        v = v[part]
    return v


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"alarm.severity": 2}`` -> ``{"alarm": {"severity": 2}}`` (what ``post()`` takes)."""
    out: dict[str, Any] = {}
    for path, v in flat.items():
        parts = path.split(".")
        d = out
        for part in parts[:-1]:
            d = d.setdefault(part, {})
        d[parts[-1]] = v
    return out


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def changed_fields(t: Structure, mask: int, value: dict[str, Any]) -> dict[str, Any]:
    """The fields a post changed (its bit ``mask`` over ``t``), path -> packable data; a
    whole sub-structure counts as each of its fields."""
    delta: dict[str, Any] = {}
    for bit in _bits(mask):
        path, ft = t.field_at(bit)
        if isinstance(ft, Structure):
            base = f"{path}." if path else ""
            for p, _b, lt in leaves(t):
                if p.startswith(base):
                    delta[p] = value_to_obj(lt, field(value, p))
            continue
        delta[path] = value_to_obj(ft, field(value, path))
    return delta


# ---------------------------------------------------------------------- the stream's entries
@dataclass
class Post:
    """One post waiting to be written: the fields it changed, as packable data, and its
    sequence number among this instance's posts; ``announce`` is the PV's packed type when the
    PV was created while running."""

    name: str
    delta: dict[str, Any]
    seq: int
    announce: bytes | None = None


@dataclass
class Entry:
    """One stream entry read back: one PV's posts of one instance's batch, in order."""

    guid: str
    name: str
    seqs: list[int]
    deltas: list[dict[str, Any]]
    announce: bytes | None


def read_entry(fields: dict[bytes, bytes]) -> Entry:
    """A stream entry's fields as an :class:`Entry`; a malformed one raises PvaShareError."""
    try:
        guid = fields[b"g"].decode()
        name = fields[b"n"].decode()
        seqs = unpack(fields[b"s"])
        deltas = unpack(fields[b"d"])
        announce = fields.get(b"t")
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise PvaShareError(f"malformed entry ({exc!r:.60})") from None
    if (
        not isinstance(seqs, list)
        or not isinstance(deltas, list)
        or len(seqs) != len(deltas)
        or not all(isinstance(d, dict) for d in deltas)
    ):
        raise PvaShareError("an entry's posts are not a list of field maps")
    return Entry(guid, name, seqs, deltas, announce)


class Layout:
    """The keys of one deployment (``prefix``) and the Redis calls that read and write them.

    Each call takes the client to use and is bounded by the caller's timeout."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.types = f"{prefix}:types"
        self.log = f"{prefix}:log"
        self.epoch = f"{prefix}:epoch"
        self.instances = f"{prefix}:instances"

    def value(self, name: str) -> str:
        return f"{self.prefix}:value:{name}"

    def alive(self, guid: str) -> str:
        return f"{self.prefix}:alive:{guid}"

    async def write(self, r: Any, guid: str, batch: list[Post], stream_length: int) -> None:
        """One transaction: per PV, its fields' newest values into its hash and all its posts,
        in order, as one stream entry (a burst costs Redis and every reader one entry per PV
        per batch, not one per post)."""
        by_pv: dict[str, list[Post]] = {}
        for e in batch:
            by_pv.setdefault(e.name, []).append(e)
        pipe = r.pipeline(transaction=True)
        for name, posts in by_pv.items():
            announce = next((e.announce for e in posts if e.announce is not None), None)
            if announce is not None:  # a PV created while running (the first type stays)
                pipe.hsetnx(self.types, name, announce)
            latest: dict[str, Any] = {}
            for e in posts:
                latest.update(e.delta)
            if latest:
                pipe.hset(self.value(name), mapping={p: pack(v) for p, v in latest.items()})
            entry = {
                b"g": guid,
                b"n": name,
                b"s": pack([e.seq for e in posts]),
                b"d": pack([e.delta for e in posts]),
            }
            if announce is not None:
                entry[b"t"] = announce
            pipe.xadd(self.log, entry, maxlen=stream_length, approximate=True)
        await pipe.execute()

    async def heartbeat(self, r: Any, guid: str, info: dict[str, Any]) -> None:
        """List the instance (``info``: host, pid, ports...) and renew its liveness key."""
        pipe = r.pipeline(transaction=False)
        pipe.hset(self.instances, guid, pack(info))
        pipe.set(self.alive(guid), b"1", ex=ALIVE_TTL)
        await pipe.execute()

    async def leave(self, r: Any, guid: str) -> None:
        await r.delete(self.alive(guid))
        await r.hdel(self.instances, guid)

    async def live_instances(self, r: Any) -> list[dict[str, Any]]:
        """The instances listed and still alive (the others are dropped from the list)."""
        out = []
        raw = await r.hgetall(self.instances)
        for guid, data in raw.items():
            if await r.exists(self.alive(guid.decode())):
                out.append(unpack(data))
            else:  # gone for longer than ALIVE_TTL (killed, or cut off: it comes back)
                await r.hdel(self.instances, guid)
        return sorted(out, key=lambda i: (i["host"], i["guid"]))

    async def stored_fields(self, r: Any, name: str) -> dict[str, Any]:
        """The value hash of ``name``: path -> packable data."""
        stored = await r.hgetall(self.value(name))
        return {p.decode(): unpack(v) for p, v in stored.items()}

    async def fill_in(self, r: Any, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Store each of ``fields`` (path -> packable data) that ``name``'s hash lacks, and read
        the hash back, in one transaction."""
        key = self.value(name)
        pipe = r.pipeline(transaction=True)
        for path, obj in fields.items():
            pipe.hsetnx(key, path, pack(obj))
        pipe.hgetall(key)
        stored = (await pipe.execute())[-1]
        return {p.decode(): unpack(v) for p, v in stored.items()}

    async def stored_value(self, r: Any, name: str) -> dict[str, Any]:
        """The fields of ``name`` as Redis holds them (nested back into dicts)."""
        t = unpack_type(await r.hget(self.types, name) or b"")
        if not isinstance(t, Structure):
            raise PvaShareError(f"{name!r} is not shared under {self.prefix!r}")
        flat = {}
        for path, obj in (await self.stored_fields(r, name)).items():
            flat[path] = value_from_obj(t.field_at(t.offset_of(path))[1], obj)
        return nest(flat)

    async def trimmed_before(self, r: Any) -> tuple[int, int]:
        """The newest entry id trimmed off the stream (0-0 when none, or no stream yet)."""
        import redis.exceptions

        try:
            info = await r.xinfo_stream(self.log)
        except redis.exceptions.ResponseError:
            return (0, 0)
        return entry_id(info.get("max-deleted-entry-id", b"0-0"))

    async def stream_end(self, r: Any) -> bytes:
        """The id of the stream's last entry (``0-0`` when empty)."""
        last = await r.xrevrange(self.log, count=1)
        return bytes(last[0][0]) if last else b"0-0"


async def shared_names(url: str, *, wait: float = 2.0) -> list[str]:
    """The names of the PVs a deployment shares (``url`` as given to ``serve --share``);
    ``wait`` bounds each Redis call."""
    import redis.asyncio as aredis

    base, prefix = split_url(url)
    client = aredis.Redis.from_url(
        base, socket_timeout=wait, socket_connect_timeout=wait, retry_on_timeout=False
    )
    try:
        names = await client.hkeys(Layout(prefix).types)
    except connection_errors() as exc:
        raise PvaShareError(f"cannot list the PVs shared at {url}: {exc}") from None
    finally:
        await client.aclose()
    return sorted(n.decode() if isinstance(n, bytes) else n for n in names)
