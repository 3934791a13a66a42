"""Benchmark of reckon.service beside its peers, in one run (about a minute).

1. In-process call overhead: ``await client.Get(req)`` through a unit beside a plain
   ``await impl.Get(req, ctx)`` method call (target: <= 5 us overhead).
2. gRPC unary calls/s, one call at a time, server in another process: reckon at the one port
   a unit publishes for the service (what every client calls: reckon's gRPC server on
   the event loop, its server handler, reckon's client) beside raw grpcio (a raw handler and
   multi-callable on a grpc.aio server's own port) with the same handler body, both served by
   one server process (separate processes differ by +-30% on a shared machine, which would swamp
   the comparison). Target: >= 0.9x raw. Also shown: the same call to a child process placed
   by a unit, through ``unit.locate`` (its one port too).
3. Connect unary calls/s (connectrpc client; hypercorn serving connectrpc's ASGI app, at the
   same one port).
4. gRPC server-streaming (messages/s, 100 per call) and bidi ping-pong (round trips/s, 20 per
   call), reckon at the one port beside raw grpcio's own port in the same server process, in
   alternating rounds like row 2. Target: >= 0.9x raw. Ping-pong's cost is split in two rows:
   a raw grpcio client of reckon's server at the one port (reckon's server side), and reckon's
   client of the raw handlers on grpcio's own port (reckon's client side), each beside raw
   grpcio.
5. Unary calls (10 a sample), server streams and ping-pong again, reckon at the one port beside
   raw grpcio, in per-call pairs: one call of each in turn, each call's time beside its
   neighbour's, with the server process's CPU and context switches per message or round trip
   (Linux's ``/proc``). A call lasts milliseconds, so the machine's load moves both sides of a
   pair alike and the interval is narrow; CPU and switches per message hardly move with the
   load.
6. Start-up time of a 5-service unit (a chain of requires): in-process and split into processes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _paired import paired
from rich.console import Console
from rich.table import Table

PROTO = """
syntax = "proto3";
package benchsvc;
message Key { string id = 1; }
message Item { string id = 1; string title = 2; int32 count = 3; }
service Echo {
  rpc Get(Key) returns (Item);
  rpc Feed(Key) returns (stream Item);    // streams int(id) items
  rpc Ping(stream Key) returns (stream Item);  // one answer per request
}
service S1 { rpc Get(Key) returns (Item); }
service S2 { rpc Get(Key) returns (Item); }
service S3 { rpc Get(Key) returns (Item); }
service S4 { rpc Get(Key) returns (Item); }
service S5 { rpc Get(Key) returns (Item); }
"""

IMPLS = """
from benchsvc_gen import benchsvc_pb2 as pb
from benchsvc_gen.benchsvc_reckon import Echo, S1, S2, S3, S4, S5
from reckon.service import Service


async def handle(request, ctx):
    return pb.Item(id=request.id, title="bench", count=1)


async def feed(request, ctx):
    item = pb.Item(id=request.id, title="bench", count=1)
    for _ in range(int(request.id)):
        yield item


async def ping(requests, ctx):
    async for r in requests:
        yield pb.Item(id=r.id, title="bench", count=1)


class EchoService(Service):
    definition = Echo

    async def Get(self, request, ctx):
        return pb.Item(id=request.id, title="bench", count=1)

    async def Feed(self, request, ctx):
        item = pb.Item(id=request.id, title="bench", count=1)
        for _ in range(int(request.id)):
            yield item

    async def Ping(self, requests, ctx):
        async for r in requests:
            yield pb.Item(id=r.id, title="bench", count=1)


def _chain(defn, prev):
    class Impl(Service):
        definition = defn
        requires = (prev,) if prev is not None else ()

        async def ready(self):
            if prev is not None:
                await self.ctx.locate(prev).Get(pb.Key(id="warm"))

        async def Get(self, request, ctx):
            return pb.Item(id=request.id, title=defn.name)

    Impl.__name__ = Impl.__qualname__ = f"{defn.name}Service"
    return Impl


S1Service = _chain(S1, None)
S2Service = _chain(S2, S1)
S3Service = _chain(S3, S2)
S4Service = _chain(S4, S3)
S5Service = _chain(S5, S4)
"""

SERVER = """
import asyncio, sys
import grpc
sys.path.insert(0, sys.argv[1])
from bench_impls import feed, handle, ping
from benchsvc_gen import benchsvc_pb2 as pb
from reckon.service import Deployment, Unit

# One server process answers all: raw grpcio handlers (benchsvc.S1) on a grpc.aio server of
# their own port, and benchsvc.Echo served by a unit at its one published port (reckon's gRPC
# server on the loop, with auth, context, deadlines, error mapping) with the same handler bodies.
# Comparing in one process removes the +-30% noise between processes on a shared machine.


def raw_handlers(name):
    ser, de = pb.Item.SerializeToString, pb.Key.FromString
    return grpc.method_handlers_generic_handler(name, {
        "Get": grpc.unary_unary_rpc_method_handler(handle, de, ser),
        "Feed": grpc.unary_stream_rpc_method_handler(feed, de, ser),
        "Ping": grpc.stream_stream_rpc_method_handler(ping, de, ser),
    })


async def main():
    dep = Deployment.from_dict({"unit": {"log": "off"}, "services": {"echo": {
        "definition": "benchsvc_gen.benchsvc_reckon:Echo",
        "implementation": "bench_impls:EchoService", "expose": True}}})
    async with Unit(dep) as unit:
        server = grpc.aio.server()
        # benchsvc.Echo too, so that reckon's client can call the raw handlers
        server.add_generic_rpc_handlers([raw_handlers(n) for n in ("benchsvc.S1", "benchsvc.Echo")])
        port = server.add_insecure_port("127.0.0.1:0")  # any free port, printed below
        await server.start()
        published = unit.addresses["echo"].grpc.rpartition(":")[2]
        print("ready", port, published, flush=True)
        await server.wait_for_termination()

asyncio.run(main())
"""


def setup(root: Path) -> None:
    from reckon.service.codegen import generate

    (root / "benchsvc.proto").write_text(PROTO)
    generate([root / "benchsvc.proto"], root / "benchsvc_gen")
    (root / "bench_impls.py").write_text(textwrap.dedent(IMPLS))
    (root / "server.py").write_text(SERVER)
    sys.path.insert(0, str(root))


def deployment(root: Path, services: dict[str, dict[str, Any]]) -> Any:
    from reckon.service import Deployment

    return Deployment.from_dict(
        {"unit": {"name": "bench", "path": [str(root)], "log": "off"}, "services": services}
    )


async def per_call(fn: Any, n: int) -> float:
    """Seconds per call of ``await fn()``, best of 5 rounds of n calls."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


async def inprocess_overhead(root: Path) -> tuple[float, float]:
    from bench_impls import EchoService
    from benchsvc_gen import benchsvc_pb2 as pb
    from benchsvc_gen.benchsvc_reckon import Echo

    from reckon.service import Unit

    dep = deployment(
        root,
        {
            "echo": {
                "definition": "benchsvc_gen.benchsvc_reckon:Echo",
                "implementation": "bench_impls:EchoService",
            }
        },
    )
    async with Unit(dep) as unit:
        client = unit.locate(Echo)
        impl: EchoService = unit.instance("echo")
        req = pb.Key(id="k")
        ctx = object()
        plain = await per_call(lambda: impl.Get(req, ctx), 20_000)
        reckon = await per_call(lambda: client.Get(req), 20_000)
    return plain, reckon


async def rate(fn: Any, seconds: float) -> float:
    """Calls/s of ``await fn()``; or messages/s when ``fn`` returns how many it moved."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(25):
            moved = await fn()
            n += moved if isinstance(moved, int) else 1
    return n / (time.perf_counter() - t0)


async def interleaved(
    fns: dict[str, Any], rounds: int = 12, seconds: float = 0.4
) -> dict[str, list[float]]:
    """Calls/s of each callable in every one of alternating short rounds, in round order.

    The machine is shared: alternating rounds exposes every contender to the same background
    load, and comparing each round with its partner (``bench/_paired.py``) keeps a neighbour's
    burst from deciding the ratio.
    """
    for fn in fns.values():
        for _ in range(100):
            await fn()  # warm up connections
    samples: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        # Rotate who goes first so no contender always follows the same neighbour.
        for k in names[r % len(names) :] + names[: r % len(names)]:
            samples[k].append(await rate(fns[k], seconds))
    return samples


def _server_load(pid: int) -> tuple[float, int]:
    """CPU seconds and context switches (voluntary or not, all threads) of process ``pid`` so
    far; zeros where ``/proc`` does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        switches = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches += sum(int(x.split()[1]) for x in f if "ctxt_switches" in x)
    except OSError:  # not Linux, or a thread that ended meanwhile
        return 0.0, 0
    return cpu, switches


async def per_call_pairs(
    fns: dict[str, Any], pid: int, calls: int = 150
) -> dict[str, tuple[list[float], float, float]]:
    """Each contender's seconds per call, one call of each in turn (the first contender moving
    round), with the server's CPU seconds and context switches per call."""
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    load = {k: [0.0, 0.0] for k in names}
    for i in range(calls):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            cpu0, sw0 = _server_load(pid)
            t0 = time.perf_counter()
            await fns[k]()
            times[k].append(time.perf_counter() - t0)
            cpu1, sw1 = _server_load(pid)
            load[k][0] += cpu1 - cpu0
            load[k][1] += sw1 - sw0
    return {k: (times[k], load[k][0] / calls, load[k][1] / calls) for k in names}


FEED_ITEMS = 100  # messages per server-streaming call
PINGS = 20  # round trips per bidi call
UNARY_CALLS = 10  # unary calls per sample of the per-call pairs


async def wire(
    root: Path,
) -> tuple[
    dict[str, list[float]], dict[str, list[float]], dict[str, tuple[list[float], float, float]]
]:
    import grpc
    from benchsvc_gen import benchsvc_pb2 as pb
    from benchsvc_gen.benchsvc_reckon import Echo

    from reckon.service import Unit
    from reckon.service.clients import grpc_client

    req = pb.Key(id="k")
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(root / "server.py"),
        str(root),
        stdout=asyncio.subprocess.PIPE,
    )
    dep = deployment(
        root,
        {
            "echo": {
                "definition": "benchsvc_gen.benchsvc_reckon:Echo",
                "implementation": "bench_impls:EchoService",
                "placement": "process",
                "connect": True,
            }
        },
    )
    try:
        assert server.stdout is not None
        word, *ports = (await server.stdout.readline()).split()
        assert word == b"ready"
        raw_port, published = (int(p) for p in ports)
        async with (
            Unit(dep) as unit,
            grpc.aio.insecure_channel(f"127.0.0.1:{raw_port}") as channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{published}") as one_port,
        ):
            raw = channel.unary_unary(
                "/benchsvc.S1/Get",
                request_serializer=pb.Key.SerializeToString,
                response_deserializer=pb.Item.FromString,
            )
            same_server = grpc_client(one_port, Echo, authorization=None, clock=time.monotonic)
            placed = unit.locate(Echo)
            connect = unit.locate(Echo, transport="connect")
            unary = await interleaved(
                {
                    "raw grpcio": lambda: raw(req),
                    "reckon gRPC": lambda: same_server.Get(req),
                    "reckon unit, child process": lambda: placed.Get(req),
                    "reckon Connect": lambda: connect.Get(req),
                }
            )
            raw_server = grpc_client(channel, Echo, authorization=None, clock=time.monotonic)
            contenders = streaming(channel, same_server, one_port, raw_server)
            streams = await interleaved(contenders, rounds=12, seconds=0.4)
            pairs = await per_call_pairs(
                {k: contenders[k] for k in ("raw ping-pong", "reckon ping-pong")}, server.pid
            )
            pairs |= await per_call_pairs(
                {k: contenders[k] for k in ("raw stream", "reckon stream")}, server.pid, calls=60
            )

            async def raw_unary() -> None:
                for _ in range(UNARY_CALLS):
                    await raw(req)

            async def reckon_unary() -> None:
                for _ in range(UNARY_CALLS):
                    await same_server.Get(req)

            pairs |= await per_call_pairs(
                {"raw unary": raw_unary, "reckon unary": reckon_unary}, server.pid
            )
            return unary, streams, pairs
    finally:
        server.terminate()
        await server.wait()


def streaming(channel: Any, client: Any, one_port: Any, raw_server: Any) -> dict[str, Any]:
    """Server-streaming (messages/s) and bidi ping-pong (round trips/s): raw grpcio's
    multi-callables beside reckon's client, against the same server process; and the ping-pong
    pairs that split its cost (reckon's server, reckon's client)."""
    import grpc
    from benchsvc_gen import benchsvc_pb2 as pb

    ser, de = pb.Key.SerializeToString, pb.Item.FromString
    raw_feed = channel.unary_stream("/benchsvc.S1/Feed", ser, de)
    feed_req, ping = pb.Key(id=str(FEED_ITEMS)), pb.Key(id="p")

    async def raw_stream() -> int:
        n = 0
        async for _ in raw_feed(feed_req):
            n += 1
        return n

    async def reckon_stream() -> int:
        n = 0
        async for _ in client.Feed(feed_req):
            n += 1
        return n

    def raw_pingpong(on: Any, path: str) -> Any:
        mc = on.stream_stream(path, ser, de)

        async def pingpong() -> int:
            call = mc()
            for _ in range(PINGS):
                await call.write(ping)
                await call.read()
            await call.done_writing()
            await call.wait_for_connection()
            assert await call.code() == grpc.StatusCode.OK
            return PINGS

        return pingpong

    def reckon_pingpong(stub: Any) -> Any:
        async def pingpong() -> int:
            queue: asyncio.Queue[Any] = asyncio.Queue()

            async def pings() -> Any:
                while (item := await queue.get()) is not None:
                    yield item

            n = 0
            queue.put_nowait(ping)
            async for _ in stub.Ping(pings()):
                n += 1
                queue.put_nowait(ping if n < PINGS else None)
            return n

        return pingpong

    return {
        "raw stream": raw_stream,
        "reckon stream": reckon_stream,
        "raw ping-pong": raw_pingpong(channel, "/benchsvc.S1/Ping"),
        "reckon ping-pong": reckon_pingpong(client),
        "raw client, reckon server": raw_pingpong(one_port, "/benchsvc.Echo/Ping"),
        "reckon client, raw server": reckon_pingpong(raw_server),
    }


async def startup(root: Path, placement: str) -> float:
    from reckon.service import Unit

    services = {
        f"s{i}": {
            "definition": f"benchsvc_gen.benchsvc_reckon:S{i}",
            "implementation": f"bench_impls:S{i}Service",
            "placement": placement,
        }
        for i in range(1, 6)
    }
    times = []
    for _ in range(3):
        unit = Unit(deployment(root, services))
        t0 = time.perf_counter()
        await unit.start()
        times.append(time.perf_counter() - t0)
        await unit.stop()
    return statistics.median(times)


def _target(cmp: Any, target: float) -> str:
    """ok when the median ratio reaches the target; MISSED only when the whole interval falls
    short of it; otherwise the run cannot tell (the row moves by +-0.1x between runs here)."""
    if cmp.ratio >= target:
        return "ok"
    return "MISSED" if cmp.high < target else "within noise (interval holds it)"


async def main() -> None:
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="reckon-bench-svc-") as tmp:
        root = Path(tmp)
        setup(root)
        plain, inproc = await inprocess_overhead(root)
        samples, streams, pairs = await wire(root)
        stream_rates = {k: statistics.median(v) for k, v in streams.items()}
        rates = {k: statistics.median(v) for k, v in samples.items()}
        start_in = await startup(root, "inprocess")
        start_split = await startup(root, "process")

    t = Table(title="reckon.service")
    t.add_column("measure")
    t.add_column("reckon", justify="right")
    t.add_column("peer", justify="right")
    t.add_column("ratio", justify="right")
    t.add_column("target")
    overhead = (inproc - plain) * 1e6
    t.add_row(
        "in-process call (us/call)",
        f"{inproc * 1e6:.2f}",
        f"{plain * 1e6:.2f} plain method",
        f"+{overhead:.2f} us",
        "overhead <= 5 us " + ("ok" if overhead <= 5 else "MISSED"),
    )
    # each round's reckon figure beside raw grpcio's from the same round: the median ratio and
    # its 90% interval (bench/_paired.py)
    grpc_cmp = paired(samples["reckon gRPC"], samples["raw grpcio"], higher_is_better=True)
    t.add_row(
        "gRPC unary at the one port (calls/s, sequential)",
        f"{rates['reckon gRPC']:,.0f}",
        f"{rates['raw grpcio']:,.0f} raw grpcio",
        f"{grpc_cmp.ratio:.2f}x [{grpc_cmp.low:.2f}-{grpc_cmp.high:.2f}]",
        ">= 0.9x " + _target(grpc_cmp, 0.9),
    )
    t.add_row(
        "gRPC via unit.locate, child process",
        f"{rates['reckon unit, child process']:,.0f}",
        f"{rates['raw grpcio']:,.0f} raw grpcio",
        f"{rates['reckon unit, child process'] / rates['raw grpcio']:.2f}x",
        "(another process: +-30% noise)",
    )
    t.add_row(
        "Connect unary (calls/s, sequential)",
        f"{rates['reckon Connect']:,.0f}",
        f"{rates['raw grpcio']:,.0f} raw grpcio",
        f"{rates['reckon Connect'] / rates['raw grpcio']:.2f}x",
        "",
    )
    for label, ours, theirs, unit_name in (
        ("gRPC server-streaming", "reckon stream", "raw stream", "messages/s"),
        ("gRPC bidi ping-pong", "reckon ping-pong", "raw ping-pong", "round trips/s"),
    ):
        cmp = paired(streams[ours], streams[theirs], higher_is_better=True)
        t.add_row(
            f"{label} at the one port ({unit_name})",
            f"{stream_rates[ours]:,.0f}",
            f"{stream_rates[theirs]:,.0f} raw grpcio",
            f"{cmp.ratio:.2f}x [{cmp.low:.2f}-{cmp.high:.2f}]",
            ">= 0.9x " + _target(cmp, 0.9),
        )
    # where ping-pong's time goes: each pair differs in one part only
    for label, ours, note in (
        (
            "raw grpcio client of reckon's server, one port",
            "raw client, reckon server",
            "(reckon's server side)",
        ),
        (
            "reckon's client of raw grpcio's handlers",
            "reckon client, raw server",
            "(reckon's client side)",
        ),
    ):
        cmp = paired(streams[ours], streams["raw ping-pong"], higher_is_better=True)
        t.add_row(
            label,
            f"{stream_rates[ours]:,.0f}",
            f"{stream_rates['raw ping-pong']:,.0f} raw grpcio",
            f"{cmp.ratio:.2f}x [{cmp.low:.2f}-{cmp.high:.2f}]",
            note,
        )
    # per-call pairs: each call's time beside its neighbours' (time per message: lower is
    # better, so the ratio is raw's time over reckon's, a rate ratio like the rows above)
    for label, key, raw_key, per, what in (
        ("gRPC unary at the one port", "reckon unary", "raw unary", UNARY_CALLS, "call"),
        ("gRPC server-streaming at the one port", "reckon stream", "raw stream", FEED_ITEMS, "msg"),
        (
            "gRPC bidi ping-pong at the one port",
            "reckon ping-pong",
            "raw ping-pong",
            PINGS,
            "round trip",
        ),
    ):
        times, cpu, sw = pairs[key]
        raw_times, raw_cpu, raw_sw = pairs[raw_key]
        cmp = paired(times, raw_times, higher_is_better=False)
        t.add_row(
            f"{label}, per-call pairs",
            f"{statistics.median(times) / per * 1e6:,.0f} us/{what}",
            f"{statistics.median(raw_times) / per * 1e6:,.0f} raw grpcio",
            f"{cmp.ratio:.2f}x [{cmp.low:.2f}-{cmp.high:.2f}]",
            f"server per {what}: {cpu / per * 1e6:,.0f} us CPU ({raw_cpu / per * 1e6:,.0f}"
            f" raw), {sw / per:.1f} switches ({raw_sw / per:.1f} raw)",
        )
    t.add_row(
        "start 5-service unit (s)",
        f"{start_in:.3f} in-process",
        f"{start_split:.3f} split",
        f"{start_split / start_in:.0f}x",
        "",
    )
    console.print(t)


if __name__ == "__main__":
    asyncio.run(main())
