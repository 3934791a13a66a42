"""The background writer on its own: batching, ordering, idling out and restarting."""

from __future__ import annotations

import threading
import time

from reckon.core.stores._writer import DELETE, PUT, Op, Writer


def test_ops_apply_in_order_and_flush_waits() -> None:
    applied: list[tuple[int, str]] = []
    gate = threading.Event()

    def apply(batch: list[Op]) -> None:
        gate.wait(30)
        applied.extend((op.kind, op.key) for op in batch)

    w = Writer(apply, max_bytes=1 << 20)
    w.submit(Op(PUT, "a", b"1"))
    w.submit(Op(PUT, "b", b"2"))
    w.submit(Op(DELETE, "a"))
    assert w.pending["a"].kind == DELETE and w.pending["b"].data == b"2"
    gate.set()
    w.flush()
    assert applied == [(PUT, "a"), (PUT, "b"), (DELETE, "a")]
    assert w.pending == {}
    w.close()


def test_writer_thread_idles_out_and_restarts() -> None:
    applied: list[str] = []
    w = Writer(
        lambda batch: applied.extend(op.key for op in batch), max_bytes=1 << 20, idle_timeout=0.05
    )
    w.submit(Op(PUT, "a", b"1"))
    w.flush()
    deadline = time.monotonic() + 30
    while w._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w._thread is None  # idle: no thread kept
    w.submit(Op(PUT, "b", b"2"))
    w.flush()
    assert applied == ["a", "b"]
    w.close()


def test_a_failing_batch_does_not_stop_the_writer() -> None:
    applied: list[str] = []

    def apply(batch: list[Op]) -> None:
        if any(op.key == "bad" for op in batch):
            raise RuntimeError("disk on fire")
        applied.extend(op.key for op in batch)

    w = Writer(apply, max_bytes=1 << 20)
    w.submit(Op(PUT, "bad", b"x"))
    w.flush()
    w.submit(Op(PUT, "good", b"y"))
    w.flush()
    assert applied == ["good"]
    assert w.pending == {}
    w.close()
