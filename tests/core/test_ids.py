"""RequestId: canonical bytes are injective, keys are computed once and never change."""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.core import RequestId
from reckon.core.ids import canonical_bytes
from reckon.errors import InvalidRequestIdError

# Known disk keys: if one of these changes, every store entry ever written is orphaned. Change
# them only together with the encoding version prefix in reckon/core/ids.py.
KNOWN = [
    ((), "c91baddec72280b4887cde73a03e76ec2e454627db1fb8d8460578e98fe9059b"),
    (("a",), "72ddf4d7fc3d3f0e6ecde7d11127d010bda9601567ab5c70ddec5e30792fd0f5"),
    (("a", "b"), "111926d475c1ee307597787a1d15e9abae5ad2ae3e352f2fa43eafc06021f41c"),
    (("ab",), "314e452dcfbb6bd02c8674fc198418bf1023d7beed80f495f769eb2ea75c76b6"),
    ((1,), "b85ecc3136aa119f4e1ce977123e9bafe8fe415ac368ff33d812cee0d9233e6c"),
    (("1",), "a4c534d08a922e21ae440c71db70c7ae53319c5435a8f14bf7fc72f718ec3899"),
    ((b"1",), "d80207551f8ba32eec86863e08aefc4bf7ccfc9384cf3af2bfd23a174781f5c0"),
    (
        (-1, 2**70, ("x", (b"", 0))),
        "4c7243d6fa38f6dfb45bf99eee639ea50b3e3963cdd2865f503bdb300776a49a",
    ),
]

parts = st.recursive(
    st.one_of(st.text(max_size=8), st.integers(), st.binary(max_size=8)),
    lambda children: st.lists(children, max_size=4).map(tuple),
    max_leaves=12,
)


@pytest.mark.parametrize(("args", "expected"), KNOWN)
def test_disk_key_is_stable(args: tuple, expected: str) -> None:
    assert RequestId(*args).disk_key == expected


def test_canonical_bytes_layout_is_the_documented_one() -> None:
    def n(k: int) -> bytes:
        return k.to_bytes(8, "little")

    expected = b"reckon.id.v1\x00" + b"t" + n(2) + b"s" + n(1) + b"a" + b"i" + n(1) + b"\x05"
    assert canonical_bytes(("a", 5)) == expected
    assert RequestId("a", 5).disk_key == hashlib.sha256(expected).hexdigest()


def test_disk_key_is_the_same_in_another_process() -> None:
    code = "from reckon.core import RequestId; print(RequestId('a', 1, (b'x', -3)).disk_key)"
    for seed in ("0", "12345"):  # str hashing differs between these processes: keys must not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=env,
        )
        assert out.stdout.strip() == RequestId("a", 1, (b"x", -3)).disk_key


@settings(max_examples=300, deadline=None)
@given(parts, parts)
def test_canonical_bytes_are_injective(a: object, b: object) -> None:
    ca, cb = canonical_bytes((a,)), canonical_bytes((b,))
    if a == b and type(a) is type(b):
        assert ca == cb
    elif not _equal_as_parts(a, b):
        assert ca != cb
        assert RequestId(a) != RequestId(b)  # type: ignore[arg-type]


def _equal_as_parts(a: object, b: object) -> bool:
    # Types matter (1 != "1" != b"1"); bool counts as the int it equals.
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_equal_as_parts(x, y) for x, y in zip(a, b, strict=True))
    ta = int if isinstance(a, int) else type(a)
    tb = int if isinstance(b, int) else type(b)
    return ta is tb and a == b


@settings(max_examples=100, deadline=None)
@given(st.lists(parts, max_size=4))
def test_keys_are_deterministic_and_equality_follows_memory_key(ps: list) -> None:
    a, b = RequestId(*ps), RequestId(*ps)
    assert a == b and hash(a) == hash(b) and a.memory_key == b.memory_key
    assert a.disk_key == b.disk_key and len(a.disk_key) == 64
    assert pickle.loads(pickle.dumps(a)) == a


def test_type_tags_and_lengths_separate_lookalikes() -> None:
    ids = [
        RequestId("a", "b"),
        RequestId("ab"),
        RequestId(("a", "b")),
        RequestId(1),
        RequestId("1"),
        RequestId(b"1"),
        RequestId((1,)),
        RequestId(),
        RequestId(()),
        RequestId(0),
        RequestId(-1),
        RequestId(255),
        RequestId(256),
    ]
    assert len({i.memory_key for i in ids}) == len(ids)
    assert len({i.disk_key for i in ids}) == len(ids)


def test_from_digest() -> None:
    plain = RequestId("x")
    a = RequestId.from_digest(plain.disk_key)
    b = RequestId.from_digest(bytes.fromhex(plain.disk_key))
    assert a == b and a.disk_key == plain.disk_key and a.parts is None
    assert pickle.loads(pickle.dumps(a)) == a
    for bad in ["abc", "zz" * 32, b"short", 12]:
        with pytest.raises(InvalidRequestIdError):
            RequestId.from_digest(bad)  # type: ignore[arg-type]


def test_from_digest_keys_follow_the_digest_whatever_its_spelling() -> None:
    raw = bytes(range(32))
    ids = [
        RequestId.from_digest(raw),
        RequestId.from_digest(raw.hex()),
        RequestId.from_digest(raw.hex().upper()),
        RequestId.from_digest(bytearray(raw)),
        RequestId.from_digest(memoryview(raw)),
    ]
    assert all(i == ids[0] and hash(i) == hash(ids[0]) for i in ids)
    assert {i.disk_key for i in ids} == {raw.hex()}  # lowercase hex, made on first use
    assert repr(ids[2]) == f"RequestId.from_digest({raw.hex()!r})"
    # A digest id is not the parts id whose disk key it names, but addresses the same entry.
    plain = RequestId("x")
    named = RequestId.from_digest(plain.disk_key)
    assert named != plain and named.disk_key == plain.disk_key == RequestId("x").disk_key


def test_immutable_and_never_copied() -> None:
    rid = RequestId("a")
    with pytest.raises(AttributeError):
        rid.memory_key = 3  # type: ignore[misc]
    assert copy.copy(rid) is rid and copy.deepcopy(rid) is rid
    assert "a" in repr(rid)


def test_bad_parts_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(InvalidRequestIdError, match="float"):
        RequestId(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestIdError):
        RequestId(("a", [1]))  # type: ignore[arg-type]
