"""Helpers shared by the core tests (importable because pytest puts this directory on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reckon.core import StoreUsage

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_python(code: str, *args: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter (reckon importable) and return its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0:
        raise AssertionError(f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


class RecordingStore:
    """A Store (protocol) in a dict that records every call, to prove which levels touch it."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[str, Any]] = []
        self.costs: dict[str, float] = {}

    def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return self.data.get(key)

    def put(self, key: str, data: Any, *, cost: float = 0.0) -> None:
        self.calls.append(("put", key))
        self.data[key] = b"".join(data) if isinstance(data, list | tuple) else bytes(data)
        self.costs[key] = cost

    def delete(self, key: str) -> bool:
        self.calls.append(("delete", key))
        return self.data.pop(key, None) is not None

    def contains(self, key: str) -> bool:
        self.calls.append(("contains", key))
        return key in self.data

    def keys(self) -> Iterator[str]:
        return iter(list(self.data))

    def usage(self) -> StoreUsage:
        return StoreUsage(len(self.data), sum(map(len, self.data.values())), None)

    def evict(self, target_bytes: int | None = None) -> int:
        n = len(self.data)
        if target_bytes == 0:
            self.data.clear()
        return n

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
