"""``python -m reckon.observe script.py [args...]``: run a script with its engine observable.

Calls :func:`reckon.observe.autostart` (so ``RECKON_OBSERVE=127.0.0.1:8765`` picks the address;
unset, it defaults to 127.0.0.1:8765 here, since asking for observation is the point), then runs
the script as ``__main__``, like ``python script.py``. The server serves ``default_engine()``,
the engine ``@memoize`` uses unless told otherwise.
"""

from __future__ import annotations

import os
import runpy
import sys

from reckon.observe.startup import ENV, autostart

USAGE = "usage: python -m reckon.observe SCRIPT [ARGS...]   (RECKON_OBSERVE=HOST:PORT to choose)"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    os.environ.setdefault(ENV, "127.0.0.1:8765")
    autostart()
    sys.argv = list(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
    runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
