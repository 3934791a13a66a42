"""Act 3, observe: the demo's engine on the wire; a client asks what it has been doing."""

from __future__ import annotations

from functools import partial
from typing import Any

from reckon._demo.common import Act
from reckon.core import CachingLevel, RequestId


def _handle(act: Act) -> Any:
    """The server already watching the engine (RECKON_OBSERVE), else a new one on a free port."""
    handle = act.shared.get("observe")
    if handle is None:
        from reckon.observe import serve

        handle = serve(act.engine, "127.0.0.1", 0)
        act.shared["observe"] = handle  # stopped when the demo ends, so the URL works till then
    return handle


def run(act: Act) -> None:
    from reckon.observe import Client

    handle = _handle(act)
    act.say(f"introspection server on the demo's engine: {handle.url}")
    for n in (2, 3, 2):  # something to look at, even when this act runs alone
        act.engine.get(
            RequestId("demo", "observed", n), CachingLevel.MEMORY, partial(pow, n, 10),
            title=f"observed {n}**10",
        )  # fmt: skip
    with Client(handle.url, timeout=15) as client:
        info = client.server_info
        status = client.status()
        counters = status["engine"]["counters"]
        tasks = client.tasks(limit=4)
    act.say(
        f"Client.status(): engine {info['engine']!r}, "
        + ", ".join(f"{k}={v}" for k, v in counters.items() if v)
    )
    act.say("Client.tasks(limit=4), newest first:")
    for task in tasks:
        act.say(
            f"  #{task['task_id']:<4} {task['title']:<24} {task['state']:<8} "
            f"{task['outcome'] or ''}"
        )
    act.say(f"open in a browser: {handle.url}")
    act.say(f"or in a terminal:  reckon top {handle.url}")
    act.say("(the server lives while the demo runs; `reckon serve` starts one that stays)")
    act.why(
        "a long job is never a black box: what runs, what waited, what hit, live, from a "
        "browser, a terminal or code."
    )
