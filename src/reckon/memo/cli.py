"""``reckon cache``: look into and tidy the memo cache from the command line.

``ls`` lists entries (function, arguments, size, compute time, age), ``stats`` sums them per
function and shows the store's usage against its budget, ``report`` shows the usage report
persisted by every process that used the cache (hits, misses, time computing, time saved),
``why`` says what changed in the code behind stale entries, ``prune`` removes old, orphaned or
over-budget entries (with a progress bar), ``clear`` removes everything or one function's entries.

Every command works on one cache directory (``--dir``, default ``$RECKON_CACHE_DIR`` or the
per-user cache dir) and the group directories below it (``<dir>/groups/<name>``). ``stats`` and
``clear`` also take ``--store URL`` (any store :func:`~reckon.core.open_store` opens: Redis, S3,
...): there they show the store's usage and remove every entry; the per-function views need the
memo index, which lives beside directory stores only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from reckon.core import LocalStore, open_store
from reckon.core.stores.urls import local_path
from reckon.memo import log, why
from reckon.memo.group import default_cache_dir, parse_size
from reckon.memo.index import INDEX_FILENAME, EntryRow, MemoIndex
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
        help="A store URL (redis://..., s3://..., a path); a path or file:// URL means --dir.",
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
    """The cache directory and the group directories below it that hold a memo index."""
    base = root if root is not None else default_cache_dir()
    found: list[Path] = []
    if base.is_dir():
        found.append(base)
        groups = base / "groups"
        if groups.is_dir():
            found.extend(sorted(p for p in groups.iterdir() if (p / INDEX_FILENAME).exists()))
    return found


def _open(path: Path) -> tuple[LocalStore, MemoIndex]:
    return LocalStore(path, budget=None, sync=True), MemoIndex(path)


def _shared_store(url: str | None, directory: Path | None) -> str | None:
    """The URL of a non-directory store named by ``--store`` (None: work on directories)."""
    if url is None:
        return None
    if directory is not None:
        typer.echo("give --dir or --store, not both", err=True)
        raise typer.Exit(2)
    return None if local_path(url) is not None else url


def _check_root(root: Path | None) -> list[Path]:
    dirs = cache_dirs(root)
    if not dirs:
        where = root if root is not None else default_cache_dir()
        typer.echo(f"no cache at {where}", err=True)
        raise typer.Exit(1)
    return dirs


@app.command("ls")
def ls_command(
    directory: DirOption = None,
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
    for path in _check_root(directory):
        store, index = _open(path)
        try:
            rows = index.entries(function)
            stale = {row.key for row in index.stale_entries(function)}
            if as_json:
                listed.append(
                    {
                        "directory": str(path),
                        "entries": [
                            {
                                "function": row.function,
                                "arguments": row.args,
                                "size": row.size,
                                "compute_seconds": row.compute_seconds,
                                "created": row.created,
                                "key": row.key,
                                "stale": row.key in stale,
                            }
                            for row in rows[: max(0, limit - shown)]
                        ],
                        "total": len(rows),
                    }
                )
                shown += min(len(rows), max(0, limit - shown))
                continue
            table = Table(title=f"{path} ({len(rows)} entries)")
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
        finally:
            index.close()
            store.close()
    if as_json:
        typer.echo(json.dumps(listed, indent=2))


@app.command("stats")
def stats_command(
    directory: DirOption = None, store_url: StoreOption = None, as_json: JsonOption = False
) -> None:
    """Entries and bytes per function, and the store's usage against its budget."""
    console = _console()
    summary: list[dict[str, object]] = []
    shared = _shared_store(store_url, directory)
    if shared is not None:
        usage = open_store(shared, near=None).usage()
        if as_json:
            typer.echo(
                json.dumps(
                    [{"store_url": shared, "store": usage.to_dict()}],
                    indent=2,
                )
            )
        else:
            budget = human_bytes(usage.budget) if usage.budget else "none"
            console.print(
                f"store {shared}: {usage.entries} entries, {human_bytes(usage.bytes)} "
                f"(budget {budget})"
            )
        return
    if store_url is not None:
        directory = Path(local_path(store_url) or store_url)
    for path in _check_root(directory):
        store, index = _open(path)
        try:
            usage = store.usage()
            rows = index.entries()
            per: dict[str, list[EntryRow]] = {}
            for row in rows:
                per.setdefault(row.function, []).append(row)
            if as_json:
                summary.append(
                    {
                        "directory": str(path),
                        "functions": {
                            name: {
                                "entries": len(entries),
                                "bytes": sum(e.size for e in entries),
                                "compute_seconds": sum(e.compute_seconds for e in entries),
                            }
                            for name, entries in sorted(per.items())
                        },
                        "store": {
                            "entries": usage.entries,
                            "bytes": usage.bytes,
                            "budget": usage.budget,
                        },
                        "indexed": len(rows),
                    }
                )
                continue
            table = Table(title=f"{path}")
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
                f"(budget {budget}); indexed: {len(rows)}"
            )
        finally:
            index.close()
            store.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))


@app.command("report")
def report_command(directory: DirOption = None, as_json: JsonOption = False) -> None:
    """Usage report across every process that used the cache: was memoizing worth it?"""
    console = _console()
    totals: dict[str, FunctionStats] = {}
    for path in _check_root(directory):
        index = MemoIndex(path)
        try:
            for s in index.stats():
                totals.setdefault(s.name, FunctionStats(s.name)).add(s)
        finally:
            index.close()
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
    for path in _check_root(directory):
        index = MemoIndex(path)
        try:
            stale_rows = index.stale_entries(function)
            if not stale_rows:
                continue
            groups: dict[tuple[str, str], list[EntryRow]] = {}
            for row in stale_rows:
                groups.setdefault((row.function, row.fingerprint), []).append(row)
            stale_keys = {row.key for row in stale_rows}
            for (name, old), rows in groups.items():
                current = why.current_version(
                    path, name, [r for r in index.entries(name) if r.key not in stale_keys]
                )
                changes = why.explain_stale(path, name, current, old)
                found.append(
                    {
                        "directory": str(path),
                        "function": name,
                        "entries": len(rows),
                        "arguments": [r.args for r in rows[:20]],
                        "changes": [dataclasses.asdict(c) for c in changes],
                    }
                )
        finally:
            index.close()
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
    function: FunctionOption = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Remove entries computed before, e.g. 7d.")
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", help="Evict (by the store's policy) down to this size."),
    ] = None,
    orphans: Annotated[
        bool, typer.Option(help="Drop index rows whose stored value is gone.")
    ] = True,
    stale: Annotated[
        bool,
        typer.Option(help="Remove entries of earlier code versions of their function."),
    ] = False,
) -> None:
    """Remove old entries, orphaned index rows, or evict down to a size."""
    console = _console()
    cutoff = time.time() - parse_duration(older_than) if older_than else None
    target = parse_size(max_size, "--max-size") if max_size else None
    total_removed = 0
    total_orphans = 0
    for path in _check_root(directory):
        store, index = _open(path)
        try:
            rows = index.entries(function)
            doomed: list[str] = []
            orphaned: list[str] = []
            with Progress(
                TextColumn("[bold]prune[/] {task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                console=console,
                transient=len(rows) < 1000,
            ) as progress:
                task = progress.add_task(str(path), total=len(rows))
                for row in rows:
                    if cutoff is not None and row.created < cutoff:
                        store.delete(row.key)
                        doomed.append(row.key)
                    elif orphans and not store.contains(row.key):
                        orphaned.append(row.key)
                    progress.advance(task)
            if stale:
                for row in index.stale_entries(function):
                    if row.key not in doomed:
                        store.delete(row.key)
                        doomed.append(row.key)
                        log.event(
                            "evict",
                            f"{row.function}({row.args}) (stale code version)",
                            logging.INFO,
                        )
            index.delete_entries_now(doomed + orphaned)
            evicted = 0
            if target is not None:
                before = set(store.keys())
                evicted = store.evict(target)
                gone = [k for k in before if not store.contains(k)]
                index.delete_entries_now(gone)
            total_removed += len(doomed) + evicted
            total_orphans += len(orphaned)
        finally:
            index.close()
            store.close()
    console.print(f"removed {total_removed} entries, dropped {total_orphans} orphaned index rows")


@app.command("clear")
def clear_command(
    directory: DirOption = None,
    store_url: StoreOption = None,
    function: FunctionOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every entry (or one function's entries)."""
    what = f"the entries of {function}" if function else "every cached entry"
    shared = _shared_store(store_url, directory)
    if shared is not None and function:
        typer.echo(
            "--function needs the memo index, which is kept beside directory stores only: "
            "call f.clear() in a process that uses the function, or clear the whole store",
            err=True,
        )
        raise typer.Exit(2)
    if not yes:
        typer.confirm(f"Remove {what}?", abort=True)
    removed = 0
    if shared is not None:
        far = open_store(shared, near=None)  # the shared store itself, not a near copy
        for key in list(far.keys()):
            removed += bool(far.delete(key))
        typer.echo(f"removed {removed} entries")
        return
    if store_url is not None:
        directory = Path(local_path(store_url) or store_url)
    for path in _check_root(directory):
        store, index = _open(path)
        try:
            if function:
                keys = [r.key for r in index.entries(function)]
                for key in keys:
                    store.delete(key)
                index.delete_entries_now(keys)
                index.forget_function(function)
                removed += len(keys)
            else:
                keys = list(store.keys())
                for key in keys:
                    store.delete(key)
                index.delete_entries_now([r.key for r in index.entries()])
                removed += len(keys)
        finally:
            index.close()
            store.close()
    typer.echo(f"removed {removed} entries")
