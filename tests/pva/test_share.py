"""PVs shared by several `reckon pva serve --share` processes on one real redis-server, read
and written by p4p and pvapy clients on different instances; instances and Redis killed."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PYTHON, Child, child_env, run_p4p_client, start_p4p_client
from .share_support import Instance, RedisProcess

SPEC = """
[pv."share:x"]
type = "d"
value = 1.0

[pv."share:wave"]
type = "ad"
value = [1.0, 2.0]
"""


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path)
    yield proc
    proc.kill()


@pytest.fixture
def instances(tmp_path: Path, redis_proc: RedisProcess) -> Iterator[Any]:
    spec = tmp_path / "pvs.toml"
    spec.write_text(SPEC)
    started: list[Instance] = []

    def start(with_file: bool = True) -> Instance:
        inst = Instance(spec if with_file else None, redis_proc.url)
        started.append(inst)
        return inst

    yield start
    for inst in started:
        inst.stop()


def p4p_put(inst: Instance, value: float) -> None:
    run_p4p_client(f"ctx.put('share:x', {value!r}); emit('ok')", inst.env)


def p4p_get(inst: Instance, name: str = "share:x") -> Any:
    return run_p4p_client(f"emit(plain(ctx.get({name!r}).value))", inst.env)[0]


def p4p_watch(inst: Instance) -> Child:
    """A p4p monitor of share:x on ``inst`` that prints every value it receives."""
    child = start_p4p_client(
        """
import queue
q = queue.Queue()
sub = ctx.monitor('share:x', q.put)
while True:
    emit(float(q.get(timeout=60).value))
""",
        inst.env,
    )
    return child


#: how long a change may take to reach another instance before a test gives up: a bound for a
#: hung test on a loaded machine (each check may start a client process), not an expectation
PATIENCE = 60.0


def wait_for(child: Child, value: float, timeout: float = PATIENCE) -> list[float]:
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1] != value:
        seen.append(child.read_json(timeout=max(0.1, deadline - time.monotonic())))
    return seen


def pvapy(inst: Instance, code: str) -> Any:
    """Run a snippet with pvapy (pvAccessCPP's client) against ``inst``; its last JSON line."""
    pytest.importorskip("pvaccess")
    script = "import json, pvaccess as pva\n" + code
    proc = subprocess.run(
        [PYTHON, "-c", script],
        env=child_env(inst.env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_put_on_one_instance_reaches_monitors_on_the_others(instances: Any) -> None:
    one, two, three = instances(), instances(), instances()
    assert len({one.guid, two.guid, three.guid}) == 3 and one.host
    watch = p4p_watch(three)
    try:
        assert watch.read_json() == 1.0
        p4p_put(one, 42.0)  # p4p on instance 1, seen by p4p on instance 3
        assert wait_for(watch, 42.0)[-1] == 42.0
        # pvapy (pvAccessCPP) on instance 2: its put reaches instance 3's monitor too
        pvapy(two, "c = pva.Channel('share:x'); c.putDouble(43.0); print(json.dumps(1))")
        assert wait_for(watch, 43.0)[-1] == 43.0
        deadline = time.monotonic() + PATIENCE  # instance 1 applies it in its own time
        while pvapy(one, "print(json.dumps(pva.Channel('share:x').get()['value']))") != 43.0:
            assert time.monotonic() < deadline, "pvapy on instance 1 never saw 43"
        # arrays too
        run_p4p_client("ctx.put('share:wave', [5.0, 6.0, 7.0]); emit(1)", two.env)
        deadline = time.monotonic() + PATIENCE
        while p4p_get(three, "share:wave") != [5.0, 6.0, 7.0]:
            assert time.monotonic() < deadline, "the array put did not reach instance 3"
            time.sleep(0.05)
    finally:
        watch.kill()


def test_an_instance_without_a_file_serves_what_the_deployment_shares(instances: Any) -> None:
    first = instances()
    p4p_put(first, 7.5)
    bare = instances(with_file=False)  # `reckon pva serve --share URL`: no FILE
    assert p4p_get(bare) == 7.5
    assert p4p_get(bare, "share:wave") == [1.0, 2.0]
    watch = p4p_watch(first)
    try:
        run_p4p_client("ctx.put('share:x', 8.5); emit('ok')", bare.env)
        assert wait_for(watch, 8.5)[-1] == 8.5  # a put on the bare instance reaches the first
    finally:
        watch.kill()


def test_kill_9_of_an_instance_loses_nothing(instances: Any, redis_proc: RedisProcess) -> None:
    one, _two, three = instances(), instances(), instances()
    watch = p4p_watch(three)
    try:
        assert watch.read_json() == 1.0
        p4p_put(one, 44.0)
        one.kill()  # SIGKILL right after the put returned
        assert wait_for(watch, 44.0)[-1] == 44.0
        four = instances()  # a new instance starts with the current value
        assert p4p_get(four) == 44.0
        live = redis_proc.client().hkeys("reckon:pva:instances")
        assert four.guid.encode() in live and three.guid.encode() in live
        p4p_put(four, 45.0)
        assert wait_for(watch, 45.0)[-1] == 45.0
    finally:
        watch.kill()


def test_redis_killed_and_restarted_mid_run(instances: Any, redis_proc: RedisProcess) -> None:
    one, two, three = instances(), instances(), instances()
    watch = p4p_watch(three)
    try:
        assert watch.read_json() == 1.0
        p4p_put(one, 10.0)
        assert wait_for(watch, 10.0)[-1] == 10.0
        redis_proc.kill()
        # every instance keeps serving its last values, and takes puts locally
        assert p4p_get(two) == 10.0
        p4p_put(two, 11.0)
        assert p4p_get(two) == 11.0
        assert p4p_get(three) == 10.0
        redis_proc.start()  # the same port, empty
        # instance 2's put of the outage reaches the others once it is back
        assert wait_for(watch, 11.0)[-1] == 11.0
        assert wait_value(one, 11.0)
        p4p_put(one, 12.0)
        assert wait_for(watch, 12.0)[-1] == 12.0
        assert wait_value(two, 12.0)
        # the store is whole again: a new instance starts with the current values
        assert p4p_get(instances()) == 12.0
        # each instance said once that Redis was gone, and once that it was back
        one.stop()
        err = one.child.err()
        assert err.count("unreachable") == 1 and err.count("is back") == 1, err
    finally:
        watch.kill()


def test_a_frozen_redis_delays_nothing_for_long(instances: Any, redis_proc: RedisProcess) -> None:
    """SIGSTOP Redis: puts are still answered (within the share's timeout) and served locally;
    after SIGCONT the change reaches the other instances."""
    one, two = instances(), instances()
    watch = p4p_watch(two)
    try:
        assert watch.read_json() == 1.0
        redis_proc.freeze()
        try:
            # timed in the client, around the put alone (not the client's start): answered
            # after the share's timeout (2 s), where an unbounded wait would last until SIGCONT
            took = run_p4p_client(
                "import time\n"
                "t = time.monotonic(); ctx.put('share:x', 77.0, timeout=60)\n"
                "emit(time.monotonic() - t)",
                one.env,
                timeout=90,
            )[0]
            assert took < 30
            assert p4p_get(one) == 77.0
        finally:
            redis_proc.thaw()
        assert wait_for(watch, 77.0)[-1] == 77.0
    finally:
        watch.kill()


def wait_value(inst: Instance, value: float) -> bool:
    deadline = time.monotonic() + PATIENCE
    while p4p_get(inst) != value:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return True
