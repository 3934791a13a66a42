"""Shared test configuration. Keep this file free of imports beyond the core's dependencies:
tests/core runs in an environment that has nothing else."""

from __future__ import annotations

import os
import tempfile

# Never let a test write into the user's real cache directory: tests that want a persistent
# cache give their own directory; anything that falls back to the default lands here.
os.environ.setdefault("RECKON_CACHE_DIR", tempfile.mkdtemp(prefix="reckon-test-cache-"))
# Nor into the user's real cache key: stores sign with a key file made for this run, outside
# the cache directory (as the real one is).
os.environ.setdefault(
    "RECKON_CACHE_KEY_FILE",
    os.path.join(tempfile.mkdtemp(prefix="reckon-test-key-"), "cache-key"),
)
