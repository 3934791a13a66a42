"""Real stores for the store tests: a redis-server and moto's S3 server, one each per session,
on 127.0.0.1; a fresh prefix or bucket per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
