"""One cache shared by many processes: reckon's shared stores beside Dask's and joblib's answers.

Run: ``python bench/scale.py`` (starts its own redis-server and moto S3 server on 127.0.0.1; a
few minutes). Environment: ``SCALE_TASKS`` (400), ``SCALE_KEYS`` (100), ``SCALE_BIG_MB`` (200),
``SCALE_ONLY`` (comma-separated sections to run: dask, hits, takeover, big, signing; default all),
``SCALE_ROUNDS`` (5: rounds of the Dask rows, each a paired comparison with Dask's ``pure=True``;
five is the fewest whose extremes bracket the median with 90% confidence),
``SCALE_ORDERS`` and ``SCALE_CONFIGS`` (subsets of the Dask rows).

1. Dask, 4 worker processes, TASKS tasks over KEYS keys, a 0.1 s body, in random order and with
   each key's copies at once: body runs per key and wall time, for reckon on Redis, on S3 and on
   Redis with the near tier, beside no memoization, Dask's own ``pure=True``, ``joblib.Memory``
   on a shared directory, and two floors of any cache outside Dask's graph (every copy a task:
   the copies free, and the copies waiting outside the pool for the first, with no store).
2. A store hit (decode included, memory tier off) from the near tier and from the far store,
   beside a LocalStore hit: paired rounds, ratios with their spread.
3. Takeover after ``kill -9`` of a lease holder (Redis, S3).
4. A big value through Redis and S3, beside a raw SET/GET and an s3fs put/get (times, and a
   get's peak of Python allocations as a multiple of the value).
5. The cost of signing: verifying a tag, small and 100 MB, against the hit it is part of.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _paired import paired

TASKS = int(os.environ.get("SCALE_TASKS", "400"))
KEYS = int(os.environ.get("SCALE_KEYS", "100"))
BIG_MB = int(os.environ.get("SCALE_BIG_MB", "200"))
BODY = 0.1
ROUNDS = int(
    os.environ.get("SCALE_ROUNDS", "5")
)  # Dask rounds (paired: every configuration per round)
# Subsets of the Dask rows, comma-separated (default all): SCALE_ORDERS ("random", "copies at once")
# and SCALE_CONFIGS (substrings of the configuration names, e.g. "Redis,S3"; Dask's pure=True
# always runs, as every ratio's denominator).
ORDERS = set(filter(None, os.environ.get("SCALE_ORDERS", "").split(",")))
CONFIGS = set(filter(None, os.environ.get("SCALE_CONFIGS", "").split(",")))
SECTIONS = ("dask", "hits", "takeover", "big", "signing")
ONLY = set(filter(None, os.environ.get("SCALE_ONLY", ",".join(SECTIONS)).split(",")))
if ONLY - set(SECTIONS):
    raise SystemExit(f"SCALE_ONLY: unknown sections {sorted(ONLY - set(SECTIONS))}; use {SECTIONS}")
# One work directory and one local cache directory for the run, the Dask workers' included: they
# start by importing this module again, and must find the run's (as processes of one user on
# one machine share the default cache directory), not make their own.
if "_RECKON_SCALE_WORK" not in os.environ:
    os.environ["_RECKON_SCALE_WORK"] = tempfile.mkdtemp(prefix="reckon-scale-")
    os.environ["RECKON_CACHE_DIR"] = os.path.join(os.environ["_RECKON_SCALE_WORK"], "cache")
WORK = Path(os.environ["_RECKON_SCALE_WORK"])
os.environ.setdefault("RECKON_CACHE_KEY", "reckon scale bench " + uuid.uuid4().hex)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

_MOTO = """
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    import redis

    from reckon._net import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(WORK),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(600):
        try:
            client.ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_s3() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def s3_url(endpoint: str, near: bool = False) -> str:
    import s3fs

    bucket = "scale-" + uuid.uuid4().hex[:12]
    s3fs.S3FileSystem(key="k", secret="s", client_kwargs={"endpoint_url": endpoint}).mkdir(bucket)
    tail = "" if near else "&near=off"
    return f"s3://{bucket}/c?endpoint_url={endpoint}&key=k&secret=s{tail}"


# -- 1. Dask -----------------------------------------------------------------------------------


def body(x: int, log: str) -> int:
    with open(log, "a") as f:
        f.write(f"{x}\n")
    time.sleep(BODY)
    return x * x


def free_copies(x: int, first: bool, log: str) -> int:
    """The floor of any cache outside Dask's graph: the first copy of a key runs the body, the
    others return at once (no store, no waiting). What it costs beyond Dask's ``pure=True`` is
    Dask's own price for scheduling every copy as a task."""
    if first:
        body(x, log)
    return x * x


def waiting_copies(x: int, first: bool, log: str) -> int:
    """The floor of any cache whose copies wait for the one computing, as they must when they
    run at once: the first copy runs the body, the others leave the worker's thread pool (as
    reckon's waiters do) and return when it is done (no store: they poll a marker file)."""
    if first:
        body(x, log)
        Path(f"{log}.{x}.done").touch()
        return x * x
    import distributed

    distributed.secede()
    while not os.path.exists(f"{log}.{x}.done"):
        time.sleep(0.002)
    return x * x


def memoized(url: str) -> Callable[[int, str], int]:
    from reckon import memoize

    return memoize(store=url, assume_pure=True)(body)  # type: ignore[no-any-return]


def orders() -> dict[str, list[int]]:
    copies = TASKS // KEYS
    together = [k for k in range(KEYS) for _ in range(copies)]
    shuffled = list(together)
    random.Random(7).shuffle(shuffled)
    return {"random": shuffled, "copies at once": together}


def dask_rows(
    client: Any, redis_url: str, endpoint: str
) -> list[tuple[str, str, list[float], float]]:
    """Per configuration and order: the wall time of each round and the worst body runs per key
    (every configuration runs once per round, in the same order: paired rounds)."""
    import joblib

    rows: dict[tuple[str, str], tuple[list[float], float]] = {}
    # Warm the workers first (imports, the first store connection): the first configuration
    # measured would otherwise pay for them all.
    warm = str(WORK / "warm-runs")
    Path(warm).touch()
    for fn in (body, memoized(f"{redis_url}?prefix=warm:&near=off")):
        client.gather(client.map(fn, list(range(8)), [warm] * 8, pure=False))
    for order, keys in orders().items():
        if ORDERS and order not in ORDERS:
            continue
        configs: dict[str, Callable[[], Any]] = {}

        def run(
            fn: Callable[..., Any], log: str, pure: bool = False, keys: list[int] = keys
        ) -> Any:
            futures = client.map(fn, keys, [log] * len(keys), pure=pure)
            return client.gather(futures)

        firsts = [i == keys.index(k) for i, k in enumerate(keys)]  # each key's first copy
        configs["no memoization"] = lambda log: run(body, log)
        configs["floor: copies free"] = lambda log, firsts=firsts, keys=keys: client.gather(
            client.map(free_copies, keys, firsts, [log] * len(keys), pure=False)
        )
        configs["floor: copies wait"] = lambda log, firsts=firsts, keys=keys: client.gather(
            client.map(waiting_copies, keys, firsts, [log] * len(keys), pure=False)
        )
        configs["dask pure=True"] = lambda log: run(body, log, pure=True)
        configs["joblib.Memory (shared dir)"] = lambda log: run(
            joblib.Memory(str(WORK / f"joblib-{uuid.uuid4().hex}"), verbose=0).cache(body), log
        )
        configs["reckon Redis"] = lambda log: run(
            memoized(f"{redis_url}?prefix={uuid.uuid4().hex}:&near=off"), log
        )
        configs["reckon S3"] = lambda log: run(memoized(s3_url(endpoint)), log)
        configs["reckon Redis + near"] = lambda log: run(
            memoized(f"{redis_url}?prefix={uuid.uuid4().hex}:"), log
        )
        for _ in range(ROUNDS):
            for name, go in configs.items():
                if CONFIGS and name != "dask pure=True" and not any(c in name for c in CONFIGS):
                    continue
                log = str(WORK / f"runs-{uuid.uuid4().hex}")
                Path(log).touch()
                t0 = time.perf_counter()
                results = go(log)
                wall = time.perf_counter() - t0
                assert results == [k * k for k in keys], f"{name}: wrong values"
                runs = len(Path(log).read_text().split()) / KEYS
                walls, worst = rows.get((name, order), ([], 0.0))
                rows[(name, order)] = ([*walls, wall], max(worst, runs))
    return [(name, order, walls, runs) for (name, order), (walls, runs) in rows.items()]


# -- 2. hits -----------------------------------------------------------------------------------


def hit_rows(redis_url: str) -> list[tuple[str, str]]:
    from reckon.core import CachingLevel, Engine, RequestId, open_store

    out = []
    for size in (8 << 10, 1 << 20):
        value = os.urandom(size)
        rid = RequestId("hit", size)
        prefix = uuid.uuid4().hex
        stores = {
            "LocalStore": open_store(WORK / f"local-{prefix}"),
            "near tier": open_store(f"{redis_url}?prefix={prefix}:&near={WORK}/near-{prefix}"),
            "far (Redis)": open_store(f"{redis_url}?prefix={prefix}:&near=off"),
        }
        engines = {name: Engine(store=s, memory_budget=0) for name, s in stores.items()}
        for e in engines.values():
            e.get(rid, CachingLevel.FULL, lambda value=value: value)
            e.flush()
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(9):
            for name, e in engines.items():
                n = 200 if size < (1 << 20) else 40
                t0 = time.perf_counter()
                for _ in range(n):
                    e.get(rid, CachingLevel.FULL, lambda: b"")
                times[name].append((time.perf_counter() - t0) / n)
        base = times["LocalStore"]
        for name in ("near tier", "far (Redis)"):
            p = paired(times[name], base, higher_is_better=False)
            out.append(
                (
                    f"hit {size >> 10} KiB: {name} / LocalStore",
                    f"{statistics.median(times[name]) * 1e6:9.1f} us vs "
                    f"{statistics.median(base) * 1e6:7.1f} us   cost ratio {1 / p.ratio:5.2f}x "
                    f"[{1 / p.high:.2f}-{1 / p.low:.2f}]",
                )
            )
        for e in engines.values():
            e.close()
    return out


# -- 3. takeover -------------------------------------------------------------------------------

_HOLDER = """
import sys, time
from reckon.core import open_store
store = open_store(sys.argv[1])
with store.lease(sys.argv[2]) as mine:
    print("held", flush=True)
    time.sleep(600)
"""


def takeover(url: str) -> float:
    from reckon.core import RequestId, open_store

    key = RequestId("takeover", uuid.uuid4().hex).disk_key
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, url, key], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    store = open_store(url)
    time.sleep(0.3)
    killed = time.perf_counter()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with store.lease(key) as mine:
        assert mine
        return time.perf_counter() - killed


# -- 4. big values -----------------------------------------------------------------------------


def _peak(read: Callable[[], object], size: int) -> float:
    """The peak of Python allocations (every thread, tracemalloc) during ``read()``, as a
    multiple of ``size``: measured in a pass of its own, apart from the timed one."""
    tracemalloc.start()
    try:
        got = read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del got
    return peak / size


def big_rows(
    redis_url: str, endpoint: str
) -> list[tuple[str, float, float, float, float, float, float]]:
    import redis
    import s3fs

    from reckon.core import RequestId, open_store

    size = BIG_MB << 20
    value = os.urandom(size)
    key = RequestId("big", BIG_MB).disk_key
    rows = []
    store = open_store(f"{redis_url}?prefix=big:&near=off&timeout=60")
    t0 = time.perf_counter()
    store.put(key, value)
    put = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = store.get(key)
    get = time.perf_counter() - t0
    ok = got is not None and len(got) == len(value)
    del got
    peak = _peak(lambda: store.get(key), size)
    store.delete(key)
    client = redis.Redis.from_url(redis_url)
    t0 = time.perf_counter()
    client.set("raw", value)
    raw_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.get("raw")
    raw_get = time.perf_counter() - t0
    raw_peak = _peak(lambda: client.get("raw"), size)
    client.delete("raw")
    name = f"Redis {BIG_MB} MB{'' if ok else ' (NOT STORED)'}"
    rows.append((name, put, get, raw_put, raw_get, peak, raw_peak))
    url = s3_url(endpoint)
    s3 = open_store(url.replace("&near=off", "&near=off&timeout=120"))
    t0 = time.perf_counter()
    s3.put(key, value)
    put = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = s3.get(key)
    get = time.perf_counter() - t0
    ok = got is not None and len(got) == len(value)
    del got
    peak = _peak(lambda: s3.get(key), size)
    fs = s3fs.S3FileSystem(key="k", secret="s", client_kwargs={"endpoint_url": endpoint})
    path = url.split("?")[0].removeprefix("s3://") + "/raw"
    t0 = time.perf_counter()
    fs.pipe_file(path, value)
    raw_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    fs.cat_file(path)
    raw_get = time.perf_counter() - t0
    raw_peak = _peak(lambda: fs.cat_file(path), size)
    name = f"S3 {BIG_MB} MB{'' if ok else ' (NOT STORED)'}"
    rows.append((name, put, get, raw_put, raw_get, peak, raw_peak))
    return rows


# -- 5. signing --------------------------------------------------------------------------------


class NoKey:
    """A signer that signs nothing and trusts everything: the store hit without a key, the
    denominator of what signing adds (the same store and hit path otherwise)."""

    algorithm = "none"
    key_id = "none"

    def sign(self, key: str, data: Any) -> bytes:
        return bytes(33)

    def verify(self, key: str, data: Any, tag: Any) -> bool:
        return True

    def seal(self, record: bytes) -> bytes:
        return bytes(32)

    def check_seal(self, record: bytes, seal: Any) -> bool:
        return True

    def why_not(self, tag: Any) -> str:
        return ""


def _signer(spec: Any) -> Any:
    from reckon.core.stores.signing import Signer

    return Signer(spec) if isinstance(spec, str) else spec


def _added(with_key: list[float], without: list[float]) -> str:
    """The median of the rounds' differences, with its distribution-free 90% interval."""
    from _paired import median_interval

    diffs = sorted(a - b for a, b in zip(with_key, without, strict=True))
    k, _ = median_interval(len(diffs), 0.9)
    return (
        f"{statistics.median(diffs) * 1e6:+7.2f} us [{diffs[k - 1] * 1e6:+.2f} to"
        f" {diffs[len(diffs) - k] * 1e6:+.2f}]"
    )


def signing_rows() -> list[str]:
    """What signing adds to a LocalStore hit: the same store with the process's key and with
    ``NoKey``, hit in alternating paired rounds, in CPU time, so the machine's other load does
    not count (this thread's for small values; the process's for 100 MB: hashing a large value
    uses several threads)."""
    from reckon.core import open_store
    from reckon.core.stores.signing import Signer

    try:
        from reckon.core.stores._seals import SETTLE
    except ImportError:  # a reckon without seals (to measure before and after)
        SETTLE = 0.0

    out = []
    key = "k" * 64
    rounds = 15
    for algorithm in ("auto", "blake3", "hmac-sha256"):
        try:
            signer = Signer("bench", algorithm=algorithm)
        except Exception as exc:
            out.append(f"{algorithm}: unavailable ({exc})")
            continue
        small = os.urandom(100)
        tag = signer.sign(key, small)
        n = 20_000
        verify = []
        for _ in range(rounds):
            t0 = time.thread_time()
            for _ in range(n):
                signer.verify(key, small, tag)
            verify.append((time.thread_time() - t0) / n)
        out.append(f"{algorithm:12} verify 100 B: {statistics.median(verify) * 1e6:6.2f} us")
    signers: dict[str, Any] = {"key": "bench", "no key": NoKey()}  # a Signer from the string
    # small: an inline value (one SELECT and the tag check)
    stores = {
        name: open_store(WORK / f"sign-small-{name.replace(' ', '')}", sync=True, signer=_signer(s))
        for name, s in signers.items()
    }
    small = os.urandom(100)
    for store in stores.values():
        store.put(key, small)
    times: dict[str, list[float]] = {name: [] for name in stores}
    n = 5_000
    for _ in range(rounds):
        for name, store in stores.items():
            get = store.get
            t0 = time.thread_time()
            for _ in range(n):
                get(key)
            times[name].append((time.thread_time() - t0) / n)
    out.append(
        f"hit 100 B (inline) with key {statistics.median(times['key']) * 1e6:6.2f} us,"
        f" without {statistics.median(times['no key']) * 1e6:6.2f} us:"
        f" signing adds {_added(times['key'], times['no key'])}"
    )
    # the same, each hit on another entry: more entries than the signer remembers as verified
    # (its per-key hashers and its recently verified small values), so every tag is computed:
    # the cost of the first hit of a value in a process
    many = [f"{i:064x}" for i in range(16_000)]
    for store in stores.values():
        for k in many:
            store.put(k, os.urandom(100))
    cold: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(rounds):
        for name, store in stores.items():
            get = store.get
            t0 = time.thread_time()
            for k in many:
                get(k)
            cold[name].append((time.thread_time() - t0) / len(many))
    out.append(
        f"hit 100 B, a new entry each time, with key {statistics.median(cold['key']) * 1e6:6.2f} us,"
        f" without {statistics.median(cold['no key']) * 1e6:6.2f} us:"
        f" signing adds {_added(cold['key'], cold['no key'])}"
    )
    for store in stores.values():
        store.close()
    # 100 MB: a memory-mapped file value; the first hit verifies it in full and seals the file,
    # later hits (this process or another) check the seal
    big = os.urandom(100 << 20)
    stores = {
        name: open_store(
            WORK / f"sign-big-{name.replace(' ', '')}", sync=True, signer=_signer(s), budget=None
        )
        for name, s in signers.items()
    }
    for store in stores.values():
        store.put(key, big)
    del big
    time.sleep(SETTLE + 0.1)  # a file is sealed once it has settled (see _seals)
    first = {}
    for name, store in stores.items():
        t0 = time.perf_counter()
        view = store.get(key)
        first[name] = time.perf_counter() - t0
        assert view is not None and len(view) == 100 << 20
        del view
    times = {name: [] for name in stores}
    n = 50
    for _ in range(rounds):
        for name, store in stores.items():
            get = store.get
            t0 = time.process_time()  # every thread's: BLAKE3 hashes a large value on several
            for _ in range(n):
                get(key)
            times[name].append((time.process_time() - t0) / n)
    fresh = {}
    for name, store in stores.items():  # another process's first hit: the seal from the index
        fresh[name] = _fresh_hit(store.path, signers[name], key)
    p = paired(times["key"], times["no key"], higher_is_better=False)
    out.append(
        f"hit 100 MB (mapped) with key {statistics.median(times['key']) * 1e6:6.1f} us,"
        f" without {statistics.median(times['no key']) * 1e6:6.1f} us:"
        f" cost ratio {1 / p.ratio:5.3f}x [{1 / p.high:.3f}-{1 / p.low:.3f}]"
        f" (signing adds {_added(times['key'], times['no key'])})"
    )
    out.append(
        f"hit 100 MB, first in a fresh process (sealed by another): with key"
        f" {fresh['key'] * 1e6:7.1f} us, without {fresh['no key'] * 1e6:7.1f} us"
    )
    out.append(
        f"hit 100 MB, the first after the write (verified in full, then sealed): with key"
        f" {first['key'] * 1e3:6.1f} ms, without {first['no key'] * 1e3:6.1f} ms"
    )
    for store in stores.values():
        store.close()
    return out


_FRESH = """
import pickle, sys, time
from reckon.core.stores import LocalStore
from reckon.core.stores.signing import Signer
path, signer, key = pickle.loads(bytes.fromhex(sys.argv[1]))
store = LocalStore(path, signer=Signer(signer) if isinstance(signer, str) else signer, budget=None)
t0 = time.perf_counter()
view = store.get(key)
took = time.perf_counter() - t0
assert view is not None
print(took)
"""


def _fresh_hit(path: str, signer: Any, key: str) -> float:
    """The best of 3 first hits, each in a new process."""
    import cloudpickle

    arg = cloudpickle.dumps((path, signer, key)).hex()
    best = float("inf")
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _FRESH, arg], capture_output=True, text=True, check=True
        )
        best = min(best, float(out.stdout.strip()))
    return best


def _timed(fn: Callable[..., Any], *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def dask_section(redis_url: str, endpoint: str) -> None:
    import dask
    import distributed

    print(f"== Dask, 4 worker processes, {TASKS} tasks over {KEYS} keys, body {BODY} s")
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        distributed.LocalCluster(
            n_workers=4,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        rows = dask_rows(client, redis_url, endpoint)
    print(f"{'':28} {'order':16} {'wall s':>7} {'runs/key':>9} {'wall / dask pure':>17}")
    for name, order, walls, runs in rows:
        base = next(w for n, o, w, _ in rows if n == "dask pure=True" and o == order)
        p = paired(walls, base, higher_is_better=False)
        spread = f" [{1 / p.high:.2f}-{1 / p.low:.2f}]" if len(walls) > 1 else ""
        print(
            f"{name:28} {order:16} {statistics.median(walls):7.2f} {runs:9.2f}"
            f" {1 / p.ratio:16.2f}x{spread}"
        )


def main() -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    redis_proc, redis_url = start_redis()
    s3_proc, endpoint = start_s3()
    try:
        if "dask" in ONLY:
            dask_section(redis_url, endpoint)
        if "hits" in ONLY:
            print("\n== A hit, memory tier off (decode included), 9 paired rounds")
            for name, text in hit_rows(redis_url):
                print(f"{name:38} {text}")
        if "takeover" in ONLY:
            print("\n== Takeover after kill -9 of the lease holder (default lease 4 s)")
            for name, url in (
                ("Redis", f"{redis_url}?prefix=take:&near=off"),
                ("S3", s3_url(endpoint)),
            ):
                times = [takeover(url) for _ in range(3)]
                print(f"{name:8} " + "  ".join(f"{t:5.2f} s" for t in times))
        if "big" in ONLY:
            print(f"\n== A {BIG_MB} MB value (one round, seconds)")
            print(
                f"{'':22} {'put':>7} {'get':>7} {'raw put':>8} {'raw get':>8}"
                f" {'get peak':>9} {'raw peak':>9}  (peak: Python allocations / value)"
            )
            for name, put, get, raw_put, raw_get, peak, raw_peak in big_rows(redis_url, endpoint):
                print(
                    f"{name:22} {put:7.2f} {get:7.2f} {raw_put:8.2f} {raw_get:8.2f}"
                    f" {peak:8.2f}x {raw_peak:8.2f}x"
                )
        if "signing" in ONLY:
            print("\n== Signing")
            for line in signing_rows():
                print(line)
    finally:
        redis_proc.kill()
        s3_proc.kill()
        redis_proc.wait()
        s3_proc.wait()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
