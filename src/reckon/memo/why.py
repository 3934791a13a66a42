"""Why a call recomputed: the difference between this call's key and the nearest stored one.

A key is the function's fingerprint and the digest of its arguments, and neither can be read
back. So each code version leaves a *manifest* (per node of its code graph: the local digest, the
values it read as digests and short reprs, the source lines of functions), and each computed call
leaves a *note* (its key, its code version, per argument a digest, a one-line repr and, for an
object of the user's class, that class's code version). A miss is then explained by the nearest
note of the same function:

- same arguments, other code version: the manifests are compared node by node, and the first
  changed node is named (module, qualname, the first differing source line), or the global or
  closure value that changed (old and new repr);
- arguments that look the same (same repr) but key differently: the argument is named, with its
  class's changed code when that is the cause;
- nothing alike: the call is new (the nearest note's differing arguments are named).

Manifests and notes live on this machine, in the directory of the group's store or of its near
tier (``<dir>/memo-why/``): written on misses, in the background, never read on a hit. Without
a local directory they are kept in memory. The latest code version seen of each function is kept
there too, to say when it changed.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import threading
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from reckon.memo import background, codegraph, log
from reckon.memo._keys_modules import module_of, module_origin
from reckon.memo.fingerprint import fingerprint
from reckon.memo.hashing import hash_value

if TYPE_CHECKING:
    from reckon.core import RequestId
    from reckon.memo.memoize import Memoized

__all__ = ["Change", "Why", "explain", "explain_stale", "record"]

_DIRNAME = "memo-why"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: Notes read per function when explaining (the newest).
_MAX_NOTES = 5000


@dataclass(frozen=True)
class Change:
    """One reason a key differs. ``kind``: ``"code"`` (a function or class of the code graph),
    ``"value"`` (a global, closure variable, default or class attribute the code reads),
    ``"argument"`` (an argument that looks the same but keys differently) or ``"new"`` (no
    stored call with these arguments)."""

    kind: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass(frozen=True)
class Why:
    """Whether ``f(*args)`` would hit now; if not, what changed since the nearest stored call."""

    function: str
    call: str
    hit: bool
    changes: tuple[Change, ...]

    def __str__(self) -> str:
        if self.hit:
            return f"{self.call}: a hit"
        if not self.changes:
            return f"{self.call}: recomputes (no stored call to compare with)"
        text = "; ".join(str(c) for c in self.changes[:3])
        more = f" (and {len(self.changes) - 3} more)" if len(self.changes) > 3 else ""
        return f"{self.call}: recomputes: {text}{more}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- where manifests and notes are kept ---------------------------------------------------------

_memory: dict[str, Any] = {}
_lock = threading.Lock()


def _dir(m: Memoized[Any, Any]) -> Path | None:
    return notes_dir(m._group.backend.local_dir)


def notes_dir(local_dir: Path | None) -> Path | None:
    """Where the notes of a group whose store has ``local_dir`` live (None: in memory)."""
    return None if local_dir is None else Path(local_dir) / _DIRNAME


def swap_version(base: Path | None, function: str, fp: str) -> str | None:
    """Record ``fp`` as the latest code version seen of ``function``; return the one before."""
    name = f"latest-{xxhash.xxh3_64_hexdigest(function.encode())}"
    if base is None:
        previous = _memory.get(name)
        _memory[name] = fp
        return previous if isinstance(previous, str) else None
    target = base / name
    try:
        previous_text: str | None = target.read_text().strip()
    except OSError:
        previous_text = None
    if previous_text != fp:
        with contextlib.suppress(OSError):
            base.mkdir(parents=True, exist_ok=True)
            tmp = base / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(fp)
            os.replace(tmp, target)
    return previous_text or None


def _notes_file(base: Path, function: str) -> Path:
    return base / f"calls-{xxhash.xxh3_64_hexdigest(function.encode())}.jsonl"


def _save_manifest(base: Path | None, fp: str, manifest: list[dict[str, Any]]) -> None:
    if base is None:
        _memory[f"manifest:{fp}"] = manifest
        return
    target = base / f"{fp}.json"
    with _lock:
        _manifests[target] = manifest
    if target.exists():
        return
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{fp}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, target)


def load_manifest(base: Path | None, fp: str) -> list[dict[str, Any]] | None:
    """The manifest of code version ``fp`` (a memoized function's key prefix, hex).

    A code version's manifest never changes, so one read is kept for the process.
    """
    if base is None:
        found = _memory.get(f"manifest:{fp}")
        return found if isinstance(found, list) else None
    path = base / f"{fp}.json"
    cached = _manifests.get(path)
    if cached is not None:
        return cached
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, list):
        return None
    with _lock:
        if len(_manifests) >= 256:
            _manifests.clear()
        _manifests[path] = data
    return data


_manifests: dict[Path, list[dict[str, Any]]] = {}


def _append_note(base: Path | None, function: str, note: dict[str, Any]) -> None:
    if base is None:
        with _lock:
            kept = _memory.setdefault(f"notes:{function}", [])
            kept.append(note)
            del kept[:-_MAX_NOTES]
        return
    base.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(note) + "\n").encode()
    path = _notes_file(base, function)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write with O_APPEND: lines of several processes do not mix
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > _MAX_NOTES_BYTES:
        _compact(path)


#: A function's notes file is cut back to its newest notes when it grows past this.
_MAX_NOTES_BYTES = 8 << 20


def _compact(path: Path) -> None:
    """Keep the newest notes only (a note another process appends meanwhile may be lost: notes
    only explain, they never decide a hit)."""
    with contextlib.suppress(OSError):
        lines = path.read_bytes().splitlines(keepends=True)[-_MAX_NOTES:]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(b"".join(lines))
        os.replace(tmp, path)


_read: dict[Path, tuple[int, int, list[dict[str, Any]]]] = {}


def _load_notes(base: Path | None, function: str) -> list[dict[str, Any]]:
    """The newest notes of a function; a file read before is read on from where it ended."""
    if base is None:
        with _lock:
            return list(_memory.get(f"notes:{function}", [])[-_MAX_NOTES:])
    path = _notes_file(base, function)
    with _lock:
        inode, done, notes = _read.get(path, (0, 0, []))
        try:
            with open(path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                if stat.st_ino != inode or stat.st_size < done:  # new, or compacted
                    inode, done, notes = stat.st_ino, 0, []
                fh.seek(done)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                notes.append(json.loads(line))
        notes = notes[-_MAX_NOTES:]
        _read[path] = (inode, done + end, notes)
        return list(notes)


# -- manifests ----------------------------------------------------------------------------------


def _source(node: object) -> tuple[str, int, list[str]] | None:
    """(file, first line, source lines) of a function node, if its source can be read."""
    func = node
    if isinstance(node, types.MethodType | staticmethod | classmethod):
        func = node.__func__
    if not isinstance(func, types.FunctionType):
        return None
    try:
        lines, start = inspect.getsourcelines(func)
    except (OSError, TypeError):
        return None
    return func.__code__.co_filename, start, [line.rstrip("\n") for line in lines]


def manifest(obj: object) -> list[dict[str, Any]]:
    """Per node of ``obj``'s code graph: label, local digest, values read, source lines."""
    target = codegraph.classify(obj)
    if isinstance(target, codegraph.Leaf):
        return [{"label": target.label, "digest": target.digest.hex(), "items": {}}]
    out: list[dict[str, Any]] = []
    for _depth, node, local, _seen in codegraph.walk(target):
        if local is None:
            continue
        entry: dict[str, Any] = {
            "label": local.label,
            "digest": local.digest.hex(),
            "items": {what: [digest, _ADDRESS.sub("", text)] for what, digest, text in local.items},
        }
        source = _source(node)
        if source is not None:
            entry["file"], entry["line"], entry["source"] = source
        out.append(entry)
    return out


def _code_lines(lines: list[str], start: int) -> list[tuple[int, str]]:
    """Source lines that are code: blank lines and comments say nothing about behaviour."""
    out = []
    for i, line in enumerate(lines):
        text = line.strip()
        if text and not text.startswith("#"):
            out.append((start + i, text))
    return out


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    old_src, new_src = old.get("source"), new.get("source")
    if not (isinstance(old_src, list) and isinstance(new_src, list)):
        return "its code changed (no source to compare)"
    a = _code_lines(old_src, int(old.get("line", 1)))
    b = _code_lines(new_src, int(new.get("line", 1)))
    for (_, was), (line, now) in zip(a, b, strict=False):
        if was != now:
            return f"line {line} changed: {log.short_repr(was)} -> {log.short_repr(now)}"
    if len(b) > len(a):
        line, now = b[len(a)]
        return f"line {line} added: {log.short_repr(now)}"
    if len(a) > len(b):
        return f"line {b[-1][0] if b else new.get('line', '?')}: lines removed after it"
    return "its bytecode changed (same source lines: a value it holds, or a default)"


def diff(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[Change]:
    """What changed from code version ``old`` to ``new``, in the order the graph is walked."""
    if old is None:
        return [Change("code", new[0]["label"] if new else "?", "its code or a value it reads "
                       "changed (the earlier version's details were not kept)")]  # fmt: skip
    before: dict[str, dict[str, Any]] = {}
    for node in old:
        before.setdefault(node["label"], node)
    seen: set[str] = set()
    changes: list[Change] = []
    for node in new:
        label = node["label"]
        if label in seen:
            continue
        seen.add(label)
        was = before.get(label)
        if was is None:
            changes.append(Change("code", label, "newly reached by the code"))
            continue
        if was["digest"] == node["digest"]:
            continue
        values = _value_changes(label, was.get("items", {}), node.get("items", {}))
        changes.extend(values)
        if not values or was.get("source") != node.get("source"):
            changes.append(Change("code", label, _first_difference(was, node)))
    changes.extend(
        Change("code", label, "no longer reached by the code")
        for label in before
        if label not in seen
    )
    return changes


def _value_changes(label: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = []
    for what in list(new) + [w for w in old if w not in new]:
        a, b = old.get(what), new.get(what)
        if a is not None and b is not None and a[0] == b[0]:
            continue
        where = f"{what} (read by {label})"
        was = a[1] if a is not None else "(not read)"
        now = b[1] if b is not None else "(not read)"
        if was == now:
            now += " (same repr, other contents)"
        out.append(Change("value", where, f"{was} -> {now}"))
    return out


# -- notes of calls -----------------------------------------------------------------------------


def _argument_notes(
    m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[list[Any]]:
    """Per argument kept in the key: [name, digest, one-line repr, class code version or ""]."""
    arguments = m._arguments
    if arguments.key is not None:
        value = arguments.key(*args, **kwargs)
        return [["key()", hash_value(value).hex(), _ADDRESS.sub("", log.short_repr(value)), ""]]
    canon = arguments.canonical(args, kwargs, m.__qualname__)
    names = arguments.kept_names if len(canon) == len(arguments.kept_names) else ()
    out = []
    for i, value in enumerate(canon):
        name = names[i] if names else f"#{i}"
        try:
            digest = hash_value(value, path=name).hex()
        except Exception:  # the call itself would have failed first; be safe here
            digest = "?"
        out.append([name, digest, _ADDRESS.sub("", log.short_repr(value)), _class_version(value)])
    return out


def _class_version(value: object) -> str:
    """The code version of an argument's class when it is the user's (else "")."""
    cls = type(value)
    if module_origin(module_of(cls)).external:
        return ""
    try:
        return fingerprint(cls).hex()
    except Exception:
        return ""


def record(
    m: Memoized[Any, Any], rid: RequestId, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Leave the note of a computed call (and the manifest of its code version) for later
    explanations. Called on a miss; the writing happens on memo's background thread."""
    base = _dir(m)
    try:
        note = {"key": rid.disk_key, "fp": m._fphex, "args": _argument_notes(m, args, kwargs)}
    except Exception:  # a key function that fails is reported by the call itself
        return
    saved = m._why_saved
    save_manifest = m._fphex not in saved
    saved.add(m._fphex)
    classes = []
    for a, v in zip(note["args"], _values(m, args, kwargs), strict=False):
        if a[3] and a[3] not in saved:
            saved.add(a[3])
            classes.append((a[3], type(v)))
    fn = m.__wrapped__
    fp = m._fphex

    def write() -> None:
        if save_manifest:
            _save_manifest(base, fp, manifest(fn))
        for version, cls in classes:
            _save_manifest(base, version, manifest(cls))
        _append_note(base, m.name, note)

    if base is None:
        write()
    else:
        background.call_soon(write)


def _values(
    m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    if m._arguments.key is not None:
        return ()
    return m._arguments.canonical(args, kwargs, m.__qualname__)


# -- explaining ---------------------------------------------------------------------------------


def explain(m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Why:
    """Why ``m(*args, **kwargs)`` would recompute now (or that it would hit)."""
    call = m._call_text(args, kwargs)
    if m.would_hit(*args, **kwargs):
        return Why(m.name, call, True, ())
    return Why(m.name, call, False, tuple(changes(m, args, kwargs)))


def changes(
    m: Memoized[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, flush: bool = True
) -> list[Change]:
    """What differs between this call and the nearest stored call of the same function.

    ``flush=False`` (on the miss path) does not wait for notes still queued for writing.
    """
    m._ensure()
    if flush:
        with contextlib.suppress(Exception):
            background.flush()  # notes of calls just made are written in the background
    base = _dir(m)
    rid = m._request_id(args, kwargs)
    now = _argument_notes(m, args, kwargs)
    every = _load_notes(base, m.name)
    notes = [n for n in every if n.get("key") != rid.disk_key]
    if len(notes) < len(every):
        return [Change("new", "stored value", "this very call was stored, then evicted or lost")]
    if not notes:
        return [Change("new", "arguments", "no stored call of this function to compare with")]
    digests = [a[1] for a in now]
    reprs = [a[2] for a in now]
    for note in reversed(notes):  # newest first
        if [a[1] for a in note["args"]] == digests:
            return _code_changes(base, note["fp"], m)
    for note in reversed(notes):
        if [a[2] for a in note["args"]] == reprs:
            found = _argument_changes(base, note["args"], now, _values(m, args, kwargs))
            if note["fp"] != m._fphex:
                found.extend(_code_changes(base, note["fp"], m))
            return found
    nearest = max(
        reversed(notes),
        key=lambda n: (sum(a[1] == b for a, b in zip(n["args"], digests, strict=False)),
                       n["fp"] == m._fphex),
    )  # fmt: skip
    differing = [
        f"{b[0]}={b[2]} (stored: {a[2]})"
        for a, b in zip(nearest["args"], now, strict=False)
        if a[1] != b[1]
    ]
    return [Change("new", "arguments", "no stored call with these arguments; the nearest "
                   f"differs in {', '.join(differing) or 'its arguments'}")]  # fmt: skip


def _code_changes(base: Path | None, old_fp: str, m: Memoized[Any, Any]) -> list[Change]:
    new = load_manifest(base, m._fphex)
    if new is None:
        new = manifest(m.__wrapped__)
        _save_manifest(base, m._fphex, new)
    found = diff(load_manifest(base, old_fp), new)
    return found or [Change("code", m.name, "another code version (same manifest)")]


def _argument_changes(
    base: Path | None, stored: list[list[Any]], now: list[list[Any]], values: tuple[Any, ...]
) -> list[Change]:
    out: list[Change] = []
    for i, (a, b) in enumerate(zip(stored, now, strict=False)):
        if a[1] == b[1]:
            continue
        if a[3] and b[3] and a[3] != b[3]:
            current = load_manifest(base, b[3])
            if current is None and i < len(values):
                current = manifest(type(values[i]))
            inner = diff(load_manifest(base, a[3]), current or [])
            detail = "; ".join(str(c) for c in inner[:2]) or "its class's code changed"
            out.append(Change("argument", b[0], f"same repr {b[2]}, its class changed: {detail}"))
        else:
            out.append(Change("argument", b[0], f"same repr {b[2]}, other contents"))
    return out


def current_version(base: Path, function: str, current_rows: list[Any]) -> str | None:
    """The code version of ``function`` that entries are made with now: that of its entries
    that are not stale, else of its newest note (for the CLI, which cannot fingerprint)."""
    for row in current_rows:
        return str(row.fingerprint)
    notes = _load_notes(base / _DIRNAME, function)
    return str(notes[-1]["fp"]) if notes else None


def explain_stale(base: Path, function: str, current_fp: str | None, old_fp: str) -> list[Change]:
    """What changed between two code versions of a function, from their manifests (for the CLI)."""
    new = None if current_fp is None else load_manifest(base / _DIRNAME, current_fp)
    if new is None:
        return [Change("code", function, "changed; the current version's details are not "
                       "kept yet (call the function once with the current code)")]  # fmt: skip
    return diff(load_manifest(base / _DIRNAME, old_fp), new)
