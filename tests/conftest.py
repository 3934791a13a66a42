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

# Command-line output (rich tables, typer's help, wrapped log lines) is laid out for the terminal
# it runs in. Tests read that output, so they fix the terminal's size here, for themselves and
# for every process they start: what a test sees then depends on the code alone, not on the
# width of the terminal (or CI's lack of one) it was started from. Tests of layout itself set
# their own size (pseudo-terminals, textual's pilot).
os.environ["COLUMNS"] = "120"
os.environ["LINES"] = "40"
