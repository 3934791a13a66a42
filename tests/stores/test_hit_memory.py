"""A hit's peak memory: reading a large array back costs at most 1.5x the array.

Measured with tracemalloc in the reading process, on a fresh engine (nothing in memory), so what
is counted is the store's read, the signature check and the decode. tracemalloc sees Python and
numpy allocations, not file mappings: on a LocalStore an array decoded straight from the mapped
file costs (almost) nothing here, which is the point. It sees every thread, so on S3 the HTTP
client's buffers (s3fs reads on its own I/O thread) are counted too.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable

import pytest

from reckon.core import CachingLevel, Engine, RequestId, open_store

np = pytest.importorskip("numpy")

SIZE = 32 << 20


@pytest.mark.parametrize("kind", ["local", "redis", "s3"])
def test_an_array_hit_peaks_under_one_and_a_half_times_its_size(
    kind: str, store_url: Callable[..., str]
) -> None:
    options = {"local": {}, "s3": {"near": "off", "timeout": 60}}
    url = store_url(
        kind,
        "store" if kind == "local" else "mem",
        **options.get(kind, {"near": "off", "timeout": 30}),
    )
    rid = RequestId("hit-memory", kind)
    value = np.frombuffer(os.urandom(SIZE), dtype=np.uint8)
    with Engine(store=open_store(url)) as writer:
        writer.get(rid, CachingLevel.FULL, lambda: value)
        assert writer.flush() == []
    with Engine(store=open_store(url)) as reader:
        tracemalloc.start()
        try:
            got = reader.get(rid, CachingLevel.FULL, lambda: None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got is not None and np.array_equal(got, value)
    assert peak < 1.5 * SIZE, f"a hit of {SIZE} bytes peaked at {peak} bytes"
