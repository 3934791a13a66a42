"""The examples in docs/pva-protocol.md and the module docstrings run."""

from __future__ import annotations

import doctest
import pathlib
import re

import pytest

from reckon.pva.protocol import nt

DOC = pathlib.Path(__file__).parents[3] / "docs" / "pva-protocol.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(index: int) -> None:
    exec(compile(BLOCKS[index], f"{DOC.name}[{index}]", "exec"), {})


def test_nt_doctest() -> None:
    assert doctest.testmod(nt).failed == 0


def _operation_table() -> str:
    """The operation table as docs/pva-protocol.md draws it, from OPERATIONS and OPENERS."""
    from reckon.pva.protocol import OPENERS, OPERATIONS, Command

    def states(before: frozenset[object]) -> str:
        names = sorted(s.name for s in before)  # type: ignore[attr-defined]
        if len(names) == 4:
            return "any"
        if len(names) == 3 and "INIT_PENDING" not in names:
            return "initialised"
        return ", ".join(names)

    lines = [
        "| event | sent by | operation | may come in | leads to |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t, cmd in sorted(OPENERS.items(), key=lambda kv: (kv[1], kv[0].__name__)):
        start = "EXECUTING" if t.__name__ == "GetField" else "INIT_PENDING"
        lines.append(f"| `{t.__name__}` | client | {Command(cmd).name} | (a free ioid) | {start} |")
    rows = sorted(
        OPERATIONS.items(), key=lambda kv: (kv[1].by.value, kv[1].command or 0, kv[0].__name__)
    )
    for t, row in rows:
        after = row.after.name if row.after else "(unchanged)"
        if row.ends:
            after = "ends"
        if row.ends_if_destroy:
            after += "; ends if destroy"
        if row.ends_on_failure:
            after += "; ends on failure"
        if row.cancels:
            after = "READY (cancelled) if EXECUTING"
        extra = " (dropped if cancelled)" if row.drop_if_cancelled else ""
        op = Command(row.command).name if row.command is not None else "any"
        lines.append(
            f"| `{t.__name__}` | {row.by.value} | {op} | {states(row.before)}{extra} | {after} |"
        )
    return "\n".join(lines)


def test_the_doc_draws_the_operation_table() -> None:
    assert _operation_table() in DOC.read_text()


def test_the_docs_draw_the_message_table() -> None:
    from reckon.pva.protocol._table import markdown

    assert markdown() in DOC.read_text()


def test_the_type_stub_of_generated_events_is_the_generated_classes() -> None:
    """_op_events.pyi, what a type checker reads of the generated classes, is what the table
    generates now: each class's fields in order, typed by kind, required or not."""
    from reckon.pva.protocol import MESSAGES, GetResponse, _op_events
    from reckon.pva.protocol._table import stubs

    rows = [r for r in MESSAGES if r.event.__module__ == _op_events.__name__]
    assert len(rows) == 54
    stub = pathlib.Path(_op_events.__file__).with_suffix(".pyi")
    assert stub.read_text() == stubs(), "stale: run `make pva-stubs`"
    assert (
        "    ioid: int\n    status: Status = ...\n    value: dict[str, Any] | None = ...\n"
        in (stubs().split("class GetResponse(Event):")[1])
    )
    assert GetResponse.__module__ == _op_events.__name__
