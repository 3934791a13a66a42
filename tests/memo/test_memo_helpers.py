"""FileContents, TTL and stdout replay."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from reckon import TTL, FileContents, memoize

calls: list[Any] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def test_filecontents_keys_by_contents_and_restores_outputs(
    cache_dir: Path, tmp_path: Path
) -> None:
    @memoize(store=cache_dir, assume_pure=True)
    def double(infile: FileContents) -> FileContents:
        calls.append(str(infile))
        outfile = infile + ".doubled"
        try:
            text = Path(infile).read_text()
        except FileNotFoundError:
            text = ""
        Path(outfile).write_text(text + " " + text)
        return outfile

    file1 = FileContents(tmp_path / "file1")
    Path(file1).write_text("hello")
    out = double(file1)
    assert isinstance(out, FileContents)
    assert Path(out).read_text() == "hello hello", "reading and writing are transparent"
    assert double.would_hit(file1), "same contents: same key"

    Path(out).write_text("blah blah")
    out = double(file1)
    assert Path(out).read_text() == "hello hello", "a hit puts the output file back"
    os.remove(out)
    double(file1)
    assert Path(out).read_text() == "hello hello"

    Path(file1).write_text("world")
    assert not double.would_hit(file1), "contents changed: a miss"
    assert Path(double(file1)).read_text() == "world world"
    assert len(calls) == 2

    empty = FileContents(tmp_path / "missing")
    double(empty)  # a file that does not exist is a valid argument
    assert len(calls) == 3


def test_filecontents_is_pathlike() -> None:
    f = FileContents("abc")
    assert os.fspath("123" + f) == "123abc"
    assert os.fspath(f + "123") == "abc123"
    assert str(f) == "abc" and repr(f) == "FileContents('abc')"
    assert f == FileContents("abc") and hash(f) == hash(FileContents("abc"))


def test_ttl_argument_buckets_time(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helpers = sys.modules["reckon.memo.helpers"]
    now = [10_000.0]
    monkeypatch.setattr(helpers, "time", types.SimpleNamespace(time=lambda: now[0]))

    @memoize(store=cache_dir)
    def get_now(ttl: TTL) -> float:
        calls.append(now[0])
        return now[0]

    hour = TTL(3600)
    assert get_now(hour) == 10_000.0
    now[0] += 100
    assert get_now(hour) == 10_000.0
    now[0] += 3600
    assert get_now(hour) == 13_700.0
    assert len(calls) == 2
    assert repr(hour) == "TTL(3600)"


def test_replay_stdout(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    @memoize(store=cache_dir, replay_stdout=True)
    def chatty(x: int) -> int:
        print(f"working on {x}")
        return x

    @memoize(store=cache_dir)
    def quiet(x: int) -> int:
        print(f"quiet {x}")
        return x

    chatty(1)
    assert capsys.readouterr().out == "working on 1\n"
    chatty(1)
    assert capsys.readouterr().out == "working on 1\n", "a hit replays what the call printed"
    quiet(1)
    quiet(1)
    assert capsys.readouterr().out == "quiet 1\n", "without replay_stdout a hit prints nothing"


def test_replay_stdout_from_another_process(cache_dir: Path, run_py: Any) -> None:
    code = f"""
        from reckon import memoize
        @memoize(store={str(cache_dir)!r}, replay_stdout=True, name="chatty")
        def chatty(x):
            print("computing", x)
            return x
        chatty(7)
    """
    first = run_py(code)
    second = run_py(code)
    assert first.stdout == second.stdout == "computing 7\n"


async def test_replay_stdout_async_tasks_do_not_mix(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    @memoize(store=cache_dir, replay_stdout=True)
    async def talk(x: int) -> int:
        for i in range(3):
            print(f"{x}.{i}")
            await asyncio.sleep(0)
        return x

    await asyncio.gather(talk(1), talk(2))
    capsys.readouterr()
    await talk(1)
    assert capsys.readouterr().out == "1.0\n1.1\n1.2\n"


def test_replay_logs(cache_dir: Path, caplog: pytest.LogCaptureFixture, run_py: Any) -> None:
    import logging

    log = logging.getLogger("tests.replay")

    @memoize(store=cache_dir, replay_logs=True)
    def train(n: int) -> int:
        log.info("epoch %d of %d", 1, n)
        log.warning("loss is %s", "high")
        return n

    def lines() -> list[tuple[str, int, str]]:
        return [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == log.name]

    caplog.set_level(logging.INFO, logger="tests.replay")
    assert train(2) == 2
    first = lines()
    assert first == [
        ("tests.replay", logging.INFO, "epoch 1 of 2"),
        ("tests.replay", logging.WARNING, "loss is high"),
    ]
    caplog.clear()
    assert train(2) == 2  # a hit logs the same records again
    assert lines() == first
    assert train.stats()["hits"] == 1

    @memoize(store=cache_dir)
    def quiet(n: int) -> int:
        log.info("computing %d", n)
        return n

    quiet(1)
    caplog.clear()
    quiet(1)
    assert lines() == []  # without replay_logs a hit logs nothing

    code = f"""
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")
        from reckon import memoize
        @memoize(store={str(cache_dir)!r}, name="replay.logs", replay_logs=True)
        def g(x):
            logging.getLogger("child").info("made %s", x)
            return x
        g(5)
    """
    assert "child made 5" in run_py(code).stdout
    again = run_py(code + "\n        print('STATS', g.stats()['hits'])").stdout
    assert "child made 5" in again and "STATS 1" in again


def test_task_titles_show_short_arguments_and_never_a_big_repr() -> None:
    import numpy as np

    from reckon.memo.log import task_title

    class Loud:
        def __repr__(self) -> str:  # a repr a title must never call (a DataFrame's is slow)
            raise AssertionError("repr called")

    assert task_title("m.f", (12, 1.5, None), {}) == "m.f(12, 1.5, None)"
    assert task_title("m.f", ("north",), {"window": 7}) == "m.f('north', window=7)"
    assert task_title("m.f", ("x" * 100,), {}) == f"m.f('{'x' * 21}...')"
    assert task_title("m.f", (np.zeros((3, 2)), Loud()), {}) == "m.f(<ndarray 3x2>, <Loud>)"
    assert task_title("m.f", (1, 2, 3, 4), {"k": 5}) == "m.f(1, 2, 3, ...)"
    assert task_title("m.f", (), {}) == "m.f()"
