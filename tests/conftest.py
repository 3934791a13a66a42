"""Shared test configuration. Keep this file free of imports beyond the core's dependencies:
tests/core runs in an environment that has nothing else."""

from __future__ import annotations

import os

# Never let a test write into the user's real cache directory.
os.environ.setdefault("RECKON_CACHE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "reckon-test-cache-unused"))
