"""The compound pvData kinds (union, any, and arrays of structures, unions and anys) between
reckon and p4p (pvxs), both ways: the normative types never use them, so only these tests show
that a union's selected member, an any's own type and each array element cross intact."""

from __future__ import annotations

import re
from typing import Any

from reckon.pva import Client, SharedPV
from reckon.pva.protocol import (
    Scalar,
    Structure,
    StructureArray,
    Union,
    UnionArray,
    UnionValue,
    Variant,
    VariantArray,
    VariantValue,
)
from reckon.pva.pv import PutOperation

from .conftest import run_p4p_client

MEMBERS = Union([("a", "i"), ("b", "s")])
COMPOUND = Structure(
    [
        ("u", MEMBERS),
        ("v", Variant()),
        ("sa", StructureArray(Structure([("x", "d"), ("name", "s")]))),
        ("ua", UnionArray(MEMBERS)),
        ("va", VariantArray()),
    ],
    id="test:compound",
)
INITIAL = {
    "u": UnionValue("b", "hello"),
    "v": VariantValue(Scalar("d"), 2.5),
    "sa": [{"x": 1.0, "name": "one"}, {"x": 2.0, "name": "two"}],
    "ua": [UnionValue("a", 3), UnionValue("b", "z")],
    "va": [VariantValue(Scalar("l"), 1), VariantValue(Scalar("s"), "two")],
}


def _text(lines: list[str]) -> str:
    """p4p's printed value, one line per field, blanks squeezed (its layout is not ours)."""
    return "\n".join(re.sub(r"\s+", " ", line.strip()) for line in lines)


def test_p4p_client_reads_and_writes_compound_fields(
    reckon_server: Any, pva_env: dict[str, str]
) -> None:
    pv = SharedPV(COMPOUND, INITIAL)
    puts: list[dict[str, Any]] = []

    @pv.on_put
    def handle(op: PutOperation) -> None:
        puts.append(op.fields)
        op.pv.post(op.fields)

    reckon_server({"t:compound": pv})
    out = run_p4p_client(
        """
emit(str(ctx.get('t:compound')).splitlines())
ctx.put('t:compound', {'u': ('a', 7), 'v': 'text', 'sa': [{'x': 5.0, 'name': 'five'}],
                       'ua': [('b', 'q'), ('a', -1)], 'va': [2.0]})
emit(str(ctx.get('t:compound')).splitlines())
""",
        pva_env,
    )
    before, after = _text(out[0]), _text(out[1])
    assert 'struct "test:compound"' in before
    assert 'union u.b string = "hello"' in before
    assert "any v double = 2.5" in before
    assert 'double x = 1\nstring name = "one"' in before
    assert 'double x = 2\nstring name = "two"' in before
    # p4p prints a union array's elements read off the wire by their member's type alone (its
    # own server's value prints the same); the member names are checked on the way back
    assert 'union[] ua = {2}[\nint32_t = 3\nstring = "z"\n]' in before
    assert 'int64_t = 1\nstring = "two"' in before

    # what p4p wrote reached the put handler as reckon's values, member names and types kept
    (fields,) = puts
    assert fields["u"] == UnionValue("a", 7)
    assert fields["v"] == VariantValue(Scalar("s"), "text")
    assert fields["sa"] == [{"x": 5.0, "name": "five"}]
    assert fields["ua"] == [UnionValue("b", "q"), UnionValue("a", -1)]
    assert fields["va"] == [VariantValue(Scalar("d"), 2.0)]
    assert "union u.a int32_t = 7" in after
    assert 'any v string = "text"' in after
    assert 'union[] ua = {2}[\nstring = "q"\nint32_t = -1\n]' in after


async def test_reckon_client_reads_and_writes_compound_fields(p4p_server: Any) -> None:
    p4p_server(
        [
            {
                "name": "p:compound",
                "kind": "compound",
                "initial": {
                    "u": ["b", "hello"],
                    "v": 2.5,
                    "sa": [{"x": 1.0, "name": "one"}],
                    "ua": [["a", 3], ["b", "z"]],
                    "va": [1, "two"],
                },
            }
        ]
    )
    async with Client() as c:
        t = await c.info("p:compound", timeout=10)
        assert isinstance(t, Structure)
        assert t.id == "test:compound"
        assert t["u"] == MEMBERS and t["ua"] == UnionArray(MEMBERS)
        assert isinstance(t["v"], Variant) and isinstance(t["va"], VariantArray)
        v = await c.get("p:compound")
        assert v["u"] == UnionValue("b", "hello")
        assert v["v"] == VariantValue(Scalar("d"), 2.5)
        assert v["sa"] == [{"x": 1.0, "name": "one"}]
        assert v["ua"] == [UnionValue("a", 3), UnionValue("b", "z")]
        assert v["va"] == [VariantValue(Scalar("l"), 1), VariantValue(Scalar("s"), "two")]

        # plain forms on the way in: (member, value) for a union, any value for an any
        await c.put(
            "p:compound",
            {
                "u": ("a", 7),
                "v": "text",
                "sa": [{"x": 5.0, "name": "five"}, {"x": 6.0, "name": "six"}],
                "ua": [("b", "q")],
                "va": [2.0, [1, 2]],
            },
        )
        v = await c.get("p:compound")
        assert v["u"] == UnionValue("a", 7)
        assert v["v"] == VariantValue(Scalar("s"), "text")
        assert v["sa"] == [{"x": 5.0, "name": "five"}, {"x": 6.0, "name": "six"}]
        assert v["ua"] == [UnionValue("b", "q")]
        assert v["va"][0] == VariantValue(Scalar("d"), 2.0)
        assert list(v["va"][1].value) == [1, 2]
