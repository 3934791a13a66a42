"""An S3 endpoint for the tests: moto's server in its own process, on a port it bound itself
(port 0, read back from the child), reached through s3fs."""

from __future__ import annotations

import subprocess
import sys

_CHILD = """
import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def start_s3() -> tuple[subprocess.Popen[bytes], str]:
    """Start moto's S3 server; return the process and its endpoint URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"moto's S3 server did not start (said {line!r})")
    return proc, f"http://127.0.0.1:{int(line)}"


def s3_options(endpoint: str) -> dict[str, object]:
    """fsspec/s3fs options for the moto endpoint (any credentials work)."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint},
        "skip_instance_cache": True,
    }
