"""``reckon demo``: a guided tour of reckon in five short acts, on the embedded defaults.

1. core: one computation at each caching level, 50 concurrent callers sharing one computation,
   nested computations recording their parent, a second process served from the store, and the
   task table; 2. memo: ``@memoize`` hits in memory, then from disk in a new process, then
   misses once a helper's code is edited; 3. observe: the introspection server and its client;
   4. pva: a PV and the engine's statistics over pvAccess, on loopback; 5. services: the vinyl
   shop's deployment, called through its storefront.

Every act runs in a thread of its own with a time limit, so a failing or stuck act is reported
and the tour goes on (the exit status is then 1). Files go to a temporary directory, or to
``$RECKON_CACHE_DIR/demo`` when that is set, removed at the end. ``reckon demo --act NAME``
runs one act.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from reckon._demo import core, memo, observe, pva, services
from reckon._demo.common import Act
from reckon.core import Engine, LocalStore

ACTS: dict[str, tuple[str, Callable[[Act], None]]] = {
    "core": ("the core: computed once, whoever asks", core.run),
    "memo": ("@memoize: results that outlive the process and follow the code", memo.run),
    "observe": ("observe: watching the engine from outside", observe.run),
    "pva": ("pvAccess: reckon's values on EPICS control-system screens", pva.run),
    "services": ("services: one definition, placed by a deployment file", services.run),
}
DOCS = {
    "core": "docs/core.md",
    "memo": "docs/memo.md",
    "observe": "docs/observe.md",
    "pva": "docs/pva.md",
    "services": "docs/service.md, examples/vinyl/README.md",
}
ACT_TIMEOUT = 90.0  # seconds; far above what any act takes, so only a real hang hits it


def _workspace() -> Path:
    base = os.environ.get("RECKON_CACHE_DIR")
    if base:
        root = Path(base) / "demo"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        return root
    return Path(tempfile.mkdtemp(prefix="reckon-demo-"))


def _play(name: str, act: Act) -> tuple[str | None, bool]:
    """Run one act in a thread with a time limit: (what went wrong or None, still running)."""
    errors: list[str] = []

    def target() -> None:
        try:
            ACTS[name][1](act)
        except BaseException as exc:  # reported, never raised: the other acts still run
            errors.append(f"{type(exc).__name__}: {exc}")
            if os.environ.get("RECKON_DEMO_DEBUG"):
                traceback.print_exc()

    thread = threading.Thread(target=target, name=f"demo-{name}", daemon=True)
    thread.start()
    thread.join(ACT_TIMEOUT)
    if thread.is_alive():
        return f"did not finish within {ACT_TIMEOUT:.0f} s", True
    return (errors[0] if errors else None), False


def run(act: str | None = None) -> int:
    """Play the tour (or the one act named); 0 when every act worked, else 1."""
    if act is not None and act not in ACTS:
        raise ValueError(f"no act {act!r}; choose one of: {', '.join(ACTS)}")
    names = [act] if act else list(ACTS)
    console = Console()
    started = time.perf_counter()
    root = _workspace()
    failed: list[str] = []
    stuck = False
    console.print(
        "[bold]reckon[/bold] makes expensive computations happen once. "
        f"{'This act' if act else 'Five acts'} on the embedded defaults, files under {root}"
        f"{'' if act else ' (reckon demo --act NAME plays one)'}.",
        highlight=False,
    )
    try:
        with Engine(store=LocalStore(str(root / "store")), name="demo") as engine:
            shared: dict[str, object] = {"store_dir": str(root / "store")}
            if os.environ.get("RECKON_OBSERVE"):  # watch the demo live: reckon top / the web page
                from reckon.observe import autostart

                shared["observe"] = autostart(engine)
            for name in names:
                number = list(ACTS).index(name) + 1
                console.print()
                console.rule(f"[bold]{number}. {ACTS[name][0]}[/bold]  (--act {name})")
                workdir = root / name
                workdir.mkdir()
                act_started = time.perf_counter()
                error, stuck_now = _play(name, Act(console, engine, workdir, shared))
                took = time.perf_counter() - act_started
                if error is None:
                    console.print(
                        f"  [green]act {name} done in {took:.1f} s[/green]; "
                        f"more in {DOCS.get(name, 'the docs')}",
                        highlight=False,
                    )
                else:
                    failed.append(name)
                    console.print(f"  [bold red]act {name} FAILED after {took:.1f} s: {error}")
                if stuck_now:
                    stuck = True
                    break  # a stuck act may hold the engine: stop here rather than hang
            handle = shared.get("observe")
            if handle is not None and not stuck:
                handle.stop()  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    console.print()
    total = time.perf_counter() - started
    if failed:
        console.print(
            f"[bold red]demo finished in {total:.1f} s; failed: {', '.join(failed)}[/bold red] "
            "(RECKON_DEMO_DEBUG=1 prints the tracebacks)"
        )
    else:
        console.print(f"[dim]demo finished in {total:.1f} s, every act worked[/dim]")
    if stuck:  # a thread we cannot stop: leave without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1] if len(sys.argv) > 1 else None))
