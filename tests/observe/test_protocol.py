"""The sans-I/O protocol: frames in, validated messages out (no sockets here)."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reckon.errors import ObserveProtocolError
from reckon.observe import protocol as p


def test_request_round_trips_in_both_codecs() -> None:
    req = p.Request(7, "tasks", {"state": "running", "title": "fit", "limit": 5})
    codecs: tuple[p.Codec, ...] = ("msgpack", "json")
    for codec in codecs:
        frame = p.encode_request(req, codec)
        assert isinstance(frame, bytes if codec == "msgpack" else str)
        assert p.decode_request(frame) == req


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"v": 2, "id": 1, "type": "status"}, p.E_UNSUPPORTED_VERSION),
        ({"id": 1, "type": "status"}, p.E_UNSUPPORTED_VERSION),
        ({"v": True, "id": 1, "type": "status"}, p.E_UNSUPPORTED_VERSION),
        ({"v": 1, "id": 0, "type": "status"}, p.E_BAD_REQUEST),
        ({"v": 1, "id": "1", "type": "status"}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "reboot"}, p.E_UNKNOWN_TYPE),
        ({"v": 1, "id": 1}, p.E_UNKNOWN_TYPE),
        ({"v": 1, "id": 1, "type": "task"}, p.E_BAD_REQUEST),  # task_id missing
        ({"v": 1, "id": 1, "type": "task", "task_id": -1}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "task", "task_id": True}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "tasks", "state": "sleeping"}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "tasks", "limit": p.MAX_LIST_LIMIT + 1}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "tasks", "colour": "red"}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "clear_cache", "level": "disk"}, p.E_BAD_REQUEST),
        # Unhashable and bool levels: found by the fuzz test (``[] in dict`` raised TypeError).
        ({"v": 1, "id": 1, "type": "clear_cache", "level": []}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "clear_cache", "level": {}}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "clear_cache", "level": True}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "clear_cache", "level": 1.0}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "tasks", "state": ["done"]}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "subscribe", "status_interval": 0.0}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "subscribe", "status_interval": float("nan")}, p.E_BAD_REQUEST),
        ({"v": 1, "id": 1, "type": "capture", "enabled": "yes"}, p.E_BAD_REQUEST),
    ],
)
def test_invalid_requests_name_their_error_code(message: dict[str, object], code: str) -> None:
    with pytest.raises(ObserveProtocolError) as info:
        p.parse_request(message)
    assert p.error_code(info.value) == code
    assert str(info.value)  # says what was wrong


def test_frames_that_are_not_maps_are_malformed() -> None:
    for frame in (b"\xc1", b"\x93\x01\x02\x03", "[1, 2]", "{", msgpack.packb({1: 2})):
        with pytest.raises(ObserveProtocolError) as info:
            p.loads(frame)
        assert p.error_code(info.value) == p.E_MALFORMED


def test_oversized_frames_are_refused_before_decoding() -> None:
    frame = msgpack.packb({"v": 1, "id": 1, "type": "ping", "pad": "x" * 100})
    with pytest.raises(ObserveProtocolError) as info:
        p.decode_request(frame, max_bytes=50)
    assert p.error_code(info.value) == p.E_TOO_LARGE


def test_server_messages_decode() -> None:
    assert p.decode_server_message(p.encode_result(3, {"a": 1})) == p.Result(3, {"a": 1})
    assert p.decode_server_message(p.encode_error(3, "not_found", "no")) == p.Error(
        3, "not_found", "no"
    )
    push = p.decode_server_message(p.encode_events(2, [{"seq": 1}], 5, "json"))
    assert push == p.EventsPush(2, [{"seq": 1}], 5)
    status = p.decode_server_message(p.encode_status(2, {"x": 1}))
    assert status == p.StatusPush(2, {"x": 1})
    with pytest.raises(ObserveProtocolError):
        p.decode_server_message(p.dumps({"v": 1, "type": "events", "sub": 1, "events": 3}))


def test_json_frames_encode_bytes_as_hex() -> None:
    frame = p.encode_result(1, {"blob": b"\x01\xff"}, "json")
    assert json.loads(frame)["result"]["blob"] == "01ff"


def test_cache_levels() -> None:
    assert p.cache_level_value("memory") == 1
    assert p.cache_level_value("full") == 2
    assert p.cache_level_value(2) == 2
    with pytest.raises(ObserveProtocolError):
        p.cache_level_value("disk")


_bodies = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(p.TASK_STATES),
        "title": st.text(max_size=50),
        "limit": st.integers(0, p.MAX_LIST_LIMIT),
    },
)


@given(rid=st.integers(1, 2**63 - 1), body=_bodies, codec=st.sampled_from(["msgpack", "json"]))
def test_valid_tasks_requests_round_trip(rid: int, body: dict[str, object], codec: str) -> None:
    req = p.Request(rid, "tasks", body)
    assert p.decode_request(p.encode_request(req, codec)) == req  # type: ignore[arg-type]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(frame: bytes) -> None:
    try:
        p.decode_request(frame)
    except ObserveProtocolError as exc:
        assert p.error_code(exc) in (
            p.E_MALFORMED,
            p.E_UNSUPPORTED_VERSION,
            p.E_BAD_REQUEST,
            p.E_UNKNOWN_TYPE,
        )


def test_version_negotiation() -> None:
    assert p.negotiate(None) == p.PROTOCOL_VERSION
    assert p.negotiate([1, 7]) == 1
    with pytest.raises(ObserveProtocolError) as info:
        p.negotiate([7, 8])
    assert p.error_code(info.value) == p.E_UNSUPPORTED_VERSION
    with pytest.raises(ObserveProtocolError):
        p.parse_request({"v": 1, "id": 1, "type": "hello", "versions": []})


_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    rid=st.integers(0, 2**63 - 1),
    value=_plain,
    codec=st.sampled_from(["msgpack", "json"]),
)
def test_server_messages_round_trip(rid: int, value: object, codec: p.Codec) -> None:
    assert p.decode_server_message(p.encode_result(rid, value, codec)) == p.Result(rid, value)
    events = [{"seq": 1, "task": value}]
    push = p.decode_server_message(p.encode_events(3, events, rid, codec))
    assert push == p.EventsPush(3, events, rid)
