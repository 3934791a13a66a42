"""``reckon pva web`` and ``reckon pva top`` as real commands, with patterns matched against a
Redis-shared deployment served by ``reckon pva serve --share``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from websockets.sync.client import connect

from .conftest import child_env
from .share_support import PVA_CLI, Instance, RedisProcess

SPEC = """
[pv."view:a"]
type = "d"
value = 1.5

[pv."view:b"]
type = "i"
value = 7

[pv."other:c"]
type = "d"
value = 0.0
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[RedisProcess, Instance]]:
    redis = RedisProcess(tmp_path)
    spec = tmp_path / "pvs.toml"
    spec.write_text(SPEC)
    inst = Instance(spec, redis.url)
    yield redis, inst
    inst.stop()
    redis.kill()


def test_web_command_serves_the_pvs_a_pattern_matches(
    deployment: tuple[RedisProcess, Instance],
) -> None:
    redis, inst = deployment
    proc = subprocess.Popen(
        [*PVA_CLI, "web", "view:*", "--share", redis.url],
        env=child_env(inst.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("reckon pva web: http://127.0.0.1:") and "(2 PVs)" in line, line + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        url = line.split()[3]
        with connect(url.replace("http://", "ws://") + "ws", open_timeout=60) as ws:
            hello = json.loads(ws.recv(timeout=60))
            assert hello["pvs"] == ["view:a", "view:b"]
            seen: dict[str, str] = {}
            deadline = time.monotonic() + 60
            while len(seen) < 2 and time.monotonic() < deadline:
                frame = json.loads(ws.recv(timeout=60))
                if frame["updates"]:
                    seen[frame["name"]] = frame["text"]
        assert seen == {"view:a": "1.5", "view:b": "7"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_pattern_without_share_says_what_to_do(deployment: tuple[RedisProcess, Instance]) -> None:
    _redis, inst = deployment
    r = subprocess.run(
        [*PVA_CLI, "top", "view:*"], env=child_env(inst.env), capture_output=True, text=True
    )
    assert r.returncode == 2 and "--share" in r.stderr


def test_top_command_in_a_pseudo_terminal(deployment: tuple[RedisProcess, Instance]) -> None:
    redis, inst = deployment
    env = {**child_env(inst.env), "COLUMNS": "120", "LINES": "30", "TERM": "xterm-256color"}
    child = pexpect.spawn(
        PVA_CLI[0],
        [*PVA_CLI[1:], "top", "view:*", "--share", redis.url],
        env=env,
        dimensions=(30, 120),
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect("view:a")
        child.expect("1.5")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
