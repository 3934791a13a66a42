"""Statistics of memoized functions and the usage report that shows them to people.

The numbers answer one question: was memoizing worth it? ``time saved`` is the compute time of
every hit's entry (what the hit would have cost to recompute), ``time computing`` the time spent
in misses. Durations are written for people ("1.5 s", "3 min 20 s"), not as raw floats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

_UNITS = ((86400.0, "d"), (3600.0, "h"), (60.0, "min"))


def human_duration(seconds: float) -> str:
    """``0.0000123`` -> ``"12 µs"``, ``1.5`` -> ``"1.5 s"``, ``200`` -> ``"3 min 20 s"``."""
    if math.isnan(seconds):
        return "n/a"
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    parts: list[str] = []
    rest = seconds
    for size, unit in _UNITS:
        if rest >= size:
            count = int(rest // size)
            parts.append(f"{count} {unit}")
            rest -= count * size
            if len(parts) == 2:
                break
    if len(parts) < 2 and rest >= 1:
        parts.append(f"{int(rest)} s")
    return " ".join(parts)


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass
class FunctionStats:
    """What one memoized function cost and saved (in one process, or summed over many)."""

    name: str
    hits: int = 0
    misses: int = 0
    compute_seconds: float = 0.0
    saved_seconds: float = 0.0

    @property
    def calls(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        d: dict[str, float | int | str] = dict(asdict(self))
        d["calls"] = self.calls
        d["hit_ratio"] = self.hit_ratio
        return d

    def add(self, other: FunctionStats) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.compute_seconds += other.compute_seconds
        self.saved_seconds += other.saved_seconds


REPORT_COLUMNS = ("function", "calls", "hits", "misses", "hit %", "time computing", "time saved")


def report_rows(stats: Iterable[FunctionStats]) -> list[tuple[str, ...]]:
    """Rows of the usage report, most time saved first."""
    ordered = sorted(stats, key=lambda s: (-s.saved_seconds, -s.calls, s.name))
    return [
        (
            s.name,
            str(s.calls),
            str(s.hits),
            str(s.misses),
            f"{100 * s.hit_ratio:.0f}%",
            human_duration(s.compute_seconds),
            human_duration(s.saved_seconds),
        )
        for s in ordered
    ]


def format_report(stats: Iterable[FunctionStats], title: str = "reckon usage report") -> str:
    """The usage report as plain text (what ``RECKON_REPORT=1`` prints at exit)."""
    rows = report_rows(stats)
    if not rows:
        return f"{title}: no memoized calls\n"
    table = [REPORT_COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(REPORT_COLUMNS))]
    lines = [title]
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
