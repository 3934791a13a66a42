"""Helpers shared by the memo tests, in a module of its own: test modules import it by a name no
other test folder uses (importing ``conftest`` by name picks whichever folder's came first)."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child_env(
    extra: dict[str, str] | None = None, pythonpath: list[Path] | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(p) for p in (pythonpath or [])] + [str(HERE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("RECKON_REPORT", None)
    env.update(extra or {})
    return env
