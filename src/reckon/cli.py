"""``reckon``: the package's single command line.

Each layer contributes its commands from its own ``cli`` module; this file only assembles them.
A layer's module is imported only when its command runs, so the base install (the core,
``@memoize`` and this command) works without any extra, and a command whose extra is missing
says in one line which extra to install instead of failing on an import.

Errors: a mistake of the user's (a bad argument, a missing file, a bad configuration) prints one
line naming the problem and exits with 2 (usage) or 1 (anything else that failed). ``reckon -v
...`` or ``RECKON_DEBUG=1`` shows the traceback instead, for reports and debugging.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

import reckon
from reckon.errors import ConfigurationError, ReckonError

DISTRIBUTION = "reckon-toolkit"
"""The name to ``pip install``; the import name stays ``reckon``."""

EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Layer:
    """A command contributed by a layer: where its Typer app lives and what it needs."""

    module: str
    help: str
    extra: str | None = None
    requires: tuple[str, ...] = ()
    attr: str = "app"
    group: bool = True  # a group of subcommands (``reckon pva get``), else one command of the app

    def missing(self) -> list[str]:
        """The modules of this layer's extra that cannot be imported here."""
        out = []
        for name in self.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(name.split(".")[0] if name != "google.protobuf" else "protobuf")
        return out

    def install_hint(self) -> str:
        return f"pip install '{DISTRIBUTION}[{self.extra}]'"


_OBSERVE = ("websockets", "msgpack", "textual")
_PVA = ("numpy",)
_SERVICE = ("grpc", "grpc_tools", "google.protobuf", "connectrpc", "hypercorn")

# Which extra brings a module, for a command that needs more than its own extra (``reckon pva
# top`` needs observe's textual too): an import of one of these that fails names its extra.
MODULE_EXTRAS = {
    "numpy": "pva",
    "uvloop": "pva",
    "websockets": "observe",
    "msgpack": "observe",
    "textual": "observe",
    "grpc": "service",
    "grpc_tools": "service",
    "google": "service",
    "connectrpc": "service",
    "hypercorn": "service",
    "redis": "redis",
    "hiredis": "pva-share",
    "fsspec": "objectstore",
    "s3fs": "s3",
}

# The commands, in the order `reckon --help` lists them. One entry per command; a layer that
# adds a command adds a line here (its help line is kept here so listing imports nothing).
LAYERS: dict[str, Layer] = {
    "cache": Layer("reckon.memo.cli", "Inspect and tidy the memo cache: ls, stats, report, prune."),
    "serve": Layer(
        "reckon.observe.cli", "Serve an engine's introspection.", "observe", _OBSERVE, group=False
    ),
    "shell": Layer(
        "reckon.observe.cli", "Python connected to a server.", "observe", _OBSERVE, group=False
    ),
    "top": Layer(
        "reckon.observe.cli", "A live view of a server.", "observe", _OBSERVE, group=False
    ),
    "pva": Layer("reckon.pva.cli", "pvAccess PVs: serve, get, put, monitor.", "pva", _PVA),
    "svc": Layer("reckon.service.cli", "Services: generate, check, run.", "service", _SERVICE),
    "demo": Layer(
        "reckon.cli",
        "The guided tour (`make demo`).",
        "all",
        _OBSERVE + _PVA + _SERVICE,
        attr="demo_app",
        group=False,
    ),
}


def _stand_in(name: str, help: str, run: Any = None) -> Any:
    """A command that imports nothing: a help line for listings, or (with ``run``) the
    one-line message of a missing extra, whatever arguments follow it."""
    stub = typer.Typer(add_completion=False, rich_markup_mode=None)
    settings = {"ignore_unknown_options": True, "allow_extra_args": True}

    @stub.command(
        name, help=help, short_help=help, add_help_option=run is None, context_settings=settings
    )
    def command() -> None:
        if run is not None:
            run()

    return typer.main.get_command(stub)


def _missing_extra_command(name: str, layer: Layer, missing: list[str]) -> Any:
    """A stand-in for a command whose extra is not installed: it says so in one line."""

    def run() -> NoReturn:
        typer.echo(
            f"reckon {name}: needs the '{layer.extra}' extra ({', '.join(missing)} not installed);"
            f" install it with: {layer.install_hint()}",
            err=True,
        )
        raise typer.Exit(EXIT_FAILURE)

    return _stand_in(name, f"{layer.help} (install {DISTRIBUTION}[{layer.extra}])", run)


def load_command(name: str) -> Any:
    """Import the layer behind command ``name`` and return its click command."""
    layer = LAYERS[name]
    missing = layer.missing()
    if missing:
        return _missing_extra_command(name, layer, missing)
    module = importlib.import_module(layer.module)
    command = typer.main.get_command(getattr(module, layer.attr))
    commands = getattr(command, "commands", None)  # a group's commands, by name
    if layer.group or commands is None:  # a group, or an app of one command
        command.name = name
        return command
    return commands[name]


class LazyGroup(TyperGroup):
    """The root group: layers' commands listed from the table, imported when invoked."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *LAYERS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        own = super().get_command(ctx, cmd_name)
        if own is not None or cmd_name not in LAYERS:
            return own
        # For the listing of `reckon --help`: the help line, without importing the layer.
        layer = LAYERS[cmd_name]
        missing = layer.missing()
        if missing:
            return _missing_extra_command(cmd_name, layer, missing)
        return _stand_in(cmd_name, layer.help)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and args[0] in LAYERS:
            return args[0], load_command(args[0]), args[1:]
        name = args[0] if args else ""
        if name and not name.startswith("-") and super().get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="reckon",
    cls=LazyGroup,
    help="Expensive computations, done once: cache, memoize, observe, serve, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

demo_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@demo_app.command()
def demo(
    act: str | None = typer.Option(
        None, "--act", help="Run one act: core, memo, observe, pva or services."
    ),
) -> None:
    """Play the guided tour on the embedded defaults (what `make demo` runs)."""
    from reckon.demo import ACTS, run

    if act is not None and act not in ACTS:
        raise typer.BadParameter(
            f"no act {act!r}; choose one of: {', '.join(ACTS)}", param_hint="--act"
        )
    raise typer.Exit(run(act))


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{DISTRIBUTION} {reckon.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show the traceback of an error (also: RECKON_DEBUG=1)."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """reckon: expensive computations, done once."""
    if verbose:  # through the environment, so helpers (the shell's) and children see it too
        os.environ["RECKON_DEBUG"] = "1"


def debug_requested() -> bool:
    """Whether tracebacks were asked for (``-v`` or ``RECKON_DEBUG`` set to a true value)."""
    flag = os.environ.get("RECKON_DEBUG", "").strip().lower()
    return flag not in ("", "0", "no", "false", "off")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; turn errors into one line and an exit status.

    Usage errors (a bad option, a missing argument) are typer's: a short usage, exit status 2.
    reckon's own errors and OS errors (a missing file) become one line, exit status 2 for a
    ConfigurationError and 1 otherwise; an unexpected exception says how to see its traceback.
    """
    command = typer.main.get_command(app)
    try:
        command.main(list(argv) if argv is not None else None, prog_name="reckon")
    except (ReckonError, OSError) as exc:
        if debug_requested():
            raise
        code = EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILURE
        typer.echo(f"reckon: error: {_one_line(exc)}", err=True)
        sys.exit(code)
    except ModuleNotFoundError as exc:
        extra = MODULE_EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None or debug_requested():
            raise
        typer.echo(
            f"reckon: needs the '{extra}' extra ({exc.name} not installed); install it with:"
            f" pip install '{DISTRIBUTION}[{extra}]'",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    except Exception as exc:
        if debug_requested():
            raise
        typer.echo(
            f"reckon: unexpected {type(exc).__name__}: {_one_line(exc)}"
            " (run with -v or RECKON_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
