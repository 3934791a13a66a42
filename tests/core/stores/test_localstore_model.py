"""Property test: random sequences of operations agree with a dict model, in both write modes,
across reopenings, with values inline, in files, memory-mapped and shared."""

from __future__ import annotations

import tempfile
from pathlib import Path

from _store_helpers import check_index_invariants
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reckon.core.stores import LocalStore

VALUES = [b"", b"a", b"tiny" * 4, b"x" * 200, b"y" * 3000, bytes(range(256)) * 20]
KEYS = [f"key{i}" for i in range(6)]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), st.sampled_from(range(len(VALUES)))),
        st.tuples(st.just("get"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("contains"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("flush"), st.just(""), st.just(0)),
        st.tuples(st.just("reopen"), st.just(""), st.just(0)),
        st.tuples(st.just("evict"), st.just(""), st.integers(0, 20_000)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, sync=st.booleans())
def test_store_agrees_with_a_dict(ops: list[tuple[str, str, int]], sync: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        opts = {"sync": sync, "inline_threshold": 100, "mmap_threshold": 4000, "budget": None}
        store = LocalStore(d, **opts)  # type: ignore[arg-type]
        model: dict[str, bytes] = {}
        try:
            for op, key, vi in ops:
                if op == "put":
                    store.put(key, VALUES[vi])
                    model[key] = VALUES[vi]
                elif op == "get":
                    got = store.get(key)
                    assert (None if got is None else bytes(got)) == model.get(key)
                elif op == "delete":
                    assert store.delete(key) == (key in model)
                    model.pop(key, None)
                elif op == "contains":
                    assert store.contains(key) == (key in model)
                elif op == "flush":
                    store.flush()
                elif op == "evict":
                    store.evict(vi)
                    assert store.usage().bytes <= vi
                    kept = set(store.keys())
                    assert kept <= set(model)
                    model = {k: v for k, v in model.items() if k in kept}
                else:
                    store.close()
                    store = LocalStore(d, **opts)  # type: ignore[arg-type]
            assert sorted(store.keys()) == sorted(model)
            store.flush()
            usage = store.usage()
            assert usage.entries == len(model)
            assert usage.bytes == sum(len(v) for v in set(model.values()) if len(v) > 100) + sum(
                len(v) for v in model.values() if len(v) <= 100
            )
        finally:
            store.close()
        check_index_invariants(Path(d))
