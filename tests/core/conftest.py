"""Fixtures for the core suite (core dependencies only: stdlib, pytest, hypothesis, numpy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reckon.core import LocalStore


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def local_store(store_dir: Path) -> Iterator[LocalStore]:
    store = LocalStore(store_dir)
    yield store
    store.close()
