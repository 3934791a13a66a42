"""reckon.memo.impurity: clocks, randomness, the environment and file I/O, found transitively."""

from __future__ import annotations

import datetime
import os
import random
import time
import uuid
from datetime import datetime as DateTime
from pathlib import Path
from time import perf_counter as tick
from typing import Any

import numpy as np

from reckon.memo.helpers import FileContents
from reckon.memo.impurity import find_impurities

# Module-level functions: the scan resolves globals of this module.


def pure(x: int) -> int:
    return x * 2 + len(str(x))


def uses_time() -> float:
    return time.time()


def uses_alias() -> float:
    return tick()


def uses_random() -> float:
    return random.random() + random.randint(1, 2)


def uses_environ() -> Any:
    return os.environ.get("HOME"), os.getenv("PATH")


def uses_now() -> Any:
    return DateTime.now(), datetime.date.today(), datetime.datetime.utcnow()


def uses_uuid() -> Any:
    return uuid.uuid4(), uuid.uuid1()


def uses_open(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def uses_pathlib(path: str) -> str:
    return Path(path).read_text()


def uses_local_import() -> Any:
    import secrets
    from os import environ

    return secrets.token_hex(4), environ["HOME"]


def uses_numpy_global_rng() -> Any:
    return np.random.rand(3)


def helper_with_clock() -> float:
    return time.monotonic()


def indirect(x: int) -> float:
    return helper_with_clock() + x


def uses_default(now: Any = time.time) -> Any:
    return now()


class Sampler:
    def draw(self) -> float:
        return self.pick()

    def pick(self) -> float:
        return random.choice([1.0, 2.0])


def test_pure_function_has_no_impurities() -> None:
    assert find_impurities(pure) == []
    assert find_impurities(len) == []
    assert find_impurities(np.linalg.norm) == []  # library code is not searched


def test_direct_references() -> None:
    assert find_impurities(uses_time) == ["calls time.time"]
    assert find_impurities(uses_alias) == ["calls time.perf_counter"]
    assert find_impurities(uses_random) == ["calls random.randint", "calls random.random"]
    assert find_impurities(uses_environ) == ["reads os.environ", "reads os.environ (os.getenv)"]
    assert set(find_impurities(uses_now)) == {
        "calls datetime.datetime.now",
        "calls datetime.date.today",
        "calls datetime.datetime.utcnow",
    }
    assert set(find_impurities(uses_uuid)) == {"calls uuid.uuid1", "calls uuid.uuid4"}
    assert find_impurities(uses_open) == ["opens files (open)"]
    assert find_impurities(uses_pathlib) == ["touches the file system (pathlib.Path.read_text)"]
    assert find_impurities(uses_numpy_global_rng) == ["calls numpy.random.rand"]
    assert find_impurities(uses_default) == ["calls time.time"]


def test_imports_inside_the_function() -> None:
    assert set(find_impurities(uses_local_import)) == {
        "calls secrets.token_hex",
        "reads os.environ",
    }


def test_transitive_through_user_code() -> None:
    assert find_impurities(indirect) == [f"calls time.monotonic (in {__name__}.helper_with_clock)"]
    found = find_impurities(Sampler.draw)
    assert found == [f"calls random.choice (in {__name__}.Sampler.pick)"]


def test_exec_and_closures() -> None:
    ns: dict[str, Any] = {"__name__": "impure_ns", "time": time}

    exec("def f():\n    return time.time_ns()\n", ns)
    assert find_impurities(ns["f"]) == ["calls time.time_ns"]

    def outer() -> Any:
        clock = time.process_time

        def inner() -> float:
            return clock()

        return inner

    assert find_impurities(outer()) == ["calls time.process_time"]


def test_result_is_cached_and_copied() -> None:
    first = find_impurities(uses_time)
    first.append("mutated by the caller")
    assert find_impurities(uses_time) == ["calls time.time"]


def reads_file_contents(src: FileContents) -> str:
    with open(src) as fh:
        return fh.read()


def builds_file_contents(path: str) -> Any:
    return FileContents(path), Path(path).read_text(), time.time()


def test_file_io_with_file_contents_is_not_reported() -> None:
    assert find_impurities(reads_file_contents) == []
    assert find_impurities(builds_file_contents) == ["calls time.time"]


class Store:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def total(self) -> int:
        return self.count() * 2

    def count(self) -> int:
        return len(self.rows)

    def save(self, path: str) -> None:
        with open(path, "w") as fh:
            fh.write(str(self.rows))

    @property
    def stamp(self) -> float:
        return time.time()

    def stamped(self) -> float:
        return self.stamp


def test_methods_are_blamed_only_for_what_they_may_call() -> None:
    assert find_impurities(Store.total) == []  # save() opens files, but total never calls it
    assert find_impurities(Store.stamped) == [f"calls time.time (in {__name__}.Store.stamp)"]


def reads_argv_and_cwd() -> Any:
    import sys

    return sys.argv[1:], os.getcwd()


def test_command_line_and_working_directory() -> None:
    assert set(find_impurities(reads_argv_and_cwd)) == {
        "reads sys.argv",
        "reads the working directory (os.getcwd)",
    }
