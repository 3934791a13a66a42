"""RedisStore leases: single flight across processes; a killed holder's lease expires."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import redis
from _forking import fork_child, wait_exit

from reckon.core.stores import RedisStore

KEY = "b" * 64


def test_two_processes_compute_once(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    log = tmp_path / "computed"
    go_r, go_w = os.pipe()

    def contender() -> None:
        store = RedisStore(redis_url)
        os.read(go_r, 1)
        with store.lease(KEY, timeout=60) as mine:
            if mine:
                with open(log, "a") as f:
                    f.write(f"{os.getpid()}\n")
                time.sleep(0.3)
                store.put(KEY, b"result")
            else:
                assert store.get(KEY) == b"result"
        assert store.get(KEY) == b"result"
        store.close()

    pids = [fork_child(contender) for _ in range(2)]
    os.write(go_w, b"gg")
    assert [wait_exit(p) for p in pids] == [0, 0]
    assert len(log.read_text().splitlines()) == 1
    assert redis_client.keys("reckon:lease:*") == []


def test_heartbeat_keeps_a_live_holder_s_lease(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisStore(redis_url, lease_ttl=0.3)
    with store.lease(KEY) as mine:
        assert mine
        time.sleep(1.0)  # more than three times the ttl
        assert redis_client.exists("reckon:lease:" + KEY)
    assert not redis_client.exists("reckon:lease:" + KEY)
    store.close()


def test_killed_holder_s_lease_expires(redis_url: str, redis_client: redis.Redis) -> None:
    ready_r, ready_w = os.pipe()

    def holder() -> None:
        s = RedisStore(redis_url, lease_ttl=0.5)
        with s.lease(KEY):
            os.write(ready_w, b"r")
            time.sleep(600)

    pid = fork_child(holder)
    assert os.read(ready_r, 1) == b"r"
    store = RedisStore(redis_url, lease_ttl=0.5)
    granted = threading.Event()
    result: list[bool] = []

    def waiter() -> None:
        with store.lease(KEY, timeout=60) as mine:
            result.append(mine)
            granted.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not granted.wait(1.0)  # the holder's heartbeat keeps it
    os.kill(pid, signal.SIGKILL)
    assert wait_exit(pid) == -9
    assert granted.wait(30)
    t.join()
    assert result == [True]
    store.close()


def test_lease_on_present_value_and_timeout(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisStore(redis_url)
    with store.lease(KEY) as mine:
        assert mine is True
        with store.lease(KEY, timeout=0.1) as again:  # held: times out, computes without it
            assert again is True
        store.put(KEY, b"v")
        with store.lease(KEY, timeout=10) as late:  # held, but the value is there: no wait
            assert late is False
    with store.lease(KEY) as after:
        assert after is False
    store.close()


def _calls(client: redis.Redis) -> int:
    """Commands the server has run so far (its own INFO and CONFIG left out)."""
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if not k.startswith(("cmdstat_info", "cmdstat_config"))
    )


def test_a_waiter_is_woken_by_the_release_instead_of_polling(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A waiter blocks until the holder leaves (looking again every lease_ttl/16 meanwhile: 1 s
    here), then finds the value: a wait of two seconds costs the server a few dozen commands
    (scripts' own commands included), not a look every few milliseconds."""
    holder = RedisStore(redis_url, prefix="wake:", lease_ttl=16)
    waiter = RedisStore(redis_url, prefix="wake:", lease_ttl=16)
    ready = threading.Event()
    result: list[bool] = []

    def wait() -> None:
        ready.wait()
        with waiter.lease(KEY) as mine:
            result.append(mine)

    t = threading.Thread(target=wait)
    with holder.lease(KEY) as mine:
        assert mine
        before = _calls(redis_client)
        t.start()
        ready.set()
        time.sleep(2.0)
        holder.put(KEY, b"done")
    t.join(30)
    used = _calls(redis_client) - before
    assert result == [False]  # woken, and the value was there
    assert waiter.get(KEY) == b"done"
    assert used < 80, f"{used} commands for a 2 s wait"
    holder.close()
    waiter.close()
