"""Bad input: random, mutated, truncated and forged bytes. Only ProtocolError subclasses may
escape a connection or a decoder, nothing recurses without bound, and a forged size never
makes us allocate what the message cannot hold."""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import test_protocol_golden as golden  # type: ignore[import-not-found]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pva_protocol_strategies import types  # type: ignore[import-not-found]

from reckon.pva.protocol import (
    RPC,
    ArrayInit,
    ArrayInitResponse,
    ClientConnection,
    ConnectionValidated,
    ConnectionValidationResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DecodeError,
    DestroyChannel,
    Discovery,
    Get,
    GetField,
    GetFieldResponse,
    GetInit,
    GetInitResponse,
    GetResponse,
    LimitExceededError,
    LocalProtocolError,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorUpdate,
    ProcessInit,
    ProcessInitResponse,
    ProtocolError,
    Put,
    PutGetInit,
    PutGetInitResponse,
    PutInit,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    ScalarArray,
    ServerConnection,
    Structure,
    VariantValue,
    decode_partial,
    decode_type,
    decode_value,
    nt,
)

FUZZ = settings(
    max_examples=int(os.environ.get("RECKON_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
NT = nt.NTScalar("d")
GET_T = Structure([("value", "i"), ("result", "d")])


def _try(fn: Callable[[], Any]) -> None:
    # our scripted answer may not fit the (corrupted) state: that is fine
    with contextlib.suppress(LocalProtocolError):
        fn()


def respond(srv: ServerConnection, ev: Any) -> None:
    """A permissive server: answers whatever arrives, to drive the parser deep."""
    if isinstance(ev, ConnectionValidationResponse):
        _try(lambda: srv.send(ConnectionValidated()))
    elif isinstance(ev, CreateChannelRequest):
        sid = golden.SID if ev.cid == golden.CID else (ev.cid + 1) & 0xFFFFFFFF
        _try(lambda: srv.send(CreateChannelResponse(ev.cid, sid)))
    elif isinstance(ev, (GetInit, PutInit, MonitorInit)):
        cls = {GetInit: GetInitResponse, PutInit: PutInitResponse}.get(
            type(ev), MonitorInitResponse
        )
        _try(lambda: srv.send(cls(ev.ioid, type=NT.type)))
    elif isinstance(ev, PutGetInit):
        _try(lambda: srv.send(PutGetInitResponse(ev.ioid, put_type=NT.type, get_type=GET_T)))
    elif isinstance(ev, (ProcessInit, RPCInit)):
        cls2 = ProcessInitResponse if isinstance(ev, ProcessInit) else RPCInitResponse
        _try(lambda: srv.send(cls2(ev.ioid)))
    elif isinstance(ev, ArrayInit):
        _try(lambda: srv.send(ArrayInitResponse(ev.ioid, type=ScalarArray("d"))))
    elif isinstance(ev, Get):
        _try(lambda: srv.send(GetResponse(ev.ioid, value=NT.wrap(1.0))))
    elif isinstance(ev, PutRead):
        _try(lambda: srv.send(PutReadResponse(ev.ioid, value=NT.wrap(1.0))))
    elif isinstance(ev, Put):
        _try(lambda: srv.send(PutResponse(ev.ioid)))
    elif isinstance(ev, RPC):
        _try(lambda: srv.send(RPCResponse(ev.ioid, result=VariantValue.of(1.0))))
    elif isinstance(ev, MonitorStart):
        _try(lambda: srv.send(MonitorUpdate(ev.ioid, NT.wrap(2.0))))
    elif isinstance(ev, GetField):
        _try(lambda: srv.send(GetFieldResponse(ev.ioid, type=NT.type)))
    elif isinstance(ev, DestroyChannel):
        _try(lambda: srv.send(ev))


def run_server(chunks: list[bytes], **kw: Any) -> str:
    srv = ServerConnection(**kw)
    srv.initiate()
    try:
        for chunk in chunks:
            srv.receive_data(chunk)
            for ev in srv.events():
                respond(srv, ev)
    except ProtocolError:
        return "dropped"
    return "ok"


CLIENT_MESSAGES = [
        golden.C_VALIDATION, golden.C_SEARCH, golden.C_CREATE, golden.C_GET_INIT, golden.C_GET,
        golden.C_DESTROY_GET, golden.C_PUT_INIT, golden.C_PUT_READ, golden.C_PUT,
        golden.C_RPC_INIT, golden.C_RPC, golden.C_MON_INIT, golden.C_MON_START,
        golden.C_DESTROY_MON,
]  # fmt: skip
CLIENT_STREAM = b"".join(CLIENT_MESSAGES)
BOUNDARIES = [sum(len(m) for m in CLIENT_MESSAGES[:i]) for i in range(len(CLIENT_MESSAGES) + 1)]


def split(data: bytes, step: int) -> list[bytes]:
    """Cut at the original message boundaries (a real client waits for answers), then into
    ``step``-sized pieces."""
    out = []
    for a, b in zip(BOUNDARIES, [*BOUNDARIES[1:], len(data)], strict=False):
        piece = data[a:b] if b > a else b""
        out += [piece[i : i + step] for i in range(0, len(piece), step)]
    return out


def test_the_unmutated_stream_is_accepted() -> None:
    assert run_server(split(CLIENT_STREAM, 1000)) == "ok"
    assert run_server(split(CLIENT_STREAM, 1)) == "ok"


mutations = st.lists(
    st.tuples(st.integers(0, len(CLIENT_STREAM) - 1), st.integers(0, 255)), min_size=1, max_size=6
)


@FUZZ
@given(muts=mutations, cut=st.integers(1, len(CLIENT_STREAM)), step=st.integers(1, 64))
def test_mutated_client_stream_into_server(
    muts: list[tuple[int, int]], cut: int, step: int
) -> None:
    data = bytearray(CLIENT_STREAM)
    for pos, byte in muts:
        data[pos] = byte
    data = data[:cut]
    run_server(split(bytes(data), step))


@FUZZ
@given(junk=st.binary(max_size=300), prefix=st.integers(0, len(CLIENT_STREAM)))
def test_valid_prefix_then_random_bytes_into_server(junk: bytes, prefix: int) -> None:
    run_server([*split(CLIENT_STREAM[:prefix], 1000), junk])


# client side: replay the p4p server's bytes, corrupting one step
CLIENT_SCRIPT: list[tuple[list[Any], bytes]] = [
    ([], golden.S_OPEN),
    ([ConnectionValidationResponse.ca("root", "vm")], golden.S_VALIDATED),
    ([CreateChannelRequest(golden.CID, "TST")], golden.S_CREATE),
    ([GetInit(golden.SID, golden.GET_IOID)], golden.S_GET_INIT),
    ([Get(golden.SID, golden.GET_IOID)], golden.S_GET),
    ([PutInit(golden.SID, golden.PUT_IOID)], golden.S_PUT_INIT),
    ([PutRead(golden.SID, golden.PUT_IOID)], golden.S_PUT_READ),
    ([Put(golden.SID, golden.PUT_IOID, {"value": 2.5})], golden.S_PUT),
    ([RPCInit(golden.SID, golden.RPC_IOID)], golden.S_RPC_INIT),
    ([RPC(golden.SID, golden.RPC_IOID, VariantValue.of({"a": 3}))], golden.S_RPC),
    ([MonitorInit(golden.SID, golden.MON_IOID)], golden.S_MON_INIT),
    ([MonitorStart(golden.SID, golden.MON_IOID)], golden.S_MON_UPDATES),
]


def run_client(step: int, mutate: Callable[[bytes], bytes]) -> str:
    cli = ClientConnection()
    try:
        for i, (sends, chunk) in enumerate(CLIENT_SCRIPT):
            for ev in sends:
                try:
                    cli.send(ev)
                except LocalProtocolError:
                    return "stuck"
            cli.receive_data(mutate(chunk) if i == step else chunk)
            list(cli.events())
    except ProtocolError:
        return "dropped"
    return "ok"


def test_the_unmutated_script_is_accepted() -> None:
    assert run_client(-1, lambda b: b) == "ok"


@FUZZ
@given(
    step=st.integers(0, len(CLIENT_SCRIPT) - 1),
    muts=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 200),
    junk=st.binary(max_size=40),
)
def test_mutated_server_bytes_into_client(
    step: int, muts: list[tuple[int, int]], cut: int, junk: bytes
) -> None:
    def mutate(b: bytes) -> bytes:
        d = bytearray(b)
        for pos, byte in muts:
            if pos < len(d):
                d[pos] = byte
        return bytes(d[: max(cut, 1)]) + junk

    run_client(step, mutate)


@FUZZ
@given(data=st.binary(max_size=400), server=st.booleans())
def test_random_bytes_into_fresh_connections(data: bytes, server: bool) -> None:
    conn: Any = ServerConnection() if server else ClientConnection()
    try:
        conn.receive_data(data)
        list(conn.events())
    except ProtocolError:
        pass


@FUZZ
@given(data=st.binary(max_size=300), be=st.booleans())
def test_random_bytes_into_type_and_discovery_decoders(data: bytes, be: bool) -> None:
    with contextlib.suppress(ProtocolError):
        decode_type(data, 0, be)
    with contextlib.suppress(ProtocolError):
        Discovery().decode(data)


@FUZZ
@given(data=st.data(), raw=st.binary(max_size=200), be=st.booleans())
def test_random_bytes_into_value_decoders(data: st.DataObject, raw: bytes, be: bool) -> None:
    t = data.draw(types())
    with contextlib.suppress(ProtocolError):
        decode_value(t, raw, big_endian=be)
    s = Structure([("x", t), ("y", "d")])
    with contextlib.suppress(ProtocolError):
        decode_partial(s, raw, big_endian=be)


# ------------------------------------------------------------------ forged, targeted input
def validated_server(**kw: Any) -> ServerConnection:
    srv = ServerConnection(**kw)
    srv.initiate()
    srv.receive_data(golden.C_VALIDATION)
    list(srv.events())
    srv.send(ConnectionValidated())
    srv.receive_data(golden.C_CREATE)
    list(srv.events())
    srv.send(CreateChannelResponse(golden.CID, golden.SID))
    return srv


def msg(cmd: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack("<BBBBI", 0xCA, 2, flags, cmd, len(payload)) + payload


def get_init(pv_request_bytes: bytes, ioid: int = 1) -> bytes:
    return msg(0x0A, struct.pack("<IIB", golden.SID, ioid, 0x08) + pv_request_bytes)


def drop(srv: ServerConnection, data: bytes) -> ProtocolError:
    srv.receive_data(data)
    with pytest.raises(ProtocolError) as info:
        list(srv.events())
    return info.value


def test_header_claiming_4gb_is_refused_before_buffering() -> None:
    srv = validated_server()
    tracemalloc.start()
    err = drop(srv, struct.pack("<BBBBI", 0xCA, 2, 0, 0x0A, 0xFFFFFFFF) + b"x" * 100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(err, LimitExceededError) and "max_message_size" in str(err)
    assert peak < 1_000_000


def test_header_under_the_limit_buffers_only_what_arrived() -> None:
    srv = validated_server(max_message_size=100_000_000)
    srv.receive_data(struct.pack("<BBBBI", 0xCA, 2, 0, 0x0A, 90_000_000) + b"x" * 1000)
    assert list(srv.events()) == [] and srv.buffered < 2000


def test_segments_adding_up_over_the_limit_are_read_past_without_buffering() -> None:
    # over the limit, a message is read past (its ids kept); garbage ids still drop the peer
    srv = validated_server(max_message_size=1000)
    first = msg(0x0A, b"x" * 600, flags=0x10)
    last = msg(0x0A, b"x" * 600, flags=0x20)
    srv.receive_data(first)
    assert srv.buffered <= 608  # one segment (the message is not complete)
    assert "unknown channel" in str(drop(srv, last))


@pytest.mark.parametrize(
    "body",
    [
        "80 00 01 01 61 4b fe ff ff ff 7f",  # double array claiming 2**31 elements
        "80 00 01 01 61 68 fe ff ff ff 7f",  # string array, same
        "80 00 fe ff ff ff 7f",  # structure claiming 2**31 fields
        "80 00 01 01 61 88 80 00 01 01 62 22 fe ff ff ff 7f",  # structure array
        "80 00 01 01 61 4b fe ff ff ff 7f ff ff ff ff ff ff ff 3f",  # 64-bit size extension
    ],
)
def test_forged_counts_never_allocate(body: str) -> None:
    srv = validated_server()
    tracemalloc.start()
    err = drop(srv, get_init(bytes.fromhex(body)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(err, DecodeError)
    assert peak < 2_000_000


def test_types_nested_ten_thousand_deep() -> None:
    deep = bytes.fromhex("8000010161") * 10_000 + b"\x43"
    err = drop(validated_server(), get_init(deep))
    assert isinstance(err, LimitExceededError) and "max_depth" in str(err)
    with pytest.raises(LimitExceededError):
        decode_type(deep)
    # nesting through 0xFD cache definitions counts too
    chain = b"\xfd\x01\x00" * 10_000 + b"\x43"
    assert isinstance(drop(validated_server(), get_init(chain)), LimitExceededError)


def test_variant_values_nested_ten_thousand_deep() -> None:
    # struct {any a} whose value is again struct {any a}, ...
    deep = bytes.fromhex("800001016182") * 10_000 + b"\xff"
    assert isinstance(drop(validated_server(), get_init(deep)), LimitExceededError)


def test_type_cache_reference_to_undefined_key() -> None:
    err = drop(validated_server(), get_init(b"\xfe\x05\x00"))
    assert isinstance(err, DecodeError) and "undefined key 5" in str(err)


def test_unknown_command_and_wrong_direction() -> None:
    assert isinstance(drop(validated_server(), msg(0x55, b"")), DecodeError)
    # a client claiming to be a server
    assert isinstance(drop(validated_server(), msg(0x02, b"", flags=0x40)), DecodeError)
    # bad magic
    assert isinstance(drop(validated_server(), b"\x00" * 8), DecodeError)


def test_out_of_order_messages() -> None:
    cases = [
        msg(0x0A, struct.pack("<IIB", golden.SID, 9, 0x00)),  # get before init
        msg(0x0A, struct.pack("<IIB", 999, 9, 0x08) + b"\xff"),  # unknown channel
        msg(0x0F, struct.pack("<II", golden.SID, 77)),  # destroy of unknown ioid
        msg(0x08, struct.pack("<II", 5, 5)),  # destroy of unknown channel
    ]
    for data in cases:
        assert isinstance(drop(validated_server(), data), ProtocolError)
    fresh = ServerConnection()
    fresh.initiate()
    assert isinstance(drop(fresh, golden.C_CREATE), ProtocolError)  # before validation


def test_limits_on_channels_and_requests() -> None:
    srv = validated_server(max_channels=1)
    create = msg(0x07, struct.pack("<HI", 1, 2) + b"\x01b")
    assert isinstance(drop(srv, create), LimitExceededError)
    srv = validated_server(max_requests=1)
    srv.receive_data(get_init(b"\xff", ioid=1))
    list(srv.events())
    assert isinstance(drop(srv, get_init(b"\xff", ioid=2)), LimitExceededError)


def test_a_dropped_peer_leaves_other_connections_alone() -> None:
    bad, good = validated_server(), validated_server()
    drop(bad, msg(0x55, b""))
    good.receive_data(get_init(b"\xff"))
    assert isinstance(next(good.events()), GetInit)


def test_types_with_too_many_fields_and_cache_byte_budget() -> None:
    n = 30_000
    wide = b"\x80\x00\xfe" + struct.pack("<I", n) + b"\x01a\x22" * n
    err = drop(validated_server(), get_init(wide))
    assert isinstance(err, LimitExceededError) and "max_fields" in str(err)
    with pytest.raises(LimitExceededError):
        decode_type(wide)
    # many large cached definitions: the receive cache stops at its byte budget
    srv = validated_server()
    srv._rx.recv_cache.max_bytes = 10_000  # type: ignore[union-attr]
    fields = b"".join(bytes([len(f"f{i}")]) + f"f{i}".encode() + b"\x22" for i in range(1000))
    big = b"\x80\x00\xfe" + struct.pack("<I", 1000) + fields
    value = bytes(4 * 1000)
    data = b"".join(
        get_init(b"\xfd" + struct.pack("<H", k) + big + value, ioid=k) for k in range(5)
    )
    assert isinstance(drop(srv, data), LimitExceededError)


def test_object_arrays_are_capped() -> None:
    srv = validated_server(max_elements=10)
    # pvRequest {string[] a} holding 11 empty strings
    body = bytes.fromhex("80 00 01 01 61 68") + b"\x0b" + b"\x00" * 11
    assert isinstance(drop(srv, get_init(body)), LimitExceededError)
    ok = validated_server(max_elements=11)
    ok.receive_data(get_init(body))
    assert isinstance(next(ok.events()), GetInit)


# p4p's get cycle twice: the second INIT takes the server's fast path (pvRequest bytes seen
# before), as do GET, DESTROY_REQUEST and the put's read and value
FAST_MESSAGES = [
        golden.C_VALIDATION, golden.C_CREATE, golden.C_GET_INIT, golden.C_GET,
        golden.C_DESTROY_GET, golden.C_GET_INIT, golden.C_GET, golden.C_DESTROY_GET,
        golden.C_PUT_INIT, golden.C_PUT_READ, golden.C_PUT,
]  # fmt: skip
FAST_STREAM = b"".join(FAST_MESSAGES)
FAST_BOUNDARIES = [sum(len(m) for m in FAST_MESSAGES[:i]) for i in range(len(FAST_MESSAGES) + 1)]


def test_the_fast_path_stream_is_accepted() -> None:
    chunks = [FAST_STREAM[a:b] for a, b in itertools.pairwise(FAST_BOUNDARIES)]
    assert run_server(chunks) == "ok"


@FUZZ
@given(
    muts=st.lists(
        st.tuples(st.integers(FAST_BOUNDARIES[5], len(FAST_STREAM) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(FAST_BOUNDARIES[5], len(FAST_STREAM)),
)
def test_mutated_fast_path_messages_into_server(muts: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(FAST_STREAM)
    for pos, byte in muts:
        data[pos] = byte
    data = data[:cut]
    bounds = [b for b in FAST_BOUNDARIES if b < len(data)] + [len(data)]
    run_server([bytes(data[a:b]) for a, b in itertools.pairwise(bounds)])
