"""reckon.memo.hashing: values hash by value, deterministically, across processes and seeds."""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import io
import json
import math
import os
import pathlib
import random
import re
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
import zoneinfo
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reckon.errors import UnhashableArgumentError
from reckon.memo.hashing import Hasher, hash_value, register_hasher, unregister_hasher

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ----------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.complex_numbers(allow_nan=False)
    | st.decimals(allow_nan=False)
    | st.fractions()
    | st.uuids()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.timedeltas()
)
hashable_values = st.recursive(
    scalars.filter(lambda v: not (isinstance(v, float) and math.isnan(v))),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=10,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashable_values, inner, max_size=4)
        | st.sets(hashable_values, max_size=4)
        | st.frozensets(hashable_values, max_size=4)
    ),
    max_leaves=12,
)


def _rebuilt(value: Any) -> Any:
    """An equal value built afresh, with dicts and sets filled in reverse order."""
    if isinstance(value, dict):
        return {k: _rebuilt(value[k]) for k in reversed(list(value))}
    if isinstance(value, set):
        return set(reversed([_rebuilt(v) for v in value]))
    if isinstance(value, frozenset):
        return frozenset(reversed([_rebuilt(v) for v in value]))
    if isinstance(value, list):
        return [_rebuilt(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_rebuilt(v) for v in value)
    return copy.deepcopy(value)


# -- properties ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the strategy's own repr
@SETTINGS
@given(values)
def test_equal_values_hash_equal_whatever_the_insertion_order(value: Any) -> None:
    digest = hash_value(value)
    assert len(digest) == 16
    assert hash_value(_rebuilt(value)) == digest


@SETTINGS
@given(
    st.lists(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=20)
        | st.binary(max_size=20)
        | st.integers(2040, 2060).map(lambda n: "é" * n)  # around the 4 KiB direct-feed size
        | st.integers(4090, 4100).map(lambda n: b"x" * n),
        max_size=6,
    ).map(tuple)
)
def test_inline_tuple_path_writes_what_the_handlers_write(value: tuple[Any, ...]) -> None:
    h = Hasher()
    h.update(value)  # the general path (per-type handlers)
    assert hash_value(value) == h.digest()


@SETTINGS
@given(
    st.dictionaries(st.text(max_size=5) | st.integers(), st.integers(), max_size=8), st.randoms()
)
def test_dict_order_does_not_matter(d: dict[Any, int], rnd: random.Random) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert hash_value(dict(items)) == hash_value(d)


@SETTINGS
@given(st.sets(st.text(max_size=5) | st.integers() | st.floats(allow_nan=False), max_size=8))
def test_set_order_does_not_matter(s: set[Any]) -> None:
    assert hash_value(set(sorted(s, key=repr, reverse=True))) == hash_value(s)
    assert hash_value(frozenset(s)) == hash_value(frozenset(sorted(s, key=repr)))
    assert hash_value(frozenset(s)) != hash_value(s)  # the type is part of the value


@SETTINGS
@given(st.text())
def test_str_and_bytes_are_distinguished(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    assert hash_value(text) != hash_value(data)
    assert hash_value(data) != hash_value(bytearray(data))
    assert hash_value(bytearray(data)) == hash_value(bytearray(data))


@SETTINGS
@given(st.lists(st.text(max_size=4), min_size=1, max_size=5), st.lists(st.text(max_size=4)))
def test_container_boundaries_are_unambiguous(a: list[str], b: list[str]) -> None:
    joined = "".join(a)
    if len(a) > 1 or a[0] != joined:
        assert hash_value(tuple(a)) != hash_value((joined,)) or tuple(a) == (joined,)
    if a != b:
        assert hash_value(a) != hash_value(b)


@SETTINGS
@given(
    hnp.arrays(
        dtype=st.sampled_from(["<f8", ">f8", "<i4", ">i2", "u1", "?", "<c16", "<M8[s]", "<U3"]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
    )
)
def test_numpy_memory_order_and_byte_order_do_not_matter(arr: np.ndarray) -> None:
    digest = hash_value(arr)
    assert hash_value(np.asfortranarray(arr)) == digest
    assert hash_value(np.ascontiguousarray(arr)) == digest
    assert hash_value(arr.astype(arr.dtype.newbyteorder("="))) == digest
    if arr.ndim >= 2:
        strided = np.empty((*arr.shape[:-1], arr.shape[-1] * 2), dtype=arr.dtype)[..., ::2]
        strided[...] = arr
        assert not strided.flags.c_contiguous or arr.shape[-1] <= 1
        assert hash_value(strided) == digest


def test_numpy_shape_dtype_and_values_matter() -> None:
    assert hash_value(np.zeros((2, 3))) != hash_value(np.zeros((3, 2)))
    assert hash_value(np.zeros(6)) != hash_value(np.zeros((2, 3)))
    assert hash_value(np.zeros(3, dtype=np.int32)) != hash_value(np.zeros(3, dtype=np.int64))
    a = np.arange(12.0).reshape(3, 4)
    b = a.copy()
    b[2, 3] = -1.0
    assert hash_value(a) != hash_value(b)
    assert hash_value(a) == hash_value(a.copy())
    assert hash_value(a.T) == hash_value(np.ascontiguousarray(a.T))
    assert hash_value(a.T) != hash_value(a)
    assert hash_value(a[:, ::2]) == hash_value(a[:, ::2].copy())


def test_numpy_large_noncontiguous_is_chunked_identically() -> None:
    a = np.arange(3 * 1024 * 1024, dtype=np.float64).reshape(2048, 1536)
    f = np.asfortranarray(a)  # 24 MiB, copied to C order in chunks
    assert hash_value(f) == hash_value(a)


def test_numpy_scalars_objects_and_structured() -> None:
    assert hash_value(np.float64(1.5)) == hash_value(np.float64(1.5))
    assert hash_value(np.float64(1.5)) != hash_value(1.5)
    assert hash_value(np.float32(1.5)) != hash_value(np.float64(1.5))
    assert hash_value(np.int64(3)) != hash_value(3)
    assert hash_value(np.datetime64("2024-01-01")) != hash_value(np.datetime64("2024-01-02"))
    assert hash_value(np.array(["a", 1, None], dtype=object)) == hash_value(
        np.array(["a", 1, None], dtype=object)
    )
    assert hash_value(np.array(["ab", "c"], dtype=object)) != hash_value(
        np.array(["a", "bc"], dtype=object)
    )
    dt_aligned = np.dtype([("a", "u1"), ("b", "<f8")], align=True)
    s1 = np.zeros(3, dtype=dt_aligned)
    s2 = np.ones(3, dtype=dt_aligned)
    s2[:] = s1  # same values, padding bytes may differ
    assert hash_value(s1) == hash_value(s2)
    assert hash_value(np.dtype("f8")) != hash_value(np.dtype("f4"))
    masked = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    assert hash_value(masked) == hash_value(np.ma.array([1.0, 99.0, 3.0], mask=[0, 1, 0]))
    assert hash_value(masked) != hash_value(np.ma.array([1.0, 2.0, 3.0]))

    class Tagged(np.ndarray):
        pass

    plain = np.array([[1, 2]])
    assert hash_value(plain.view(Tagged)) != hash_value(plain)  # the subclass is part of it
    ld = np.array([1.5, 2.5], dtype=np.longdouble)
    assert hash_value(ld) == hash_value(ld.copy())


def test_pandas_objects() -> None:
    df = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, np.nan, 2.0],
            "s": ["a", "b", None],
            "c": pd.Categorical(["x", "y", "x"]),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "t": pd.date_range("2024-01-01", periods=3, tz="UTC"),
        }
    )
    digest = hash_value(df)
    assert hash_value(df.copy()) == digest
    assert hash_value(pd.DataFrame(df.to_dict())) != hash_value(df.iloc[:2])
    changed = df.copy()
    changed.loc[1, "i"] = 5
    assert hash_value(changed) != digest
    assert hash_value(df[["f", "i", "s", "c", "n", "t"]]) != digest  # column order is data
    assert hash_value(df.set_index("i")) != digest
    s = pd.Series([1.0, 2.0], index=["a", "b"], name="s")
    assert hash_value(s) == hash_value(s.copy())
    assert hash_value(s) != hash_value(s.rename("t"))
    assert hash_value(s) != hash_value(s.set_axis(["a", "c"]))
    mi = pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])
    assert hash_value(mi) == hash_value(mi.copy())
    assert hash_value(pd.Timestamp("2024-01-01 00:00:00.000000001")) != hash_value(
        pd.Timestamp("2024-01-01 00:00:00.000000002")
    )


def test_pandas_and_numpy_are_not_imported_for_plain_values() -> None:
    code = (
        "import sys\n"
        "from reckon.memo.hashing import hash_value\n"
        "hash_value({'a': [1, 2.0, 'x', b'y', None], 'b': (True, 3+4j)})\n"
        "assert 'numpy' not in sys.modules and 'pandas' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('numpy', 'pandas')))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- decisions -----------------------------------------------------------------------------------


def test_distinct_values_hash_distinct() -> None:
    samples: list[Any] = [
        None, True, False, 0, 1, -1, 2**64, -(2**64), 0.0, -0.0, 1.0, float("nan"), float("inf"),
        1j, complex(0, -0.0), "", "1", b"", b"1", bytearray(b"1"), (), (1,), [], [1], {}, {1: 1},
        {"1": 1}, set(), {1}, frozenset(), frozenset({1}), range(3), range(0, 3, 2), ..., slice(1),
        decimal.Decimal("1.0"), decimal.Decimal("1.00"), fractions.Fraction(1, 3),
        uuid.UUID(int=1), pathlib.PurePosixPath("a"), pathlib.PurePosixPath("b"),
        dt.date(2024, 1, 1), dt.datetime(2024, 1, 1), dt.timedelta(1), dt.time(1),
        collections.OrderedDict(a=1), collections.Counter(a=1), collections.deque([1]),
        ((1,),), ((), ()), ([],), [[]], ("a", "b"), ("ab",),
    ]  # fmt: skip
    digests = [hash_value(v) for v in samples]
    assert len(set(digests)) == len(samples)


def test_float_decisions() -> None:
    assert hash_value(-0.0) != hash_value(0.0)
    nan_bits = np.array([0x7FF8000000000001, 0xFFF8000000000000], dtype=np.uint64).view(np.float64)
    assert (
        hash_value(float("nan")) == hash_value(float(nan_bits[0])) == hash_value(float(nan_bits[1]))
    )
    assert hash_value(complex(float("nan"), 0)) != hash_value(complex(0, 0))
    assert hash_value([float("nan")]) == hash_value([float("nan")])


def test_datetimes_are_tz_aware() -> None:
    utc = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    paris = utc.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert utc == paris
    assert hash_value(utc) != hash_value(paris)  # same instant, different wall time
    assert hash_value(utc) != hash_value(utc.replace(tzinfo=None))
    assert hash_value(paris) == hash_value(
        dt.datetime(2024, 1, 1, 13, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    )
    assert hash_value(dt.time(1, tzinfo=dt.UTC)) != hash_value(dt.time(1))


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Flag(enum.IntFlag):
    A = 1
    B = 2


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    w: float
    h: float
    cache: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Slotted:
    a: int
    b: tuple[int, ...]


class Plain:
    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b


class WithSlots:
    __slots__ = ("a", "b")

    def __init__(self, a: Any) -> None:
        self.a = a


class Custom:
    def __init__(self, key: str, noise: float) -> None:
        self.key = key
        self.noise = noise

    def __reckon_hash__(self) -> object:
        return self.key


def test_structured_objects() -> None:
    assert hash_value(Color.RED) == hash_value(Color["RED"])
    assert hash_value(Color.RED) != hash_value(Color.BLUE)
    assert hash_value(Flag.A | Flag.B) == hash_value(Flag(3))
    assert hash_value(Point(1, 2)) != hash_value((1, 2))
    assert hash_value(Point(1, 2)) == hash_value(Point(x=1, y=2))
    assert hash_value(Box(1, 2)) == hash_value(Box(1, 2, {"ignored": 1}))  # compare=False
    assert hash_value(Box(1, 2)) != hash_value(Box(2, 1))
    assert hash_value(Slotted(1, (2,))) == hash_value(Slotted(1, (2,)))
    assert hash_value(Slotted(1, (2,))) != hash_value(Slotted(1, (3,)))
    assert hash_value(Plain(1, [2])) == hash_value(Plain(1, [2]))
    assert hash_value(Plain(1, [2])) != hash_value(Plain(1, [3]))
    assert hash_value(WithSlots(1)) == hash_value(WithSlots(1))
    assert hash_value(WithSlots(1)) != hash_value(WithSlots(2))
    assert hash_value(Custom("k", 0.1)) == hash_value(Custom("k", 0.2))
    assert hash_value(Custom("k", 0.1)) != hash_value("k")  # the type name is hashed too
    assert hash_value(pathlib.Path("/a/b")) != hash_value("/a/b")
    assert hash_value(collections.OrderedDict(a=1, b=2)) != hash_value(
        collections.OrderedDict(b=2, a=1)
    )
    assert hash_value(collections.defaultdict(list, a=[1])) == hash_value(
        collections.defaultdict(list, a=[1])
    )
    assert hash_value(io.BytesIO(b"abc")) == hash_value(io.BytesIO(b"abc"))
    assert hash_value(re.compile("a+")) != hash_value(re.compile("b+"))


def test_main_script_classes_agree_with_multiprocessing_workers() -> None:
    def make(module: str) -> Any:
        cls = type("Thing", (), {"__module__": module, "__init__": Plain.__init__})
        return cls(1, 2)

    assert hash_value(make("__main__")) == hash_value(make("__mp_main__"))
    assert hash_value(make("__main__")) != hash_value(make("elsewhere"))


def test_register_hasher() -> None:
    class Opaque:
        def __init__(self, ident: int) -> None:
            self.ident = ident
            self.lock = threading.Lock()

    with pytest.raises(UnhashableArgumentError):
        hash_value(Opaque(1))
    register_hasher(Opaque, lambda o: o.ident)
    try:
        assert hash_value(Opaque(1)) == hash_value(Opaque(1))
        assert hash_value(Opaque(1)) != hash_value(Opaque(2))
        assert hash_value([Opaque(3)]) == hash_value([Opaque(3)])
    finally:
        unregister_hasher(Opaque)
    with pytest.raises(UnhashableArgumentError):
        hash_value(Opaque(1))


def test_cycles() -> None:
    a: list[Any] = [1]
    a.append(a)
    b: list[Any] = [1]
    b.append(b)
    assert hash_value(a) == hash_value(b)
    c: list[Any] = [2]
    c.append(c)
    assert hash_value(a) != hash_value(c)
    d: dict[str, Any] = {"x": 1}
    d["self"] = d
    assert hash_value(d) == hash_value(d)
    p = Plain(1, None)
    p.b = p
    q = Plain(1, None)
    q.b = q
    assert hash_value(p) == hash_value(q)
    shared = [1, 2]
    assert hash_value([shared, shared]) == hash_value([[1, 2], [1, 2]])  # a DAG is not a cycle


def test_functions_hash_by_code() -> None:
    def make(k: int) -> Any:
        return lambda x: x + k

    assert hash_value(make(1)) == hash_value(make(1))
    assert hash_value(make(1)) != hash_value(make(2))
    assert hash_value(json.dumps) == hash_value(json.dumps)
    assert hash_value(json.dumps) != hash_value(json.loads)
    assert hash_value(len) != hash_value(abs)


# -- errors --------------------------------------------------------------------------------------


def _gen() -> Any:
    yield 1


@pytest.mark.parametrize(
    "factory, type_name",
    [
        (lambda: open(os.devnull), "_io.TextIOWrapper"),  # noqa: SIM115
        (lambda: socket.socket(), "socket.socket"),
        (threading.Lock, "_thread.lock"),
        (threading.RLock, "_thread.RLock"),
        (_gen, "builtins.generator"),
        (lambda: threading.Thread(target=print), "threading.Thread"),
        (lambda: threading.Event(), "threading.Event"),
    ],
)
def test_unhashable_arguments_name_the_path(factory: Any, type_name: str) -> None:
    bad = factory()
    try:
        with pytest.raises(UnhashableArgumentError) as info:
            hash_value([0, 1, {"k": bad}], path="x")
        message = str(info.value)
        assert message.startswith(f"argument x[2]['k']: cannot hash a {type_name}")
        assert "ignore=('x',)" in message
        assert "key=" in message
        assert "__reckon_hash__" in message
    finally:
        close = getattr(bad, "close", None)
        if close is not None:
            close()


def test_unhashable_paths_through_objects_and_sets() -> None:
    p = Plain(1, Plain(2, threading.Lock()))
    with pytest.raises(
        UnhashableArgumentError, match=r"argument cfg\.b\.b: cannot hash a _thread\.lock"
    ):
        hash_value(p, path="cfg")
    with pytest.raises(UnhashableArgumentError, match=r"argument value\.w: cannot hash"):
        hash_value(Box(threading.Lock(), 1))  # type: ignore[arg-type]
    with pytest.raises(UnhashableArgumentError, match=r"argument value: nested too deeply"):
        deep: list[Any] = []
        node = deep
        for _ in range(100_000):
            node.append([])
            node = node[0]
        hash_value((0, deep))


def test_hasher_is_incremental_and_reusable() -> None:
    h = Hasher()
    h.update(1)
    h.update("a")
    first = h.digest()
    assert h.digest() == first  # digest() does not consume
    h.reset()
    h.update(1)
    h.update("a")
    assert h.digest() == first
    h.reset()
    h.update(b"x" * 100_000)  # large buffers bypass the staging buffer
    h.update(1)
    big = h.digest()
    h2 = Hasher()
    h2.update(b"x" * 100_000)
    h2.update(1)
    assert h2.digest() == big
    assert len(first) == 16


# -- determinism across processes ----------------------------------------------------------------

_SAMPLES_SRC = textwrap.dedent(
    """
    import datetime, decimal, fractions, uuid, pathlib, json, sys, zoneinfo
    import numpy as np
    from reckon.memo.hashing import hash_value
    samples = {
        "int": 12345678901234567890,
        "str": "héllo",
        "bytes": b"\\x00\\xff",
        "dict": {"b": 1, "a": [1, 2.5, None], 3: "x", (1, 2): frozenset({"p", "q"})},
        "set": {"alpha", "beta", "gamma", "delta"},
        "mixed_set": {1, "1", 2.5, (1,)},
        "nested": [{"k": {"z", "y"}}, ({"a": 1}, [b"b"])],
        "floats": (0.1, -0.0, float("inf"), float("nan")),
        "datetime": datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=zoneinfo.ZoneInfo("UTC")),
        "decimal": decimal.Decimal("3.14"),
        "fraction": fractions.Fraction(22, 7),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "path": pathlib.PurePosixPath("/tmp/x"),
        "array": np.arange(12, dtype="<i8").reshape(3, 4),
    }
    print(json.dumps({k: hash_value(v).hex() for k, v in samples.items()}))
    """
)

# Digests frozen when the format was written. A change here changes every stored key: bump
# hashing.FORMAT_VERSION and update these on purpose, never by accident.
EXPECTED = {
    "int": "e925253a9351cb4bf543ba073f1a94bf",
    "str": "853320185a38360ffa3b3b36bea0389b",
    "bytes": "470855338fcd5b87a20ba4a5464c7e0c",
    "dict": "ce8bec0d065cf00332d20886edf4bcbc",
    "set": "f8e36ac0cab8fc9f5641d768bd637dec",
    "mixed_set": "7a4cf162aa5893e26e8164683379d5f8",
    "nested": "bd09d39404b8ddab2849a59a7b137f2b",
    "floats": "a8326a83ef7c3bb9a5ae972fa611b87f",
    "datetime": "3140abb8989ef492b7a950c6ac97979e",
    "decimal": "4968e505929638cbeea0d5f0231d2b10",
    "fraction": "7bb1b55c5cf2a0d4c4e639b614cc16f3",
    "uuid": "4e11688275015881f5c782707b988413",
    "path": "cb4d38b8692c69c08a8395c6186c5104",
    "array": "d750ec0b80a75d1d63467069e3658608",
}


def _digests_in_child(seed: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run(
        [sys.executable, "-c", _SAMPLES_SRC],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    result: dict[str, str] = json.loads(out.stdout)
    return result


def test_equal_across_processes_and_hash_seeds() -> None:
    first = _digests_in_child("0")
    second = _digests_in_child("4242")
    third = _digests_in_child("random")
    assert first == second == third
    for name, expected in EXPECTED.items():
        assert first[name] == expected, f"digest of sample {name!r} changed"


def test_docs_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ```python block of docs/memo-keys.md runs, in order, in one namespace."""
    text = (ROOT / "docs" / "memo-keys.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    namespace: dict[str, Any] = {"__name__": "memo_keys_doc"}
    for i, block in enumerate(blocks):
        code = compile(block, f"docs/memo-keys.md[block {i}]", "exec")
        exec(code, namespace)
    assert "function memo_keys_doc.total" in capsys.readouterr().out


def test_contiguous_arrays_are_not_copied() -> None:
    import tracemalloc

    a = np.ones(10 * 1024 * 1024 // 8)
    hash_value(a)  # warm the dispatch table
    tracemalloc.start()
    try:
        hash_value(a)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, peak


class Nested:
    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def __reckon_hash__(self) -> object:
        return [hash_value(p) for p in self.parts]  # re-entrant use of hash_value


def test_reentrant_and_threaded_use() -> None:
    values = [Nested([i, str(i), {"k": [i]}]) for i in range(50)]
    expected = [hash_value(v) for v in values]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert [hash_value(v) for v in values] == expected
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


objects = st.recursive(
    st.builds(Point, st.integers(), st.integers())
    | st.builds(Box, st.floats(allow_nan=False), st.floats(allow_nan=False))
    | st.builds(Slotted, st.integers(), st.tuples(st.integers()))
    | st.sampled_from(Color)
    | st.builds(pathlib.PurePosixPath, st.text(max_size=10))
    | scalars,
    lambda inner: (
        st.builds(Plain, inner, inner)
        | st.builds(WithSlots, inner)
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(objects, objects)
def test_objects_hash_by_value(a: Any, b: Any) -> None:
    assert hash_value(copy.deepcopy(a)) == hash_value(a)
    if hash_value(a) == hash_value(b):
        assert repr(_plain(a)) == repr(_plain(b))


def _plain(value: Any) -> Any:
    """A comparable rendering of an object tree (Plain and WithSlots compare by identity)."""
    if isinstance(value, Plain):
        return ("Plain", _plain(value.a), _plain(value.b))
    if isinstance(value, WithSlots):
        return ("WithSlots", _plain(value.a))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return (type(value).__name__, value)


def test_long_keys_and_values_cross_the_direct_feed_size() -> None:
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    d1 = {long_a: 1, "k": b"x" * 10_000}
    d2 = {"k": b"x" * 10_000, long_a: 1}
    assert hash_value(d1) == hash_value(d2)
    assert hash_value(d1) != hash_value({long_b: 1, "k": b"x" * 10_000})
    h = Hasher()
    h.update(d1)
    assert h.digest() == hash_value(d1)
    assert hash_value([d1, {1: d1}]) == hash_value([d2, {1: d2}])
