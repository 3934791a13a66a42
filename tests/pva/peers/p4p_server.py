"""A p4p (pvxs) server run as a child process by the tests and the benchmark.

Run as ``python p4p_server.py SPEC_JSON``. The spec lists PVs to publish; commands arrive as JSON
lines on stdin. The process prints ``ready`` once serving, and one JSON line per command reply.
It runs in its own process so each test gets a fresh environment and p4p's global contexts never
leak between tests.

Spec entries: ``{"name": ..., "kind": "scalar"|"array"|"table"|"rpc"|"enum"|"compound"|
"ndarray", "type": code, "initial": value}``; an array may give ``"size": n`` instead of
``initial`` (0.0, 1.0, ... n-1), an "ndarray" its ``"shape": [rows, columns]`` (a uint16
NTNDArray image).
A "compound" PV has :func:`compound_type` (a union, an any, and
arrays of structures, unions and anys); in its JSON initial value a union is ``[member, value]``.
Commands: ``{"op": "post", "name", "value"}``, ``{"op": "burst", "name", "n"}`` (posts 1..n as
fast as possible, replies with the start time on the monotonic clock) and ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import sys
import time

from p4p import Type
from p4p.nt import NTEnum, NTScalar, NTTable
from p4p.server import Server
from p4p.server.thread import SharedPV


def compound_type() -> Type:
    member = [("a", "i"), ("b", "s")]
    return Type(
        [
            ("u", ("U", None, member)),
            ("v", "v"),
            ("sa", ("aS", None, [("x", "d"), ("name", "s")])),
            ("ua", ("aU", None, member)),
            ("va", "av"),
        ],
        id="test:compound",
    )


def make_pv(entry: dict) -> SharedPV:  # type: ignore[type-arg]
    kind = entry.get("kind", "scalar")
    if kind == "rpc":
        pv = SharedPV()
        mode = entry.get("mode", "echo")

        @pv.rpc
        def _rpc(pv, op):  # type: ignore[no-untyped-def]
            arg = op.value()
            if mode == "sum":
                query = arg.query if "query" in arg else arg
                total = float(query.a) + float(query.b)
                op.done(NTScalar("d").wrap(total))
            elif mode == "fail":
                op.done(error="refused by test")
            else:
                op.done(arg)

        return pv
    if kind == "table":
        columns = [(c, t) for c, t in entry["columns"]]
        nt = NTTable(columns)
        cols = entry["initial"]
        names = list(cols)
        rows = [dict(zip(names, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
        initial = nt.wrap(rows)
        pv = SharedPV(nt=nt, initial=initial)
    elif kind == "compound":
        init = dict(entry["initial"])
        init["u"] = tuple(init["u"])
        init["ua"] = [tuple(u) for u in init["ua"]]
        pv = SharedPV(initial=compound_type()(init))
    elif kind == "ndarray":
        # an image of entry["shape"] (rows, columns) of uint16 counting up
        import numpy as np
        from p4p.nt import NTNDArray

        rows, cols = entry["shape"]
        image = (np.arange(rows * cols, dtype=np.uint32) % 65536).astype(np.uint16)
        pv = SharedPV(nt=NTNDArray(), initial=image.reshape(rows, cols))
    elif kind == "enum":
        pv = SharedPV(nt=NTEnum(), initial={"index": entry["initial"], "choices": entry["choices"]})
    else:
        code = entry["type"]
        if kind == "array" and not code.startswith("a"):
            code = "a" + code
        initial = entry.get("initial")
        if "size" in entry:  # a big array: 0.0, 1.0, ... (size elements)
            import numpy as np

            initial = np.arange(int(entry["size"]), dtype=np.float64)
        pv = SharedPV(nt=NTScalar(code), initial=initial)

    @pv.put
    def _put(pv, op):  # type: ignore[no-untyped-def]
        pv.post(op.value())
        op.done()

    return pv


def main() -> None:
    spec = json.loads(sys.argv[1])
    pvs = {entry["name"]: make_pv(entry) for entry in spec}
    with Server(providers=[pvs]):
        print("ready", flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            if op == "post":
                pvs[cmd["name"]].post(cmd["value"])
                print(json.dumps({"ok": True}), flush=True)
            elif op == "burst":
                pv = pvs[cmd["name"]]
                start = time.monotonic()
                for i in range(1, int(cmd["n"]) + 1):
                    pv.post(float(i))
                print(json.dumps({"start": start, "end": time.monotonic()}), flush=True)


if __name__ == "__main__":
    main()
