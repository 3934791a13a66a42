"""PickleCodec: round-trips of nested values and numpy arrays of every dtype, shape and order."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reckon.core import PickleCodec, estimate_size
from reckon.errors import CodecError

CODECS = [
    PickleCodec(),
    PickleCodec(compress_threshold=0, buffer_threshold=0),  # compress and frame everything
    PickleCodec(compress_threshold=None),
]

nested = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(),
        st.binary(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(st.text(max_size=5), children, max_size=5),
        st.frozensets(st.integers(), max_size=5),
    ),
    max_leaves=30,
)

DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.integer_dtypes(endianness=">"),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="="),
    hnp.floating_dtypes(endianness=">"),
    hnp.complex_number_dtypes(),
    hnp.datetime64_dtypes(),
    hnp.timedelta64_dtypes(),
    hnp.byte_string_dtypes(max_len=6),
    hnp.unicode_string_dtypes(max_len=6),
    st.just(np.dtype([("a", "<i4"), ("b", ">f8"), ("c", "S3")])),
    st.just(np.dtype(np.longdouble)),
)


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical values (NaNs included) and the dtype pickle itself gives back (numpy pickles
    some non-native-endian arrays, e.g. non-contiguous ones, in native byte order)."""
    expected = pickle.loads(pickle.dumps(a, protocol=5))
    if a.shape != b.shape or b.dtype != expected.dtype:
        return False
    return a.astype(b.dtype).tobytes(order="C") == b.tobytes(order="C")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested, st.sampled_from(CODECS))
def test_nested_values_round_trip(value: object, codec: PickleCodec) -> None:
    data = codec.encode(value)
    assert codec.decode(data) == value
    assert codec.decode(bytes(data)) == value  # from bytes as well as from a view


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)),
    st.sampled_from(["C", "F", "slice", "transpose", "reversed"]),
    st.sampled_from(CODECS),
)
def test_numpy_arrays_of_every_dtype_shape_and_order(
    array: np.ndarray, layout: str, codec: PickleCodec
) -> None:
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "slice" and array.ndim:
        array = array[::2]
    elif layout == "transpose":
        array = array.T
    elif layout == "reversed" and array.ndim:
        array = array[::-1]
    back = codec.decode(codec.encode(array))
    assert isinstance(back, np.ndarray)
    assert _same_array(array, back)
    if array.ndim > 1 and array.size > 1 and array.flags.f_contiguous and layout == "F":
        assert back.flags.f_contiguous  # memory order survives


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(hnp.floating_dtypes(), hnp.array_shapes(max_dims=3)), nested)
def test_arrays_inside_containers(array: np.ndarray, other: object) -> None:
    codec = PickleCodec()
    value = {"a": array, "b": [array, other], "c": (other, array[..., ::-1])}
    back = codec.decode(codec.encode(value))
    assert isinstance(back, dict)
    assert _same_array(array, back["a"]) and _same_array(array, back["b"][0])
    assert back["b"][1] == other
    assert _same_array(array[..., ::-1], back["c"][1])


def test_big_arrays_travel_out_of_band_and_decode_without_copies() -> None:
    codec = PickleCodec()
    array = np.arange(1 << 18, dtype=np.float64).reshape(512, 512)
    data = codec.encode(array)
    assert len(data) < array.nbytes + 1024  # the pickle stream does not hold a second copy
    view = memoryview(bytes(data))
    back = codec.decode(view)
    assert isinstance(back, np.ndarray)
    assert np.array_equal(back, array)
    # The array is a view of the input buffer (nothing was copied), aligned to 64 bytes.
    assert np.shares_memory(back, np.frombuffer(view, dtype=np.uint8))
    offset = back.ctypes.data - np.frombuffer(view, dtype=np.uint8).ctypes.data
    assert offset % 64 == 0


def test_big_bytes_skip_pickle() -> None:
    codec = PickleCodec(buffer_threshold=1024)
    blob = bytes(range(256)) * 64
    data = codec.encode(blob)
    assert len(data) == 64 + len(blob)
    assert codec.decode(data) == blob and type(codec.decode(data)) is bytes
    arr = bytearray(blob)
    back = codec.decode(codec.encode(arr))
    assert back == arr and type(back) is bytearray


def test_compression_applies_above_the_threshold_only() -> None:
    codec = PickleCodec(compress_threshold=1000)
    small, large = ["x"] * 10, ["reckon"] * 10_000
    assert codec.encode(small)[0] == 0
    encoded = codec.encode(large)
    assert encoded[0] == 1 and len(encoded) < len(pickle.dumps(large, protocol=5)) // 10
    assert codec.decode(encoded) == large
    assert PickleCodec(compress_threshold=None).encode(large)[0] == 0


def test_values_that_cannot_be_pickled_raise_codec_error() -> None:
    codec = PickleCodec()
    with pytest.raises(CodecError, match=r"lambda|function|pickle"):
        codec.encode(lambda: 1)
    import threading

    with pytest.raises(CodecError, match="lock"):
        codec.encode({"lock": threading.Lock()})


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -1])
def test_truncated_or_garbage_data_raise_codec_error(cut: int) -> None:
    codec = PickleCodec(compress_threshold=0)
    data = bytes(codec.encode({"a": np.arange(1000), "b": "x" * 1000}))
    with pytest.raises(CodecError):
        codec.decode(data[:cut])
    with pytest.raises(CodecError):
        codec.decode(b"\x07garbage")


def test_estimate_size_is_cheap_and_sensible() -> None:
    assert estimate_size(b"x" * 10_000) >= 10_000
    assert estimate_size("x" * 10_000) >= 10_000
    assert estimate_size(np.zeros(1 << 20)) >= 8 << 20
    big_list = [b"x" * 100] * 100_000
    assert 10_000_000 <= estimate_size(big_list) <= 30_000_000
    assert estimate_size({i: float(i) for i in range(1000)}) > 1000 * 32
    assert 0 < estimate_size(3) < 100 and 0 < estimate_size(math.pi) < 100
    assert estimate_size(None) > 0

    class Thing:
        def __init__(self) -> None:
            self.payload = b"y" * 5000

    assert estimate_size(Thing()) >= 5000


def test_non_contiguous_array_views_keep_their_values() -> None:
    codec = PickleCodec()
    base = np.arange(100, dtype=np.int32).reshape(10, 10)
    view = base[::3, 1::2]
    assert not view.flags.c_contiguous
    assert np.array_equal(codec.decode(codec.encode(view)), view)


def test_compression_from_many_threads_at_once() -> None:
    import threading

    codec = PickleCodec(compress_threshold=0)
    values = [{"n": i, "text": "reckon " * (100 + i)} for i in range(8)]
    errors: list[BaseException] = []

    def work(value: dict[str, object]) -> None:
        try:
            for _ in range(200):
                assert codec.decode(codec.encode(value)) == value
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert pickle.loads(pickle.dumps(codec)).decode(codec.encode(values)) == values


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        nested,
        hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
        st.tuples(
            hnp.arrays(hnp.floating_dtypes(), hnp.array_shapes(max_dims=2)),
            st.binary(max_size=300),
            hnp.arrays(hnp.integer_dtypes(), hnp.array_shapes(max_dims=2)),
        ),
        st.binary(min_size=1000, max_size=3000),
    ),
    st.sampled_from(CODECS),
)
def test_encode_buffers_concatenate_to_encode(value: object, codec: PickleCodec) -> None:
    """The pieces are exactly the single-buffer encoding, cut where the out-of-band buffers
    start and end (so a store may write them one after the other)."""
    pieces = codec.encode_buffers(value)
    joined = b"".join(pieces)
    assert joined == bytes(codec.encode(value))
    back = codec.decode(joined)
    if isinstance(value, np.ndarray):
        assert isinstance(back, np.ndarray) and _same_array(value, back)
    elif isinstance(value, tuple) and value and isinstance(value[0], np.ndarray):
        assert isinstance(back, tuple)
        assert _same_array(value[0], back[0]) and back[1] == value[1]
        assert _same_array(value[2], back[2])
    else:
        assert back == value


def test_encode_buffers_hand_out_of_band_buffers_through_uncopied() -> None:
    codec = PickleCodec()
    array = np.arange(1 << 18, dtype=np.float64).reshape(512, 512)
    pieces = codec.encode_buffers({"grid": array, "name": "g"})
    assert len(pieces) >= 2
    views = [np.frombuffer(p, dtype=np.uint8) for p in pieces]
    (shared,) = [v for v in views if np.shares_memory(v, array)]
    assert shared.nbytes == array.nbytes
    assert sum(len(p) for p in pieces[:-1]) % 64 == 0  # the buffer starts aligned
    blob = b"x" * (1 << 17)
    head, body = codec.encode_buffers(blob)
    assert len(head) == 64 and np.shares_memory(
        np.frombuffer(body, np.uint8), np.frombuffer(blob, np.uint8)
    )
