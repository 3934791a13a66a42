"""How far a request's value is kept: nowhere, in memory, or in memory and a store."""

from __future__ import annotations

import enum

from reckon.errors import InvalidCachingLevelError

__all__ = ["CachingLevel", "as_level"]


class CachingLevel(enum.IntEnum):
    """Where a value is kept once computed. Ordered: a higher level keeps it in more places."""

    NONE = 0
    """Compute every time (still shared while in flight, still recorded)."""
    MEMORY = 1
    """Keep in the memory tier only; never touch the store."""
    FULL = 2
    """Keep in memory and in the store (survives the process)."""


def as_level(level: object) -> CachingLevel:
    """Validate a level given as a CachingLevel, its int value or its name (any case)."""
    if type(level) is CachingLevel:
        return level
    try:
        if isinstance(level, str):
            return CachingLevel[level.upper()]
        if isinstance(level, int) and not isinstance(level, bool):
            return CachingLevel(level)
    except (KeyError, ValueError):
        pass
    raise InvalidCachingLevelError(
        f"caching level must be CachingLevel.NONE, MEMORY or FULL (or 0, 1, 2); got {level!r}"
    )
