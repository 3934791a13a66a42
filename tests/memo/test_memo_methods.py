"""Methods: the descriptor protocol binds ``self``/``cls``, hashed by state or __reckon_hash__."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reckon import MemoizedGroup, memoize

calls: list[Any] = []


@pytest.fixture
def group(cache_dir: Path) -> MemoizedGroup:
    calls.clear()
    return MemoizedGroup("methods", store=cache_dir)


def test_instance_method_keys_on_state(group: MemoizedGroup) -> None:
    class Class:
        def __init__(self, y: int) -> None:
            self.y = y

        @memoize(group=group)
        def method(self, z: int) -> int:
            calls.append((self.y, z))
            return self.y + z

    obj = Class(3)
    assert obj.method(4) == 7
    assert obj.method.would_hit(4)
    obj.y = 4
    assert not obj.method.would_hit(4)
    assert obj.method(4) == 8
    obj = Class(4)  # a new object in the same state hits
    assert obj.method.would_hit(4)
    assert obj.method(4) == 8
    obj = Class(5)
    assert not obj.method.would_hit(4)
    assert obj.method(4) == 9
    assert calls == [(3, 4), (4, 4), (5, 4)]
    assert Class.method(Class(5), 4) == 9  # through the class, self passed explicitly
    assert len(calls) == 3


def test_reckon_hash_on_self(group: MemoizedGroup) -> None:
    class Model:
        def __init__(self, name: str, cache: dict[str, int]) -> None:
            self.name = name
            self.cache = cache  # not part of what the model *is*

        def __reckon_hash__(self) -> object:
            return self.name

        @memoize(group=group)
        def predict(self, x: int) -> str:
            calls.append(x)
            return f"{self.name}:{x}"

    assert Model("a", {}).predict(1) == "a:1"
    assert Model("a", {"junk": 1}).predict(1) == "a:1"
    assert Model("b", {}).predict(1) == "b:1"
    assert calls == [1, 1]


def test_classmethod_both_orders(group: MemoizedGroup) -> None:
    class Class:
        x: list[int] = [3]

        @classmethod
        @memoize(group=group)
        def outer(cls, z: int) -> int:
            calls.append(("outer", z))
            return cls.x[-1] + z

        @memoize(group=group)
        @classmethod
        def inner(cls, z: int) -> int:
            calls.append(("inner", z))
            return cls.x[-1] + z

    assert Class.outer(4) == 7
    assert Class.inner(4) == 7
    assert Class().inner(4) == 7
    assert Class.inner.would_hit(4)
    Class.x.append(4)  # class-level data changed: a miss
    assert not Class.inner.would_hit(4)
    assert Class.outer(4) == 8
    assert Class.inner(4) == 8
    assert calls == [("outer", 4), ("inner", 4), ("outer", 4), ("inner", 4)]


def test_staticmethod_both_orders(group: MemoizedGroup) -> None:
    class Class:
        @staticmethod
        @memoize(group=group)
        def outer(z: int) -> int:
            calls.append(z)
            return z + 1

        @memoize(group=group)
        @staticmethod
        def inner(z: int) -> int:
            calls.append(-z)
            return z + 2

    assert Class.outer(4) == 5 and Class().outer(4) == 5
    assert Class.inner(4) == 6 and Class().inner(4) == 6
    assert Class.inner.would_hit(4)
    assert calls == [4, -4]


async def test_async_method(group: MemoizedGroup) -> None:
    class Client:
        def __init__(self, base: str) -> None:
            self.base = base

        @memoize(group=group)
        async def get(self, path: str) -> str:
            calls.append(path)
            return self.base + path

    c = Client("http://x")
    assert await c.get("/a") == "http://x/a"
    assert await Client("http://x").get("/a") == "http://x/a"
    assert calls == ["/a"]
