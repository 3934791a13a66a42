"""``reckon cache ls|stats|report|prune|clear --store URL`` on every kind of store: Redis, S3
(through moto's server) and ``memory://``, from the metadata the store keeps with each entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reckon import memoize
from reckon.cli import app
from reckon.core import RequestId, open_store
from reckon.memo import commit
from reckon.memo.entries import read_rows

runner = CliRunner()


def _cache(*args: str) -> Any:
    result = runner.invoke(app, ["cache", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _functions(url: str, *args: str) -> dict[str, list[str]]:
    [listing] = json.loads(_cache("ls", "--store", url, "--json", *args))
    assert listing["store_url"] == url
    found: dict[str, list[str]] = {}
    for entry in listing["entries"]:
        found.setdefault(entry["function"], []).append(entry["arguments"])
    return {name: sorted(arguments) for name, arguments in found.items()}


@pytest.mark.parametrize("kind", ["redis", "s3", "memory"])
def test_every_cache_command_on_a_shared_store(kind: str, store_url: Callable[..., str]) -> None:
    url = store_url(kind, "cli")

    @memoize(store=url, name="cli.square", assume_pure=True)
    def square(x: int) -> int:
        return x * x

    @memoize(store=url, name="cli.cube", assume_pure=True)
    def cube(x: int) -> int:
        return x**3

    for x in range(5):
        square(x)
        square(x)
    cube(2)
    commit()  # values, their metadata and the usage counters reach the shared store

    assert _functions(url) == {"cli.square": ["0", "1", "2", "3", "4"], "cli.cube": ["2"]}
    assert _functions(url, "--function", "cli.cube") == {"cli.cube": ["2"]}
    [stats] = json.loads(_cache("stats", "--store", url, "--json"))
    assert stats["functions"]["cli.square"]["entries"] == 5
    assert stats["described"] == 6 and stats["unknown"] == 0
    report = json.loads(_cache("report", "--store", url, "--json"))
    assert (report["cli.square"]["calls"], report["cli.square"]["hits"]) == (10, 5)
    assert "removed 5 entries" in _cache("clear", "--store", url, "-f", "cli.square", "--yes")
    assert _functions(url) == {"cli.cube": ["2"]}
    assert "cli.square" not in json.loads(_cache("report", "--store", url, "--json"))
    assert "removed 0 entries" in _cache("prune", "--store", url, "--older-than", "1d")
    assert "removed 1 entries" in _cache("clear", "--store", url, "--yes")
    far = open_store(url, near=None)
    assert read_rows(far) == ([], [])
    assert far.usage().entries == 0


@pytest.mark.parametrize("kind", ["redis", "s3"])
def test_entries_without_metadata_are_listed_as_unknown(
    kind: str, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "cli")
    store = open_store(url)
    for i in range(3):
        store.put(RequestId("cli", i).disk_key, b"x" * 100)
    assert store.flush() == []
    [listing] = json.loads(_cache("ls", "--store", url, "--json"))
    assert (listing["total"], listing["unknown"]) == (0, 3)
    assert "removed 3 entries" in _cache("clear", "--store", url, "--yes")


def test_store_and_dir_together_are_refused(tmp_path: Path) -> None:
    both = runner.invoke(app, ["cache", "ls", "--dir", str(tmp_path), "--store", "memory://x"])
    assert both.exit_code == 2
