"""Real stores for the store tests: a redis-server and moto's S3 server, one each per session,
on 127.0.0.1; a fresh prefix or bucket per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _redis import start_redis
from _s3_server import s3_options, start_s3


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    proc, endpoint = start_s3()
    yield endpoint
    proc.terminate()
    proc.wait(30)


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options(s3_endpoint))  # type: ignore[arg-type]
    name = "reckon-" + uuid.uuid4().hex[:12]
    fs.mkdir(name)
    return name


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Callable[..., str]:
    """``store_url(kind, name, **options)``: the URL of a store of its own for this test, of
    kind "local" (a directory), "objfile" (an ObjectStore on local files), "memory", "redis" or
    "s3" (moto), ``options`` in its query. Redis and S3 start only when a test asks for them."""

    def make(kind: str, name: str = "c", **options: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        if kind == "local":
            return f"file://{tmp_path}/{name}?{query}" if query else str(tmp_path / name)
        if kind == "objfile":
            url = f"file://{tmp_path}/{name}"
        elif kind == "memory":
            url = f"memory://{name}-{unique}"
        elif kind == "redis":
            url = request.getfixturevalue("redis_url") + f"?prefix={name}{unique}:"
        elif kind == "s3":
            endpoint = request.getfixturevalue("s3_endpoint")
            o = s3_options(endpoint)
            bucket = request.getfixturevalue("s3_bucket")
            url = (
                f"s3://{bucket}/{name}?endpoint_url={endpoint}&key={o['key']}&secret={o['secret']}"
            )
        else:
            raise ValueError(f"no store kind {kind!r}")
        if not query:
            return url
        return url + ("&" if "?" in url else "?") + query

    return make


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
