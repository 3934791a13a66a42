"""The memory tier against a plain model of LRU-with-pins (hypothesis state machine)."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reckon.core import MemoryTier
from reckon.core.memory import MISSING

KEYS = st.integers(min_value=0, max_value=7)
SIZES = st.integers(min_value=0, max_value=60)


class LruModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.budget = 100
        self.tier = MemoryTier(budget=self.budget)
        self.lru: OrderedDict[int, tuple[object, int]] = OrderedDict()  # least recent first
        self.pinned: dict[int, tuple[object, int, int]] = {}  # key -> (value, size, pins)

    def _bytes(self) -> int:
        return sum(s for _, s in self.lru.values()) + sum(s for _, s, _ in self.pinned.values())

    def _evict(self, target: int) -> None:
        while self._bytes() > target and self.lru:
            self.lru.popitem(last=False)

    def _remove(self, key: int) -> None:
        self.lru.pop(key, None)
        self.pinned.pop(key, None)

    @rule(key=KEYS, size=SIZES, pin=st.booleans())
    def put(self, key: int, size: int, pin: bool) -> None:
        value = object()
        self.tier.put(key, value, size, pin=pin)
        self._remove(key)
        if pin:
            self.pinned[key] = (value, size, 1)
        else:
            self.lru[key] = (value, size)
        self._evict(self.budget)

    @rule(key=KEYS)
    def lookup(self, key: int) -> None:
        got = self.tier.lookup(key)
        if key in self.lru:
            assert got is self.lru[key][0]
            self.lru.move_to_end(key)
        elif key in self.pinned:
            assert got is self.pinned[key][0]
        else:
            assert got is MISSING

    @rule(key=KEYS)
    def pin(self, key: int) -> None:
        ok = self.tier.pin(key)
        if key in self.pinned:
            value, size, pins = self.pinned[key]
            self.pinned[key] = (value, size, pins + 1)
            assert ok
        elif key in self.lru:
            value, size = self.lru.pop(key)
            self.pinned[key] = (value, size, 1)
            assert ok
        else:
            assert not ok

    @precondition(lambda self: bool(self.pinned))
    @rule(data=st.data())
    def unpin(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.pinned)))
        self.tier.unpin(key)
        value, size, pins = self.pinned[key]
        if pins > 1:
            self.pinned[key] = (value, size, pins - 1)
        else:
            del self.pinned[key]
            self.lru[key] = (value, size)
            self._evict(self.budget)

    @rule(key=KEYS)
    def discard(self, key: int) -> None:
        present = key in self.lru or key in self.pinned
        assert self.tier.discard(key) == present
        self._remove(key)

    @rule(budget=st.integers(min_value=0, max_value=150))
    def set_budget(self, budget: int) -> None:
        self.tier.budget = self.budget = budget
        self._evict(budget)

    @rule()
    def clear(self) -> None:
        self.tier.clear()
        self.lru.clear()

    @invariant()
    def same_contents_order_and_bytes(self) -> None:
        assert list(self.tier.keys()) == [*self.lru, *self.pinned]
        assert self.tier.bytes == self._bytes()
        assert len(self.tier) == len(self.lru) + len(self.pinned)
        # Only pinned entries may hold the tier over its budget.
        assert self.tier.bytes <= self.budget or not self.lru


TestMemoryTierModel = LruModel.TestCase
TestMemoryTierModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
