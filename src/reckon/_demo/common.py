"""What every act of the tour is given, and the small helpers several acts share.

Acts run on one demo engine and in a scratch directory of their own, so each can run alone
(``reckon demo --act NAME``) and a failure in one leaves the others untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from reckon.core import Engine

SRC = str(Path(__file__).resolve().parents[2])  # the directory holding the reckon package


@dataclass
class Act:
    """One act's world: where it prints, the demo's engine, and its own scratch directory."""

    console: Console
    engine: Engine
    workdir: Path
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. the observe server, if started

    def say(self, text: str, indent: int = 2) -> None:
        """A line of the act, its wrapped continuation lines indented like it."""
        self.console.print(Text(self._wrap(text, indent)), soft_wrap=True)

    def why(self, text: str) -> None:
        self.console.print(Text(self._wrap(f"why it matters: {text}", 2), style="dim"))

    def _wrap(self, text: str, indent: int) -> str:
        pad = " " * indent
        width = max(self.console.width, 60)
        return textwrap.fill(
            text, width, initial_indent=pad, subsequent_indent=pad + "  ", break_long_words=False
        )


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python process that imports this same reckon."""
    path = SRC + os.pathsep + os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", **extra)


def run_python(code: str, *args: str, timeout: float = 60.0, **env: str) -> str:
    """Run ``code`` in a new Python process; its stdout, or an error carrying its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=child_env(**env),
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"the child process exited with {done.returncode}:\n{tail}")
    return done.stdout
