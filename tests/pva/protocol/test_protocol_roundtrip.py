"""Property tests: every type and value survives encode -> decode in both byte orders."""

from __future__ import annotations

import copy
import sys
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pva_protocol_strategies import structures, types, values  # type: ignore[import-not-found]

from reckon.pva.protocol import (
    Beacon,
    BitSet,
    Discovery,
    FieldDesc,
    LocalProtocolError,
    OriginTag,
    SearchRequest,
    SearchResponse,
    Structure,
    TypeRecvCache,
    TypeSendCache,
    VariantValue,
    decode_partial,
    decode_type,
    decode_value,
    encode_partial,
    encode_type,
    encode_value,
    values_equal,
)
from reckon.pva.protocol._wire import read_size, size_bytes

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
orders = st.booleans()


@SETTINGS
@given(t=types(legacy=True), be=orders)
def test_type_round_trip(t: FieldDesc, be: bool) -> None:
    data = encode_type(t, be)
    back, pos = decode_type(data, 0, be, None, 64)
    assert back == t and pos == len(data)


@SETTINGS
@given(data=st.data(), be=orders, numpy=st.booleans())
def test_value_round_trip(data: st.DataObject, be: bool, numpy: bool) -> None:
    t = data.draw(types(legacy=True))
    v = data.draw(values(t))
    raw = encode_value(t, v, big_endian=be)
    back = decode_value(t, raw, big_endian=be, use_numpy=numpy)
    assert values_equal(back, v)
    # a structure is walked the first time it is seen and compiled the second time
    assert values_equal(decode_value(t, raw, big_endian=be, use_numpy=numpy), v)


@SETTINGS
@given(data=st.data(), be=orders)
def test_missing_fields_are_sent_as_their_defaults(data: st.DataObject, be: bool) -> None:
    t = data.draw(structures())
    full = data.draw(values(t))
    left_out = data.draw(st.sets(st.sampled_from(t.names)) if t.names else st.just(set()))
    expected = {k: t[k].default() if k in left_out else v for k, v in full.items()}
    raw = encode_value(t, {k: v for k, v in full.items() if k not in left_out}, big_endian=be)
    # nothing of the first, failed attempt (fields before the missing one) stays in the output
    assert raw == encode_value(t, expected, big_endian=be)
    assert values_equal(decode_value(t, raw, big_endian=be), expected)


class _Misfit:
    """A value no pvData type takes (not even a boolean, which takes anything with a truth)."""

    def __bool__(self) -> bool:
        raise TypeError("no truth value")


@SETTINGS
@given(t=types(legacy=True), be=orders)
def test_a_value_that_fits_no_type_is_refused_with_local_protocol_error(
    t: FieldDesc, be: bool
) -> None:
    # a structure without fields reads nothing from its value: it encodes without looking
    assume(not (isinstance(t, Structure) and not t.fields))
    with pytest.raises(LocalProtocolError):
        encode_value(t, _Misfit(), big_endian=be)


def _apply(t: Structure, base: dict[str, Any], value: dict[str, Any], mask: int) -> dict[str, Any]:
    """What a receiver should hold after a partial update (reference, not the codec's code)."""
    out = copy.deepcopy(base)
    if mask & 1:
        return copy.deepcopy(value)
    for path, off in t.offsets.items():
        if not (mask >> off) & 1:
            continue
        parts = path.split(".")
        # skip a field whose enclosing structure was already copied whole
        if any((mask >> t.offsets[".".join(parts[:i])]) & 1 for i in range(1, len(parts))):
            continue
        src, dst = value, out
        for p in parts[:-1]:
            src, dst = src[p], dst[p]
        dst[parts[-1]] = copy.deepcopy(src[parts[-1]])
    return out


@SETTINGS
@given(data=st.data(), be=orders)
def test_partial_round_trip(data: st.DataObject, be: bool) -> None:
    t = data.draw(structures())
    base = data.draw(values(t))
    new = data.draw(values(t))
    bits = data.draw(st.sets(st.integers(0, t.bit_count - 1)))
    changed = BitSet(bits)
    raw = encode_partial(t, new, changed, big_endian=be)
    got_changed, merged = decode_partial(t, raw, big_endian=be, base=base)
    # a mask seen for the first time is walked, afterwards it is compiled: both must agree
    again_changed, again = decode_partial(t, raw, big_endian=be, base=base)
    assert again_changed == got_changed and values_equal(again, merged)
    # what travels: bit 0 alone, or the bits without those below a whole-structure bit
    expected = _apply(t, base, new, changed.mask)
    assert values_equal(merged, expected)
    assert got_changed.mask & ~changed.mask == 0
    assert values_equal(_apply(t, base, new, got_changed.mask), expected)


@SETTINGS
@given(n=st.integers(0, 2**63 - 1), be=orders)
def test_size_round_trip(n: int, be: bool) -> None:
    b = size_bytes(n, be)
    assert read_size(b, 0, be) == (n, len(b))


@SETTINGS
@given(bits=st.sets(st.integers(0, 200)), be=orders)
def test_bitset_round_trip(bits: set[int], be: bool) -> None:
    from reckon.pva.protocol._bitset import read_bitset

    b = BitSet(bits).encode(be)
    assert read_bitset(b, 0, be) == (BitSet(bits).mask, len(b))


def test_bitset_word_layout_matches_pvxs() -> None:
    # bit 0 and bit 64: one whole word in message byte order, then one tail byte
    assert BitSet([0, 64]).encode(False).hex() == "09" + "0100000000000000" + "01"
    assert BitSet([0, 64]).encode(True).hex() == "09" + "0000000000000001" + "01"


@SETTINGS
@given(data=st.data(), be=orders)
def test_type_cache_round_trip(data: st.DataObject, be: bool) -> None:
    ts = data.draw(st.lists(structures(), min_size=1, max_size=4))
    send, recv = TypeSendCache(), TypeRecvCache()
    for t in ts + ts:
        raw = encode_type(t, be, send)
        back, pos = decode_type(raw, 0, be, recv, 64)
        assert back == t and pos == len(raw)


addresses = st.sampled_from(["127.0.0.1", "0.0.0.0", "10.1.2.3", "::1", "fe80::1"])
guids = st.binary(min_size=12, max_size=12)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
discovery_events = st.one_of(
    st.builds(
        SearchRequest,
        u32,
        st.lists(st.tuples(u32, st.text(min_size=1, max_size=10)), max_size=3).map(tuple),
        st.sampled_from(["127.0.0.1", "10.1.2.3", "::1"]),
        u16,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        SearchResponse,
        guids,
        u32,
        addresses,
        u16,
        st.booleans(),
        st.lists(u32, max_size=4).map(tuple),
    ),
    st.builds(
        Beacon,
        guids,
        st.integers(0, 255),
        u16,
        addresses,
        u16,
        st.just("tcp"),
        st.integers(0, 255),
        st.one_of(st.none(), st.just(VariantValue.of({"load": 0.5}))),
    ),
    st.builds(OriginTag, addresses),
)


@SETTINGS
@given(evs=st.lists(discovery_events, min_size=1, max_size=3), be=orders)
def test_discovery_round_trip(evs: list[Any], be: bool) -> None:
    d = Discovery(big_endian=be)
    assert d.decode(d.encode(*evs)) == evs


@pytest.mark.parametrize("be", [False, True])
def test_variant_inference(be: bool) -> None:
    import numpy as np

    for v in (1, 1.5, "s", True, [1, 2], [1.5], ["a"], {"a": 1, "b": {"c": "x"}}, np.arange(3)):
        vv = VariantValue.of(v)
        raw = encode_value(vv.type, vv.value, big_endian=be)
        assert values_equal(decode_value(vv.type, raw, big_endian=be), v)


def test_arrays_round_trip_without_numpy() -> None:
    """Without numpy, numeric arrays are lists packed by struct (a separate interpreter, where
    importing numpy fails)."""
    import subprocess
    import sys

    script = """
import sys
sys.modules["numpy"] = None
from reckon.pva.protocol import LocalProtocolError, ScalarArray, decode_value, encode_value
from reckon.pva.protocol._arrays import HAVE_NUMPY
assert not HAVE_NUMPY
for kind, v in [("?", [True, False]), ("b", [-1, 2]), ("L", [2**64 - 1]), ("f", [1.5]), ("d", [])]:
    for be in (False, True):
        raw = encode_value(ScalarArray(kind), v, big_endian=be)
        assert decode_value(ScalarArray(kind), raw, big_endian=be) == v, (kind, v, be)
try:
    encode_value(ScalarArray("b"), [300])
except LocalProtocolError:
    pass
else:
    raise AssertionError("300 fitted a byte")
assert encode_value(ScalarArray("h"), [1, 2], big_endian=True) == bytes([2, 0, 1, 0, 2])
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_decoders_shared_by_threads_survive_races() -> None:
    """Every connection, on whatever thread, shares the compile caches: decoding the same new
    types from many threads at once must neither fail nor mix them up."""
    types = [Structure([(f"f{i}", "d"), ("n", "i")], id=f"race{i}") for i in range(3000)]
    blobs = [encode_value(t, {f"f{i}": float(i), "n": i}) for i, t in enumerate(types)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2):
                for i, (t, b) in enumerate(zip(types, blobs, strict=True)):
                    assert decode_value(t, b)["n"] == i
        except BaseException as exc:
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]
