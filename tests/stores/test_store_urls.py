"""Stores named by URL: open_store, one store per URL and options per process, pickling as the
URL, and every place that takes a store taking a URL."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from _s3_server import s3_options

from reckon import memoize
from reckon.core import CachingLevel, Engine, RequestId, open_store
from reckon.core.stores import LocalStore, ObjectStore, RedisStore
from reckon.core.stores.near import NearStore
from reckon.errors import ConfigurationError


def s3_url(endpoint: str, bucket: str) -> str:
    return f"s3://{bucket}/cache?endpoint_url={endpoint}&key=testing&secret=testing"


def test_each_scheme_opens_its_kind(
    tmp_path: Path, redis_url: str, s3_endpoint: str, s3_bucket: str
) -> None:
    assert isinstance(open_store(tmp_path / "a"), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}/b"), LocalStore)
    assert isinstance(open_store(f"{redis_url}?prefix=urls:&near=off"), RedisStore)
    assert isinstance(open_store("memory://urls-test?near=off"), ObjectStore)
    near = open_store(f"{redis_url}?prefix=urls:")  # far stores get a near tier by default
    assert isinstance(near, NearStore) and isinstance(near.far, RedisStore)
    assert isinstance(open_store("memory://urls-test", near=None), ObjectStore)
    s3 = open_store(s3_url(s3_endpoint, s3_bucket))
    assert isinstance(s3, NearStore) and isinstance(s3.far, ObjectStore)
    s3.put(RequestId("x").disk_key, b"through moto")
    assert s3.get(RequestId("x").disk_key) == b"through moto"


def test_query_options_and_keywords(tmp_path: Path, redis_url: str) -> None:
    local = open_store(f"file://{tmp_path}/c?budget=1MiB&policy=gds&sync=true")
    assert isinstance(local, LocalStore)
    assert (local.budget, local.policy, local.sync) == (1 << 20, "gds", True)
    redis = open_store(f"{redis_url}?prefix=q:&ttl=60&near=off", budget=1000)
    assert isinstance(redis, RedisStore)
    assert (redis.prefix, redis.ttl, redis.budget) == ("q:", 60.0, 1000)
    with pytest.raises(ConfigurationError, match="not a size"):
        open_store(f"{tmp_path}/d?budget=lots")
    with pytest.raises(ConfigurationError, match="URL"):
        open_store(42)  # type: ignore[arg-type]


def test_one_store_per_url_and_options(tmp_path: Path, redis_url: str) -> None:
    a = open_store(tmp_path / "e")
    assert open_store(f"file://{tmp_path}/e") is a
    assert open_store(tmp_path / "e", budget=5000) is not a
    direct = RedisStore(redis_url, prefix="direct:")
    assert open_store(f"{redis_url}?prefix=direct:&near=off") is direct
    near = open_store(f"{redis_url}?prefix=direct:")
    assert isinstance(near, NearStore) and near.far is direct  # one far store per process
    a.close()
    assert open_store(tmp_path / "e") is not a  # a closed store is not handed out


@pytest.mark.parametrize("kind", ["local", "redis", "s3"])
def test_a_store_pickles_as_its_url(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "local":
        store = open_store(tmp_path / "p", sync=True)
    elif kind == "redis":
        store = open_store(request.getfixturevalue("redis_url") + "?prefix=pickled:")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        store = ObjectStore(
            f"s3://{request.getfixturevalue('s3_bucket')}/p", storage_options=s3_options(endpoint)
        )
    data = pickle.dumps(store)
    cache_key = Path(os.environ["RECKON_CACHE_KEY_FILE"]).read_text().strip()
    assert cache_key.encode() not in data  # the key never travels: each process has its own
    assert pickle.loads(data) is store  # this process has it: the same store
    key = RequestId("pickled", kind).disk_key
    store.put(key, b"seen by the child")
    store.flush()
    code = (
        "import pickle, sys; s = pickle.loads(sys.stdin.buffer.read());"
        f"sys.stdout.buffer.write(s.get({key!r}) or b'MISS')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120
    )
    assert out.stdout == b"seen by the child"


def test_engine_and_memoize_take_urls(tmp_path: Path, redis_url: str) -> None:
    url = f"{redis_url}?prefix=memo-url:"
    engine = Engine(store=url)
    assert engine.store is open_store(url)
    assert engine.get(RequestId("e"), CachingLevel.FULL, lambda: 7) == 7
    engine.close()
    runs: list[int] = []

    @memoize(store=url, assume_pure=True)
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    assert double(4) == 8
    double.group.flush()
    clone = pickle.loads(pickle.dumps(double.group))
    assert clone is double.group
    assert clone.engine.store is open_store(url)


def test_reckon_store_names_the_default_store(tmp_path: Path, redis_url: str) -> None:
    code = (
        "from reckon.core import default_engine; s = default_engine().store;"
        "print(type(s).__name__, type(s.far).__name__, s.far.prefix)"
    )
    env = dict(os.environ, RECKON_STORE=f"{redis_url}?prefix=env:")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["NearStore", "RedisStore", "env:"]
