"""``reckon top``: a live full-screen view of an engine's computations (textual).

Running computations with their elapsed time, recent outcomes, hit ratios per tier, memory and
store use; keys to filter, sort, cancel and clear, and ``t`` (or enter) for the highlighted
task's tree of children. Everything comes from one subscription
(task events plus a status push every second), so the view costs the observed program one
client's worth of events.
"""

from __future__ import annotations

import collections
import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static, Tree

from reckon.errors import ObserveError
from reckon.observe.client import AsyncClient, AsyncSubscription, resolve_url
from reckon.observe.protocol import EventsPush, StatusPush
from reckon.observe.shell import (
    FINISHED,
    fmt_bytes,
    fmt_duration,
    state_text,
    task_label,
    task_times,
)

SORTS = ("elapsed", "title", "id")
RECENT = 200


def _right(text: str) -> Text:
    """A number column's cell: right-aligned, so durations and sizes line up by magnitude."""
    return Text(text, justify="right")


def _has_live(node: dict[str, Any]) -> bool:
    return node["task"].get("state") not in FINISHED or any(
        _has_live(c) for c in node.get("children", [])
    )


class TreeScreen(ModalScreen[None]):
    """One task and its tree of children (the ``task`` request), fetched again every second
    while any of them runs; escape closes it."""

    CSS = """
    TreeScreen { align: center middle; }
    #tree-box {
        width: 90%; height: auto; max-height: 80%;
        border: round $accent; background: $panel; padding: 0 1;
    }
    #tree-title { text-style: bold; color: $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "close"),
        Binding("t", "close", "close", show=False),
        Binding("q", "close", "close", show=False),
    ]

    def __init__(self, client: AsyncClient, task_id: int) -> None:
        super().__init__()
        self.client = client
        self.task_id = task_id
        self.tree_data: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="tree-box"):
            yield Label(f"Task #{self.task_id} and its tree of children", id="tree-title")
            yield Tree[int](f"#{self.task_id}", id="tree")

    async def on_mount(self) -> None:
        await self.refresh_tree()
        self.set_interval(1.0, self._tick)

    async def _tick(self) -> None:
        if self.tree_data is not None and _has_live(self.tree_data):
            await self.refresh_tree()

    async def refresh_tree(self) -> None:
        widget = self.query_one("#tree", Tree)
        try:
            data = await self.client.task(self.task_id)
        except ObserveError as exc:
            widget.root.set_label(Text(str(exc), style="red"))
            return
        self.tree_data = data
        widget.clear()
        widget.root.set_label(task_label(data["task"]))
        widget.root.data = int(data["task"]["task_id"])

        def add(parent: Any, children: list[dict[str, Any]]) -> None:
            for child in children:
                kids = child.get("children", [])
                node = parent.add(
                    task_label(child["task"]),
                    int(child["task"]["task_id"]),
                    expand=True,
                    allow_expand=bool(kids),
                )
                add(node, kids)

        add(widget.root, data.get("children", []))
        widget.root.expand()

    def action_close(self) -> None:
        self.dismiss(None)


class TopApp(App[None]):
    """The live view; ``client`` may be given (tests), else it connects to ``url``."""

    TITLE = "reckon top"
    AUTO_FOCUS = "#running"
    CSS = """
    #summary { height: auto; padding: 0 1; background: $boost; }
    .heading { padding: 0 1; text-style: bold; color: $accent; }
    #running { height: auto; max-height: 45%; min-height: 4; }
    #recent { height: 1fr; min-height: 5; }
    #filter { dock: bottom; display: none; }
    #filter.visible { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("f", "filter", "filter"),
        Binding("s", "sort", "sort"),
        Binding("c", "cancel", "cancel task"),
        Binding("t", "tree", "tree of task"),
        Binding("x", "clear_history", "clear history"),
        Binding("m", "clear_memory", "clear memory"),
        Binding("M", "clear_full", "clear memory+store", show=False),
        Binding("p", "capture", "capture on/off"),
        Binding("escape", "unfilter", "clear filter", show=False),
    ]

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        client: AsyncClient | None = None,
        refresh_interval: float = 0.5,
    ) -> None:
        super().__init__()
        if client is None:
            resolve_url(url)  # a bad address fails here, before the screen is taken over
        self._url = url
        self._token = token
        self.client = client
        self._own_client = client is None
        self._refresh_interval = refresh_interval
        self.running: dict[int, dict[str, Any]] = {}
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self.status: dict[str, Any] = {}
        self.dropped = 0
        self.filter_text = ""
        self.sort_key = SORTS[0]
        self.message = ""
        self._sub: AsyncSubscription | None = None
        self._dirty = True
        self._recent_rows: list[dict[str, Any]] = []

    # -- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        yield Static("connecting…", id="summary")
        with Vertical():
            yield Label("Running", classes="heading", id="running-label")
            yield DataTable(id="running", cursor_type="row", zebra_stripes=True)
            yield Label("Recent outcomes", classes="heading")
            yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter by title (enter to apply, escape to clear)", id="filter")
        yield Footer()

    async def on_mount(self) -> None:
        running = self.query_one("#running", DataTable)
        running.add_columns("id", "title", "state", "elapsed", "parent")
        recent = self.query_one("#recent", DataTable)
        recent.add_columns("id", "title", "outcome", "duration", "size", "finished", "error")
        try:
            if self.client is None:
                self.client = await AsyncClient(self._url, token=self._token, name="top").connect()
            for task in reversed(await self.client.tasks(limit=RECENT)):
                self._apply(task)
            self.status = await self.client.status()
            self._sub = await self.client.subscribe(status_interval=1.0, coalesce=True)
        except ObserveError as exc:
            self.exit(return_code=1, message=f"reckon top: {exc}")
            return
        info = self.client.server_info
        self.sub_title = f"{info.get('engine', '')} · {self.client.ws_url}"
        self.run_worker(self._consume(self._sub), exclusive=True, name="pushes")
        self.set_interval(self._refresh_interval, self._tick)
        self._render_all()

    async def on_unmount(self) -> None:
        if self._own_client and self.client is not None:
            await self.client.close()

    # -- model -------------------------------------------------------------------------------------

    async def _consume(self, sub: AsyncSubscription) -> None:
        async for push in sub:
            if isinstance(push, EventsPush):
                for event in push.events:
                    self._apply(event["task"])
                self.dropped = push.dropped
            elif isinstance(push, StatusPush):
                self.status = push.status
            self._dirty = True
        self.message = "connection to the server lost"
        self._dirty = True
        self._render_all()

    def _apply(self, task: dict[str, Any]) -> None:
        task_id = int(task["task_id"])
        if task.get("state") in FINISHED:
            self.running.pop(task_id, None)
            self.recent.appendleft(task)
        else:
            self.running[task_id] = task
        self._dirty = True

    def _tick(self) -> None:
        # Elapsed times move even without events: redraw the running table every tick.
        self._dirty = True
        self._render_all()

    def _matches(self, task: dict[str, Any]) -> bool:
        return (
            not self.filter_text or self.filter_text.lower() in str(task.get("title", "")).lower()
        )

    def running_rows(self) -> list[dict[str, Any]]:
        now = time.time()
        rows = [t for t in self.running.values() if self._matches(t)]
        if self.sort_key == "elapsed":
            rows.sort(key=lambda t: -(task_times(t, now)[1] or 0.0))
        elif self.sort_key == "title":
            rows.sort(key=lambda t: str(t.get("title", "")))
        else:
            rows.sort(key=lambda t: int(t["task_id"]))
        return rows

    # -- rendering ---------------------------------------------------------------------------------

    def _render_all(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self._render_summary()
        self._render_running()
        self._render_recent()

    def _render_summary(self) -> None:
        engine = self.status.get("engine") or {}
        c = engine.get("counters") or self.status.get("counters") or {}
        requests = c.get("requests", 0) or 0

        def ratio(name: str) -> str:
            value = c.get(name, 0) or 0
            share = f" ({100 * value / requests:.1f}%)" if requests else ""
            return f"{value:,}{share}"

        line1 = Text()
        line1.append("requests ", style="dim")
        line1.append(f"{requests:,}")
        line1.append("   memory hits ", style="dim")
        line1.append(ratio("memory_hit"), style="green")
        line1.append("   store hits ", style="dim")
        line1.append(ratio("store_hit"), style="magenta")
        line1.append("   computed ", style="dim")
        line1.append(f"{c.get('computed', 0):,}")
        line1.append("   failed ", style="dim")
        line1.append(f"{c.get('failed', 0):,}", style="red" if c.get("failed") else "")
        line1.append("   cancelled ", style="dim")
        line1.append(f"{c.get('cancelled', 0):,}")
        line2 = Text()
        for tier in ("memory", "store"):
            usage = engine.get(tier)
            line2.append(f"{tier} ", style="dim")
            if usage:
                budget = usage.get("budget")
                used = fmt_bytes(usage.get("bytes"))
                line2.append(f"{used} / {fmt_bytes(budget)}" if budget else used)
                line2.append(f" ({usage.get('entries', 0):,} entries)   ", style="dim")
            else:
                line2.append("none   ")
        line2.append("capture ", style="dim")
        line2.append(
            "on" if self.status.get("capture", True) else "off",
            style="green" if self.status.get("capture", True) else "yellow",
        )
        line2.append(f"   sort {self.sort_key}", style="dim")
        if self.filter_text:
            line2.append(f"   filter {self.filter_text!r}", style="bold yellow")
        if self.dropped:
            line2.append(f"   {self.dropped:,} events dropped", style="yellow")
        if self.message:
            line2.append(f"   {self.message}", style="bold")
        self.query_one("#summary", Static).update(Text("\n").join([line1, line2]))

    def _render_running(self) -> None:
        table = self.query_one("#running", DataTable)
        selected = self.selected_task_id()
        rows = self.running_rows()
        now = time.time()
        table.clear()
        for t in rows:
            _, seconds = task_times(t, now)
            table.add_row(
                str(t["task_id"]),
                str(t.get("title", "")),
                state_text(str(t.get("state", ""))),
                _right(fmt_duration(seconds)),
                _right("" if t.get("parent") is None else str(t["parent"])),
                key=str(t["task_id"]),
            )
        self.query_one("#running-label", Label).update(f"Running ({len(rows)})")
        if selected is not None:
            for index, t in enumerate(rows):
                if int(t["task_id"]) == selected:
                    table.move_cursor(row=index, animate=False)
                    break

    def _render_recent(self) -> None:
        table = self.query_one("#recent", DataTable)
        table.clear()
        self._recent_rows = [t for t in self.recent if self._matches(t)][:100]
        cursor = table.cursor_row
        for t in self._recent_rows:
            _, seconds = task_times(t)
            times = t.get("times") or {}
            finished = times.get(str(t.get("state")))
            table.add_row(
                str(t["task_id"]),
                str(t.get("title", "")),
                state_text(str(t.get("outcome") or t.get("state", ""))),
                _right(fmt_duration(seconds)),
                _right(fmt_bytes(t.get("size"))),
                time.strftime("%H:%M:%S", time.localtime(finished)) if finished else "",
                Text(str(t.get("error") or ""), style="red"),
            )
        if self._recent_rows:
            table.move_cursor(row=min(cursor, len(self._recent_rows) - 1), animate=False)

    def selected_task_id(self) -> int | None:
        table = self.query_one("#running", DataTable)
        if table.row_count == 0:
            return None
        try:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except Exception:
            return None
        return int(row_key.value) if row_key.value is not None else None

    def highlighted_task_id(self) -> int | None:
        """The task under the cursor of whichever table has the focus."""
        recent = self.query_one("#recent", DataTable)
        if self.focused is recent:
            if 0 <= recent.cursor_row < len(self._recent_rows):
                return int(self._recent_rows[recent.cursor_row]["task_id"])
            return None
        return self.selected_task_id()

    # -- actions -----------------------------------------------------------------------------------

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.add_class("visible")
        field.value = self.filter_text
        field.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        self.filter_text = message.value.strip()
        message.input.remove_class("visible")
        self.query_one("#running", DataTable).focus()
        self._dirty = True
        self._render_all()

    def action_unfilter(self) -> None:
        self.filter_text = ""
        field = self.query_one("#filter", Input)
        field.remove_class("visible")
        self.query_one("#running", DataTable).focus()
        self._dirty = True
        self._render_all()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self._dirty = True
        self._render_all()

    async def action_cancel(self) -> None:
        task_id = self.selected_task_id()
        if task_id is None or self.client is None:
            self.notify("no running computation selected")
            return
        try:
            ok = await self.client.cancel(task_id)
        except ObserveError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"cancelled #{task_id}" if ok else f"#{task_id} was not running")

    def action_tree(self) -> None:
        task_id = self.highlighted_task_id()
        if task_id is None or self.client is None:
            self.notify("no task highlighted (tab moves between the tables)")
            return
        self.push_screen(TreeScreen(self.client, task_id))

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        # Enter (or a click) on a row opens its tree, like ``t``.
        self.action_tree()

    async def action_clear_history(self) -> None:
        if self.client is not None:
            await self.client.clear_history()
        self.recent.clear()
        self._dirty = True
        self._render_all()
        self.notify("history cleared")

    async def action_clear_memory(self) -> None:
        if self.client is not None:
            await self.client.clear_cache("memory")
        self.notify("memory tier cleared")

    async def action_clear_full(self) -> None:
        if self.client is not None:
            await self.client.clear_cache("full")
        self.notify("memory tier and store cleared")

    async def action_capture(self) -> None:
        if self.client is None:
            return
        enabled = await self.client.capture(not self.status.get("capture", True))
        self.status["capture"] = enabled
        self._dirty = True
        self._render_all()
        self.notify(f"capture {'on' if enabled else 'off'}")


def run_top(url: str | None = None, *, token: str | None = None) -> None:
    TopApp(url, token=token).run()
