"""The standard library's impure objects, known by identity: clocks, randomness, the environment,
files.

Two users: the impurity search names what a function calls (``calls time.time``), and the code
graph keys impure *data* objects a function reads (``os.environ``) by their name, never by their
changing contents. The table is built on first use and never imports a module that is not
imported yet (numpy's global random functions join it once numpy.random is loaded).
"""

from __future__ import annotations

import sys
import threading

__all__ = ["PATH_IO", "class_attr_label", "known_object_name", "label"]

_table: dict[int, tuple[object, str]] | None = None
_class_attrs: dict[tuple[int, str], str] = {}
_objects: dict[int, tuple[object, str]] = {}
_table_lock = threading.Lock()
PATH_IO = ("read_text", "read_bytes", "write_text", "write_bytes")


def _add(obj: object, label: str) -> None:
    if obj is not None:
        _objects[id(obj)] = (obj, label)


def _build() -> dict[int, tuple[object, str]]:
    import builtins
    import datetime
    import io
    import os
    import pathlib
    import random
    import secrets
    import time
    import uuid

    for name in (
        "time",
        "time_ns",
        "perf_counter",
        "perf_counter_ns",
        "monotonic",
        "monotonic_ns",
        "process_time",
        "process_time_ns",
        "thread_time",
        "thread_time_ns",
        "localtime",
        "gmtime",
        "ctime",
        "asctime",
        "strftime",
        "clock_gettime",
        "clock_gettime_ns",
    ):
        _add(getattr(time, name, None), f"calls time.{name}")
    inst = getattr(random, "_inst", None)
    for name in dir(random):
        obj = getattr(random, name)
        if getattr(obj, "__self__", None) is inst and inst is not None:
            _add(obj, f"calls random.{name}")
    _add(random.SystemRandom, "uses random.SystemRandom")
    for name in secrets.__all__:
        _add(getattr(secrets, name, None), f"calls secrets.{name}")
    _add(os.environ, "reads os.environ")
    _add(getattr(os, "environb", None), "reads os.environb")
    _add(os.getenv, "reads os.environ (os.getenv)")
    _add(getattr(os, "getenvb", None), "reads os.environ (os.getenvb)")
    _add(getattr(os, "putenv", None), "writes os.environ (os.putenv)")
    _add(os.urandom, "calls os.urandom")
    _add(os.getcwd, "reads the working directory (os.getcwd)")
    _add(os.getpid, "reads the process id (os.getpid)")
    for module_name, attr in (
        ("socket", "gethostname"),
        ("getpass", "getuser"),
        ("platform", "node"),
    ):  # only if already imported: the table never imports anything new
        module = sys.modules.get(module_name)
        if module is not None:
            _add(getattr(module, attr, None), f"reads the machine ({module_name}.{attr})")
    _add(sys.argv, "reads sys.argv")
    _add(builtins.input, "reads stdin (input)")
    _add(getattr(os, "getrandom", None), "calls os.getrandom")
    _add(uuid.uuid1, "calls uuid.uuid1")
    _add(uuid.uuid4, "calls uuid.uuid4")
    _add(builtins.open, "opens files (open)")
    _add(io.FileIO, "opens files (io.FileIO)")
    for name in ("open", "read", "write", "listdir", "scandir", "walk", "stat", "remove"):
        _add(getattr(os, name, None), f"touches the file system (os.{name})")
    for name in ("open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob"):
        _add(getattr(pathlib.Path, name, None), f"touches the file system (pathlib.Path.{name})")
    for name in ("now", "utcnow", "today"):
        _class_attrs[(id(datetime.datetime), name)] = f"calls datetime.datetime.{name}"
    _class_attrs[(id(datetime.date), "today")] = "calls datetime.date.today"
    for name in (*PATH_IO, "open", "iterdir", "glob"):
        _class_attrs[(id(pathlib.Path), name)] = f"touches the file system (pathlib.Path.{name})"
    _add_numpy_random()
    return _objects


def _add_numpy_random() -> None:
    """numpy's legacy global generator (np.random.rand, ...), if numpy is already imported."""
    nprandom = sys.modules.get("numpy.random")
    if nprandom is None:
        return
    global_rng = getattr(getattr(nprandom, "mtrand", None), "_rand", None)
    if global_rng is None:  # pragma: no cover - every numpy since 1.17 has it
        return
    for name in getattr(nprandom, "__all__", ()):
        obj = getattr(nprandom, name, None)
        if getattr(obj, "__self__", None) is global_rng:
            _add(obj, f"calls numpy.random.{name}")


def _objects_table() -> dict[int, tuple[object, str]]:
    global _table
    if _table is None:
        with _table_lock:
            if _table is None:
                _table = _build()
    elif "numpy.random" in sys.modules and not any(
        label.startswith("calls numpy.random.") for _, label in _table.values()
    ):
        with _table_lock:
            _add_numpy_random()
    return _table


def label(obj: object) -> str | None:
    """What calling or reading ``obj`` does, if it is one of the known impure objects."""
    entry = _objects_table().get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1]
    return None


def known_object_name(value: object) -> str | None:
    """A stable name for impure *data* objects (os.environ): the fingerprint keys them by name."""
    entry = _objects_table().get(id(value))
    if entry is not None and entry[0] is value and not callable(value):
        return entry[1]
    return None


def class_attr_label(cls: type, attr: str) -> str | None:
    """What ``cls.attr`` does (``datetime.datetime.now``), looked up through the class's MRO."""
    _objects_table()
    for klass in cls.__mro__:
        found = _class_attrs.get((id(klass), attr))
        if found is not None:
            return found
    return None
