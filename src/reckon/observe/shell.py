"""``reckon shell``: an interactive Python session connected to an introspection server.

The session holds ``client`` (a :class:`~reckon.observe.Client`) and helpers that print rich
tables: ``tasks()``, ``status()``, ``tree(id)``, ``watch()``, plus ``cancel(id)``,
``clear_cache(level)``, ``clear_history()`` and ``capture(on)``. The helpers return the data
as well (lists and dicts that display as tables), so ``[t["title"] for t in tasks()]`` works.
"""

from __future__ import annotations

import code
import contextlib
import datetime as dt
import io
import os
import sys
import time
from typing import Any, Literal

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from reckon.errors import ReckonError
from reckon.observe.client import Client
from reckon.observe.protocol import EventsPush

ConsoleKind = Literal["auto", "ipython", "plain"]

STATE_STYLES = {
    "pending": "yellow",
    "running": "bold cyan",
    "loading": "cyan",
    "done": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "computed": "green",
    "memory_hit": "green",
    "store_hit": "magenta",
}
FINISHED = ("done", "failed", "cancelled")


# ------------------------------------------------------------------------------------ formatting


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} m {seconds % 60:.0f} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def task_times(task: dict[str, Any], now: float | None = None) -> tuple[float | None, float | None]:
    """(start, seconds): when the task began and how long it ran (so far, when live)."""
    times = task.get("times") or {}
    start = times.get("pending", times.get("running"))
    if start is None and times:
        start = min(times.values())
    if start is None:
        return None, None
    end = times.get(task.get("state", "")) if task.get("state") in FINISHED else None
    return start, (end if end is not None else (now or time.time())) - start


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def tasks_table(tasks: list[dict[str, Any]], title: str = "tasks") -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("title", overflow="fold")
    table.add_column("state")
    table.add_column("time", justify="right")
    table.add_column("outcome")
    table.add_column("size", justify="right")
    table.add_column("parent", justify="right")
    now = time.time()
    for t in tasks:
        _, seconds = task_times(t, now)
        title_text = Text(str(t.get("title", "")))
        if t.get("error"):
            title_text.append(f"\n{t['error']}", style="red")
        table.add_row(
            str(t.get("task_id")),
            title_text,
            state_text(str(t.get("state", ""))),
            fmt_duration(seconds),
            str(t.get("outcome") or ""),
            fmt_bytes(t.get("size")),
            "" if t.get("parent") is None else str(t["parent"]),
        )
    if not tasks:
        table.caption = "no tasks (capture off, or nothing computed yet)"
    return table


def status_table(status: dict[str, Any]) -> Table:
    engine = status.get("engine") or {}
    counters = engine.get("counters") or status.get("counters") or {}
    requests = counters.get("requests", 0) or 0
    table = Table(
        title=f"status  (capture {'on' if status.get('capture') else 'off'})",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("", justify="right")
    for name in ("requests", "memory_hit", "store_hit", "computed", "failed", "cancelled"):
        value = counters.get(name, 0) or 0
        share = f"{100 * value / requests:.1f}%" if requests and name != "requests" else ""
        table.add_row(name, f"{value:,}", share)
    table.add_row("running", f"{status.get('live', 0):,}", "")
    for tier in ("memory", "store"):
        usage = engine.get(tier)
        if usage:
            budget = usage.get("budget")
            used = (
                f"{fmt_bytes(usage.get('bytes'))} / {fmt_bytes(budget)}"
                if budget
                else fmt_bytes(usage.get("bytes"))
            )
            table.add_row(f"{tier} use", used, f"{usage.get('entries', 0):,} entries")
        else:
            table.add_row(f"{tier} use", "none", "")
    return table


def task_label(task: dict[str, Any]) -> Text:
    """One task as a line of a call tree (the shell's ``tree()`` and ``reckon top``'s):
    id, title, state, how long, and its outcome or error."""
    _, seconds = task_times(task)
    label = Text(f"#{task.get('task_id')} ")
    label.append(str(task.get("title", "")), style="bold")
    label.append(" ")
    label.append_text(state_text(str(task.get("state", ""))))
    label.append(f"  {fmt_duration(seconds)}", style="dim")
    if task.get("outcome"):
        label.append(f" · {task['outcome']}", style="dim")
    if task.get("error"):
        label.append(f"  {task['error']}", style="red")
    return label


def tree_view(node: dict[str, Any]) -> Tree:
    root = Tree(task_label(node["task"]))

    def add(branch: Tree, children: list[dict[str, Any]]) -> None:
        for child in children:
            add(branch.add(task_label(child["task"])), child.get("children", []))

    add(root, node.get("children", []))
    return root


# ------------------------------------------------------------------------------------ results


class TaskList(list[dict[str, Any]]):
    """Task records that display as a table (and are a plain list otherwise)."""

    title = "tasks"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield tasks_table(list(self), self.title)

    def __repr__(self) -> str:
        return _render_text(self)


class StatusDict(dict[str, Any]):
    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield status_table(dict(self))

    def __repr__(self) -> str:
        return _render_text(self)


class TaskTree(dict[str, Any]):
    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield tree_view(dict(self))

    def __repr__(self) -> str:
        return _render_text(self)


def _render_text(renderable: Any) -> str:
    """The renderable as text, for consoles that print repr() (the standard one)."""
    console = Console(width=_width(), record=True, force_terminal=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text(styles=True).rstrip("\n")


def _width() -> int:
    return Console().width


# ------------------------------------------------------------------------------------ helpers


def make_namespace(client: Client, console: Console | None = None) -> dict[str, Any]:
    """The names a shell session starts with."""
    out = console or Console()

    def tasks(state: str | None = None, title: str | None = None, limit: int = 20) -> TaskList:
        """Live and finished tasks, newest first (filter by state and title substring)."""
        return TaskList(client.tasks(state=state, title=title, limit=limit))

    def running() -> TaskList:
        """The computations running now."""
        result = TaskList(client.tasks(state="running", limit=1000))
        result.title = "running"
        return result

    def status() -> StatusDict:
        """Counters per outcome and tier, memory and store use."""
        return StatusDict(client.status())

    def tree(task_id: int) -> TaskTree:
        """A task and the computations it asked for, recursively."""
        return TaskTree(client.task(task_id))

    def watch(
        seconds: float | None = None, title: str | None = None, count: int | None = None
    ) -> int:
        """Print task events as they happen, until Ctrl-C (or ``seconds``, or ``count``)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        shown = 0
        with client.subscribe(title=title) as sub:
            out.print(Text("watching task events; Ctrl-C stops", style="dim"))
            try:
                while count is None or shown < count:
                    wait = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
                    if deadline is not None and wait <= 0:
                        break
                    push = sub.get(timeout=min(wait, 0.5))
                    if not isinstance(push, EventsPush):
                        if sub.closed:
                            break
                        continue
                    for event in push.events:
                        _print_event(out, event["task"])
                        shown += 1
                    if push.dropped:
                        out.print(Text(f"({push.dropped} events dropped)", style="yellow"))
            except KeyboardInterrupt:
                pass
        return shown

    def cancel(task_id: int) -> bool:
        """Cancel a running computation; its waiters get ComputationCancelledError."""
        return client.cancel(task_id)

    def clear_cache(level: str = "memory") -> None:
        """Empty the memory tier ("memory") or both tiers ("full")."""
        client.clear_cache(level)

    def clear_history() -> None:
        """Forget finished tasks."""
        client.clear_history()

    def capture(enabled: bool | None = None) -> bool:
        """Turn task capture on or off (no argument: ask)."""
        return client.capture(enabled)

    return {
        "client": client,
        "tasks": tasks,
        "running": running,
        "status": status,
        "tree": tree,
        "watch": watch,
        "cancel": cancel,
        "clear_cache": clear_cache,
        "clear_history": clear_history,
        "capture": capture,
        "console": out,
    }


def _print_event(out: Console, task: dict[str, Any]) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
    _, seconds = task_times(task)
    line = Text(f"{stamp} #{task.get('task_id')} ", style="dim")
    line.append_text(state_text(str(task.get("state", ""))).copy())
    line.append(f" {task.get('title', '')}")
    if task.get("state") in FINISHED:
        line.append(f" {fmt_duration(seconds)}", style="dim")
    if task.get("error"):
        line.append(f" {task['error']}", style="red")
    out.print(line)


BANNER = """reckon shell: connected to {url} ({server}, engine {engine!r})
helpers: tasks(state=, title=, limit=)  running()  status()  tree(id)  watch(seconds=)
         cancel(id)  clear_cache("memory"|"full")  clear_history()  capture(on)
         client: the raw client"""


def run_shell(
    url: str | None = None,
    *,
    token: str | None = None,
    console: ConsoleKind = "auto",
    simple_prompt: bool = False,
) -> None:
    """Connect and start the interactive session (IPython when installed, unless told)."""
    client = Client(url, token=token, name="shell")
    try:
        namespace = make_namespace(client)
        info = client.server_info
        banner = BANNER.format(
            url=client.ws_url, server=info.get("server"), engine=info.get("engine")
        )
        use_ipython = console == "ipython"
        if console == "auto":
            try:
                import IPython  # noqa: F401

                use_ipython = True
            except ImportError:
                use_ipython = False
        if use_ipython:
            _run_ipython(namespace, banner, simple_prompt)
        else:
            _run_plain(namespace, banner)
    finally:
        client.close()


def _debug() -> bool:
    """``RECKON_DEBUG=1`` (or ``reckon -v shell``) keeps full tracebacks for every error."""
    return os.environ.get("RECKON_DEBUG", "").strip().lower() not in ("", "0", "no", "false", "off")


def one_line_error(exc: BaseException) -> str | None:
    """The one line a helper's failure prints: for reckon's errors (a mistake such as an unknown
    task id, or an unreachable server) the message names the problem and the fix, and a traceback
    would only bury it. ``None`` for anything else (a bug), which keeps its traceback."""
    if isinstance(exc, ReckonError) and not _debug():
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return None


class _PlainConsole(code.InteractiveConsole):
    def showtraceback(self) -> None:
        line = one_line_error(sys.exc_info()[1] or Exception())
        if line is None:
            super().showtraceback()
        else:
            self.write(line + "\n")


def _run_ipython(namespace: dict[str, Any], banner: str, simple_prompt: bool) -> None:
    from IPython.terminal.embed import InteractiveShellEmbed
    from traitlets.config import Config

    config = Config()
    config.TerminalInteractiveShell.simple_prompt = simple_prompt
    config.TerminalInteractiveShell.confirm_exit = False
    config.HistoryManager.enabled = False
    shell = InteractiveShellEmbed(config=config, banner1=banner, user_ns=namespace)

    def one_line(
        shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
    ) -> None:
        line = one_line_error(value)
        if line is None:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        else:
            print(line, file=sys.stderr)

    shell.set_custom_exc((ReckonError,), one_line)
    shell()


def _run_plain(namespace: dict[str, Any], banner: str) -> None:
    with contextlib.suppress(ImportError):  # line editing and history for input()
        import readline  # noqa: F401
    console = _PlainConsole(namespace)
    console.interact(banner=banner, exitmsg="")
