"""The inner core on its own: an Engine over a LocalStore, computing each value once.

    python examples/core_engine.py [STORE_DIR]

Eight threads ask for the same few values at once; each value is computed once and shared
with everyone waiting for it. Run it a second time with the same STORE_DIR and nothing is
computed: the values come back from the store.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter

from reckon.core import CachingLevel, Engine, LocalStore, RequestId

store_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="reckon-example-")
engine = Engine(store=LocalStore(store_dir), name="example")
computed: Counter[int] = Counter()


def fibonacci_table(n: int) -> list[int]:
    """The expensive computation: the first n Fibonacci numbers, slowly."""
    computed[n] += 1
    time.sleep(0.2)
    table = [0, 1]
    while len(table) < n:
        table.append(table[-1] + table[-2])
    return table[:n]


def worker(results: list[int]) -> None:
    for n in (10, 20, 30):
        rid = RequestId("fibonacci", n)  # the value's name: same id, same value
        results.append(engine.get(rid, CachingLevel.FULL, lambda n=n: fibonacci_table(n))[-1])


results: list[int] = []
threads = [threading.Thread(target=worker, args=(results,)) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()

assert sorted(set(results)) == [34, 4181, 514229]
assert all(count <= 1 for count in computed.values())  # never twice, however many asked
print(f"{len(results)} requests, {sum(computed.values())} computations, store {store_dir}")
engine.close()
