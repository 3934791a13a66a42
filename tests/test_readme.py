"""The README's python examples run as written (in a scratch directory, EPICS kept on loopback)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3, "the README lost its usage examples"
    tcp, udp = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    env = dict(
        os.environ,
        RECKON_CACHE_DIR=str(tmp_path / "cache"),
        EPICS_PVA_AUTO_ADDR_LIST="NO",
        EPICS_PVA_ADDR_LIST="127.0.0.1",
        EPICS_PVAS_INTF_ADDR_LIST="127.0.0.1",
        EPICS_PVAS_AUTO_BEACON_ADDR_LIST="NO",
        EPICS_PVAS_BEACON_ADDR_LIST="127.0.0.1",
        EPICS_PVA_SERVER_PORT=str(tcp),
        EPICS_PVAS_SERVER_PORT=str(tcp),
        EPICS_PVA_BROADCAST_PORT=str(udp),
        EPICS_PVAS_BROADCAST_PORT=str(udp),
    )
    for i, block in enumerate(blocks):
        block = block.replace("/tmp/reckon-readme", str(tmp_path / "readme-store"))
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"README block {i} failed:\n{block}\n{done.stderr}"
