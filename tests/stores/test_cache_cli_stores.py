"""``reckon cache stats|clear --store URL`` on shared stores (Redis, S3 through moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _s3_server import s3_options
from typer.testing import CliRunner

from reckon.cli import app
from reckon.core import RequestId, open_store

runner = CliRunner()


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "redis":
        return request.getfixturevalue("redis_url") + f"?prefix=cli{id(tmp_path)}:"
    endpoint = request.getfixturevalue("s3_endpoint")
    o = s3_options(endpoint)
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/c?endpoint_url={endpoint}&key={o['key']}&secret={o['secret']}"


@pytest.mark.parametrize("kind", ["redis", "s3"])
def test_stats_and_clear_on_a_shared_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _url(kind, request, tmp_path)
    store = open_store(url)
    for i in range(5):
        store.put(RequestId("cli", i).disk_key, b"x" * 100)
    assert store.flush() == []
    out = runner.invoke(app, ["cache", "stats", "--store", url, "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["store"]["entries"] == 5
    refused = runner.invoke(app, ["cache", "clear", "--store", url, "-f", "m.f", "--yes"])
    assert refused.exit_code == 2
    out = runner.invoke(app, ["cache", "clear", "--store", url, "--yes"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "removed 5 entries" in out.output
    assert open_store(url, near=None).usage().entries == 0
