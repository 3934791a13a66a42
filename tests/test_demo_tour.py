"""`reckon demo`, the guided tour: every act shows its key facts, one act runs alone, a failing
or stuck act is reported (exit status 1) without stopping or hanging the tour."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = SRC + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPICS_", "RECKON_OBSERVE"))}
    return env | {"PYTHONPATH": path, "RECKON_CACHE_DIR": str(tmp_path), "COLUMNS": "240"} | extra


def _demo(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reckon.cli", "demo", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **extra),
        timeout=180,
        check=False,
    )


def test_the_tour_shows_each_acts_key_facts(tmp_path: Path) -> None:
    done = _demo(tmp_path)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for act in ("core", "memo", "observe", "pva", "services"):
        assert re.search(rf"act {act} done in \d+\.\d s", out), act
    assert "every act worked" in out

    # 1. core: computed once, shared by 50 callers, a new process reads the store
    assert "NONE   asked twice, computed 2x" in out
    assert "MEMORY asked twice, computed 1x" in out
    assert "50 callers (25 threads, 25 asyncio tasks) got {'shared result'}; computed 1x" in out
    assert re.search(r"a new process read 5 \(store_hit, [\d.]+ ms\), without computing", out)
    assert "recorded tasks" in out

    # 2. memo: miss, hit in memory, hit from disk in a new process, miss after the edit
    assert "analyse(100) = 328350: miss, computed in" in out
    assert re.search(r"analyse\(100\) = 328350: hit in memory, \d+ us", out)
    assert "a new process: analyse(100) = 328350: hit from disk" in out
    assert "edited helper(): return x * x  ->  return x * x + 1" in out
    assert "a new process: analyse(100) = 328450: miss, because the code changed" in out
    assert "analyse.stats() here: hits=1, misses=1," in out

    # 3. observe: the server answered the client about the demo's engine
    url = re.search(r"introspection server on the demo's engine: (http://127\.0\.0\.1:\d+/)", out)
    assert url is not None
    assert f"reckon top {url.group(1)}" in out
    assert re.search(r"Client\.status\(\): engine 'demo', requests=\d+", out)
    assert re.search(r"#\d+ +observed 3\*\*10 +done +computed", out)

    # 4. pva: the PV read back after a put, its monitor, the stats PV, the command line
    assert "get demo:temperature -> 21.5 C" in out
    assert "put demo:temperature 22.5 -> read back 22.5" in out
    assert "updates [22.5, 23.0, 23.5]" in out
    counts = re.search(r"counters\.computed (\d+) -> (\d+)", out)
    assert counts is not None and int(counts.group(2)) > int(counts.group(1))
    assert re.search(
        r"EPICS_PVA_ADDR_LIST=127\.0\.0\.1 EPICS_PVA_BROADCAST_PORT=\d+ reckon pva", out
    )
    assert re.search(r"demo:temperature \d{4}-\d\d-\d\d [\d:.]+ 23\.5", out)

    # 5. services: the vinyl shop answered through its storefront
    assert (
        "RecordPage(bt) -> Blue Train by John Coltrane (1957) $29.00, 1 in stock; "
        "also: Kind of Blue, A Love Supreme" in out
    )
    assert "anonymous Buy(bt) -> UNAUTHENTICATED" in out
    assert "alice Buy(bt) -> order 1: alice bought bt for 2900 cents" in out
    assert "alice Buy(bt) again -> FAILED_PRECONDITION" in out

    assert not (tmp_path / "demo").exists(), "the demo leaves nothing behind"


def test_one_act_alone(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--act", "memo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2. @memoize" in done.stdout and "act memo done" in done.stdout
    assert "a new process: analyse(100) = 328350: hit from disk" in done.stdout
    for other in ("core", "observe", "pva", "services"):
        assert f"act {other} done" not in done.stdout


def test_an_unknown_act_is_refused_with_the_choices(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--act", "nope")
    assert done.returncode == 2
    assert "core, memo, observe, pva, services" in done.stderr


def test_services_without_node_run_a_python_recommendations(tmp_path: Path) -> None:
    # No node on PATH (a machine without Node.js): the same deployment, all in Python.
    done = _demo(tmp_path, "--act", "services", PATH=os.path.dirname(sys.executable))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recommendations runs as Python, in-process" in done.stdout
    assert "recommendations (inprocess)" in done.stdout
    assert "also: Kind of Blue, A Love Supreme" in done.stdout


_BROKEN_TOUR = """
import sys, threading
import reckon.demo as demo
def boom(act):
    raise RuntimeError("this act breaks")
def fine(act):
    act.say("the act after a failure still runs")
def hang(act):
    threading.Event().wait()
demo.ACTS = {"boom": ("an act that fails", boom), "fine": ("an act that works", fine),
             "hang": ("an act that hangs", hang)}
demo.ACT_TIMEOUT = 2.0
sys.exit(demo.run())
"""


@pytest.mark.timeout(120)
def test_a_failing_act_and_a_stuck_act_are_reported_not_hung(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BROKEN_TOUR],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=100,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "act boom FAILED" in out and "RuntimeError: this act breaks" in out
    assert "the act after a failure still runs" in out and "act fine done" in out
    assert "act hang FAILED" in out and "did not finish within 2 s" in out
    assert "failed: boom, hang" in out
    assert not (tmp_path / "demo").exists()
