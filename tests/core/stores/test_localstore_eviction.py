"""Eviction under small budgets: LRU by access time, GreedyDual-Size by cost per byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reckon.core.stores import LocalStore
from reckon.errors import StoreError


@pytest.mark.parametrize("sync", [True, False])
def test_lru_evicts_least_recently_used(tmp_path: Path, sync: bool) -> None:
    evicted: list[str] = []
    s = LocalStore(tmp_path, budget=300, sync=sync, on_evict=evicted.append)
    for k in "abc":
        s.put(k, k.encode() * 100)
    s.flush()
    assert s.get("a") == b"a" * 100  # a is now more recent than b and c
    s.put("d", b"d" * 100)
    s.flush()
    assert evicted == ["b"]
    assert s.get("b") is None and s.get("a") is not None
    s.put("e", b"e" * 200)
    s.flush()
    # c is the oldest, then d (a and d were read after), and e needs 200 bytes
    assert evicted == ["b", "c", "d"]
    assert sorted(s.keys()) == ["a", "e"]
    assert s.usage().bytes == 300
    s.close()


def test_lru_order_survives_reopen(tmp_path: Path) -> None:
    s = LocalStore(tmp_path, budget=None, sync=True)
    for k in "abc":
        s.put(k, k.encode() * 100)
    s.get("a")
    s.close()  # access times are batched; close persists them
    s = LocalStore(tmp_path, budget=300, sync=True)
    assert s.evict(200) == 1
    assert sorted(s.keys()) == ["a", "c"]
    assert s.evict(0) == 2
    assert s.usage().entries == 0
    s.close()


def test_lru_with_file_values_and_shared_objects(tmp_path: Path) -> None:
    evicted: list[str] = []
    big = os.urandom(10_000)
    s = LocalStore(tmp_path, budget=25_000, sync=True, on_evict=evicted.append)
    s.put("x1", big)
    s.put("x2", big)  # shares x1's file: costs nothing more
    s.put("y", os.urandom(10_000))
    assert s.usage().bytes == 20_000
    s.put("z", os.urandom(10_000))  # 30,000 > 25,000: x1 goes, but its file is still x2's
    assert evicted == ["x1", "x2"]
    assert s.usage().bytes == 20_000
    assert bytes(s.get("y") or b"") != b"" and s.get("x2") is None
    s.close()


def test_gds_evicts_cheapest_per_byte(tmp_path: Path) -> None:
    evicted: list[str] = []
    s = LocalStore(tmp_path, budget=300, policy="gds", sync=True, on_evict=evicted.append)
    s.put("a", b"a" * 100, cost=1.0)  # 0.01 per byte
    s.put("b", b"b" * 100, cost=10.0)  # 0.1
    s.put("c", b"c" * 100, cost=5.0)  # 0.05
    s.put("d", b"d" * 100, cost=3.0)  # 0.03: over budget, a is the cheapest
    assert evicted == ["a"]
    # The clock is now 0.01: a free entry is worth the clock alone, less than anything kept
    s.put("e", b"e" * 100, cost=0.0)
    assert evicted == ["a", "e"]
    # Size matters: same cost, ten times the bytes, a tenth of the priority
    s.put("f", b"f" * 50, cost=4.0)  # 0.01 + 0.08
    assert evicted == ["a", "e", "d"]
    assert sorted(s.keys()) == ["b", "c", "f"]
    s.close()


def test_gds_hit_refreshes_priority(tmp_path: Path) -> None:
    evicted: list[str] = []
    s = LocalStore(tmp_path, budget=200, policy="gds", sync=True, on_evict=evicted.append)
    s.put("a", b"a" * 100, cost=1.0)
    s.put("b", b"b" * 100, cost=2.0)
    s.put("c", b"c" * 100, cost=3.0)  # evicts a (0.01); clock = 0.01
    assert evicted == ["a"]
    s.put("d", b"d" * 100, cost=1.5)  # 0.025 > b's 0.02: b goes; clock = 0.02
    assert evicted == ["a", "b"]
    s.get("c")  # c: 0.02 + 0.03 = 0.05 once the hit is written
    s.put("e", b"e" * 100, cost=2.8)  # 0.048: d (0.025) is the cheapest
    assert evicted == ["a", "b", "d"]
    s.put("f", b"f" * 100, cost=0.5)  # clock 0.025 + 0.005 = 0.03: f itself is cheapest
    assert evicted == ["a", "b", "d", "f"]
    s.close()


def test_value_over_budget_is_not_stored(tmp_path: Path) -> None:
    s = LocalStore(tmp_path, budget=100, sync=True)
    s.put("k", b"small")
    with pytest.raises(StoreError, match="exceeds the store's budget"):
        s.put("k", b"x" * 101)  # sync: a put that does not store says so
    assert s.get("k") is None
    assert s.usage().bytes == 0
    s.close()


def test_evict_without_budget_needs_a_target(tmp_path: Path) -> None:
    s = LocalStore(tmp_path, budget=None)
    s.put("a", b"1" * 10)
    s.put("b", b"2" * 10)
    assert s.evict() == 0
    assert s.evict(10) == 1
    assert s.usage().entries == 1
    s.close()


def test_on_evict_errors_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def boom(key: str) -> None:
        raise RuntimeError("callback broke")

    s = LocalStore(tmp_path, budget=10, sync=True, on_evict=boom)
    s.put("a", b"1" * 10)
    s.put("b", b"2" * 10)
    assert "callback broke" in caplog.text
    assert s.get("b") == b"2" * 10
    s.close()
