"""Act 2, ``@memoize``: a function in a module of its own, memoized into a cache directory;
hits in this process and in a new one, and a miss once a helper it calls is edited."""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Any

from reckon._demo.common import Act, run_python

MODULE = "reckon_demo_analysis"

_SOURCE = '''"""Written by `reckon demo`: `analyse` is memoized; the demo edits `helper` later."""
import time

from reckon import memoize


def helper(x):
    return x * x


@memoize(store={store!r})
def analyse(n):
    time.sleep(0.2)  # stands for real work
    return sum(helper(i) for i in range(n))
'''

# A new process: import the module, call once, report value, time and the function's counters.
_CHILD = f"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from {MODULE} import analyse
started = time.perf_counter()
value = analyse(100)
print(json.dumps({{"value": value, "us": (time.perf_counter() - started) * 1e6,
                  "stats": analyse.stats()}}))
"""


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args)
    return value, (time.perf_counter() - started) * 1e6


def _in_new_process(act: Act) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(run_python(_CHILD, str(act.workdir)))
    return reply


def _outcome(stats: dict[str, Any]) -> str:
    return "hit" if stats["hits"] == 1 and stats["misses"] == 0 else "miss"


def run(act: Act) -> None:
    source = act.workdir / f"{MODULE}.py"
    source.write_text(_SOURCE.format(store=str(act.workdir / "cache")))
    act.say(f"wrote {source.name}: analyse(n) sums helper(i), and is @memoize'd")
    sys.path.insert(0, str(act.workdir))
    try:
        module = importlib.import_module(MODULE)
        analyse = module.analyse
        value, us = _timed(analyse, 100)
        act.say(f"analyse(100) = {value}: miss, computed in {us / 1e3:.0f} ms")
        value, us = _timed(analyse, 100)
        act.say(f"analyse(100) = {value}: hit in memory, {us:.0f} us")
        stats = analyse.stats()
    finally:
        sys.path.remove(str(act.workdir))
        sys.modules.pop(MODULE, None)

    child = _in_new_process(act)
    act.say(
        f"a new process: analyse(100) = {child['value']}: {_outcome(child['stats'])} "
        f"from disk, {child['us'] / 1e3:.1f} ms"
    )
    text = source.read_text()
    source.write_text(text.replace("return x * x", "return x * x + 1"))
    act.say("edited helper(): return x * x  ->  return x * x + 1")
    child = _in_new_process(act)
    act.say(
        f"a new process: analyse(100) = {child['value']}: {_outcome(child['stats'])}, "
        f"because the code changed ({child['us'] / 1e3:.0f} ms)"
    )
    act.say(
        "analyse.stats() here: "
        + ", ".join(f"{k}={_short(v)}" for k, v in stats.items() if k != "name")
    )
    act.why(
        "results outlive the process and follow the code: an edit to anything the function "
        "calls invalidates exactly its entries, with no cache key to maintain."
    )


def _short(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
