"""``reckon shell`` driven through a pseudo-terminal, against a real server in this process."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pexpect
import pytest

from reckon.core import CachingLevel, Engine, RequestId
from reckon.observe import ServerHandle

RECKON = str(Path(sys.executable).with_name("reckon"))


def _spawn(*args: str) -> pexpect.spawn:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="160", LINES="50", TERM="xterm")
    env["IPYTHONDIR"] = tempfile.mkdtemp(prefix="reckon-ipython-")  # keep ~/.ipython untouched
    env.pop("RECKON_OBSERVE", None)
    env.pop("RECKON_OBSERVE_TOKEN", None)
    child = pexpect.spawn(
        RECKON, ["shell", *args], env=env, encoding="utf-8", timeout=60, dimensions=(50, 160)
    )
    return child


def _child_tree(engine: Engine) -> int:
    engine.get(
        RequestId("shell", "parent"),
        CachingLevel.MEMORY,
        lambda: engine.get(RequestId("shell", "kid"), CachingLevel.MEMORY, lambda: 1, title="kid"),
        title="parent job",
    )
    (root,) = engine.introspector.tasks(title="parent job")
    return root.task_id


def test_plain_console_helpers(server: ServerHandle, engine: Engine, blocked: Any) -> None:
    parent_id = _child_tree(engine)
    job = blocked("pexpect probe")
    child = _spawn(server.url, "--console", "plain")
    try:
        child.expect("reckon shell: connected")
        child.expect(">>> ")
        child.sendline("tasks()")
        child.expect("pexpect probe")
        child.expect("running")
        child.expect(">>> ")
        child.sendline("status()")
        child.expect("computed")
        child.expect(">>> ")
        child.sendline(f"tree({parent_id})")
        child.expect(r"#\d+ \S*parent job\S* \S*done[^\n]* computed")  # pexpect: DOTALL
        child.expect(r"└── #\d+ \S*kid\S* \S*done[^\n]* computed")  # pexpect: DOTALL
        child.expect(">>> ")
        child.sendline("[t['title'] for t in running()]")
        child.expect(r"\['pexpect probe'\]")
        child.expect(">>> ")
        # watch() prints events as they happen; count=3 ends it after pending, running, done.
        child.sendline("watch(count=3, seconds=30)")
        child.expect("watching task events")
        engine.get(
            RequestId("shell", "watched"), CachingLevel.MEMORY, lambda: 1, title="watched one"
        )
        child.expect(r"done.{0,20} watched one")
        child.expect(">>> ")
        (task,) = engine.introspector.tasks(title="pexpect probe")
        child.sendline(f"cancel({task.task_id})")
        child.expect("True")
        child.expect(">>> ")
        child.sendline("exit()")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    job.release()
    assert type(job.error).__name__ == "ComputationCancelledError"


@pytest.mark.parametrize("console", ["plain", "ipython"])
def test_a_helper_mistake_is_one_line(server: ServerHandle, console: str) -> None:
    """tree() of an id that does not exist: one line naming the problem, no traceback."""
    if console == "ipython":
        pytest.importorskip("IPython")
    child = _spawn(server.url, "--console", console, "--simple-prompt")
    prompt = ">>> " if console == "plain" else r"In \[\d+\]: "
    try:
        child.expect("reckon shell: connected")
        child.expect(prompt)
        child.sendline("tree(999999)")
        child.expect(prompt)
        reply = child.before
        assert "999999" in reply and "Error" in reply, reply
        assert "Traceback" not in reply and len(reply.strip().splitlines()) <= 2, reply
        child.sendline("exit()")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_ipython_console(server: ServerHandle, engine: Engine) -> None:
    pytest.importorskip("IPython")
    engine.get(RequestId("shell", "ipy"), CachingLevel.MEMORY, lambda: 1, title="ipython probe")
    child = _spawn(server.url, "--simple-prompt")  # auto: IPython, since it is installed
    try:
        child.expect("reckon shell: connected")
        child.expect(r"In \[1\]: ")
        child.sendline("tasks(title='ipython')")
        child.expect("ipython probe")
        child.expect(r"In \[2\]: ")
        child.sendline("status()")
        child.expect("memory use")
        child.expect(r"In \[3\]: ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_unreachable_server_is_a_clear_error() -> None:
    child = _spawn("http://127.0.0.1:1/", "--console", "plain")
    child.expect("cannot reach the reckon observe server")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_token_in_the_url_and_as_an_option(engine: Engine) -> None:
    from reckon.observe import serve

    engine.get(RequestId("shell", "tok"), CachingLevel.MEMORY, lambda: 1, title="token probe")
    with serve(engine, require_token=True, token="shell-token") as handle:
        # The page URL as reckon serve prints it: http://127.0.0.1:PORT/?token=...
        assert handle.url.endswith("?token=shell-token")
        for args in ([handle.url], [handle.ws_url, "--token", "shell-token"]):
            child = _spawn(*args, "--console", "plain")
            try:
                child.expect("reckon shell: connected")
                child.expect(">>> ")
                child.sendline("tasks()")
                child.expect("token probe")
                child.expect(">>> ")
                child.sendline("client.server_info['token_required']")
                child.expect("True")
                child.expect(">>> ")
                child.sendline("exit()")
                child.expect(pexpect.EOF)
            finally:
                child.close(force=True)
        for args in ([handle.url.replace("shell-token", "wrong")], [handle.ws_url]):
            child = _spawn(*args, "--console", "plain")
            try:
                child.expect("refused the token")
                child.expect(pexpect.EOF)
            finally:
                child.close()
            assert child.exitstatus == 1
