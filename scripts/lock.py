"""Write ``constraints.txt``: the exact versions `make test`, `make demo` and `make bench` install.

The lock is produced by a real resolver (uv's ``pip compile``) from every extra of pyproject.toml,
so a fresh machine gets the versions the last green run had instead of whatever is newest today.
Its first line records a digest of pyproject.toml's dependency tables; ``tests/test_lock.py``
recomputes it and fails when someone edits the dependencies without running ``make lock``.

Run through ``make lock`` (which installs the pinned uv first; it keeps today's pins where they
still fit) or ``make lock-upgrade`` (the newest versions that fit); ``python scripts/lock.py
--check`` only compares the digest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"
PYPROJECT = ROOT / "pyproject.toml"
DIGEST_PREFIX = "# pyproject-dependencies-sha256: "
# The platform every machine of this project is: the lock is exact for it.
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"


def dependencies_digest(pyproject: Path = PYPROJECT) -> str:
    """A digest of what the lock is resolved from: requires-python, dependencies and extras.

    Only these tables matter: editing the description or a tool's settings needs no new lock.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path = LOCK) -> str | None:
    """The digest written at the top of the lock, or None when the lock has none."""
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def write_lock(upgrade: bool = False) -> None:
    """Resolve again, keeping today's pins where they still fit (uv reads the lock it rewrites
    as its preferences) unless ``upgrade``, which takes the newest versions that fit."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "compile",
            str(PYPROJECT.relative_to(ROOT)),
            "--all-extras",
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            PLATFORM,
            "--no-header",
            "--quiet",
            "--output-file",
            str(LOCK.relative_to(ROOT)),
            *(["--upgrade"] if upgrade else []),
        ],
        cwd=ROOT,
        check=True,
    )
    resolved = "".join(
        line for line in LOCK.read_text().splitlines(keepends=True) if not line.startswith("#")
    )
    header = (
        "# The exact versions `make test`, `make demo` and `make bench` install (pip -c).\n"
        "# Written by `make lock` (uv pip compile --all-extras); do not edit by hand.\n"
        f"{DIGEST_PREFIX}{dependencies_digest()}\n"
    )
    LOCK.write_text(header + resolved)


def main() -> int:
    if "--check" in sys.argv[1:]:
        if recorded_digest() != dependencies_digest():
            print(
                "constraints.txt does not match pyproject.toml's dependencies: run `make lock`",
                file=sys.stderr,
            )
            return 1
        return 0
    write_lock(upgrade="--upgrade" in sys.argv[1:])
    print(f"wrote {LOCK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
