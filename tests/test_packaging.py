"""The distribution as a new user gets it: build the wheel and sdist, install the wheel into a
clean virtual environment (no extras, then with ``[pva]``) and run the ``reckon`` command.

Dependencies come from the package index through pip, at the versions of the lock
(constraints.txt), so the test installs the same thing on every machine; nothing of the
development environment leaks into the clean one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import reckon

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"

# Building and installing from the index take minutes on a busy machine: more than the default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def sh(
    *args: str | Path, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(COLUMNS="100", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_TIMEOUT="60")
    env.pop("RECKON_DEBUG", None)
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env=env,
        check=check,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def test_wheel_and_sdist_contents(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "reckon/__init__.py" in names and "reckon/py.typed" in names
    assert "reckon/observe/web/index.html" in names  # the web page's files travel too
    assert not [n for n in names if n.startswith(("tests/", "bench/", "docs/"))]
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    assert f"Version: {reckon.__version__}".encode() in metadata
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"README.md", "LICENSE", "pyproject.toml", "src/reckon/__init__.py"} <= members
    # Nothing a checkout grows: make test creates .venv and .venv-core, npm node_modules.
    grown = [m for m in members if m.startswith((".venv", "site/")) or "node_modules" in m]
    assert not grown, grown[:5]


def test_clean_install_without_then_with_an_extra(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    py, reckon_cmd = venv / "bin" / "python", venv / "bin" / "reckon"
    sh(py, "-m", "pip", "install", "--quiet", "-c", LOCK, wheel)

    # The base install: the core, @memoize and the command.
    r = sh(reckon_cmd, "--version")
    assert r.stdout.strip().endswith(reckon.__version__)
    r = sh(reckon_cmd, "--help")
    assert "pva" in r.stdout and "(install reckon-toolkit[pva])" in r.stdout
    r = sh(reckon_cmd, "cache", "--help")
    assert "ls" in r.stdout
    code = (
        "from reckon import memoize\n"
        "@memoize\n"
        "def square(x): return x * x\n"
        "assert square(12) == 144 and square(12) == 144\n"
        "from reckon.core import CachingLevel, Engine, RequestId\n"
        "assert Engine().get(RequestId('a', 1), CachingLevel.MEMORY, lambda: 2) == 2\n"
    )
    sh(py, "-c", code, cwd=tmp_path)

    # A command whose extra is missing says which one, in one line, whatever follows it.
    for args in (["pva", "get", "x"], ["pva", "--help"], ["svc", "gen"], ["serve"]):
        r = sh(reckon_cmd, *args, check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert "needs the" in line and "pip install 'reckon-toolkit[" in line, line

    # With the extra, the command works.
    sh(py, "-m", "pip", "install", "--quiet", "-c", LOCK, f"{wheel}[pva]")
    r = sh(reckon_cmd, "pva", "--help")
    assert "monitor" in r.stdout
    r = sh(reckon_cmd, "pva", "get", "--help")
    assert r.returncode == 0 and "Usage: reckon pva get" in r.stdout
