"""``reckon pva``: serve PVs from a file, and get / put / monitor / info / call like pvxs's tools.

Output follows pvxget & co.: one line per NT scalar or array (name, time, value, alarm when
raised), an indented tree for other structures (``--raw`` forces the tree). Exit status is 0 on
success, 1 when any PV failed (timeouts and remote errors are printed on stderr).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import sys
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from reckon.pva import runloop

app = typer.Typer(
    name="pva",
    help="EPICS pvAccess: serve PVs from a file; get, put, monitor, info, call.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _check_timeout(seconds: float) -> float:
    if not seconds > 0:
        raise typer.BadParameter(f"{seconds}: give a positive number of seconds, e.g. -w 5")
    return seconds


def _check_request(text: str) -> str:
    """A pvRequest that does not parse is a usage error, found before anything is sent."""
    if text:
        from reckon.pva.client import make_request
        from reckon.pva.protocol import ProtocolError

        try:
            make_request(text)
        except ProtocolError as exc:
            raise typer.BadParameter(f"{exc}; e.g. -r 'field(value)'") from None
    return text


TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", "-w", help="Seconds to wait.", callback=_check_timeout),
]
RequestOpt = Annotated[
    str,
    typer.Option(
        "--request", "-r", help='pvRequest, e.g. "field(value)".', callback=_check_request
    ),
]
RawOpt = Annotated[bool, typer.Option("--raw", help="Print the whole structure as a tree.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print values as JSON lines.")]

_SEVERITY = {0: "", 1: "MINOR", 2: "MAJOR", 3: "INVALID"}


# ------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------


def _jsonable(v: Any) -> Any:
    import numpy as np

    from reckon.pva.protocol import UnionValue, VariantValue

    if isinstance(v, Mapping):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, VariantValue):
        return _jsonable(v.value)
    if isinstance(v, UnionValue):
        return {v.field: _jsonable(v.value)}
    return v


def _short(v: Any) -> str:
    v = _jsonable(v)
    if isinstance(v, list):
        more = f", ... ({len(v)} elements)" if len(v) > 20 else ""
        return "[" + ", ".join(map(str, v[:20])) + more + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def _stamp(value: Mapping[str, Any]) -> str:
    ts = value.get("timeStamp")
    if not isinstance(ts, Mapping):
        return ""
    sec = int(ts.get("secondsPastEpoch", 0)) + int(ts.get("nanoseconds", 0)) / 1e9
    if sec <= 0:
        return "<undefined>"
    return datetime.datetime.fromtimestamp(sec).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def tree(value: Mapping[str, Any], indent: int = 4) -> list[str]:
    """An indented ``name value`` tree of a structure value."""
    lines: list[str] = []
    pad = " " * indent
    for k, v in value.items():
        if isinstance(v, Mapping):
            lines.append(f"{pad}{k}")
            lines.extend(tree(v, indent + 4))
        else:
            lines.append(f"{pad}{k} {_short(v)}")
    return lines


def format_value(name: str, value: Mapping[str, Any], raw: bool = False) -> str:
    """One line for NT scalars, arrays and enums; a tree for anything else."""
    alarm = value.get("alarm")
    sev = ""
    if isinstance(alarm, Mapping) and alarm.get("severity"):
        sev = f" {_SEVERITY.get(int(alarm['severity']), alarm['severity'])}"
        if alarm.get("message"):
            sev += f" {alarm['message']}"
    if not raw and "value" in value and not isinstance(value["value"], Mapping):
        return f"{name} {_stamp(value)} {_short(value['value'])}{sev}".replace("  ", " ")
    v = value.get("value")
    if not raw and isinstance(v, Mapping) and set(v) == {"index", "choices"}:
        choices = list(v["choices"])
        idx = int(v["index"])
        label = choices[idx] if 0 <= idx < len(choices) else f"<{idx}>"
        return f"{name} {_stamp(value)} ({idx}) {label}{sev}"
    return "\n".join([name, *tree(value)])


def format_type(t: Any, name: str = "", indent: int = 0) -> list[str]:
    """pvxinfo-style type listing."""
    from reckon.pva.protocol import (
        KIND_NAMES,
        Scalar,
        ScalarArray,
        Structure,
        StructureArray,
        Union,
        UnionArray,
        Variant,
        VariantArray,
    )

    pad = " " * indent
    suffix = f" {name}" if name else ""
    if isinstance(t, (StructureArray, UnionArray)):
        lines = format_type(t.element, "", indent)
        lines[0] += f"[]{suffix}"
        return lines
    if isinstance(t, (Structure, Union)):
        kw = "struct" if isinstance(t, Structure) else "union"
        out = [f"{pad}{kw}{(' ' + json.dumps(t.id)) if t.id else ''}{suffix}"]
        for fname, ft in t.fields:
            out.extend(format_type(ft, fname, indent + 4))
        return out
    if isinstance(t, (Scalar, ScalarArray)):
        head = KIND_NAMES[t.kind]
    else:
        head = "any" if isinstance(t, (Variant, VariantArray)) else repr(t)
    array = "[]" if isinstance(t, (ScalarArray, VariantArray)) else ""
    return [f"{pad}{head}{array}{suffix}"]


def parse_scalar(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, lists, objects), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pair(arg: str, usage: str) -> tuple[str, Any]:
    """``name=value`` as (name, parsed value); anything else is a usage error saying ``usage``."""
    key, sep, text = arg.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{arg!r}: {usage}")
    return key, parse_scalar(text)


def parse_put_args(args: list[str]) -> Any:
    """``VALUE`` or ``field=value ...`` (dotted fields) into what Client.put accepts."""
    if len(args) == 1 and "=" not in args[0]:
        return parse_scalar(args[0])
    if len(args) > 1 and all("=" not in a for a in args):
        return [parse_scalar(a) for a in args]  # an array, like pvxput
    out: dict[str, Any] = {}
    for a in args:
        key, value = _pair(a, "write VALUE, or field=value (e.g. value.index=1)")
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return out


def _show(name: str, value: Any, raw: bool, as_json: bool) -> None:
    """Print a value as --json asks (one JSON line), else as :func:`format_value` does (a
    type as :func:`format_type` does)."""
    from reckon.pva.protocol import FieldDesc

    if as_json:
        typer.echo(json.dumps({"name": name, "value": _jsonable(value)}))
    elif isinstance(value, Mapping):
        typer.echo(format_value(name, value, raw))
    elif isinstance(value, FieldDesc):
        typer.echo("\n".join([name, *format_type(value, indent=4)]))
    else:
        typer.echo(f"{name} {_short(value)}")  # an RPC's plain result


async def _enum_choice(client: Any, name: str, text: str) -> Any:
    """``text`` as what to put: the index of the choice it names when the PV is an NTEnum."""
    from reckon.errors import ConfigurationError

    current = await client.get(name)
    v = current.get("value")
    if not (isinstance(v, Mapping) and set(v) >= {"index", "choices"}):
        return text
    choices = [str(c) for c in v["choices"]]
    if text not in choices:
        raise ConfigurationError(f"{name}: {text!r} is not one of its choices {choices}")
    return {"value": {"index": choices.index(text)}}


# ------------------------------------------------------------------------------------------
# client commands
# ------------------------------------------------------------------------------------------


def _run(coro: Any) -> Any:
    return runloop.run(coro)  # uvloop when importable, unless RECKON_PVA_UVLOOP=0


def _run_to_end(run: Callable[[], int | None]) -> NoReturn:
    """Run a server or a view until it ends; reckon's errors (a bad file, no PV matches, no
    Redis) are one line on stderr and exit status 2."""
    from reckon.errors import ReckonError

    try:
        code = run()
    except ReckonError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code or 0)


def _run_each(
    names: list[str],
    timeout: float,
    operation: Callable[[Any, str], Awaitable[Any]],
    raw: bool = False,
    as_json: bool = False,
) -> NoReturn:
    """Run ``operation(client, name)`` for every name at once; print the results in order
    (:func:`_show`), and the failures on stderr (exit status 1 when any failed)."""
    from reckon.errors import PvaError
    from reckon.pva.client import Client

    async def main() -> int:
        async with Client(timeout=timeout) as c:
            results = await asyncio.gather(
                *(operation(c, n) for n in names), return_exceptions=True
            )
        status = 0
        for name, res in zip(names, results, strict=True):
            if isinstance(res, PvaError):
                typer.echo(f"{name}: {res}", err=True)
                status = 1
            elif isinstance(res, BaseException):
                raise res
            else:
                _show(name, res, raw, as_json)
        return status

    raise typer.Exit(_run(main()))


@app.command()
def get(
    names: Annotated[list[str], typer.Argument(help="PV names.", metavar="NAME")],
    timeout: TimeoutOpt = 5.0,
    request: RequestOpt = "",
    raw: RawOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Read PVs once (like pvxget)."""
    _run_each(names, timeout, lambda c, name: c.get(name, request or None), raw, as_json)


@app.command()
def put(
    name: Annotated[str, typer.Argument(help="PV name.", metavar="NAME")],
    values: Annotated[
        list[str], typer.Argument(help="VALUE, or field=value pairs.", metavar="VALUE")
    ],
    timeout: TimeoutOpt = 5.0,
    request: RequestOpt = "",
    raw: RawOpt = False,
) -> None:
    """Write a PV (like pvxput): put NAME 1.5, put NAME value.index=1, or an enum's choice by
    name: put NAME off."""
    value = parse_put_args(values)

    async def put_and_read(c: Any, name: str) -> Any:
        # a single word may be an enum's choice by name, else it is a string PV's value
        choice = await _enum_choice(c, name, value) if isinstance(value, str) else value
        await c.put(name, choice, request or None)
        return await c.get(name)

    _run_each([name], timeout, put_and_read, raw)


@app.command()
def monitor(
    names: Annotated[list[str], typer.Argument(help="PV names.", metavar="NAME")],
    request: RequestOpt = "",
    count: Annotated[
        int, typer.Option("--count", "-n", help="Exit after this many updates (0: never).")
    ] = 0,
    timeout: TimeoutOpt = 5.0,
    raw: RawOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Print every update of PVs until interrupted (like pvxmonitor).

    A PV that does not connect within the timeout is reported on stderr; the command goes on
    with the others and exits 1 when none connected.
    """
    from reckon.errors import PvaError
    from reckon.pva.client import Client
    from reckon.pva.stopping import end_tasks

    async def main() -> int:
        seen = 0
        failed = 0
        async with Client(timeout=timeout) as c:

            async def watch(name: str) -> bool:
                """Print ``name``'s updates; True when the command should stop (--count
                reached, or the server closed the PV), False when it did not connect."""
                nonlocal seen, failed
                try:
                    await c.connected(name)
                except PvaError as exc:
                    typer.echo(f"{name}: {exc}", err=True)
                    failed += 1
                    return False
                async with c.monitor(name, request or None) as sub:
                    async for u in sub:
                        _show(name, u.value, raw, as_json)
                        sys.stdout.flush()
                        seen += 1
                        if count and seen >= count:
                            return True
                return True  # the server closed the PV

            tasks = [asyncio.create_task(watch(n)) for n in names]
            try:
                # a PV that failed to connect leaves the others running
                for finished in asyncio.as_completed(tasks):
                    if await finished:  # raises a monitor's error
                        break
            finally:
                await end_tasks(tasks, within=timeout)
        return 1 if failed else 0

    try:
        raise typer.Exit(_run(main()))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def info(
    names: Annotated[list[str], typer.Argument(help="PV names.", metavar="NAME")],
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Print the type of PVs (like pvxinfo)."""
    _run_each(names, timeout, lambda c, name: c.info(name))


@app.command()
def call(
    name: Annotated[str, typer.Argument(help="RPC PV name.", metavar="NAME")],
    args: Annotated[
        list[str] | None,
        typer.Argument(help="Query arguments as name=value.", metavar="ARG=VALUE"),
    ] = None,
    timeout: TimeoutOpt = 5.0,
    raw: RawOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Call an RPC PV with NTURI arguments (like pvxcall): call NAME a=1 b=2."""
    from reckon.pva import nt

    query = dict(_pair(a, "RPC arguments are name=value") for a in args or [])
    _run_each([name], timeout, lambda c, name: c.rpc(name, nt.uri(name, query)), raw, as_json)


# ------------------------------------------------------------------------------------------
# serve
# ------------------------------------------------------------------------------------------


def load_spec(path: Path) -> dict[str, Any]:
    """Read a serve file (TOML, or JSON when it ends in .json) and check it (check_serve_spec)."""
    from reckon.errors import ConfigurationError
    from reckon.pva.bridge import check_serve_spec

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid {path.suffix or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f'{path}: expected tables like [pv."name"] with type and value')
    check_serve_spec(data, str(path))
    return data


@app.command()
def serve(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="TOML or JSON file describing the PVs (with --share, may be left out: serve "
            "the PVs the deployment already shares).",
            metavar="FILE",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", "-p", help="TCP port (0: any free one; default: $EPICS_PVAS_SERVER_PORT)."
        ),
    ] = None,
    udp_port: Annotated[
        int | None,
        typer.Option(
            "--udp-port", help="UDP search port (default: $EPICS_PVAS_BROADCAST_PORT, else 5076)."
        ),
    ] = None,
    interface: Annotated[
        str | None,
        typer.Option(
            "--interface",
            "-i",
            help="Address to listen on, e.g. 127.0.0.1 (default: $EPICS_PVAS_INTF_ADDR_LIST).",
        ),
    ] = None,
    share: Annotated[
        str | None,
        typer.Option(
            "--share",
            help="Serve the PVs together with every instance on this Redis "
            "(redis://HOST:PORT/DB, ?prefix=NAME for one key prefix per deployment).",
        ),
    ] = None,
) -> None:
    """Publish the PVs described in FILE until interrupted (the format is in the pva guide);
    with --share and no FILE, serve the PVs already shared through that Redis."""
    from reckon.errors import ConfigurationError
    from reckon.pva.bridge import build_pvs, publish_engine_stats
    from reckon.pva.config import ServerConfig, check_port
    from reckon.pva.server import Server

    if file is None and share is None:
        raise ConfigurationError(
            "serve needs a FILE of PVs, or --share URL to serve the PVs a deployment shares"
        )
    # a ConfigurationError is one line and exit status 2 (reckon.cli)
    spec = load_spec(file) if file is not None else {}
    pvs = build_pvs(spec.get("pv", {}))
    config = ServerConfig.from_env()
    if port is not None:
        config.tcp_port = check_port(port, "--port")
    if udp_port is not None:
        config.udp_port = check_port(udp_port, "--udp-port")
    if interface is not None:
        config.interfaces = [interface]

    async def main() -> None:
        server = Server(pvs, config=config, share=share)
        await server.start()
        runloop.freeze_heap()  # startup's heap is here to stay: no full collection walks it
        stats_name = spec.get("engine", {}).get("stats")  # (load_spec checked it is a table)
        publisher = None
        if stats_name:
            from reckon.core import default_engine

            publisher = publish_engine_stats(server, default_engine(), str(stats_name))
        typer.echo(
            f"serving {len(server.names())} PVs on TCP port {server.tcp_port} "
            f"(UDP search port {server.udp_port}): {', '.join(server.names())}"
        )
        if server.share is not None:
            typer.echo(
                f"instance {server.share.guid} on {server.share.host}, shared through "
                f"{server.share.url} (prefix {server.share.prefix!r})"
            )
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if publisher is not None:
            publisher.stop()
        await server.stop()

    _run_to_end(lambda: _run(main()))


# ------------------------------------------------------------------------------------------
# views
# ------------------------------------------------------------------------------------------

PatternsArg = Annotated[
    list[str],
    typer.Argument(
        help="PV names, or glob patterns (demo:*) matched with --share.", metavar="NAME"
    ),
]


ShareListOpt = Annotated[
    str | None,
    typer.Option("--share", help="Match patterns against the PVs shared at this Redis URL."),
]


@app.command()
def top(names: PatternsArg, share: ShareListOpt = None) -> None:
    """A live table of PVs: value, severity, rate, age, sparkline or shape (q quits)."""
    from reckon.pva.views.commands import run_top

    _run_to_end(lambda: run_top(names, share))


@app.command()
def web(
    names: PatternsArg,
    share: ShareListOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).")] = 0,
    token: Annotated[
        str | None, typer.Option("--token", help="Require this token (any non-loopback bind does).")
    ] = None,
) -> None:
    """A live web page of PVs: table, history and array plots, images (until Ctrl-C)."""
    from reckon.pva.views.commands import run_web

    _run_to_end(lambda: run_web(names, host=host, port=port, token=token, share=share))


if __name__ == "__main__":  # ``python -m reckon.pva.cli``: ``reckon pva``, with its error handling
    from reckon.cli import main as reckon_main

    reckon_main(["pva", *sys.argv[1:]])
