"""``reckon cache ls | stats | report | prune | clear`` and the usage report at exit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reckon.cli import app
from reckon.memo import human_duration
from reckon.memo.cli import parse_duration

runner = CliRunner()

FILL = """
    from reckon import memoize
    @memoize(store={store!r}, name="cli.square")
    def square(x):
        return x * x
    @memoize(store={store!r}, name="cli.cube")
    def cube(x):
        return x ** 3
    for x in range(5):
        square(x)
        square(x)
    cube(2)
"""


@pytest.fixture
def filled(cache_dir: Path, run_py: Any) -> Path:
    run_py(FILL.format(store=str(cache_dir)))
    return cache_dir


def _invoke(*args: str) -> Any:
    result = runner.invoke(app, ["cache", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _listed(directory: Path, *args: str) -> dict[str, int]:
    """``ls --json``: entries per function, over every cache directory below ``directory``."""
    found: dict[str, int] = {}
    for cache in json.loads(_invoke("ls", "--dir", str(directory), "--json", *args).output):
        for entry in cache["entries"]:
            found[entry["function"]] = found.get(entry["function"], 0) + 1
    return found


def test_ls_lists_entries_with_arguments(filled: Path) -> None:
    assert _listed(filled) == {"cli.square": 5, "cli.cube": 1}
    assert _listed(filled, "--function", "cli.cube") == {"cli.cube": 1}
    [cache] = json.loads(_invoke("ls", "--dir", str(filled), "--json").output)
    assert sorted(e["arguments"] for e in cache["entries"] if e["function"] == "cli.cube") == ["2"]
    table = _invoke("ls", "--dir", str(filled)).output  # the table a person reads
    assert "cli.square" in table and "cli.cube" in table


def test_stats_sums_per_function(filled: Path) -> None:
    [cache] = json.loads(_invoke("stats", "--dir", str(filled), "--json").output)
    assert cache["functions"]["cli.square"]["entries"] == 5
    assert cache["described"] == 6 and cache["unknown"] == 0
    assert cache["store"]["entries"] == 6 + 2, "and the usage counters of its two functions"
    assert "cli.square" in _invoke("stats", "--dir", str(filled)).output


def test_report_shows_persisted_usage(filled: Path, run_py: Any) -> None:
    run_py(FILL.format(store=str(filled)))  # a second process: all hits
    report = json.loads(_invoke("report", "--dir", str(filled), "--json").output)
    # calls, hits, misses summed over both processes: 20 calls, 15 hits, 5 misses
    square = report["cli.square"]
    assert (square["calls"], square["hits"], square["misses"]) == (20, 15, 5)
    assert "time saved" in _invoke("report", "--dir", str(filled)).output


def test_prune_older_than(filled: Path, run_py: Any) -> None:
    time.sleep(1.5)
    run_py(FILL.replace("cube(2)", "cube(3)").format(store=str(filled)))  # one new entry
    out = _invoke("prune", "--dir", str(filled), "--older-than", "1s").output
    assert "removed 6 entries" in out
    assert _listed(filled) == {"cli.cube": 1}
    report = json.loads(_invoke("report", "--dir", str(filled), "--json").output)
    assert report["cli.square"]["calls"] == 20, "prune folds the counters, losing none"


def test_prune_max_size_evicts(filled: Path) -> None:
    out = _invoke("prune", "--dir", str(filled), "--max-size", "1B").output
    assert "removed 6 entries" in out
    assert _listed(filled) == {}


def test_clear_one_function_then_all(filled: Path) -> None:
    out = _invoke("clear", "--dir", str(filled), "--function", "cli.square", "--yes").output
    assert "removed 5 entries" in out
    assert _listed(filled) == {"cli.cube": 1}
    refused = runner.invoke(app, ["cache", "clear", "--dir", str(filled)], input="n\n")
    assert refused.exit_code != 0
    assert "removed 1 entries" in _invoke("clear", "--dir", str(filled), "-y").output


def test_missing_cache_dir_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["cache", "ls", "--dir", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no cache" in result.output


def test_cli_through_the_entry_point(filled: Path, run_py: Any) -> None:
    proc = run_py(
        "import sys; from reckon.cli import main; "
        f"sys.argv = ['reckon', 'cache', 'stats', '--dir', {str(filled)!r}]; main()",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cli.square" in proc.stdout


def test_usage_report_at_exit(cache_dir: Path, run_py: Any) -> None:
    code = FILL.format(store=str(cache_dir))
    quiet = run_py(code)
    assert "usage report" not in quiet.stderr
    loud = run_py(code, env={"RECKON_REPORT": "1"})
    assert "reckon usage report" in loud.stderr
    assert "cli.square" in loud.stderr and "time saved" in loud.stderr


def test_parse_duration_and_human_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("7d") == 7 * 86400
    assert human_duration(0.0000123) == "12 µs"
    assert human_duration(0.25) == "250 ms"
    assert human_duration(1.5) == "1.5 s"
    assert human_duration(200) == "3 min 20 s"
    assert human_duration(90061) == "1 d 1 h"


def test_size_budget_without_store_gets_a_group_dir(tmp_path: Path, run_py: Any) -> None:
    root = tmp_path / "root"
    code = """
        from reckon import memoize
        @memoize(size="1 MiB", name="budgeted.f")
        def f(x):
            return x
        f(1)
        print("GROUPDIR", f.group.path)
    """
    out = run_py(code, env={"RECKON_CACHE_DIR": str(root)}).stdout
    group_dir = Path(out.split("GROUPDIR")[1].strip())
    assert group_dir.parent == root / "groups"
    assert (group_dir / "index.sqlite3").exists()
    root.mkdir(exist_ok=True)
    assert _listed(root) == {"budgeted.f": 1}, "ls finds the group directories below the dir"


def test_prune_stale_removes_old_code_versions(
    cache_dir: Path, run_py: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    code = """
        from reckon import memoize
        @memoize(store={store!r}, name="cli.versioned", version={version!r})
        def f(x):
            return x
        f(1)
        f(2)
    """
    run_py(code.format(store=str(cache_dir), version="1"))
    run_py(code.format(store=str(cache_dir), version="2"))
    assert _listed(cache_dir) == {"cli.versioned": 4}
    caplog.set_level(logging.INFO, logger="reckon.memo")
    out = _invoke("prune", "--dir", str(cache_dir), "--stale").output
    assert "removed 2 entries" in out
    lines = [r.getMessage() for r in caplog.records if r.name == "reckon.memo"]
    assert sum("stale code version" in line for line in lines) == 2
    assert _listed(cache_dir) == {"cli.versioned": 2}
    again = run_py(code.format(store=str(cache_dir), version="2") + "\n        print(f.stats())")
    assert "'misses': 0" in again.stdout
