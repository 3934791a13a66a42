"""Markdown API reference written from the descriptors of generated modules.

The docs come from the same definitions the runtime uses, so they cannot drift from the code:
for each file, its services (methods with request and response types, linked) and its messages
(fields with number, type and label) and enums.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from google.protobuf import descriptor as d

_TYPES = {
    d.FieldDescriptor.TYPE_DOUBLE: "double",
    d.FieldDescriptor.TYPE_FLOAT: "float",
    d.FieldDescriptor.TYPE_INT64: "int64",
    d.FieldDescriptor.TYPE_UINT64: "uint64",
    d.FieldDescriptor.TYPE_INT32: "int32",
    d.FieldDescriptor.TYPE_FIXED64: "fixed64",
    d.FieldDescriptor.TYPE_FIXED32: "fixed32",
    d.FieldDescriptor.TYPE_BOOL: "bool",
    d.FieldDescriptor.TYPE_STRING: "string",
    d.FieldDescriptor.TYPE_BYTES: "bytes",
    d.FieldDescriptor.TYPE_UINT32: "uint32",
    d.FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    d.FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    d.FieldDescriptor.TYPE_SINT32: "sint32",
    d.FieldDescriptor.TYPE_SINT64: "sint64",
}


class Comments:
    """The .proto comments of a descriptor set, looked up by file and descriptor path."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, tuple[int, ...]], str] = {}

    def load(self, path: Path) -> None:
        from google.protobuf import descriptor_pb2

        fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        for f in fds.file:
            for loc in f.source_code_info.location:
                text = (loc.leading_comments or loc.trailing_comments).strip()
                if text:
                    self._by[(f.name, tuple(loc.path))] = " ".join(text.split())

    def get(self, file: str, *path: int) -> str:
        return self._by.get((file, path), "")


def _anchor(full_name: str) -> str:
    return full_name.lower().replace(".", "")


def _link(full_name: str) -> str:
    return f"[`{full_name}`](#{_anchor(full_name)})"


def _field_type(f: d.FieldDescriptor) -> str:
    if f.message_type is not None:
        if f.message_type.GetOptions().map_entry:
            k, v = f.message_type.fields
            return f"map<{_field_type(k)}, {_field_type(v)}>"
        return _link(f.message_type.full_name)
    if f.enum_type is not None:
        return _link(f.enum_type.full_name)
    return f"`{_TYPES.get(f.type, str(f.type))}`"


def _message(m: d.Descriptor, out: list[str], comments: Comments, path: tuple[int, ...]) -> None:
    if m.GetOptions().map_entry:
        return
    file = m.file.name
    out += [f"### {m.full_name}", ""]
    if doc := comments.get(file, *path):
        out += [doc, ""]
    if m.fields:
        out += ["| field | number | type | label | notes |", "| --- | --- | --- | --- | --- |"]
        for i, f in enumerate(m.fields):
            label = "repeated" if f.is_repeated else ""
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                label = ""
            note = comments.get(file, *path, 2, i)
            out.append(f"| `{f.name}` | {f.number} | {_field_type(f)} | {label} | {note} |")
    else:
        out.append("(no fields)")
    out.append("")
    for i, nested in enumerate(m.nested_types):
        _message(nested, out, comments, (*path, 3, i))
    for e in m.enum_types:
        _enum(e, out)


def _enum(e: d.EnumDescriptor, out: list[str]) -> None:
    out += [f"### {e.full_name}", "", "| name | number |", "| --- | --- |"]
    out += [f"| `{v.name}` | {v.number} |" for v in e.values]
    out.append("")


def file_markdown(fd: d.FileDescriptor, comments: Comments | None = None) -> str:
    comments = comments or Comments()
    out = [f"## {fd.name}", ""]
    if doc := comments.get(fd.name, 12):  # the comment above `syntax`: the file's summary
        out += [doc, ""]
    out += [f"Package `{fd.package}`.", ""]
    for si, s in enumerate(fd.services_by_name.values()):
        out += [f"### service {s.full_name}", ""]
        if doc := comments.get(fd.name, 6, si):
            out += [doc, ""]
        out += [
            "| method | request | response | path | notes |",
            "| --- | --- | --- | --- | --- |",
        ]
        for i, m in enumerate(s.methods):
            req, res = _link(m.input_type.full_name), _link(m.output_type.full_name)
            if m.client_streaming:
                req = f"stream {req}"
            if m.server_streaming:
                res = f"stream {res}"
            note = comments.get(fd.name, 6, si, 2, i)
            out.append(f"| `{m.name}` | {req} | {res} | `/{s.full_name}/{m.name}` | {note} |")
        out.append("")
    for i, msg in enumerate(fd.message_types_by_name.values()):  # declaration order
        _message(msg, out, comments, (4, i))
    for e in fd.enum_types_by_name.values():
        _enum(e, out)
    return "\n".join(out)


def markdown(modules: list[str], title: str = "API reference") -> str:
    """One Markdown document for the ``*_pb2`` modules named (importable dotted names)."""
    parts = [f"# {title}", "", "Generated from the protobuf descriptors by `reckon svc docs`.", ""]
    comments = Comments()
    loaded: set[Path] = set()
    for name in modules:
        module = importlib.import_module(name)
        # The descriptor set `reckon svc gen` wrote at the package root carries the comments.
        for folder in Path(module.__file__ or ".").resolve().parents[:4]:
            found = folder / "_descriptors.binpb"
            if found.exists() and found not in loaded:
                comments.load(found)
                loaded.add(found)
                break
        parts.append(file_markdown(module.DESCRIPTOR, comments))
    return "\n".join(parts).rstrip() + "\n"
