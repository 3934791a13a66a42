"""RedisStore leases: single flight across processes; a killed holder's lease expires."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

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


def _command_calls(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def test_a_computation_through_the_engine_is_three_round_trips(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The first look (a GET), the lease (one script, which also looks), and the put with the
    release (one script): no fourth round trip."""
    from reckon.core import CachingLevel, Engine, RequestId

    store = RedisStore(redis_url, prefix="rtt:")
    engine = Engine(store=store, memory_budget=0)
    engine.get(RequestId("rtt-warm"), CachingLevel.FULL, lambda: b"warm")  # loads the scripts
    redis_client.config_resetstat()
    assert engine.get(RequestId("rtt"), CachingLevel.FULL, lambda: b"value") == b"value"
    calls = _command_calls(redis_client)
    assert calls.get("evalsha") == 2, calls  # the lease; the put with the release
    assert calls.get("get", 0) - 3 <= 1, calls  # the first look (the scripts' own GETs aside)
    assert "blpop" not in calls, calls
    # ... and the value is there for everyone, with the lease gone
    assert store.get(RequestId("rtt").disk_key) is not None
    assert redis_client.keys("rtt:lease:*") == []
    engine.close()
    store.close()


def test_a_value_put_in_a_lease_is_read_back_in_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The holder's put travels with the release, but a read of the key in the holder's process
    (or its flush) sends it at once: the process sees its own write."""
    store = RedisStore(redis_url, prefix="back:")
    with store.lease(KEY) as mine:
        assert mine
        store.put(KEY, b"mine")
        assert store.get(KEY) == b"mine"
        assert store.contains(KEY)
    other = RedisStore(redis_url, prefix="back:")
    assert other.get(KEY) == b"mine"
    with store.lease("c" * 64) as mine:
        store.put("c" * 64, b"flushed")
        assert store.flush() == []
        assert other.get("c" * 64) == b"flushed"  # flushed: there before the release
    store.close()
    other.close()


def test_lease_scripts_send_few_arguments(redis_url: str, redis_client: redis.Redis) -> None:
    """The scripts of a computation (take the lease; put the value and release it) name their
    keys from the store's prefix in Lua: EVALSHA with no KEYS and a few ARGV (every argument is
    encoded by the client and parsed by the server), seen by MONITOR. A hit is one GET."""
    import threading

    from reckon.core import CachingLevel, Engine, RequestId

    store = RedisStore(redis_url, prefix="args:")
    engine = Engine(store=store, memory_budget=0)
    engine.get(RequestId("args-warm"), CachingLevel.FULL, lambda: b"warm")  # loads the scripts
    sent: list[list[str]] = []
    listening = threading.Event()

    def listen() -> None:
        with redis_client.monitor() as monitor:
            listening.set()
            for seen in monitor.listen():
                words = seen["command"].split(" ")
                if words == ["ECHO", "stop"]:
                    return
                if seen.get("client_type") != "lua":
                    sent.append(words)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    listening.wait(10)
    time.sleep(0.2)
    assert engine.get(RequestId("args"), CachingLevel.FULL, lambda: b"value") == b"value"
    fresh = Engine(store=store, memory_budget=0)  # a hit, memory aside
    assert fresh.get(RequestId("args"), CachingLevel.FULL, lambda: b"other") == b"value"
    with redis.Redis.from_url(redis_url) as other:
        other.echo("stop")
    thread.join(30)
    scripts = [w for w in sent if w[0].upper() == "EVALSHA"]
    assert len(scripts) == 2, sent  # the take; the put with the release
    for words in scripts:
        assert words[2] == "0", words  # no KEYS
    take = scripts[0]  # (the put's arguments hold binary values: only the take's are counted)
    assert take[3:5] == ["args:", RequestId("args").disk_key], take
    assert len(take) - 3 == 4, take  # prefix, key, token, time (10 before: 5 KEYS, 5 ARGV)
    commands = [w[0].upper() for w in sent]
    assert commands.count("GET") == 2 and "ZADD" not in commands, sent  # the miss, the hit
    engine.close()
    fresh.close()
    store.close()
