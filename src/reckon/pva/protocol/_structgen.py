"""Structures and scalars compiled to Python source: runs of fixed-width fields, even across
sub-structures, become one precompiled ``struct.Struct`` call, and a decoder builds the nested
dicts in one expression (see :mod:`._codec`, which caches what these build)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ._types import STRUCT_CHARS, FieldDesc, Scalar, Structure
from ._wire import READ_STRING, SMALL, size_bytes


class _Gen:
    """Builds the source of one function; constants go into its namespace."""

    def __init__(self, be: bool) -> None:
        self.be = be
        self.ns: dict[str, Any] = {"SMALL": SMALL, "size_bytes": size_bytes, "BE": be}
        self.lines: list[str] = []
        self.n = 0
        #: fixed-width scalars not yet written or read: (struct char, expression or variable)
        self.pending: list[tuple[str, str]] = []

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, obj: Any, prefix: str) -> str:
        n = self.name(prefix)
        self.ns[n] = obj
        return n

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def flush(self, write: bool) -> None:
        """One struct call packs (``write``) or unpacks the pending fixed-width scalars."""
        if not self.pending:
            return
        st = struct.Struct((">" if self.be else "<") + "".join(ch for ch, _ in self.pending))
        names = ", ".join(e for _, e in self.pending)
        if write:
            self.emit(f"out += {self.const(st.pack, 'P')}({names})")
        else:
            self.emit(f"{names}, = {self.const(st.unpack_from, 'U')}(data, pos)")
            self.emit(f"pos += {st.size}")
        self.pending.clear()

    def compile(self, header: str, fname: str) -> Any:
        src = header + "\n" + ("\n".join(self.lines) or "    pass") + "\n"
        exec(compile(src, f"<pva codec {fname}>", "exec"), self.ns)
        return self.ns[fname]


def selected(t: Structure, base: int, mask: int | None) -> list[tuple[str, FieldDesc, int, str]]:
    """(name, type, offset, how) for fields to write: how is 'all' or 'part'."""
    out: list[tuple[str, FieldDesc, int, str]] = []
    off = base + 1
    for name, ft in t.fields:
        span = ft.bit_count
        if mask is None or (mask >> off) & 1:
            out.append((name, ft, off, "all"))
        elif isinstance(ft, Structure) and (mask >> off) & ((1 << span) - 1):
            out.append((name, ft, off, "part"))
        off += span
    return out


def normalize(t: Structure, mask: int, base: int = 0) -> int:
    out = 0
    for _, ft, off, how in selected(t, base, mask):
        if how == "all":
            out |= 1 << off
        else:
            assert isinstance(ft, Structure)
            out |= normalize(ft, mask, off)
    return out


def struct_encoder(
    t: Structure | Scalar, be: bool, mask: int | None, encoder: Callable[[FieldDesc, bool], Any]
) -> Callable[[Any, bytearray, Any], None]:
    """The generated encoder of ``t`` (of a structure, the fields ``mask`` selects; None: all of
    them); ``encoder`` gives the encoder of a field that is neither structure nor scalar."""
    g = _Gen(be)

    def field(ft: FieldDesc, expr: str) -> None:
        """Emit the write of a field that is not a structure."""
        if isinstance(ft, Scalar) and ft.kind != "s":
            g.pending.append((STRUCT_CHARS[ft.kind], expr))
            return
        g.flush(write=True)
        if isinstance(ft, Scalar):  # string
            b = g.name("b")
            g.emit(f"{b} = {expr}.encode()")
            g.emit(f"out += SMALL[len({b})] if len({b}) < 254 else size_bytes(len({b}), BE)")
            g.emit(f"out += {b}")
            return
        enc = g.const(encoder(ft, be), "E")
        g.emit(f"{enc}({expr}, out, c)")

    def walk(st: Structure, var: str, base: int, mask: int | None) -> None:
        for name, ft, off, how in selected(st, base, mask):
            expr = f"{var}[{name!r}]"
            if isinstance(ft, Structure):
                sub = g.name("v")
                g.emit(f"{sub} = {expr}")
                walk(ft, sub, off, None if how == "all" else mask)
            else:
                field(ft, expr)

    if isinstance(t, Structure):
        walk(t, "v", 0, mask)
    else:
        field(t, "v")
    g.flush(write=True)
    enc: Callable[[Any, bytearray, Any], None] = g.compile("def enc(v, out, c):", "enc")
    return enc


def struct_decoder(
    t: Structure | Scalar, be: bool, mask: int | None, decoder: Callable[[FieldDesc, bool], Any]
) -> Callable[..., tuple[Any, int]]:
    """The generated decoder of ``t`` (with ``mask``: of a partial structure value, merged into
    a base); ``decoder`` gives the decoder of a field that is neither structure nor scalar."""
    g = _Gen(be)
    g.ns["rs"] = READ_STRING[be]

    def field(ft: FieldDesc) -> str:
        """Emit the read of a field that is not a structure; return the expression of its value."""
        if isinstance(ft, Scalar) and ft.kind != "s":
            var = g.name("x")
            g.pending.append((STRUCT_CHARS[ft.kind], var))
            return var
        g.flush(write=False)
        var = g.name("x")
        if isinstance(ft, Scalar):
            g.emit(f"{var}, pos = rs(data, pos)")
        else:
            dec = g.const(decoder(ft, be), "D")
            g.emit(f"{var}, pos = {dec}(data, pos, c)")
        return var

    def walk(st: Structure, base_expr: str | None, base: int) -> str:
        """A dict display of ``st``: whole, or (with a base) the fields ``mask`` selects
        merged into the base."""
        parts = [] if base_expr is None else [f"**{base_expr}"]
        for name, ft, off, how in selected(st, base, None if base_expr is None else mask):
            if not isinstance(ft, Structure):
                expr = field(ft)
            elif how == "all":
                expr = walk(ft, None, off)
            else:
                bvar = g.name("b")
                g.emit(f"{bvar} = {base_expr}[{name!r}]")
                expr = walk(ft, bvar, off)
            parts.append(f"{name!r}: {expr}")
        return "{" + ", ".join(parts) + "}"

    base = None if mask is None else "base"
    result = walk(t, base, 0) if isinstance(t, Structure) else field(t)
    g.flush(write=False)
    g.emit(f"return {result}, pos")
    header = "def dec(data, pos, c):" if mask is None else "def dec(data, pos, c, base):"
    dec: Callable[..., tuple[Any, int]] = g.compile(header, "dec")
    return dec
