"""Sharing one cache: threads, processes (leases), pools, pickling, Dask workers."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import memo_workers
import pytest

from reckon import MemoizedGroup, memoize


@pytest.fixture
def shared(cache_dir: Path, tmp_path: Path) -> str:
    """Point the worker module's functions at this test's cache; return the body-run log."""
    group = MemoizedGroup(f"workers-{tmp_path.name}", store=cache_dir)
    for fn in (memo_workers.square, memo_workers.slow_square):
        fn.group = group
    return str(tmp_path / "runs.log")


def test_threads_share_one_computation(cache_dir: Path) -> None:
    started = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    @memoize(store=cache_dir)
    def slow(x: int) -> int:
        runs.append(x)
        started.set()
        assert release.wait(30)
        return x + 1

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(1))) for _ in range(8)]
    threads[0].start()
    assert started.wait(30)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(30)
    assert results == [2] * 8
    assert runs == [1]


def _overlapping(n_workers: int, n_overlap: int) -> list[list[int]]:
    values = list(range(100, 100 + n_workers))
    return [[values[(i + k) % n_workers] for k in range(n_overlap)] for i in range(n_workers)]


def test_two_processes_at_once_run_the_body_once(shared: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    fn = memo_workers.slow_square
    procs = [ctx.Process(target=_call_after_barrier, args=(barrier, shared, fn)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    runs = memo_workers.body_runs(shared)
    assert len(runs) == 1, runs
    assert memo_workers.slow_square.would_hit(shared, 7, 1.0)


def _call_after_barrier(barrier: Any, log: str, fn: Any) -> None:
    barrier.wait(60)
    assert fn(log, 7, 1.0) == 49


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_multiprocessing_pool(shared: str, start_method: str) -> None:
    ctx = multiprocessing.get_context(start_method)
    calls = _overlapping(4, 3)
    with ctx.Pool(2) as pool:
        # A bounded wait: a pool whose workers cannot start re-spawns them forever.
        results = pool.starmap_async(
            memo_workers.square_all, [(memo_workers.square, shared, c) for c in calls]
        ).get(timeout=90)
    assert results == [[x * x for x in c] for c in calls]
    unique = {x for c in calls for x in c}
    runs = [int(line.split()[1]) for line in memo_workers.body_runs(shared)]
    assert set(runs) == unique
    assert len(runs) == len(unique), "overlapping calls in different workers ran once"
    assert all(memo_workers.square.would_hit(shared, x) for x in unique)


def test_concurrent_futures_process_pool(shared: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        sq = memo_workers.square
        futures = [pool.submit(sq, shared, x) for x in (1, 2, 1, 2, 3)]
        assert [f.result(120) for f in futures] == [1, 4, 1, 4, 9]
    runs = sorted(int(line.split()[1]) for line in memo_workers.body_runs(shared))
    assert runs == [1, 2, 3]


def test_repeated_multiprocessing(shared: str) -> None:
    """charmonium bug: re-unpickling must not reset what the function already cached."""
    ctx = multiprocessing.get_context("fork")
    for _ in range(3):
        with ctx.Pool(2) as pool:
            jobs = pool.starmap_async(memo_workers.square, [(shared, 5), (shared, 6)])
            assert jobs.get(timeout=90) == [25, 36]
    assert len(memo_workers.body_runs(shared)) == 2


def test_pickle_by_reference_keeps_config(shared: str, cache_dir: Path) -> None:
    memo_workers.square(shared, 2)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        again = loads(dumps(memo_workers.square))
        assert again is memo_workers.square
        assert again.would_hit(shared, 2)
    group = loads(dumps(memo_workers.square.group))
    assert group is memo_workers.square.group


def test_cloudpickle_by_value_for_local_functions(cache_dir: Path) -> None:
    runs: list[int] = []

    @memoize(store=cache_dir)
    def local_square(x: int) -> int:
        runs.append(x)
        return x * x

    local_square(3)
    clone = cloudpickle.loads(cloudpickle.dumps(local_square))
    assert clone is not local_square
    assert clone.would_hit(3), "the clone keys like the original and reads its store"
    assert clone(3) == 9
    assert clone.stats()["misses"] == 0, "state restores configuration, not counters"
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(local_square)  # plain pickle cannot carry a local function


def test_dask_local_cluster_shares_the_cache(shared: str) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    with (
        dask.config.set({"distributed.worker.daemon": False}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        calls = _overlapping(4, 3)
        n = len(calls)
        futures = client.map(
            memo_workers.square_all, [memo_workers.square] * n, [shared] * n, calls, pure=False
        )
        results = client.gather(futures)
        assert results == [[x * x for x in c] for c in calls]
        pids = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(pids) == 2
    unique = {x for c in calls for x in c}
    runs = [line.split() for line in memo_workers.body_runs(shared)]
    assert {int(x) for _pid, x in runs} == unique
    assert len(runs) == len(unique), "each value computed once across both workers"
    assert all(memo_workers.square.would_hit(shared, x) for x in unique)
    # Both workers and this process see one cache: a call here is a hit.
    assert memo_workers.square(shared, min(unique)) == min(unique) ** 2
    assert len(memo_workers.body_runs(shared)) == len(unique)


_RACER = """
import random, sys, time
from reckon import MemoizedGroup, memoize

store, seed, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
group = MemoizedGroup("racers", store=store)


@memoize(group=group, assume_pure=True, name="racers.f")
def f(x):
    time.sleep(0.01)
    with open(store + ".runs", "a") as log:
        log.write(f"{x}\\n")
    return x * x


while time.time() < start:  # every process starts its calls at the same moment
    time.sleep(0.001)
xs = list(range(n))
random.Random(seed).shuffle(xs)
for x in xs:
    assert f(x) == x * x
group.flush()
"""


@pytest.mark.parametrize("same_order", [True, False])
def test_processes_racing_on_one_function_see_no_false_corruption(
    cache_dir: Path, tmp_path: Path, same_order: bool
) -> None:
    """Six processes call one function over the same keys at once. Each key is computed once and
    read back by the others, so no value is ever lost: not one "corrupt" warning may appear
    (a check of the index made after the miss, when another process had stored and indexed
    the value meanwhile, used to report a few per run)."""
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    n = 60
    start = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(cache_dir),
                str(0 if same_order else i),
                str(n),
                f"{start!r}",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    runs = Path(str(cache_dir) + ".runs").read_text().split()
    assert sorted(map(int, runs)) == list(range(n))  # each key computed exactly once
    warned = [line for text in errors for line in text.splitlines() if "corrupt" in line]
    assert warned == []


def test_a_function_sent_by_value_is_rebuilt_once_per_process(cache_dir: Path) -> None:
    """A Dask client sends a local function with every task: the worker keeps one copy of it
    (one prepared function, one entry among the process's memoized functions), not one per
    task, and the sender fingerprints it before sending even if it never called it."""

    @memoize(store=cache_dir)
    def local_cube(x: int) -> int:
        return x**3

    sent = cloudpickle.dumps(local_cube)  # never called here: pickling fingerprints it
    first, second = cloudpickle.loads(sent), cloudpickle.loads(cloudpickle.dumps(local_cube))
    assert first is second is not local_cube
    assert first.fingerprint == local_cube.fingerprint
    assert first(2) == 8 and local_cube.would_hit(2)

    @memoize(store=cache_dir, name=local_cube.name)
    def local_cube_edited(x: int) -> int:  # same name, other code: another copy
        return x**3 + 1

    other = cloudpickle.loads(cloudpickle.dumps(local_cube_edited))
    assert other is not first and other(2) == 9
