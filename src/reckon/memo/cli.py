"""``reckon cache``: look into and tidy the memo cache from the command line.

``ls`` lists entries (function, arguments, size, compute time, age), ``stats`` sums them per
function and shows the store's usage against its budget, ``report`` shows the usage report
persisted by every process that used the cache (hits, misses, time computing, time saved),
``why`` says what changed in the code behind stale entries, ``prune`` removes old, orphaned or
over-budget entries (with a progress bar), ``clear`` removes everything or one function's entries.

Every command works on one cache directory (``--dir``, default ``$RECKON_CACHE_DIR`` or the
per-user cache dir) and the group directories below it (``<dir>/groups/<name>``), or on any store
named by ``--store URL`` (what :func:`~reckon.core.open_store` opens: Redis, S3, a directory,
``memory://``). What each entry is (function, arguments, code version, compute time) is read
from the store's own metadata, so every machine sharing a store sees and manages the same cache.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from reckon.core import LocalStore, Store, open_store
from reckon.core.stores.urls import local_path
from reckon.memo import log, why
from reckon.memo.entries import (
    OLD_INDEX,
    EntryRow,
    fold_stats,
    import_old_index,
    read_rows,
    read_stats,
    stale_rows,
    stats_entries,
)
from reckon.memo.group import default_cache_dir, parse_size
from reckon.memo.report import (
    REPORT_COLUMNS,
    FunctionStats,
    human_bytes,
    human_duration,
    report_rows,
)

app = typer.Typer(
    name="cache",
    help="Inspect and tidy the memo cache: ls, stats, report, why, prune, clear.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        "-d",
        help="Cache directory (default: $RECKON_CACHE_DIR or the per-user cache dir).",
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="A store URL (redis://..., s3://..., memory://..., a path) instead of --dir.",
    ),
]
FunctionOption = Annotated[
    str | None,
    typer.Option("--function", "-f", help="Only entries of this function (module.qualname)."),
]

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print JSON instead of a table: for scripts, independent of the terminal."
    ),
]

_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|d|w)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``"90"``, ``"30m"``, ``"12h"``, ``"7d"`` -> seconds."""
    m = _DURATION_RE.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 90, 30m, 12h, 7d")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def _console() -> Console:
    return Console(width=160)


def cache_dirs(root: Path | None) -> list[Path]:
    """The cache directory and the group directories below it."""
    base = root if root is not None else default_cache_dir()
    found: list[Path] = []
    if base.is_dir():
        found.append(base)
        groups = base / "groups"
        if groups.is_dir():
            found.extend(sorted(p for p in groups.iterdir() if p.is_dir()))
    return found


@dataclass
class _Target:
    """One store a command works on: a cache directory, or a store named by URL."""

    label: str
    store: Store
    directory: Path | None  # this machine's directory of it (for `why`'s notes), if any

    def as_json(self) -> dict[str, str]:
        if self.directory is not None:
            return {"directory": self.label}
        return {"store_url": self.label}


@contextmanager
def _targets(directory: Path | None, store_url: str | None) -> Iterator[list[_Target]]:
    """The stores ``--dir`` / ``--store`` name, opened for the command and closed after."""
    if store_url is not None and directory is not None:
        typer.echo("give --dir or --store, not both", err=True)
        raise typer.Exit(2)
    opened: list[_Target] = []
    try:
        if store_url is not None and local_path(store_url) is None:
            far = open_store(store_url, near=None)  # the shared store itself, not a near copy
            opened.append(_Target(store_url, far, None))
        else:
            root = Path(local_path(store_url) or store_url) if store_url else directory
            for path in _check_root(root):
                store = LocalStore(path, budget=None, sync=True)
                opened.append(_Target(str(path), store, path))
                imported = import_old_index(store, path)
                if imported is not None:
                    typer.echo(
                        f"note: {path / OLD_INDEX} was written by an older reckon: the "
                        f"descriptions of {imported} entries moved into the store",
                        err=True,
                    )
        yield opened
    finally:
        for target in opened:
            if target.directory is not None:
                target.store.close()
            else:
                target.store.flush()


def _check_root(root: Path | None) -> list[Path]:
    dirs = cache_dirs(root)
    if not dirs:
        where = root if root is not None else default_cache_dir()
        typer.echo(f"no cache at {where}", err=True)
        raise typer.Exit(1)
    return dirs


def _row_json(row: EntryRow, stale: set[str]) -> dict[str, Any]:
    return {
        "function": row.function,
        "arguments": row.args,
        "size": row.size,
        "compute_seconds": row.compute_seconds,
        "created": row.created,
        "key": row.key,
        "stale": row.key in stale,
    }


@app.command("ls")
def ls_command(
    directory: DirOption = None,
    store_url: StoreOption = None,
    function: FunctionOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many entries.")] = 200,
    as_json: JsonOption = False,
) -> None:
    """List cached entries: function, arguments, size, compute time, age; "stale" marks an entry
    made by an earlier version of its function's code (it hits only if the code is changed
    back; `reckon cache why` says what changed)."""
    console = _console()
    now = time.time()
    shown = 0
    listed: list[dict[str, object]] = []
    with _targets(directory, store_url) as targets:
        for target in targets:
            rows, unknown = read_rows(target.store, function)
            stale = {row.key for row in stale_rows(rows)}
            if as_json:
                listed.append(
                    {
                        **target.as_json(),
                        "entries": [_row_json(r, stale) for r in rows[: max(0, limit - shown)]],
                        "total": len(rows),
                        "unknown": len(unknown) if function is None else 0,
                    }
                )
                shown += min(len(rows), max(0, limit - shown))
                continue
            table = Table(title=f"{target.label} ({len(rows)} entries)")
            for col in ("function", "arguments", "size", "compute", "age", "key", "code"):
                table.add_column(col, overflow="fold")
            for row in rows:
                if shown >= limit:
                    break
                shown += 1
                table.add_row(
                    row.function,
                    row.args,
                    human_bytes(row.size),
                    human_duration(row.compute_seconds),
                    human_duration(now - row.created),
                    row.key[:12],
                    "stale" if row.key in stale else "",
                )
            console.print(table)
            if unknown and function is None:
                console.print(f"and {len(unknown)} entries without memo metadata (unknown)")
    if as_json:
        typer.echo(json.dumps(listed, indent=2))


@app.command("stats")
def stats_command(
    directory: DirOption = None,
    store_url: StoreOption = None,
    function: FunctionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Entries and bytes per function, and the store's usage against its budget."""
    console = _console()
    summary: list[dict[str, object]] = []
    with _targets(directory, store_url) as targets:
        for target in targets:
            usage = target.store.usage()
            rows, unknown = read_rows(target.store, function)
            per: dict[str, list[EntryRow]] = {}
            for row in rows:
                per.setdefault(row.function, []).append(row)
            if as_json:
                summary.append(
                    {
                        **target.as_json(),
                        "functions": {
                            name: {
                                "entries": len(entries),
                                "bytes": sum(e.size for e in entries),
                                "compute_seconds": sum(e.compute_seconds for e in entries),
                            }
                            for name, entries in sorted(per.items())
                        },
                        "store": usage.to_dict(),
                        "described": len(rows),
                        "unknown": len(unknown) if function is None else 0,
                    }
                )
                continue
            table = Table(title=target.label)
            for col in ("function", "entries", "bytes", "compute time kept"):
                table.add_column(col, justify="left" if col == "function" else "right")
            for name in sorted(per):
                entries = per[name]
                table.add_row(
                    name,
                    str(len(entries)),
                    human_bytes(sum(e.size for e in entries)),
                    human_duration(sum(e.compute_seconds for e in entries)),
                )
            console.print(table)
            budget = human_bytes(usage.budget) if usage.budget else "none"
            console.print(
                f"store: {usage.entries} entries, {human_bytes(usage.bytes)} "
                f"(budget {budget}); of memoized functions: {len(rows)}"
            )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))


@app.command("report")
def report_command(
    directory: DirOption = None,
    store_url: StoreOption = None,
    function: FunctionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Usage report across every process that used the cache: was memoizing worth it?"""
    console = _console()
    totals: dict[str, FunctionStats] = {}
    with _targets(directory, store_url) as targets:
        for target in targets:
            for name, s in read_stats(target.store).items():
                if function is None or name == function:
                    totals.setdefault(name, FunctionStats(name)).add(s)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    name: {
                        "calls": s.calls,
                        "hits": s.hits,
                        "misses": s.misses,
                        "compute_seconds": s.compute_seconds,
                        "saved_seconds": s.saved_seconds,
                    }
                    for name, s in sorted(totals.items())
                },
                indent=2,
            )
        )
        return
    table = Table(title="reckon usage report")
    for n, col in enumerate(REPORT_COLUMNS):
        table.add_column(col, justify="left" if n == 0 else "right")
    for row in report_rows(totals.values()):
        table.add_row(*row)
    console.print(table)
    saved = sum(s.saved_seconds for s in totals.values())
    spent = sum(s.compute_seconds for s in totals.values())
    console.print(f"time computing {human_duration(spent)}, time saved {human_duration(saved)}")


@app.command("why")
def why_command(
    directory: DirOption = None,
    function: FunctionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Why stored entries no longer hit: per function and earlier code version, what changed
    (the function, the first differing line, the global or closure value)."""
    console = _console()
    found: list[dict[str, object]] = []
    with _targets(directory, None) as targets:
        for target in targets:
            path = target.directory
            assert path is not None
            rows, _unknown = read_rows(target.store, function)
            stale_list = stale_rows(rows)
            if not stale_list:
                continue
            groups: dict[tuple[str, str], list[EntryRow]] = {}
            for row in stale_list:
                groups.setdefault((row.function, row.fingerprint), []).append(row)
            stale_keys = {row.key for row in stale_list}
            for (name, old), old_rows in groups.items():
                current = why.current_version(
                    path, name, [r for r in rows if r.function == name and r.key not in stale_keys]
                )
                changes = why.explain_stale(path, name, current, old)
                found.append(
                    {
                        "directory": str(path),
                        "function": name,
                        "entries": len(old_rows),
                        "arguments": [r.args for r in old_rows[:20]],
                        "changes": [dataclasses.asdict(c) for c in changes],
                    }
                )
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        console.print("no stale entries: every stored entry matches its function's current code")
        return
    for item in found:
        console.print(
            f"[bold]{item['function']}[/]: {item['entries']} entries from an earlier code version"
        )
        for change in item["changes"]:  # type: ignore[attr-defined]
            console.print(f"  {change['where']}: {change['detail']}", markup=False)


@app.command("prune")
def prune_command(
    directory: DirOption = None,
    store_url: StoreOption = None,
    function: FunctionOption = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Remove entries computed before, e.g. 7d.")
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", help="Evict (by the store's policy) down to this size."),
    ] = None,
    stale: Annotated[
        bool,
        typer.Option(help="Remove entries of earlier code versions of their function."),
    ] = False,
) -> None:
    """Remove old entries or those of earlier code versions, or evict down to a size; also folds
    the usage counters of past processes into one entry per function."""
    console = _console()
    cutoff = time.time() - parse_duration(older_than) if older_than else None
    target_bytes = parse_size(max_size, "--max-size") if max_size else None
    total_removed = 0
    with _targets(directory, store_url) as targets:
        for target in targets:
            store = target.store
            rows, _unknown = read_rows(store, function)
            doomed: set[str] = set()
            with Progress(
                TextColumn("[bold]prune[/] {task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                console=console,
                transient=len(rows) < 1000,
            ) as progress:
                task = progress.add_task(target.label, total=len(rows))
                for row in rows:
                    if cutoff is not None and row.created < cutoff and store.delete(row.key):
                        doomed.add(row.key)
                    progress.advance(task)
            if stale:
                for row in stale_rows(rows):
                    if row.key not in doomed and store.delete(row.key):
                        doomed.add(row.key)
                        log.event(
                            "evict",
                            f"{row.function}({row.args}) (stale code version)",
                            logging.INFO,
                        )
            evicted = store.evict(target_bytes) if target_bytes is not None else 0
            fold_stats(store)
            total_removed += len(doomed) + evicted
    console.print(f"removed {total_removed} entries")


@app.command("clear")
def clear_command(
    directory: DirOption = None,
    store_url: StoreOption = None,
    function: FunctionOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every entry (or one function's entries and usage counters)."""
    what = f"the entries of {function}" if function else "every cached entry"
    if not yes:
        typer.confirm(f"Remove {what}?", abort=True)
    removed = 0
    with _targets(directory, store_url) as targets:
        for target in targets:
            store = target.store
            if function:
                rows, _unknown = read_rows(store, function)
                for row in rows:
                    removed += bool(store.delete(row.key))
                for key, stats in stats_entries(store):
                    if stats.name == function:
                        store.delete(key)
            else:
                counters = {key for key, _stats in stats_entries(store)}
                for key in list(store.keys()):
                    gone = bool(store.delete(key))
                    removed += gone and key not in counters
    typer.echo(f"removed {removed} entries")
