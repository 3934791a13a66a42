"""npm packages for the tests, installed once per folder however many pytest workers ask.

Under ``pytest -n 2`` each worker runs its session fixtures, so two workers could run ``npm ci``
in the same folder at once; ``npm ci`` starts by deleting ``node_modules``, pulling the packages
from under a Node.js process the other worker had just started. Here an exclusive file lock
serialises the installs and a stamp, written after a successful install and naming the
package-lock it installed, tells the later workers that there is nothing left to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_install(folder: Path) -> Path:
    """``npm ci`` (or ``npm install`` without a lock) in ``folder``, once; its node_modules."""
    modules = folder / "node_modules"
    lock_file = folder / "package-lock.json"
    manifest = lock_file if lock_file.exists() else folder / "package.json"
    want = hashlib.sha256(manifest.read_bytes()).hexdigest()
    stamp = modules / ".reckon-installed"
    with open(folder / ".npm-install.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # released when the file closes
        if stamp.exists() and stamp.read_text() == want:
            return modules
        if shutil.which("npm") is None:
            pytest.fail(f"npm is not installed; the tests in {folder.name} need node 20 and npm")
        cmd = ["npm", "ci"] if lock_file.exists() else ["npm", "install"]
        done = subprocess.run(
            [*cmd, "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} in {folder} failed:\n{done.stderr[-2000:]}")
        stamp.write_text(want)
    return modules
