"""reckon.memo: ``@memoize``, persistent memoization that knows when code changed.

A memoized call is ``Engine.get(RequestId(fingerprint of the code, hash of the arguments))``:
answered from memory, from the group's store (shared by threads and processes), or computed once.
See ``docs/memo.md``.
"""

from __future__ import annotations

from reckon.memo.group import MemoizedGroup
from reckon.memo.helpers import TTL, FileContents
from reckon.memo.memoize import (
    BoundMemoized,
    Memoized,
    all_memoized,
    commit,
    memoize,
    usage_report,
)
from reckon.memo.report import FunctionStats, human_duration
from reckon.memo.versions import code_version, count_requirements_by_version
from reckon.memo.watch import audit_side_effects

__all__ = [
    "TTL",
    "BoundMemoized",
    "FileContents",
    "FunctionStats",
    "Memoized",
    "MemoizedGroup",
    "all_memoized",
    "audit_side_effects",
    "code_version",
    "commit",
    "count_requirements_by_version",
    "human_duration",
    "memoize",
    "usage_report",
]
