"""A demonstration workload for ``reckon serve --demo``: something worth watching.

Simulated jobs ask an engine for results that are sometimes cached (memory or store hits),
sometimes computed (with nested sub-computations, so task trees have depth), sometimes failing
and sometimes slow enough to cancel from ``reckon top`` or the web page.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reckon.core import Engine

log = logging.getLogger("reckon.observe")

DATASETS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
STEPS = ("load", "calibrate", "fit", "render")


class DemoWorkload:
    """Runs ``workers`` threads asking ``engine`` for simulated results until stopped."""

    def __init__(
        self, engine: Engine, *, workers: int = 3, speed: float = 1.0, seed: int | None = None
    ) -> None:
        self.engine = engine
        self.workers = workers
        self.speed = speed
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.requests = 0
        self.errors = 0
        self.clear_every = 20.0  # seconds between two clears of the memory tier

    def start(self) -> DemoWorkload:
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._run, args=(index,), name=f"reckon-demo-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds / self.speed)

    def _run(self, index: int) -> None:
        from reckon.core import CachingLevel, RequestId
        from reckon.errors import ReckonError

        rng = random.Random(self._rng.random() + index)
        last_clear = time.monotonic()
        while not self._stop.is_set():
            if index == 0 and time.monotonic() - last_clear > self.clear_every / self.speed:
                # Now and then the memory tier is emptied (as after a restart), so the next
                # requests are answered by the store: store hits show up in the views.
                self.engine.clear(CachingLevel.MEMORY)
                last_clear = time.monotonic()
            dataset = rng.choice(DATASETS)
            version = rng.randint(0, 40)  # a small key space: plenty of hits
            level = CachingLevel.FULL if rng.random() < 0.6 else CachingLevel.MEMORY
            rid = RequestId("demo", "report", dataset, version)

            def report(dataset: str = dataset, version: int = version) -> dict[str, float]:
                parts = {}
                for step in STEPS[: rng.randint(1, len(STEPS))]:
                    parts[step] = self._step(rng, dataset, version, step)
                if rng.random() < 0.04:
                    raise RuntimeError(f"{dataset} v{version}: detector saturated")
                return parts

            try:
                self.engine.get(rid, level, report, title=f"report {dataset} v{version}")
            except (ReckonError, RuntimeError):
                pass  # cancelled from a front end, or a simulated failure: part of the show
            except Exception:
                # Anything else is a bug somewhere below; the demo keeps going so that the
                # views stay alive, but says so.
                log.exception("reckon demo: request failed")
                self.errors += 1
            self.requests += 1
            self._sleep(rng.uniform(0.02, 0.4))

    def _step(self, rng: random.Random, dataset: str, version: int, step: str) -> float:
        from reckon.core import CachingLevel, RequestId

        rid = RequestId("demo", step, dataset, version % 10)

        def compute() -> float:
            slow = rng.random() < 0.05
            self._sleep(rng.uniform(2.0, 6.0) if slow else rng.uniform(0.01, 0.3))
            return rng.random()

        value = self.engine.get(rid, CachingLevel.MEMORY, compute, title=f"{step} {dataset}")
        return float(value)
