"""RedisStore: the Store protocol on a Redis server, for caches shared across machines.

Values are stored with a small header (magic + the signature of key and value under the
deployment's secret key, see ``signing``) and verified on every read before a byte is returned: a
value that does not verify (corrupt, written with another key, or forged) is deleted, logged once
per store and reported as a miss. Bookkeeping lives beside
the values under the same prefix: a hash of sizes, a sorted set of access times (for LRU) and a
byte counter, all updated by Lua scripts so that each put, delete and eviction is atomic on the
server even with many clients.

The byte budget is enforced by this store (LRU over the access times; a hit is a plain GET, its
access time sent with others in one ZADD every 256 hits or second, and at each flush, eviction
and close). Alternatively run Redis
with ``maxmemory`` and ``maxmemory-policy allkeys-lru`` and pass ``budget=None``; Redis then
evicts on its own and ``usage()`` may count values Redis already dropped. ``ttl`` gives every
value an expiry; expired values are misses, and their bookkeeping is cleaned when evicted.

``lease()`` gives the engine cross-process (and cross-machine) single flight, as LocalStore's does:
the lease is a Redis key set with NX and an expiry (``lease_ttl``, 4 s), renewed four times per
expiry by the store's renewer thread while its holder lives; a holder that dies (even by SIGKILL)
stops renewing it, so a waiter takes over within ``lease_ttl`` seconds. Waiters block on the
key's wake list, filled when the holder leaves (see ``_WAKE``), so a waiter that the value
appears for stops waiting at once, without polling. Each lease granted for a key also gets the
next fencing number of that key (a hash beside the values); the put script refuses a holder's
write when a newer lease was granted since (or the lease is held by another), so a holder whose
lease lapsed never overwrites the value of the one that took over. (Deleting an entry forgets
its number.)

Values above the server's ``proto-max-bulk-len`` are stored in chunks, published by a manifest
(see ``_put_chunked``); an entry's metadata (see ``metadata``) sits in a hash beside the values
and is set and removed by the same scripts as the value.

Every call has a deadline (``timeout``, ``connect_timeout``; also settable in the URL). A server
that cannot be reached, when the store opens or later, never fails a call: the store warns once
per outage, answers misses and drops writes (counted in ``unstored``) at once without waiting,
and probes the server again every few seconds until it is back.

redis-py is imported here only, so the core does not depend on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from reckon.core._waiting import waiting
from reckon.core.stores import metadata as md
from reckon.core.stores import urls
from reckon.core.stores._machine import MachineLeases
from reckon.core.stores._outage import Outage
from reckon.core.stores.base import StoreData, StoreUsage
from reckon.core.stores.local import default_directory
from reckon.core.stores.signing import TAG_SIZE, Rejections, Signer, default_signer
from reckon.errors import StoreError

log = logging.getLogger("reckon.core.store")

_MAGIC = b"RKR2"
_CHUNKED = b"RKC2"  # a manifest: the value lives in chunk keys (see _put_chunked)
_HEAD = len(_MAGIC) + TAG_SIZE
_VIEW_THRESHOLD = 64 << 10
_CHUNK_MARGIN = 4096  # bytes below the server's limit a chunk stays (room for the command)
_ORPHAN_MS = 3_600_000  # chunks of a put that never published its manifest expire after 1 h

# Where the store's keys live under its prefix: named here once, for the Python side (the
# properties of RedisStore) and for the scripts (the Lua of _NAMES is made from these).
_V, _C, _LEASE, _WAKE_LIST = "v:", "c:", "lease:", "wake:"
_SIZES, _ACCESS, _BYTES, _META, _FENCES = "sizes", "access", "bytes", "meta", "fences"

# Every script takes the store's prefix as ARGV[1] (and most an entry's key as ARGV[2]) and names
# the keys it touches from them, in Lua: a call sends a few short arguments, each encoded by the
# client, instead of every key's full name. (Keys not passed as KEYS are fine on one server, or
# a replicated one; reckon does not support Redis Cluster, whose scripts must declare them.)
# Per-store numbers (lease and value expiries, in ms) are written into the script's text when the
# store opens (see ``_scripts``), so they are not arguments either.
_NAMES = f"""
local P = ARGV[1]
local function vkey(k) return P .. '{_V}' .. k end
local function cprefix(k) return P .. '{_C}' .. k .. ':' end
local function lease_key(k) return P .. '{_LEASE}' .. k end
local function wake_key(k) return P .. '{_WAKE_LIST}' .. k end
local SIZES, ACCESS, BYTES = P .. '{_SIZES}', P .. '{_ACCESS}', P .. '{_BYTES}'
local META, FENCES = P .. '{_META}', P .. '{_FENCES}'
"""

# Lua shared by the scripts that replace or remove a value: the chunks of a chunked value (its
# manifest names them) go with it. Only the manifest's head is read (GETRANGE), never a value.
_DROP_CHUNKS = """
local function drop_chunks(k)
  local head = redis.call('GETRANGE', vkey(k), 0, 120)
  if string.sub(head, 1, 4) == 'RKC2' then
    local wid, n = string.match(string.sub(head, 38), '^(%x+):(%d+):')
    if wid then
      for i = 0, tonumber(n) - 1 do redis.call('DEL', cprefix(k) .. wid .. ':' .. i) end
    end
  end
end
"""

# Set a value with its bookkeeping (a function: the put script, and the put that leaves a lease).
# ARGV: prefix, key, blob, size, now, lease token, fence, meta blob, "wid:n" of a chunked value.
# @VALUE_TTL@: the values' expiry in ms (0: none).
# Returns the store's new byte total, or -1 when a newer lease was granted (fencing).
_PUT_VALUE = (
    _NAMES
    + _DROP_CHUNKS
    + """
local function put_value()
  local K = ARGV[2]
  if ARGV[6] ~= '' then
    local holder = redis.call('GET', lease_key(K))
    if holder and holder ~= ARGV[6] then return -1 end
    local latest = redis.call('HGET', FENCES, K)
    if latest and tonumber(latest) > tonumber(ARGV[7]) then return -1 end
  end
  drop_chunks(K)
  local old = redis.call('HGET', SIZES, K)
  if old then redis.call('DECRBY', BYTES, old) end
  local ttl = @VALUE_TTL@
  if ttl > 0 then
    redis.call('SET', vkey(K), ARGV[3], 'PX', ttl)
  else
    redis.call('SET', vkey(K), ARGV[3])
  end
  if ARGV[9] ~= '' then
    local wid, n = string.match(ARGV[9], '^(%x+):(%d+)$')
    for i = 0, tonumber(n) - 1 do
      local chunk = cprefix(K) .. wid .. ':' .. i
      if ttl > 0 then redis.call('PEXPIRE', chunk, ttl) else redis.call('PERSIST', chunk) end
    end
  end
  if ARGV[8] ~= '' then
    redis.call('HSET', META, K, ARGV[8])
  else
    redis.call('HDEL', META, K)
  end
  redis.call('HSET', SIZES, K, ARGV[4])
  redis.call('ZADD', ACCESS, ARGV[5], K)
  return redis.call('INCRBY', BYTES, ARGV[4])
end
"""
)

_PUT = _PUT_VALUE + "return put_value()\n"
_CHUNKS_ARG = 8  # where the put scripts' ARGV holds "wid:n" of a chunked value (ARGV[9])

# ARGV: prefix, key
_DELETE = (
    _NAMES
    + _DROP_CHUNKS
    + """
local K = ARGV[2]
drop_chunks(K)
redis.call('HDEL', META, K)
local old = redis.call('HGET', SIZES, K)
if old then
  redis.call('DECRBY', BYTES, old)
  redis.call('HDEL', SIZES, K)
end
redis.call('HDEL', FENCES, K)
redis.call('ZREM', ACCESS, K)
return redis.call('DEL', vkey(K))
"""
)

# ARGV: prefix, target bytes
_EVICT = (
    _NAMES
    + _DROP_CHUNKS
    + """
local target = tonumber(ARGV[2])
local evicted = {}
local total = tonumber(redis.call('GET', BYTES) or '0')
while total > target do
  local popped = redis.call('ZPOPMIN', ACCESS)
  if #popped == 0 then break end
  local key = popped[1]
  local size = redis.call('HGET', SIZES, key)
  if size then
    redis.call('HDEL', SIZES, key)
    total = redis.call('DECRBY', BYTES, size)
  end
  redis.call('HDEL', META, key)
  redis.call('HDEL', FENCES, key)
  drop_chunks(key)
  redis.call('DEL', vkey(key))
  evicted[#evicted + 1] = key
end
return evicted
"""
)


_UNREACHABLE = (redis_py.ConnectionError, redis_py.TimeoutError)

# KEYS: the lease; ARGV: its token. @LEASE_TTL@: the lease's expiry in ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], @LEASE_TTL@)
end
return 0
"""

# Waking waiters: a waiter blocks on the key's wake list (BLPOP) instead of polling. Whoever
# ends a wait makes sure a token is there (the holder leaving its lease; a waiter that found the
# value, for the next waiter: a chain), so each waiter is woken once. The list holds at most one
# token and expires; a token nobody was waiting for only wakes a later waiter once, to look
# again. (A token already there is left as it is: one read instead of three writes, for every
# look that finds the value.)
_WAKE = """
local function wake(k)
  local list = wake_key(k)
  if redis.call('LLEN', list) == 0 then
    redis.call('RPUSH', list, 1)
    redis.call('PEXPIRE', list, @LEASE_TTL@)
  end
end
"""

# Take the lease in one round trip. ARGV: prefix, key, token, now. Returns the value when it is
# present and at most @HAND_AT_MOST@ bytes (its access time bumped, as a get does), -1 when it is
# present and larger (both wake the next waiter), 0 when another holds the lease, else the
# lease's fencing number (it is ours). (A stored value is never empty: it has a header.)
_TAKE = (
    _NAMES
    + _WAKE
    + """
local K = ARGV[2]
local size = redis.call('STRLEN', vkey(K))
if size > 0 then
  wake(K)
  if size <= @HAND_AT_MOST@ then
    redis.call('ZADD', ACCESS, 'XX', ARGV[4], K)
    return redis.call('GET', vkey(K))
  end
  return -1
end
if redis.call('SET', lease_key(K), ARGV[3], 'NX', 'PX', @LEASE_TTL@) then
  return redis.call('HINCRBY', FENCES, K, 1)
end
return 0
"""
)

_RELEASE_LEASE = """
local function release(k, token)
  if redis.call('GET', lease_key(k)) == token then
    redis.call('DEL', lease_key(k))
    wake(k)
    return 1
  end
  return 0
end
"""
# ARGV: prefix, key, token
_RELEASE = _NAMES + _WAKE + _RELEASE_LEASE + "return release(ARGV[2], ARGV[3])\n"

# The holder's put and the lease's release in one round trip (see ``_deferred``): _PUT's ARGV
# (its token is the lease's). Returns what _PUT does.
_PUT_RELEASE = (
    _PUT_VALUE
    + _WAKE
    + _RELEASE_LEASE
    + """
local total = put_value()
release(ARGV[2], ARGV[6])
return total
"""
)

_HAND_AT_MOST = 1 << 20  # a lease that finds the value present returns it when at most this big
# A hit's access time (for LRU) waits in memory until this many hits or this many seconds (then
# one ZADD sends them all), or until the next flush, eviction or close: a hit is a plain GET.
_TOUCH_BATCH = 256
_TOUCH_EVERY = 1.0
# The engine's look before a lease reads first (a GET) unless more than this share of the
# recent looks missed (a running average, the latest look weighing _LOOK_WEIGHT): then the
# lease's take script, which looks in the same round trip, is the only look (see
# ``RedisStore.early_get``). A hit found by the script costs about half a GET more than a GET
# (the script, and this machine's lease taken first); a miss found by a GET costs a GET more:
# leaving the look to the script pays once more than a third of the looks miss.
_SKIP_ABOVE = 1 / 3
_LOOK_WEIGHT = 1 / 8


class RedisStore:
    """A store on a Redis server (see the module docstring)."""

    lease_looks = False
    """Its lease reads the value too (the take script returns it), but the engine reads first
    all the same (see ``Store``, and :meth:`early_get`): a value that is there, the common
    case, costs a plain GET, about a third of the take script's time per hit, and the script's
    look only catches a value written in between."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: redis_py.Redis | None = None,
        prefix: str = "reckon:",
        budget: int | None = None,
        ttl: float | None = None,
        on_evict: Callable[[str], None] | None = None,
        lease_ttl: float = 4.0,
        signer: Signer | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        if budget is not None and budget < 0:
            raise StoreError(f"budget must be a byte count >= 0 or None, got {budget}")
        if lease_ttl <= 0:
            raise StoreError(f"lease_ttl must be a positive number of seconds, got {lease_ttl}")
        if ttl is not None and ttl <= 0:
            raise StoreError(f"ttl must be a positive number of seconds or None, got {ttl}")
        self.url = url
        self.prefix = prefix
        self.budget = budget
        self.ttl = ttl
        self.on_evict = on_evict
        self.lease_ttl = lease_ttl
        if timeout <= 0 or connect_timeout <= 0:
            raise StoreError("timeout and connect_timeout must be positive numbers of seconds")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._owns_client = client is None
        self._signer = signer if signer is not None else default_signer()
        self.rejections = Rejections(repr(self))
        self._outage = Outage(repr(self))
        try:
            # Every call has a deadline (a frozen server must not block callers), and no call is
            # retried by redis-py: a store that fails is skipped (see _outage), not waited for.
            self._r: redis_py.Redis = (
                client
                if client is not None
                else redis_py.Redis.from_url(
                    url,
                    socket_timeout=timeout,
                    socket_connect_timeout=connect_timeout,
                    retry=Retry(NoBackoff(), 0),
                    retry_on_timeout=False,
                )
            )
        except ValueError as exc:
            raise StoreError(
                f"cannot use the Redis URL {url}: {exc}. Use redis://host:port/db, "
                "rediss://host:port/db or unix:///path/to/redis.sock"
            ) from exc
        self._max_value: int | None = None  # the server's largest value (proto-max-bulk-len)
        try:
            self._r.ping()
            self._outage.ok()
            self._max_value = self._server_limit()
        except _UNREACHABLE as exc:  # not fatal: compute without the store until it is back
            self._outage.failed("connect", exc)
        except redis_py.RedisError as exc:  # reachable but refusing (auth, ...): a real error
            raise StoreError(
                f"Redis at {url} refused reckon: {exc}. Check the URL's user, password and database"
            ) from exc
        self._sizes = prefix + _SIZES
        self._access = prefix + _ACCESS
        self._bytes = prefix + _BYTES
        self._vprefix = prefix + _V
        self._meta = prefix + _META
        numbers = {
            "@LEASE_TTL@": str(max(1, int(lease_ttl * 1000))),
            "@VALUE_TTL@": str(0 if ttl is None else max(1, int(ttl * 1000))),
            "@HAND_AT_MOST@": str(_HAND_AT_MOST),
        }

        def script(text: str) -> Any:
            for name, number in numbers.items():
                text = text.replace(name, number)
            return self._r.register_script(text)

        # (redis-py sends EVALSHA, loading a script into the server once, when it is missing)
        self._put_script = script(_PUT)
        self._delete_script = script(_DELETE)
        self._evict_script = script(_EVICT)
        self._renew_script = script(_RENEW)
        self._release_script = script(_RELEASE)
        self._take_script = script(_TAKE)
        self._put_release_script = script(_PUT_RELEASE)
        self.options = urls.non_default(
            {
                "prefix": prefix,
                "budget": budget,
                "ttl": ttl,
                "lease_ttl": lease_ttl,
                "timeout": timeout,
                "connect_timeout": connect_timeout,
            },
            {
                "prefix": "reckon:",
                "budget": None,
                "ttl": None,
                "lease_ttl": 4.0,
                "timeout": 5.0,
                "connect_timeout": 2.0,
            },
        )
        self.closed = False
        self._failed: list[str] = []
        self.unstored = 0  # puts that did not reach Redis (down, failed, or fenced off)
        self._held: dict[str, tuple[str, int]] = {}  # key -> (token, fence) of a lease held
        # key -> the put script's KEYS and ARGV of a value put while this process holds the
        # key's lease: sent with the lease's release, in one round trip (see _deferred_put)
        self._deferred: dict[str, list[Any]] = {}
        self._touches: dict[str, float] = {}  # key -> access time of a hit not yet sent
        self._misses = 0.0  # the share of recent looks that missed, running (see early_get)
        self._touch_by = time.monotonic() + _TOUCH_EVERY
        self._touch_lock = threading.Lock()
        self.machine_leases = MachineLeases(default_directory(), f"{url}\0{prefix}")
        self._renewing: dict[str, str] = {}  # lease name -> token, renewed by one thread
        self._renewer: threading.Thread | None = None
        self._renewer_lock = threading.Lock()
        urls.remember(self)

    def __reduce__(self) -> tuple[object, ...]:
        """A store pickles as its URL and options (never its connections): see ``urls``."""
        return (urls.reopen_far, ("redis", self.url, self.options))

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    def _vkey(self, key: str) -> str:
        return self._vprefix + key

    def _chunk_prefix(self, key: str) -> str:
        return self.prefix + _C + key + ":"

    def _server_limit(self) -> int:
        """The largest value the server accepts (``proto-max-bulk-len``; 512 MB by default and
        when the server will not say)."""
        try:
            raw = cast(dict[Any, Any], self._r.config_get("proto-max-bulk-len"))
            value = raw.get("proto-max-bulk-len", raw.get(b"proto-max-bulk-len"))
            return int(value) if value is not None else 512 << 20
        except (redis_py.RedisError, TypeError, ValueError):
            return 512 << 20

    def _fail(self, what: str, exc: Exception) -> None:
        if isinstance(exc, _UNREACHABLE):
            self._outage.failed(what, exc)
        else:
            log.warning("store %s: %s failed: %s: %s", self, what, type(exc).__name__, exc)

    @property
    def reachable(self) -> bool:
        """False during an outage (operations are then misses and no-ops, not waits)."""
        return not self._outage.down

    def _read(self, key: str) -> bytes | None:
        """The stored bytes of ``key`` as they are (unverified): one GET; its access time is
        kept for the next batch of them (see ``_TOUCH_BATCH``). None when absent or
        unreachable."""
        if self._deferred:
            self._put_deferred(key)
        if self._outage.skip():
            return None
        try:
            raw = cast(bytes | None, self._r.get(self._vprefix + key))
            self._outage.ok()
        except redis_py.RedisError as exc:
            self._fail("get", exc)
            return None
        if raw is not None:
            with self._touch_lock:
                touches = self._touches
                touches[key] = time.time()
                due = len(touches) >= _TOUCH_BATCH or time.monotonic() >= self._touch_by
            if due:
                self._send_touches()
        return raw

    def _send_touches(self) -> None:
        """Send the access times of the hits since the last batch, in one ZADD (XX: of entries
        still there)."""
        with self._touch_lock:  # (no thread adds to the batch being sent)
            touches, self._touches = self._touches, {}
            self._touch_by = time.monotonic() + _TOUCH_EVERY
        if not touches or self._outage.skip():
            return
        try:
            self._r.zadd(self._access, touches, xx=True)
        except redis_py.RedisError as exc:
            self._fail("access times", exc)

    def early_get(self, key: str) -> bytes | memoryview | None:
        """The engine's look before the lease (see ``Store``): a plain get, whose GET is the
        cheapest way to find a value that is there; but while over a third of recent looks
        missed (``_SKIP_ABOVE``: values being computed, not reused), None without a request: the
        lease's take script looks in the same round trip as it takes the lease, so a
        computation costs two round trips, not three, and copies of a key waiting on this
        machine's lease read the far store once, after their wait. Each look counts once: a
        GET that finds the value here, else the take script that follows (see ``_take``)."""
        if self._misses > _SKIP_ABOVE:
            return None
        data = self.get(key)
        if data is not None:
            self._looked(False)
        return data

    def _looked(self, missed: bool) -> None:
        """Count a look before a lease in the running share of misses (see early_get)."""
        self._misses += ((1.0 if missed else 0.0) - self._misses) * _LOOK_WEIGHT

    def get(self, key: str) -> bytes | memoryview | None:
        raw = self.machine_leases.handed(key)  # read by this thread's lease just now
        if raw is None:
            raw = self._read(key)
        if raw is None:
            return None
        if raw[:4] == _CHUNKED:
            return self._get_chunked(key, raw)
        view = memoryview(raw)
        tag = raw[4:_HEAD] if len(raw) >= _HEAD and raw[:4] == _MAGIC else None
        if tag is None or not self._signer.verify(key, view[_HEAD:], tag):
            self._delete(key)
            self.rejections.report(key, self._signer.why_not(tag))
            return None
        return view[_HEAD:] if len(raw) - _HEAD >= _VIEW_THRESHOLD else raw[_HEAD:]

    def put(
        self,
        key: str,
        data: StoreData,
        *,
        cost: float = 0.0,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Store ``data`` (one buffer, or a list/tuple of pieces of one value: signed piece by
        piece and joined once, into the blob sent to Redis), with ``meta`` beside it. A value
        larger than the server takes is stored in chunks (see ``_put_chunked``)."""
        if not isinstance(key, str) or not key:
            raise StoreError(f"store keys are non-empty strings (RequestId.disk_key), got {key!r}")
        given: list[Any] = list(data) if isinstance(data, list | tuple) else [data]
        pieces: list[bytes | memoryview] = []
        for piece in given:
            try:
                pieces.append(piece if isinstance(piece, bytes) else memoryview(piece).cast("B"))
            except TypeError:
                raise StoreError(f"a store holds bytes; got {type(piece).__name__}") from None
        meta_blob = b"" if meta is None else md.encode(self._signer, key, meta)
        size = sum(map(len, pieces))
        if self.budget is not None and size > self.budget:
            log.info(
                "store %s: value of %d bytes for %s exceeds the budget; not stored", self, size, key
            )
            self._delete(key)
            return
        if self._outage.skip():
            self._not_stored(key)
            return
        if self._max_value is None:
            self._max_value = self._server_limit()
        tag = self._signer.sign(key, pieces)
        chunks = ""
        if size + _HEAD + len(meta_blob) + _CHUNK_MARGIN > self._max_value:
            written = self._put_chunked(key, pieces, size, tag)
            if written is None:
                return
            blob, chunks = written
        else:
            blob = b"".join((_MAGIC, tag, *pieces))
        self._publish(key, blob, size, meta_blob, chunks)

    def _publish(self, key: str, blob: bytes, size: int, meta_blob: bytes, chunks: str) -> None:
        """Set the value (or a chunked value's manifest) with its bookkeeping, in one script:
        refused when this process's lease on the key has passed to a newer holder (fencing).

        While this process holds the key's lease, the script is kept and sent with the lease's
        release, in the same round trip (the engine puts a value just before it leaves the lease;
        nobody else sees the value before the release anyway). ``flush`` and this process's own
        reads of the key send it at once."""
        held = self._held.get(key)
        token, fence = held if held is not None else ("", 0)
        args = [self.prefix, key, blob, size, time.time(), token, fence, meta_blob, chunks]
        if held is not None:
            self._deferred[key] = args
            return
        self._run_put(self._put_script, key, args)

    def _run_put(self, script: Any, key: str, args: list[Any]) -> None:
        """Run a put script (_PUT, or _PUT_RELEASE) and act on what it returns: the store's
        bytes (evict past the budget), -1 fenced off."""
        try:
            total: int | None = int(cast(Any, script(args=args)))
            self._outage.ok()
        except redis_py.RedisError as exc:
            self._fail("put", exc)
            total = None
        if total is None or total < 0:
            if total is not None:
                log.warning(
                    "store %s: value for %s not written: its lease passed to a newer holder "
                    "(fencing token)",
                    self,
                    key,
                )
            self._not_stored(key)
            self._drop_unpublished(key, args[_CHUNKS_ARG])
            return
        if self.budget is not None and total > self.budget:
            self.evict(self.budget)

    def _put_deferred(self, key: str | None = None) -> None:
        """Send the kept put of ``key`` (None: every kept put) now, without the release."""
        for k in list(self._deferred) if key is None else [key]:
            put = self._deferred.pop(k, None)
            if put is None:
                continue
            self._run_put(self._put_script, k, put)

    def _put_chunked(
        self, key: str, pieces: list[bytes | memoryview], size: int, tag: bytes
    ) -> tuple[bytes, str] | None:
        """Write a value larger than the server takes as chunks under a fresh write id; return
        the manifest to publish (signed: the tag covers the whole value) and ``"wid:n"``.

        Chunks first, manifest last: a reader finds either the old value, or the manifest of
        a value whose chunks are all written. Chunks expire after an hour until the manifest is
        published (the put script then makes them permanent), so a writer that dies midway
        leaves nothing behind for long. None when a chunk could not be written."""
        assert self._max_value is not None
        step = max(64 << 10, self._max_value - _CHUNK_MARGIN)
        wid = os.urandom(8).hex()
        prefix = self._chunk_prefix(key) + wid + ":"
        n = 0
        try:
            for chunk in _chunks(pieces, step):
                self._r.set(prefix + str(n), chunk, px=_ORPHAN_MS)
                n += 1
            self._outage.ok()
        except redis_py.RedisError as exc:
            self._fail("put", exc)
            self._not_stored(key)
            self._drop_unpublished(key, f"{wid}:{n + 1}")
            return None
        manifest = b"".join((_CHUNKED, tag, f"{wid}:{n}:{size}".encode()))
        return manifest, f"{wid}:{n}"

    def _drop_unpublished(self, key: str, chunks: str) -> None:
        if not chunks:
            return
        wid, n = chunks.split(":")
        prefix = self._chunk_prefix(key) + wid + ":"
        with contextlib.suppress(redis_py.RedisError):
            self._r.delete(*(prefix + str(i) for i in range(int(n))))

    def _get_chunked(self, key: str, manifest: bytes) -> bytes | memoryview | None:
        """A chunked value: its chunks read one by one into one buffer, then verified whole."""
        tag = manifest[4:_HEAD]
        try:
            wid, n_text, size_text = manifest[_HEAD:].decode("ascii").split(":")
            n, size = int(n_text), int(size_text)
            int(wid, 16)
        except ValueError:
            n = size = -1
        if len(tag) != TAG_SIZE or n < 1 or size < 0:
            self._delete(key)
            self.rejections.report(key, "its chunk manifest is malformed")
            return None
        buf = bytearray(size)
        offset = 0
        prefix = self._chunk_prefix(key) + wid + ":"
        try:
            for i in range(n):
                chunk = cast(bytes | None, self._r.get(prefix + str(i)))
                if chunk is None or offset + len(chunk) > size:
                    return None  # replaced or removed meanwhile: a plain miss
                buf[offset : offset + len(chunk)] = chunk
                offset += len(chunk)
        except redis_py.RedisError as exc:
            self._fail("get", exc)
            return None
        view = memoryview(buf)
        if offset != size or not self._signer.verify(key, view, tag):
            self._delete(key)
            self.rejections.report(key, self._signer.why_not(tag))
            return None
        return view

    def _delete(self, key: str) -> bool:
        if self._outage.skip():
            return False
        try:
            return bool(
                cast(
                    Any,
                    self._delete_script(args=[self.prefix, key]),
                )
            )
        except redis_py.RedisError as exc:
            self._fail("delete", exc)
            return False

    def delete(self, key: str) -> bool:
        if self._deferred:
            self._put_deferred(key)
        return self._delete(key)

    def contains(self, key: str) -> bool:
        if self._deferred:
            self._put_deferred(key)
        if self._outage.skip():
            return False
        try:
            return bool(self._r.exists(self._vkey(key)))
        except redis_py.RedisError as exc:
            self._fail("contains", exc)
            return False

    def keys(self) -> Iterator[str]:
        if self._deferred:
            self._put_deferred()
        if self._outage.skip():
            return iter(())
        try:
            found = [
                (k.decode() if isinstance(k, bytes) else str(k))
                for k, _v in self._r.hscan_iter(self._sizes)
            ]
        except redis_py.RedisError as exc:
            self._fail("keys", exc)
            found = []
        return iter(found)

    # -- metadata (see ``metadata``) ----------------------------------------------------------

    keeps_metadata = True

    def metadata(self, key: str) -> dict[str, Any] | None:
        """The authenticated metadata ``key`` was put with, or None."""
        if self._deferred:
            self._put_deferred(key)
        if self._outage.skip():
            return None
        try:
            raw = cast(bytes | None, self._r.hget(self._meta, key))
        except redis_py.RedisError as exc:
            self._fail("metadata", exc)
            return None
        return md.decode(self._signer, key, raw)

    def entries(self, prefix: str = "") -> Iterator[md.EntryInfo]:
        """Every entry whose key starts with ``prefix``: key, size, authenticated metadata."""
        if self._deferred:
            self._put_deferred()
        if self._outage.skip():
            return iter(())
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        try:
            sized: list[tuple[str, int]] = []
            for k, v in self._r.hscan_iter(self._sizes, match=pattern, count=1000):
                sized.append((k.decode() if isinstance(k, bytes) else str(k), int(v)))
            found: list[md.EntryInfo] = []
            for start in range(0, len(sized), 500):
                batch = sized[start : start + 500]
                raws = cast(list[Any], self._r.hmget(self._meta, [k for k, _ in batch]))
                for (k, size), raw in zip(batch, raws, strict=True):
                    found.append(md.EntryInfo(k, size, md.decode(self._signer, k, raw)))
        except redis_py.RedisError as exc:
            self._fail("entries", exc)
            return iter(())
        return iter(sorted(found, key=lambda e: e.key))

    def usage(self) -> StoreUsage:
        if self._deferred:
            self._put_deferred()
        if self._outage.skip():
            return StoreUsage(0, 0, self.budget)
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.hlen(self._sizes)
            pipe.get(self._bytes)
            entries, nbytes = pipe.execute()
        except redis_py.RedisError as exc:
            self._fail("usage", exc)
            entries, nbytes = 0, 0
        return StoreUsage(int(entries or 0), int(nbytes or 0), self.budget)

    def evict(self, target_bytes: int | None = None) -> int:
        if self._deferred:
            self._put_deferred()
        if self._touches:  # (least recently used: as of every hit)
            self._send_touches()
        target = self.budget if target_bytes is None else target_bytes
        if target is None or self._outage.skip():
            return 0
        try:
            raw = cast(
                list[bytes],
                self._evict_script(args=[self.prefix, max(0, target)]),
            )
        except redis_py.RedisError as exc:
            self._fail("evict", exc)
            return 0
        evicted = [k.decode() for k in raw]
        if self.on_evict is not None:
            for key in evicted:
                try:
                    self.on_evict(key)
                except Exception:
                    log.exception("store %s: on_evict callback failed for %s", self, key)
        return len(evicted)

    def lease(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """Cross-process single flight for ``key`` (see the module docstring). Yields True when
        the caller should compute and put the value, False when another holder put it meanwhile.
        When ``timeout`` passes first, or Redis fails, yields True without the lease.

        Copies on one machine agree among themselves first (see ``_machine``): one takes the
        lease here, the others wait for it on a file lock and then look once with a plain
        read (what a hit costs, a third of the take script on the server), handed to the get
        that follows; only when the value is not there (its holder failed) do they go on to
        the lease."""
        return self.machine_leases.lease(
            key, timeout, self.shared_lease, self._look, self.lease_lives, self.lease_ttl / 2
        )

    def _look(self, key: str) -> bool:
        """Whether the value is here now (read once, unverified: the get that follows in this
        thread takes what was read, and verifies it)."""
        raw = self._read(key)
        if raw is None:
            return False
        self.machine_leases.hand(key, raw)
        return True

    def lease_lives(self, key: str) -> Callable[[], bool]:
        """A check whether some holder's lease on ``key`` lives (they expire on the server when
        their holder stops renewing them); yes when the server cannot say."""
        name = self._lease_name(key)

        def lives() -> bool:
            if self._outage.skip():
                return True
            try:
                return bool(self._r.exists(name))
            except redis_py.RedisError as exc:
                self._fail("lease", exc)
                return True

        return lives

    def shared_lease(
        self, key: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """The lease on the server alone, without the machine's (see :meth:`lease`)."""
        return self._lease(key, timeout)

    def _lease_name(self, key: str) -> str:
        return self.prefix + _LEASE + key

    @contextlib.contextmanager
    def _lease(self, key: str, timeout: float | None) -> Iterator[bool]:
        name = self._lease_name(key)
        token = os.urandom(16).hex()
        if self._deferred:  # this process's value, kept for its release, is there to find
            self._put_deferred(key)
        fence = self._acquire(key, name, token, timeout)
        if fence is None:
            yield False  # the value is present (or appeared while we waited)
            return
        if not fence:
            yield True  # timed out, or Redis failed: compute without the lease
            return
        self._held[key] = (token, fence)  # puts of this key carry them (fencing)
        self._renew_while_held(name, token)
        try:
            yield True  # the value was absent when the lease was taken (same script)
        finally:
            if self._held.get(key, ("", 0))[0] == token:
                del self._held[key]
            with self._renewer_lock:
                if self._renewing.get(name) == token:
                    del self._renewing[name]
            put = self._deferred.pop(key, None)
            if put is None:
                try:
                    self._release_script(args=[self.prefix, key, token])
                except redis_py.RedisError as exc:
                    self._fail("lease release", exc)
            else:  # the value put inside the lease, and the release, in one round trip
                self._run_put(self._put_release_script, key, put)

    def _wake_name(self, key: str) -> str:
        return self.prefix + _WAKE_LIST + key

    def _acquire(self, key: str, name: str, token: str, timeout: float | None) -> int | None:
        """The lease's fencing number (> 0) when it is ours; 0: compute without it (timed out,
        or Redis failed); None: the value is present (handed to this thread's next get when
        the script returned it: see ``_machine``).

        A waiter blocks on the key's wake list (see ``_WAKE``), woken when the holder leaves;
        the block ends every ``lease_ttl/16`` seconds at most (a holder that died wakes no
        one: its lease expires, and the waiter takes it at its next look)."""
        if self._outage.skip():
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        args: list[str | float] = [self.prefix, key, token, time.time()]
        try:
            got = self._take(key, args)
            self._looked(got is not None)  # (absent: ours to compute, or another's computing)
            if got != 0:
                return got
            wake = self._wake_name(key)
            # The holder's release wakes us; the block ends anyway every lease_ttl/16 (to see a
            # holder that died), and below the socket's deadline (not to be taken for a dead
            # server).
            most = min(self.lease_ttl / 16, self.timeout / 2)
            with waiting():
                while True:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        log.info("store %s: lease %s not granted in %ss", self, name, timeout)
                        return 0
                    block = most if remaining is None else min(most, remaining)
                    self._r.blpop([wake], timeout=max(0.01, block))
                    args[3] = time.time()
                    got = self._take(key, args)
                    if got != 0:
                        return got
        except redis_py.RedisError as exc:
            self._fail("lease", exc)
            return 0

    def _take(self, key: str, args: list[str | float]) -> int | None:
        """One try of the take script: the fencing number, 0 (held by another) or None (the
        value is present; handed over when the script returned it)."""
        got = self._take_script(args=args)
        self._outage.ok()  # (the request that probes a store that was away may be this one)
        if isinstance(got, bytes):
            self.machine_leases.hand(key, got)
            return None
        number = int(cast(Any, got))
        return None if number < 0 else number

    def _renew_while_held(self, name: str, token: str) -> None:
        """Have this store's renewer (one thread for every lease the store holds) renew the
        lease ``name``; start the thread when none runs (first lease, or after a fork)."""
        with self._renewer_lock:
            self._renewing[name] = token
            thread = self._renewer
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._renew, daemon=True, name="reckon-redis-leases"
                )
                self._renewer = thread
                thread.start()

    def _renew(self) -> None:
        """Renew every held lease four times per ``lease_ttl``, in one round trip; stop when
        none is held (the next lease starts the thread again) or the store is closed."""
        while not self.closed:
            time.sleep(self.lease_ttl / 4)
            with self._renewer_lock:
                held = list(self._renewing.items())
                if not held:
                    self._renewer = None
                    return
            try:
                pipe = self._r.pipeline(transaction=False)
                for name, token in held:
                    self._renew_script(keys=[name], args=[token], client=pipe)
                renewed = pipe.execute()
            except redis_py.RedisError as exc:
                self._fail("lease renewal", exc)
                continue
            for (name, token), ok in zip(held, renewed, strict=True):
                if not ok:
                    with self._renewer_lock:
                        lost = self._renewing.get(name) == token
                        if lost:
                            del self._renewing[name]
                    if lost:
                        log.warning("store %s: lease %s expired while held", self, name)

    def _not_stored(self, key: str) -> None:
        self.unstored += 1
        if len(self._failed) < 10_000:
            self._failed.append(key)

    def flush(self) -> list[str]:
        """Sends the puts kept for a lease's release (see ``_publish``); other writes are
        synchronous. Returns the keys whose puts did not reach the server since the last
        flush."""
        if self._deferred:
            self._put_deferred()
        if self._touches:
            self._send_touches()
        failed, self._failed = self._failed, []
        return failed

    def close(self) -> None:
        if self._deferred:
            self._put_deferred()
        if self._touches:
            self._send_touches()
        self.closed = True
        urls.forget(self)
        if self._owns_client:
            self._r.close()


def _chunks(pieces: list[bytes | memoryview], step: int) -> Iterator[bytes | memoryview]:
    """The concatenation of ``pieces`` cut into consecutive chunks of ``step`` bytes (the last
    one shorter); a chunk inside one piece is a view of it, not a copy."""
    pending: list[bytes | memoryview] = []
    have = 0
    for piece in pieces:
        view = memoryview(piece).cast("B") if not isinstance(piece, memoryview) else piece
        while len(view):
            take = min(step - have, len(view))
            pending.append(view[:take])
            have += take
            view = view[take:]
            if have == step:
                yield pending[0] if len(pending) == 1 else b"".join(pending)
                pending, have = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else b"".join(pending)
