"""Hooks called for every new Engine: how layers above the core learn of engines without the
core importing them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reckon.core.engine import Engine

__all__ = ["on_engine_created", "run_created_hooks"]

log = logging.getLogger("reckon.core")

_CREATED_HOOKS: list[Callable[[Engine], None]] = []


def on_engine_created(hook: Callable[[Engine], None]) -> Callable[[], None]:
    """Call ``hook(engine)`` for every Engine created from now on; returns a function removing it.

    This is how layers above the core learn of engines without the core importing them: the
    package root registers ``reckon.observe.autostart`` here when ``$RECKON_OBSERVE`` is set, so
    a plain program that memoizes is served live. Hooks run in the creating thread, after the
    engine is complete; an exception in a hook is logged, never raised.
    """
    _CREATED_HOOKS.append(hook)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _CREATED_HOOKS.remove(hook)

    return remove


def run_created_hooks(engine: Engine) -> None:
    """Call every registered hook with ``engine`` (the Engine constructor's last step)."""
    for hook in tuple(_CREATED_HOOKS):
        try:
            hook(engine)
        except Exception:  # a watcher that fails must not take the engine down with it
            log.exception("an on_engine_created hook failed for engine %r", engine.name)
