"""An S3 endpoint for the tests: moto's server in its own process, on a port it bound itself
(port 0, read back from the child), reached through s3fs."""

from __future__ import annotations

import subprocess
import sys

_CHILD = """
import json
import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

moto = DomainDispatcherApplication(create_backend_app)
seen = []  # every request: "METHOD /path?query" (read at /_requests, for tests that count)

def app(environ, start_response):
    if environ["PATH_INFO"] == "/_requests":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]
    query = environ.get("QUERY_STRING", "")
    path = environ["PATH_INFO"] + ("?" + query if query else "")
    seen.append(environ["REQUEST_METHOD"] + " " + path)
    return moto(environ, start_response)

server = make_server("127.0.0.1", 0, app, threaded=True)
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


def requests_seen(endpoint: str) -> list[str]:
    """Every request the server has answered so far, as "METHOD /path?query"."""
    import json
    import urllib.request

    with urllib.request.urlopen(endpoint + "/_requests", timeout=10) as reply:
        seen: list[str] = json.loads(reply.read())
    return seen


def s3_options(endpoint: str) -> dict[str, object]:
    """fsspec/s3fs options for the moto endpoint (any credentials work)."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint},
        "skip_instance_cache": True,
    }
