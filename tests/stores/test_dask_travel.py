"""A memoized function travels to Dask workers with every kind of store, and hits there.

A real ``distributed.LocalCluster`` with 4 worker processes. The function is local to the test
(so it goes by value, with its group and store, as code from a notebook does). Each worker must
open the store once, whatever the number of tasks, and see what the others stored.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from _s3_server import s3_options

from reckon import memoize

distributed = pytest.importorskip("distributed")

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import dask

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
        yield client


def _make(url: str, log: str) -> Any:
    @memoize(store=url, assume_pure=True)
    def slow_square(x: int) -> int:
        with open(log, "a") as f:
            f.write(f"{x}\n")
        time.sleep(0.05)
        return x * x

    return slow_square


def _call(f: Any, x: int) -> tuple[int, int, int, int]:
    """The value, and where it was computed: the worker's pid, its engine and store."""
    value = f(x)
    f.group.flush()
    return value, os.getpid(), id(f.group.engine), id(f.group.engine.store)


@pytest.mark.parametrize("kind", ["local", "redis", "s3"])
def test_memoized_function_travels_and_hits(
    kind: str, client: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "local":
        url = str(tmp_path / "cache")
    elif kind == "redis":
        url = request.getfixturevalue("redis_url") + f"?prefix=dask{os.getpid()}-{id(tmp_path)}:"
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        options = s3_options(endpoint)
        url = (
            f"s3://{request.getfixturevalue('s3_bucket')}/cache?endpoint_url={endpoint}"
            f"&key={options['key']}&secret={options['secret']}"
        )
    log = str(tmp_path / "body-runs")
    f = _make(url, log)
    keys = list(range(12))
    first = client.gather(client.map(_call, [f] * len(keys), keys, pure=False))
    again = [x for x in keys for _ in range(4)]
    second = client.gather(client.map(_call, [f] * len(again), again, pure=False))
    assert [r[0] for r in first] == [x * x for x in keys]
    assert [r[0] for r in second] == [x * x for x in again]
    runs = Path(log).read_text().split()
    assert sorted(map(int, runs)) == keys, "each key computed once; the 48 later calls hit"
    engines: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for _value, pid, engine, store in first + second:
        engines[pid].add((engine, store))
    assert len(engines) >= 2, "the tasks ran on several workers"
    assert all(len(seen) == 1 for seen in engines.values()), (
        "one engine and one store per worker, however many tasks unpickled the function"
    )
    # And here, in the process that sent it: a hit as well.
    assert f(5) == 25
    assert len(Path(log).read_text().split()) == len(keys)


def _timed_body(url: str, log: str) -> Any:
    @memoize(store=url, assume_pure=True)
    def slow(x: int) -> int:
        start = time.time()
        time.sleep(1.0)
        with open(log, "a") as f:
            f.write(f"{x} {start} {time.time()}\n")
        return x * x

    return slow


def test_waiting_copies_give_their_worker_slot_away(
    client: Any, tmp_path: Path, redis_url: str, unique: str
) -> None:
    """Each key's eight copies at once on four one-thread workers: those that wait for the
    lease (or for a copy computing in their own worker) leave the worker's pool meanwhile, so the
    next keys' bodies run beside the first instead of after it; each key is still computed once,
    and nothing deadlocks when a waiter that left must rejoin."""
    log = str(tmp_path / "bodies")
    f = _timed_body(f"{redis_url}?prefix=slot{unique}:&near=off", log)
    keys = [k for k in range(4) for _ in range(8)]  # two copies or more per worker
    values = client.gather(client.map(f, keys, pure=False), asynchronous=False)
    assert values == [k * k for k in keys]
    bodies = [line.split() for line in Path(log).read_text().splitlines()]
    assert sorted(int(b[0]) for b in bodies) == list(range(4)), "each key computed once"
    spans = sorted((float(b[1]), float(b[2])) for b in bodies)
    overlapping = max(sum(1 for start, end in spans if start <= t < end) for t, _end in spans)
    assert overlapping >= 2, f"bodies ran one after another: {spans}"


def _until(path: str, limit: float) -> bool:
    """Wait (in a worker) until ``path`` exists, at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_waiter_that_got_the_value_does_not_wait_for_a_free_slot(
    client: Any, tmp_path: Path, redis_url: str, unique: str
) -> None:
    """A copy that waited for another worker's computation, out of its worker's pool, returns
    the value as soon as it is there: it does not queue to rejoin the pool behind the task that
    took its slot meanwhile (here one that runs until the test ends it)."""
    started, release = str(tmp_path / "started"), str(tmp_path / "release")

    @memoize(store=f"{redis_url}?prefix=free{unique}:&near=off", assume_pure=True)
    def computed_once(x: int) -> int:
        Path(started).touch()
        time.sleep(1.0)
        return x * x

    one, two = sorted(client.scheduler_info()["workers"])[:2]
    holder = client.submit(computed_once, 7, workers=[one], allow_other_workers=False, pure=False)
    assert client.submit(_until, started, 60, workers=[two], pure=False).result(90)
    waiter = client.submit(computed_once, 7, workers=[two], allow_other_workers=False, pure=False)
    # Takes the slot the waiter gives away, and keeps it until the test releases it.
    blocker = client.submit(_until, release, 120, workers=[two], pure=False)
    try:
        assert holder.result(60) == 49
        distributed.wait([waiter], timeout=20)  # TimeoutError while the waiter queues
        assert waiter.result() == 49
        assert not blocker.done(), "the slot's new task ended: the test proves nothing"
    finally:
        Path(release).touch()
    assert blocker.result(60)
