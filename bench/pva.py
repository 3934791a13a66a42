"""pvAccess benchmark: reckon's server beside p4p's (pvxs), with p4p's client and with reckon's.

Each server and each client runs in its own process (as in production, and so p4p's global
contexts never mix with reckon's event loop). For each client kind, both servers run at once and
every row is measured in interleaved rounds (reckon, p4p, p4p, reckon, ...). Each round's
reckon figure is divided by the p4p figure measured beside it, and the table prints the median
of those ratios with a 90% confidence interval and a verdict: ``above`` or ``below`` when the
whole interval lies on one side of 1, ``at`` when the run cannot tell the servers apart (see
``bench/_paired.py``; on this kind of machine one run's best round can differ from the next
run's by 10-20%, so a ratio of bests, printed before 2026-11-22, said more about luck than
about the servers). The two servers' columns are the medians of their rounds.

- gets/s    sequential ``get`` of an NTScalar double (2,000)
- puts/s    sequential ``put`` (1,000)
- RPC/s     sequential RPC with an NTURI argument returning an NTScalar (1,000)
- monitor   updates/s delivered for a burst of 20,000 posts, default queue and pipelined
            (updates received / time from the first post to the arrival of the last value;
            a server whose burst never ends with its last value is reported as stalled).
            Both server processes post the burst the same way: a tight loop of ``post()``
            calls in a thread that is not the server's (p4p: the command thread, pvxs sends
            from its own; reckon: a worker thread, the event loop sends), never yielding per
            value. Earlier versions had reckon's loop ``await asyncio.sleep(0)`` after every
            post, which handed its sender a turn per value that p4p's poster never gives.
- connect   ms from a fresh client context to the first get (search + handshake + get); each
            round's figure is the median of 7 connects
- big get   gets/s of a 10 M-double array (80 MB per get; 3 per round)
- image     monitor updates/s of a 1024x1024 uint16 NTNDArray (2 MB), a burst of 30 posts
- fan-out   updates/s delivered to 50 clients (one connection each) monitoring one PV, for a
            burst of 300 posts (every update every client receives counts)
- paced     the pipelined monitor (1,000 posts) and the fan-out (300 posts) again, with a pause
            after each post (1 ms, 4 ms) long enough for either server to send every update:
            their CPU per post compares the two servers doing the same work (in a burst a
            server that squashes more updates spends less per post). No rate is printed (the
            pacing sets it), only the updates delivered, which show the work was the same
- RSS       each server's resident memory growth (MB) over 300 gets of the 2 MB image on one
            connection (once per client kind; not a ratio: it should stay small)
- server CPU per operation (from /proc): what each server process spent (median of the
  rounds), which load on the machine disturbs much less than rates. For the bursts it is shown
  per post and per update delivered: per post alone favours the server that squashes more of
  a burst (pvxs delivered a tenth of the 50-monitor fan-out's updates, reckon all of them),
  per update the one that delivers more; where the two servers deliver alike they agree

Both servers publish the same content: values stamped with the time of each post (a
control system's values carry their timestamps), so each get or update carries the value and
the two timestamp fields on both sides. p4p stamps only when asked (``timestamp=``) and reckon
by default; before this was made equal reckon's values carried a timestamp and p4p's did not,
which cost reckon's client (and reckon's server's share of the row) a bigger value to encode
and decode. ``PVA_BENCH_TIMESTAMPS=0`` measures both without timestamps.

Reckon's children run on uvloop when it is importable, as ``reckon pva serve`` does
(``RECKON_PVA_UVLOOP=0`` for asyncio's own loop). ``PVA_BENCH_ONLY=get,pipeline`` measures only
the rows named (connect, get, put, rpc, monitor, pipeline); ``PVA_BENCH_ROUNDS=15`` measures
each row in more rounds (a narrower interval).

Usage: ``python bench/pva.py [p4p|reckon] [--quick]``. Child modes are internal.
"""

from __future__ import annotations

import faulthandler
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from _paired import paired

from reckon.pva.config import loopback_environment

N_GET = 2000
N_PUT = 1000
N_RPC = 1000
N_BURST = 20000
if os.environ.get("PVA_BENCH_QUICK"):  # children of a --quick run
    N_GET, N_PUT, N_RPC, N_BURST = 200, 100, 100, 2000
N_CONNECT = 7
N_BIG = 10_000_000  # doubles in the big array
N_BIG_GET = 3
N_IMAGES = 30
N_FAN = 50  # clients
N_FAN_POSTS = 300
N_PACED = 1000  # posts of the paced pipelined row
PAUSE = {"fan_paced": 0.004, "pipeline_paced": 0.001}  # seconds between paced posts
N_RSS_GETS = 300
if os.environ.get("PVA_BENCH_QUICK"):
    N_BIG_GET, N_IMAGES, N_FAN, N_FAN_POSTS, N_RSS_GETS = 1, 5, 5, 30, 30
    N_PACED = 100
STAMP = os.environ.get("PVA_BENCH_TIMESTAMPS", "1") != "0"
PIPELINE_REQUEST = "record[pipeline=true,queueSize=16]"

# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------


def epics_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    env.update(loopback_environment())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(coro: Any) -> None:
    """Reckon's children run as ``reckon pva serve`` does: on uvloop when it is importable
    (``RECKON_PVA_UVLOOP=0`` for asyncio's own loop)."""
    from reckon.pva import runloop

    runloop.run(coro)


# ---------------------------------------------------------------------------------------------
# servers (child processes)
# ---------------------------------------------------------------------------------------------


def _command_loop(post_burst: Any, post_images: Any) -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            return
        if cmd["op"] in ("burst", "images"):
            start = time.monotonic()
            if cmd["op"] == "burst":
                post_burst(cmd["name"], int(cmd["base"]), int(cmd["n"]), cmd.get("pause") or 0.0)
            else:
                post_images(cmd["name"], int(cmd["base"]), int(cmd["n"]))
            print(json.dumps({"start": start, "end": time.monotonic()}), flush=True)


def _images() -> list[Any]:
    """Two 1024x1024 uint16 images (posts alternate between them: no allocation per post)."""
    import numpy as np

    first = (np.arange(1024 * 1024, dtype=np.uint32) % 65521).astype(np.uint16)
    return [first.reshape(1024, 1024), (first[::-1] + 1).reshape(1024, 1024)]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def serve_p4p() -> None:
    import numpy as np
    from p4p.nt import NTNDArray, NTScalar
    from p4p.server import Server
    from p4p.server.thread import SharedPV

    pvs: dict[str, SharedPV] = {}
    scalar = NTScalar("d")

    def stamp() -> dict[str, float]:
        return {"timestamp": time.time()} if STAMP else {}

    def new_pv() -> SharedPV:
        return SharedPV(nt=scalar, initial=scalar.wrap(0.0, **stamp()))

    x = new_pv()

    @x.put
    def _put(pv: Any, op: Any) -> None:
        pv.post(op.value(), **stamp())
        op.done()

    rpc = SharedPV()

    @rpc.rpc
    def _rpc(pv: Any, op: Any) -> None:
        arg = op.value()
        op.done(NTScalar("d").wrap(float(arg.query.a) + float(arg.query.b)))

    pvs["bench:x"] = x
    pvs["bench:rpc"] = rpc
    for name in ("bench:burst1", "bench:burst2", "bench:fan"):
        pvs[name] = new_pv()
    pvs["bench:big"] = SharedPV(nt=NTScalar("ad"), initial=np.arange(N_BIG, dtype=np.float64))
    ndnt = NTNDArray()
    images = _images()
    pvs["bench:image"] = SharedPV(initial=ndnt.wrap(images[0]))  # posts are wrapped Values

    def post_images(name: str, base: int, n: int) -> None:
        pv = pvs[name]
        for i in range(base + 1, base + n + 1):
            value = ndnt.wrap(images[i % 2])
            value["uniqueId"] = i
            pv.post(value)

    def burst(name: str, base: int, n: int, pause: float) -> None:
        pv = pvs[name]
        if pause:
            for i in range(base + 1, base + n + 1):
                pv.post(float(i), **stamp())
                time.sleep(pause)
        elif STAMP:
            for i in range(base + 1, base + n + 1):
                pv.post(float(i), timestamp=time.time())
        else:
            for i in range(base + 1, base + n + 1):
                pv.post(float(i))

    with Server(providers=[pvs]):
        _command_loop(burst, post_images)


def _post_range(pv: Any, base: int, n: int, pause: float = 0.0) -> None:
    if pause:
        for i in range(base + 1, base + n + 1):
            pv.post(float(i))
            time.sleep(pause)
        return
    for i in range(base + 1, base + n + 1):
        pv.post(float(i))


def _post_images(pv: Any, base: int, n: int) -> None:
    from reckon.pva import nt

    ndnt = nt.NTNDArray()
    images = _images()
    for i in range(base + 1, base + n + 1):
        pv.post(ndnt.wrap(images[i % 2], unique_id=i), timestamp=False)


def serve_reckon() -> None:
    import asyncio

    import numpy as np

    from reckon.pva import Server, SharedPV, nt

    async def main() -> None:
        server = Server()
        x = SharedPV(nt.NTScalar("d"), 0.0, timestamp=STAMP)

        @x.on_put
        def _put(op: Any) -> None:
            x.post(op.fields)

        rpc = SharedPV.rpc_only()
        result_t = nt.NTScalar("d")

        @rpc.on_rpc
        def _rpc(op: Any) -> Any:
            query = op.query
            return nt.typed(result_t, float(query["a"]) + float(query["b"]))

        server.add("bench:x", x)
        server.add("bench:rpc", rpc)
        bursts = {
            name: SharedPV(nt.NTScalar("d"), 0.0, timestamp=STAMP)
            for name in ("bench:burst1", "bench:burst2", "bench:fan")
        }
        for name, pv in bursts.items():
            server.add(name, pv)
        server.add("bench:big", SharedPV(nt.NTScalarArray("d"), np.arange(N_BIG, dtype="f8")))
        ndnt = nt.NTNDArray()
        image = SharedPV(ndnt, ndnt.wrap(_images()[0]), timestamp=False)
        server.add("bench:image", image)
        await server.start()
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()
        threading.Thread(
            target=lambda: (
                [loop.call_soon_threadsafe(lines.put_nowait, ln) for ln in sys.stdin]
                + [loop.call_soon_threadsafe(lines.put_nowait, "")]
            ),
            daemon=True,
        ).start()
        print("ready", flush=True)
        while True:
            line = await lines.get()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            if cmd["op"] in ("burst", "images"):
                start = time.monotonic()
                base = int(cmd["base"])
                # as p4p's server posts: a tight loop in a thread of its own while the server's
                # loop sends (post() is thread-safe and hands each update to the loop)
                if cmd["op"] == "burst":
                    pv = bursts[cmd["name"]]
                    pause = float(cmd.get("pause") or 0.0)
                    await asyncio.to_thread(_post_range, pv, base, int(cmd["n"]), pause)
                else:
                    await asyncio.to_thread(_post_images, image, base, int(cmd["n"]))
                print(json.dumps({"start": start, "end": time.monotonic()}), flush=True)
        await server.stop()

    _run(main())


# ---------------------------------------------------------------------------------------------
# clients (child processes): long-lived, one JSON command per stdin line, one JSON result each
# ---------------------------------------------------------------------------------------------


def _commands() -> Any:
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["task"] == "quit":
            return
        yield cmd


def _drain(got: queue.Queue[tuple[float, float]], final: float, subs: int = 1) -> dict[str, float]:
    """Count the updates arriving in ``got`` until ``subs`` subscriptions have seen ``final``
    (or none arrived for 5 s: stalled)."""
    count, last, value, done = 0, 0.0, 0.0, 0
    while done < subs:
        try:
            value, last = got.get(timeout=5)
        except queue.Empty:
            break
        count += 1
        if value >= final:
            done += 1
    return {"count": count, "last": last, "final": final if done == subs else value}


def client_p4p() -> None:
    from p4p.client.thread import Context
    from p4p.nt import NTURI

    ctx = Context("pva")
    raw = Context("pva", nt=False)  # values as p4p Values: an image's uniqueId
    fans: list[Any] = []
    fan_q: queue.Queue[tuple[float, float]] = queue.Queue()
    uri = NTURI([("a", "d"), ("b", "d")])
    arg = uri.wrap("bench:rpc", kws={"a": 1.0, "b": 2.0})
    for cmd in _commands():
        task = cmd["task"]
        if task == "bigget":
            ctx.get("bench:big", timeout=60)
            t0 = time.perf_counter()
            for _ in range(N_BIG_GET):
                ctx.get("bench:big", timeout=60)
            print(json.dumps({"rate": N_BIG_GET / (time.perf_counter() - t0)}), flush=True)
            continue
        if task == "imgget":
            for _ in range(int(cmd["n"])):
                raw.get("bench:image", timeout=30)
            print(json.dumps({"done": True}), flush=True)
            continue
        if task == "image":
            final = float(cmd["final"])
            seen: queue.Queue[tuple[float, float]] = queue.Queue()
            sub = raw.monitor(
                "bench:image",
                lambda v, q=seen: q.put((float(v["uniqueId"]), time.monotonic())),
            )
            seen.get(timeout=30)
            print("subscribed", flush=True)
            print(json.dumps(_drain(seen, final)), flush=True)
            sub.close()
            continue
        if task == "fan":
            # subscribed once, for every round: p4p loses updates of a subscription being
            # closed, and 50 fresh subscriptions per round only measure their setup
            final = float(cmd["final"])
            if not fans:
                for _ in range(N_FAN):
                    f = Context("pva")
                    cb = lambda v, q=fan_q: q.put((float(v), time.monotonic()))  # noqa: E731
                    fans.append((f, f.monitor("bench:fan", cb)))
                for _ in range(N_FAN):
                    fan_q.get(timeout=60)
            while not fan_q.empty():
                fan_q.get_nowait()
            print("subscribed", flush=True)
            print(json.dumps(_drain(fan_q, final, N_FAN)), flush=True)
            continue
        if task == "connect":
            times = []
            for _ in range(N_CONNECT):
                t0 = time.perf_counter()
                fresh = Context("pva")
                fresh.get("bench:x", timeout=10)
                times.append(time.perf_counter() - t0)
                fresh.close()
            print(json.dumps({"ms": statistics.median(times) * 1e3}), flush=True)
            continue
        ctx.get("bench:x", timeout=10)
        if task == "get":
            t0 = time.perf_counter()
            for _ in range(N_GET):
                ctx.get("bench:x")
            print(json.dumps({"rate": N_GET / (time.perf_counter() - t0)}), flush=True)
        elif task == "put":
            t0 = time.perf_counter()
            for i in range(N_PUT):
                ctx.put("bench:x", float(i))
            print(json.dumps({"rate": N_PUT / (time.perf_counter() - t0)}), flush=True)
        elif task == "rpc":
            t0 = time.perf_counter()
            for _ in range(N_RPC):
                ctx.rpc("bench:rpc", arg)
            print(json.dumps({"rate": N_RPC / (time.perf_counter() - t0)}), flush=True)
        elif task == "monitor":
            final = float(cmd["final"])
            got: queue.Queue[tuple[float, float]] = queue.Queue()

            def cb(value: Any, got: queue.Queue[tuple[float, float]] = got) -> None:
                got.put((float(value), time.monotonic()))

            sub = ctx.monitor(cmd["pv"], cb, request=cmd.get("request"))
            got.get(timeout=10)  # the current value
            print("subscribed", flush=True)
            count, last, value = 0, 0.0, 0.0
            while True:
                try:
                    value, last = got.get(timeout=5)
                except queue.Empty:
                    break  # stalled: the last value never came
                count += 1
                if value >= final:
                    break
            sub.close()
            print(json.dumps({"count": count, "last": last, "final": value}), flush=True)
    for f, sub in fans:
        sub.close()
        f.close()
    ctx.close()


def client_reckon() -> None:
    import asyncio

    from reckon.pva import Client, nt

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def pump() -> None:
            for ln in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, ln)
            loop.call_soon_threadsafe(lines.put_nowait, "")

        threading.Thread(target=pump, daemon=True).start()
        arg = nt.uri("bench:rpc", {"a": 1.0, "b": 2.0})
        print("ready", flush=True)
        fans: list[Any] = []
        async with Client() as c:
            while True:
                line = await lines.get()
                if not line:
                    break
                cmd = json.loads(line)
                task = cmd["task"]
                if task == "quit":
                    break
                if task == "bigget":
                    await c.get("bench:big", timeout=60)
                    t0 = time.perf_counter()
                    for _ in range(N_BIG_GET):
                        await c.get("bench:big", timeout=60)
                    rate = N_BIG_GET / (time.perf_counter() - t0)
                    print(json.dumps({"rate": rate}), flush=True)
                    continue
                if task == "imgget":
                    for _ in range(int(cmd["n"])):
                        await c.get("bench:image", timeout=30)
                    print(json.dumps({"done": True}), flush=True)
                    continue
                if task in ("image", "fan"):
                    final = float(cmd["final"])
                    if task == "fan":
                        while len(fans) < N_FAN:
                            fans.append(await Client().__aenter__())
                    pv, field = (
                        ("bench:image", "uniqueId") if task == "image" else ("bench:fan", "value")
                    )
                    clients = [c] if task == "image" else fans
                    arrived: asyncio.Queue[tuple[float, float]] = asyncio.Queue()
                    subs = [cl.monitor(pv) for cl in clients]

                    async def pump_sub(sub: Any, field: str = field, q: Any = arrived) -> None:
                        while True:
                            update = await sub.next(timeout=None)
                            q.put_nowait((float(update.value[field]), time.monotonic()))

                    for sub in subs:
                        await sub.start()
                    tasks = [asyncio.create_task(pump_sub(sub)) for sub in subs]
                    for _ in subs:
                        await asyncio.wait_for(arrived.get(), 30)
                    print("subscribed", flush=True)
                    count, last, value, done = 0, 0.0, 0.0, 0
                    while done < len(subs):
                        try:
                            value, last = await asyncio.wait_for(arrived.get(), 5)
                        except TimeoutError:
                            break
                        count += 1
                        if value >= final:
                            done += 1
                    for t in tasks:
                        t.cancel()
                    for sub in subs:
                        await sub.close()
                    reached = final if done == len(subs) else value
                    print(json.dumps({"count": count, "last": last, "final": reached}), flush=True)
                    continue
                if task == "connect":
                    times = []
                    for _ in range(N_CONNECT):
                        t0 = time.perf_counter()
                        async with Client() as fresh:
                            await fresh.get("bench:x", timeout=10)
                        times.append(time.perf_counter() - t0)
                    print(json.dumps({"ms": statistics.median(times) * 1e3}), flush=True)
                    continue
                await c.get("bench:x", timeout=10)
                if task == "get":
                    t0 = time.perf_counter()
                    for _ in range(N_GET):
                        await c.get("bench:x")
                    print(json.dumps({"rate": N_GET / (time.perf_counter() - t0)}), flush=True)
                elif task == "put":
                    t0 = time.perf_counter()
                    for i in range(N_PUT):
                        await c.put("bench:x", float(i))
                    print(json.dumps({"rate": N_PUT / (time.perf_counter() - t0)}), flush=True)
                elif task == "rpc":
                    t0 = time.perf_counter()
                    for _ in range(N_RPC):
                        await c.rpc("bench:rpc", arg)
                    print(json.dumps({"rate": N_RPC / (time.perf_counter() - t0)}), flush=True)
                elif task == "monitor":
                    final = float(cmd["final"])
                    count, last, value = 0, 0.0, 0.0
                    async with c.monitor(cmd["pv"], cmd.get("request")) as sub:
                        await sub.next(timeout=10)  # the current value
                        print("subscribed", flush=True)
                        while True:
                            try:
                                update = await sub.next(timeout=5)
                            except Exception:
                                break  # stalled: the last value never came
                            value = float(update.value["value"])
                            last = time.monotonic()
                            count += 1
                            if value >= final:
                                break
                    print(json.dumps({"count": count, "last": last, "final": value}), flush=True)
        for fan in fans:
            await fan.close()

    _run(main())


# ---------------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------------


class Child:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.argv = argv
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def line(self, timeout: float = 120) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            # where is it stuck? (a peer library's hang and a reckon hang look alike from here)
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            raise RuntimeError(
                f"child {self.argv} gave no answer in {timeout:.0f} s; its threads: "
                + "".join(self.err[-80:])
            ) from None
        if line is None:
            raise RuntimeError(f"child {self.argv} exited; stderr: {''.join(self.err[-20:])}")
        return line

    def json(self, timeout: float = 120) -> Any:
        while True:
            text = self.line(timeout)
            if text.startswith("{"):
                return json.loads(text)

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send({"op": "quit"})
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# each row is measured this many times per server, interleaved; nine rounds give a 96% interval
# between the second-smallest and second-largest of the ratios, five one of 94% between the
# extremes (bursts take longer: a second or more per round)
ROUNDS = int(os.environ.get("PVA_BENCH_ROUNDS", "9"))
BURST_ROUNDS = max(ROUNDS * 5 // 9, 1)


def start(argv: list[str], env: dict[str, str]) -> Child:
    child = Child(argv, env)
    line = child.line(60)
    if line != "ready":
        raise RuntimeError(f"{argv} did not start: {line} {''.join(child.err[-20:])}")
    return child


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, all its threads (Linux /proc; 0 elsewhere).

    The scheduler's run time per thread (``schedstat``, nanoseconds) where there is one:
    ``/proc/<pid>/stat`` counts in clock ticks (10 ms), which rounded a server's CPU per get to
    multiples of 5 us over a round of 2,000."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        total = 0
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:
                continue  # a thread that ended meanwhile (the bench's threads live throughout)
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def measure(client: str) -> dict[tuple[str, str], list[float]]:
    """One client kind against both servers; every round alternates the servers. Gives every
    round's figure per (server, row), in round order (so the two servers' i-th figures were
    measured together), and per (server, row + "_cpu") the server's CPU per operation."""
    envs = {srv: epics_env() for srv in ("reckon", "p4p")}
    servers = {srv: start(["server", srv], envs[srv]) for srv in envs}
    clients = {srv: start(["client", client], envs[srv]) for srv in envs}
    for srv, child in clients.items():
        child.argv = ["client", client, f"(of the {srv} server)"]
    base: dict[tuple[str, str], int] = {}  # (server, PV) -> the last value posted to it
    order = ["reckon", "p4p"]
    samples: dict[tuple[str, str], list[float]] = {}

    def record(srv: str, row: str, figure: float, cpu_us: float | None) -> None:
        samples.setdefault((srv, row), []).append(figure)
        if cpu_us is not None:
            samples.setdefault((srv, row + "_cpu"), []).append(cpu_us)

    try:
        only = os.environ.get("PVA_BENCH_ONLY", "").split(",")
        if only == [""] or "rss" in only:
            for srv in order:
                clients[srv].send({"task": "imgget", "n": 10})  # warm: the first replies
                clients[srv].json(300)
                before = rss_mb(servers[srv].proc.pid)
                clients[srv].send({"task": "imgget", "n": N_RSS_GETS})
                clients[srv].json(600)
                record(srv, "rss", rss_mb(servers[srv].proc.pid) - before, None)
        for task in ("connect", "get", "put", "rpc", "bigget"):
            if only != [""] and task not in only:
                continue
            for r in range(BURST_ROUNDS if task == "bigget" else ROUNDS):
                for srv in order if r % 2 == 0 else order[::-1]:
                    pid = servers[srv].proc.pid
                    cpu0 = cpu_seconds(pid)
                    clients[srv].send({"task": task})
                    res = clients[srv].json(600)
                    ops = {"get": N_GET, "put": N_PUT, "rpc": N_RPC, "bigget": N_BIG_GET}.get(task)
                    us = (cpu_seconds(pid) - cpu0) / ops * 1e6 if ops else None
                    record(srv, task, res["ms"] if task == "connect" else res["rate"], us)
        for task, pv, request, n in (
            ("monitor", "bench:burst1", None, N_BURST),
            ("pipeline", "bench:burst2", PIPELINE_REQUEST, N_BURST),
            ("image", "bench:image", None, N_IMAGES),
            ("fan", "bench:fan", None, N_FAN_POSTS),
            ("pipeline_paced", "bench:burst2", PIPELINE_REQUEST, N_PACED),
            ("fan_paced", "bench:fan", None, N_FAN_POSTS),
        ):
            if only != [""] and task not in only:
                continue
            op = "images" if task == "image" else "burst"
            client_task = {"image": "image", "fan": "fan", "fan_paced": "fan"}.get(task, "monitor")
            for r in range(BURST_ROUNDS):
                for srv in order if r % 2 == 0 else order[::-1]:
                    final = base.get((srv, pv), 0) + n
                    clients[srv].send(
                        {"task": client_task, "pv": pv, "request": request, "final": final}
                    )
                    if clients[srv].line(120) != "subscribed":
                        raise RuntimeError("monitor did not start")
                    pid = servers[srv].proc.pid
                    cpu0 = cpu_seconds(pid)
                    start_at = base.get((srv, pv), 0)
                    servers[srv].send(
                        {"op": op, "name": pv, "base": start_at, "n": n, "pause": PAUSE.get(task)}
                    )
                    times = servers[srv].json(300)
                    res = clients[srv].json(300)
                    us = (cpu_seconds(pid) - cpu0) / n * 1e6
                    rate = res["count"] / max(res["last"] - times["start"], 1e-9)
                    record(srv, task, rate, us)
                    samples.setdefault((srv, task + "_count"), []).append(res["count"])
                    # the same CPU over the updates the clients received (see CPU_PER_UPDATE)
                    per_update = us * n / res["count"] if res["count"] else 0.0
                    samples.setdefault((srv, task + "_cpu_update"), []).append(per_update)
                    if res["final"] < final:
                        samples.setdefault((srv, task + "_stalled"), []).append(1.0)
                        got = res["final"] - start_at
                        print(
                            f"  ! {client} client -> {srv} server, {task}: stalled after "
                            f"{got:.0f} of {n} posts"
                        )
                    base[(srv, pv)] = final
    finally:
        for child in (*clients.values(), *servers.values()):
            child.close()
    return samples


ROWS = [
    ("get", "gets/s", True),
    ("put", "puts/s", True),
    ("rpc", "RPC/s", True),
    ("monitor", "monitor updates/s (default)", True),
    ("pipeline", "monitor updates/s (pipelined)", True),
    ("connect", "connect ms (lower is better)", False),
    ("bigget", "10 M-double gets/s", True),
    ("image", "1024x1024 image updates/s", True),
    ("fan", f"updates/s to {N_FAN} monitors", True),
]


CPU_ROWS = [
    ("get", "per get"),
    ("put", "per put"),
    ("rpc", "per RPC"),
    ("monitor", "per post (default queue)"),
    ("pipeline", "per post (pipelined)"),
    ("bigget", "per 10 M-double get"),
    ("image", "per image post"),
    ("fan", f"per post to {N_FAN} monitors"),
]

# the paced bursts: no rate (the pacing sets it), the updates delivered (which should be all of
# them, from both servers) and the server CPU per post for that same work
PACED_ROWS = [
    ("pipeline_paced", "per post (pipelined, 1 ms apart)"),
    ("fan_paced", f"per post to {N_FAN} mon., 4 ms apart"),
]

# CPU per post rewards the server that sends less: a server that squashes a burst into a few
# updates per client spends little per post (pvxs delivered 10-16% of the 50-monitor fan-out's
# updates, reckon all of them; 14-35% of the pipelined burst, reckon 16-45%). Divided by the
# updates its clients actually received, each server's CPU is compared for the same work
# (its per-post share, which coalescing leaves whole, then counts against the server that
# delivers less: print both).
CPU_PER_UPDATE = [
    ("monitor", "per update delivered (default)"),
    ("pipeline", "per update delivered (pipelined)"),
    ("image", "per image update delivered"),
    ("fan", f"per update delivered ({N_FAN} mon.)"),
]


def table(client: str, samples: dict[tuple[str, str], list[float]]) -> list[str]:
    """Print one client kind's rows; give the labels of the rows where reckon's server was
    measurably slower (its interval wholly below 1)."""
    below = []
    print(
        f"\n{client} client{'':22s}reckon server   p4p server   reckon / p4p per round: median "
        "[90% interval] (>= 1: reckon as fast or faster)"
    )
    for key, label, higher in ROWS:
        ours, theirs = samples.get(("reckon", key)), samples.get(("p4p", key))
        if not ours or not theirs:
            continue
        cmp = paired(ours, theirs, higher_is_better=higher)
        if cmp.verdict == "below":
            below.append(f"{client} client, {label}")
        extra = ""
        counts = samples.get(("reckon", key + "_count"))
        if counts:
            theirs_counts = samples.get(("p4p", key + "_count"), [0.0])
            extra = (
                f"  delivered {statistics.median(counts):.0f} vs "
                f"{statistics.median(theirs_counts):.0f}"
            )
            if samples.get(("p4p", key + "_stalled")):
                extra += " (p4p server stalled: the last value never arrived)"
            if samples.get(("reckon", key + "_stalled")):
                extra += " (reckon server stalled!)"
        print(
            f"  {label:32s} {statistics.median(ours):12.1f} {statistics.median(theirs):12.1f}"
            f"   {cmp}{extra}"
        )
    rss_ours, rss_theirs = samples.get(("reckon", "rss")), samples.get(("p4p", "rss"))
    if rss_ours and rss_theirs:
        print(
            f"  {'RSS growth, ' + str(N_RSS_GETS) + ' gets of 2 MB (MB)':32s} "
            f"{rss_ours[0]:12.1f} {rss_theirs[0]:12.1f}   (one connection; should stay small)"
        )
    print("  server CPU per operation (us, median; lower is better, less sensitive to load):")
    cpu_rows = [(key + "_cpu", label) for key, label in CPU_ROWS]
    cpu_rows += [(key + "_cpu_update", label) for key, label in CPU_PER_UPDATE]
    for key, label in cpu_rows:
        cpu_ours, cpu_theirs = samples.get(("reckon", key)), samples.get(("p4p", key))
        if not cpu_ours or not cpu_theirs:
            continue
        cmp = paired(cpu_ours, cpu_theirs, higher_is_better=False)
        print(
            f"    {label:30s} {statistics.median(cpu_ours):12.1f} "
            f"{statistics.median(cpu_theirs):12.1f}   {cmp}"
        )
    paced = [
        (key, label, samples.get(("reckon", key + "_cpu")), samples.get(("p4p", key + "_cpu")))
        for key, label in PACED_ROWS
    ]
    if any(ours and theirs for _, _, ours, theirs in paced):
        print("  server CPU per post when both servers send every update (paced posts):")
    for key, label, cpu_ours, cpu_theirs in paced:
        if not cpu_ours or not cpu_theirs:
            continue
        cmp = paired(cpu_ours, cpu_theirs, higher_is_better=False)
        delivered = [statistics.median(samples[(srv, key + "_count")]) for srv in ("reckon", "p4p")]
        print(
            f"    {label:30s} {statistics.median(cpu_ours):12.1f} "
            f"{statistics.median(cpu_theirs):12.1f}   {cmp}  delivered "
            f"{delivered[0]:.0f} vs {delivered[1]:.0f}"
        )
    return below


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["server"], ["client"]):
        # a child the parent finds stuck is sent SIGUSR1 and prints where every thread is
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args[:1] == ["server"]:
        {"p4p": serve_p4p, "reckon": serve_reckon}[args[1]]()
        return
    if args[:1] == ["client"]:
        {"p4p": client_p4p, "reckon": client_reckon}[args[1]]()
        return
    global N_GET, N_PUT, N_RPC, N_BURST, ROUNDS, BURST_ROUNDS
    global N_BIG_GET, N_IMAGES, N_FAN, N_FAN_POSTS, N_RSS_GETS, N_PACED
    if "--quick" in args:
        os.environ["PVA_BENCH_QUICK"] = "1"
        N_GET, N_PUT, N_RPC, N_BURST, ROUNDS, BURST_ROUNDS = 200, 100, 100, 2000, 1, 1
        N_BIG_GET, N_IMAGES, N_FAN, N_FAN_POSTS, N_RSS_GETS = 1, 5, 5, 30, 30
        N_PACED = 100
    clients = [a for a in args if not a.startswith("--")] or ["p4p", "reckon"]
    t0 = time.time()
    results = {}
    for client in clients:
        print(f"measuring the {client} client against both servers ...", flush=True)
        results[client] = measure(client)
    below = []
    for client, samples in results.items():
        below += table(client, samples)
    print(
        f"\n({ROUNDS} interleaved rounds per row, {BURST_ROUNDS} for bursts; the servers' columns "
        f"are the medians of their rounds; total {time.time() - t0:.0f}s)"
    )
    if ROUNDS > 1:
        print(
            "reckon's server at or above p4p's on every row: "
            + ("yes" if not below else "no, measurably slower on: " + "; ".join(below))
        )


if __name__ == "__main__":
    main()
