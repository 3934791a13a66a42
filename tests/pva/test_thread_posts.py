"""Posts from a thread other than the server's loop: every value in order, the last one always
delivered, and one loop wake-up per batch (a tight posting loop must not cost one each)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from reckon.pva import Client, Server, SharedPV, nt
from reckon.pva import pv as pv_module


class _Recorder:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.got: list[float] = []

    def on_post(self, mask: int, value: dict[str, Any]) -> None:
        self.got.append(value["value"])

    def on_close(self) -> None:
        pass


def test_a_burst_from_a_thread_wakes_the_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # a loop that is not running: the poster waits for it once, then stops waiting
    monkeypatch.setattr(pv_module, "YIELD_TIMEOUT", 0.25)
    loop = asyncio.SelectorEventLoop()
    calls = 0
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kw)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        pv = SharedPV(nt.NTScalar("d"), 0.0)
        subs = [_Recorder(loop), _Recorder(loop)]
        for sub in subs:
            pv.subscribe(sub)
        poster = threading.Thread(target=lambda: [pv.post(float(i)) for i in range(1, 501)])
        started = time.monotonic()
        poster.start()
        poster.join()
        # one 0.25 s wait, not one per RUN_AHEAD posts (which would be 31 waits, about 8 s)
        assert time.monotonic() - started < 4
        assert calls == 1  # the loop has not run: all 1,000 updates wait for one drain
        loop.run_until_complete(asyncio.sleep(0))
        for sub in subs:
            assert sub.got == [float(i) for i in range(1, 501)]
        pv.post(7.0)  # from here (no running loop in this thread) it is handed off again
        assert calls == 2
        loop.run_until_complete(asyncio.sleep(0))
        assert subs[0].got[-1] == 7.0
    finally:
        loop.close()


@pytest.mark.parametrize("request_", [None, "record[pipeline=true,queueSize=4]"])
async def test_tight_thread_burst_ends_with_its_last_value(
    pva_env: dict[str, str], request_: str | None
) -> None:
    x = SharedPV(nt.NTScalar("d"), 0.0)
    n = 3000
    async with Server({"t:burst": x}), Client() as c, c.monitor("t:burst", request_) as sub:
        assert (await sub.next(timeout=10)).value["value"] == 0.0
        await asyncio.to_thread(lambda: [x.post(float(i)) for i in range(1, n + 1)])
        seen: list[float] = []
        while not seen or seen[-1] != n:
            seen.append((await sub.next(timeout=20)).value["value"])
        assert seen == sorted(seen) and len(set(seen)) == len(seen)


@pytest.mark.parametrize("queue", [None, 4])
def test_a_thread_poster_gives_the_loop_its_turn(
    monkeypatch: pytest.MonkeyPatch, queue: int | None
) -> None:
    """The loop thread sees each value while the poster is at most two batches ahead: it is
    not starved of the GIL (which squashed a burst into a handful of updates). A batch is twice
    as long as the smallest queue it feeds (a monitor's queueSize), at most RUN_AHEAD."""
    monkeypatch.setattr(pv_module, "YIELD_TIMEOUT", 30.0)  # never give up: the bound is exact
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    posted = 0
    lags: list[int] = []

    class Lagging(_Recorder):
        def on_post(self, mask: int, value: dict[str, Any]) -> None:
            super().on_post(mask, value)
            lags.append(posted - int(value["value"]))

    try:
        pv = SharedPV(nt.NTScalar("d"), 0.0)
        sub = Lagging(loop)
        if queue is not None:
            sub.limit = queue  # type: ignore[attr-defined]
        pv.subscribe(sub)
        n = 2000
        for i in range(1, n + 1):
            pv.post(float(i))
            posted = i
        deadline = time.monotonic() + 20
        while len(sub.got) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sub.got == [float(i) for i in range(1, n + 1)]
        batch = min(pv_module.RUN_AHEAD, 2 * (queue or pv_module.RUN_AHEAD))
        assert max(lags) <= 2 * batch
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


def test_a_poster_running_its_own_loop_never_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Posting from another event loop's thread to a server loop that is not running: the
    posting loop must not stall (a thread without a loop would wait once, YIELD_TIMEOUT)."""
    monkeypatch.setattr(pv_module, "YIELD_TIMEOUT", 5.0)
    server_loop = asyncio.SelectorEventLoop()  # never runs: its posters could only time out
    try:
        pv = SharedPV(nt.NTScalar("d"), 0.0)
        sub = _Recorder(server_loop)
        pv.subscribe(sub)

        async def post_all() -> float:
            started = time.monotonic()
            for i in range(1, 101):
                pv.post(float(i))
            return time.monotonic() - started

        assert asyncio.run(post_all()) < 2.5  # waiting once would take 5 s
        server_loop.run_until_complete(asyncio.sleep(0))
        assert sub.got == [float(i) for i in range(1, 101)]
    finally:
        server_loop.close()


def test_a_subscriber_is_routed_by_the_loop_it_had_when_subscribing() -> None:
    """A post groups its subscribers by the loop each had when it subscribed (read once, not
    per post): one that gets a loop later subscribes again to have its posts go there."""
    loop = asyncio.SelectorEventLoop()  # not running: what is handed to it waits
    try:
        pv = SharedPV(nt.NTScalar("d"), 0.0, timestamp=False)
        sub = _Recorder(loop)
        sub.loop = None  # type: ignore[assignment]
        pv.subscribe(sub)
        sub.loop = loop
        pv.post(1.0)  # still called where it is posted
        assert sub.got == [1.0]
        pv.subscribe(sub)  # (again: now with its loop)
        poster = threading.Thread(target=pv.post, args=(2.0,))
        poster.start()
        poster.join(10)
        assert sub.got == [1.0]  # handed to the loop, which has not run
        loop.run_until_complete(asyncio.sleep(0))
        assert sub.got == [1.0, 2.0]
    finally:
        loop.close()


def test_a_poster_waits_after_twice_the_smallest_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread gets twice its monitors' smallest queue ahead of the loop before it waits for
    it (the queue keeps the first values and squashes the rest into its newest, as pvxs's
    does while its sender is busy); then it waits, here for a loop that never runs."""
    monkeypatch.setattr(pv_module, "YIELD_TIMEOUT", 0.5)
    loop = asyncio.SelectorEventLoop()  # never runs
    try:
        pv = SharedPV(nt.NTScalar("d"), 0.0)
        small, big = _Recorder(loop), _Recorder(loop)
        small.limit, big.limit = 3, 10  # type: ignore[attr-defined]
        pv.subscribe(small)
        pv.subscribe(big)
        started = time.monotonic()
        for i in range(1, 6):  # 5 of 6: no wait
            pv.post(float(i))
        assert time.monotonic() - started < 0.4
        pv.post(6.0)  # the sixth waits (in vain: the loop is not running)
        assert time.monotonic() - started >= 0.5
        loop.run_until_complete(asyncio.sleep(0))
        assert small.got == big.got == [float(i) for i in range(1, 7)]
    finally:
        loop.close()
