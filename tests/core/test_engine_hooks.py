"""on_engine_created: how layers above the core learn of engines without the core importing them."""

from __future__ import annotations

import logging

import pytest

from reckon.core import CachingLevel, Engine, RequestId, on_engine_created


def test_hooks_see_every_new_engine_until_removed() -> None:
    seen: list[str] = []
    remove = on_engine_created(lambda engine: seen.append(engine.name))
    try:
        Engine(name="first")
        Engine(name="second")
    finally:
        remove()
    Engine(name="after removal")
    assert seen == ["first", "second"]
    remove()  # removing twice is harmless


def test_a_failing_hook_is_logged_and_the_engine_still_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(engine: Engine) -> None:
        raise RuntimeError("watcher broke")

    remove = on_engine_created(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="reckon.core"):
            engine = Engine(name="survivor")
    finally:
        remove()
    assert "survivor" in caplog.text and "watcher broke" in caplog.text
    assert engine.get(RequestId("x"), CachingLevel.MEMORY, lambda: 42) == 42
