"""``reckon pva top NAME|PATTERN...``: a live full-screen table of PVs (textual).

One row per PV: its value, alarm severity in colour, updates per second, the age of the last
update, and a sparkline of recent values for scalars or the shape of arrays and images. ``f``
filters rows by name, ``s`` changes the sort, ``q`` quits. It reads through reckon's client, so
it works against any pvAccess server (reckon, pvxs/p4p, an IOC).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Static

from reckon.pva.client import Client
from reckon.pva.views.model import PvState, PvWatch

SORTS = ("name", "rate", "age")
SEVERITY_STYLE = ("green", "yellow", "bold red", "magenta")


def severity_text(state: PvState) -> Text:
    if not state.connected:
        return Text("DISCONNECTED" if state.updates else "searching", style="dim")
    style = SEVERITY_STYLE[state.severity] if 0 <= state.severity < 4 else "magenta"
    return Text(state.severity_name, style=style)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def trend_text(state: PvState) -> str:
    if state.kind in ("scalar", "enum"):
        return state.sparkline()
    if state.shape:
        return "shape " + "x".join(str(s) for s in state.shape)
    return ""


class PvTopApp(App[None]):
    """The live PV table. ``client`` may be given (tests); else one is made from the EPICS
    environment."""

    TITLE = "reckon pva top"
    AUTO_FOCUS = "#pvs"
    CSS = """
    #summary { height: 1; padding: 0 1; background: $boost; }
    #pvs { height: 1fr; }
    #filter { dock: bottom; display: none; }
    #filter.visible { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("f", "filter", "filter"),
        Binding("s", "sort", "sort"),
        Binding("escape", "unfilter", "clear filter", show=False),
    ]

    def __init__(
        self,
        names: list[str],
        *,
        client: Client | None = None,
        refresh_interval: float = 0.25,
    ) -> None:
        super().__init__()
        self.names = names
        self.client = client
        self._own_client = client is None
        self._refresh_interval = refresh_interval
        self.pvwatch: PvWatch | None = None
        self.filter_text = ""
        self.sort_key = SORTS[0]
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        yield Static("", id="summary")
        yield DataTable(id="pvs", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter by name (enter to apply, escape to clear)", id="filter")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#pvs", DataTable)
        table.add_columns("name", "value", "severity", "rate/s", "age", "trend / shape")
        if self.client is None:
            self.client = Client()
        self.pvwatch = PvWatch(self.client, self.names)
        self.pvwatch.listeners.append(self._changed)
        await self.pvwatch.start()
        self.set_interval(self._refresh_interval, self._tick)
        self._render_rows()

    async def on_unmount(self) -> None:
        if self.pvwatch is not None:
            await self.pvwatch.stop()
        if self._own_client and self.client is not None:
            await self.client.close()

    def _changed(self, state: PvState) -> None:
        self._dirty = True

    def _tick(self) -> None:
        # ages and rates move without updates: redraw every tick
        self._render_rows()

    def rows(self) -> list[PvState]:
        assert self.pvwatch is not None
        now = time.monotonic()
        states = [
            s
            for s in self.pvwatch.states.values()
            if not self.filter_text or self.filter_text.lower() in s.name.lower()
        ]
        if self.sort_key == "rate":
            states.sort(key=lambda s: (-s.rate(now), s.name))
        elif self.sort_key == "age":
            states.sort(key=lambda s: (s.age(now) is None, s.age(now) or 0.0, s.name))
        else:
            states.sort(key=lambda s: s.name)
        return states

    def _render_rows(self) -> None:
        if self.pvwatch is None:
            return
        now = time.monotonic()
        table = self.query_one("#pvs", DataTable)
        cursor = table.cursor_row
        table.clear()
        rows = self.rows()
        for s in rows:
            value = Text(s.text if not s.error or s.updates else s.error)
            if s.units:
                value.append(f" {s.units}", style="dim")
            table.add_row(
                Text(s.name, style="bold"),
                value,
                severity_text(s),
                Text(f"{s.rate(now):.1f}", justify="right"),
                Text(age_text(s.age(now)), justify="right"),
                trend_text(s),
                key=s.name,
            )
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
        connected = sum(1 for s in self.pvwatch.states.values() if s.connected)
        line = Text()
        line.append(f"{connected}/{len(self.pvwatch.states)} connected", style="bold")
        line.append(f"   sort {self.sort_key}", style="dim")
        if self.filter_text:
            line.append(f"   filter {self.filter_text!r}", style="bold yellow")
        self.query_one("#summary", Static).update(line)
        self._dirty = False

    # -- actions -------------------------------------------------------------------------------

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.add_class("visible")
        field.value = self.filter_text
        field.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        self.filter_text = message.value.strip()
        message.input.remove_class("visible")
        self.query_one("#pvs", DataTable).focus()
        self._render_rows()

    def action_unfilter(self) -> None:
        self.filter_text = ""
        self.query_one("#filter", Input).remove_class("visible")
        self.query_one("#pvs", DataTable).focus()
        self._render_rows()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self._render_rows()


def cell_texts(app: PvTopApp) -> list[list[str]]:
    """The table as plain strings, row by row (what tests and scripts read)."""
    table: DataTable[Any] = app.query_one("#pvs", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
