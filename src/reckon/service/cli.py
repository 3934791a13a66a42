"""``reckon svc``: generate code from .proto files, check and run deployment units, write docs."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="svc",
    help="Services: generate code, check and run deployment units, write API docs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.command()
def gen(
    protos: Annotated[list[Path], typer.Argument(help=".proto files to compile", metavar="PROTO")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="package folder to write", metavar="DIR")
    ],
    include: Annotated[
        list[Path] | None, typer.Option("--include", "-I", help="import roots", metavar="DIR")
    ] = None,
) -> None:
    """Compile .proto files into a typed Python package (grpcio-tools + mypy-protobuf)."""
    from reckon.service.codegen import generate

    for f in generate(protos, out, include):
        typer.echo(str(f))


@app.command()
def check(
    deploy: Annotated[Path, typer.Argument(help="deployment file (deploy.toml)", metavar="DEPLOY")],
) -> None:
    """Check a deployment without starting it; print the start order in waves."""
    from reckon.errors import DeploymentError
    from reckon.service.deploy import Deployment, plan

    try:
        p = plan(Deployment.load(deploy))
    except DeploymentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for i, wave in enumerate(p.waves, 1):
        parts = [f"{n} ({p.services[n].spec.placement})" for n in wave]
        typer.echo(f"wave {i}: {', '.join(parts)}")


@app.command()
def run(
    deploy: Annotated[Path, typer.Argument(help="deployment file (deploy.toml)", metavar="DEPLOY")],
    status_file: Annotated[
        Path | None, typer.Option(help="write the unit's addresses and pids here once ready")
    ] = None,
) -> None:
    """Start every service of a unit, print where each answers; stop cleanly on SIGINT/SIGTERM.

    Exits when every child process has ended (after restarts), or at once on a signal; the exit
    status is 1 when it stopped because services failed (a crash loop, a time-limit kill).
    """
    from reckon.errors import DeploymentError
    from reckon.service.deploy import Deployment
    from reckon.service.kernel import Unit

    async def main() -> dict[str, str]:
        unit = Unit(Deployment.load(deploy))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await unit.start()
        try:
            for name, info in unit.status().items():
                # The one address users' clients need: the port for every protocol, or the
                # gRPC address of a command or remote service that has only that.
                where = info.get("connect") or info.get("grpc") or "in-process"
                pid = f"  pid {info['pid']}" if info.get("pid") else ""
                typer.echo(f"{name:<20} {info['placement']:<10} {where}{pid}")
            if status_file is not None:
                tmp = status_file.with_name(status_file.name + ".tmp")
                tmp.write_text(json.dumps(unit.status(), indent=2, sort_keys=True))
                tmp.replace(status_file)
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(unit.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            failed = {} if stop.is_set() else unit.failures()
            for name, why in failed.items():
                unit.log.warning("service failed; the unit stops", service=name, reason=why)
            return failed
        finally:
            await unit.stop()

    try:
        failed = asyncio.run(main())
    except DeploymentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if failed:
        for name, why in failed.items():
            typer.echo(f"error: service {name!r} failed: {why}", err=True)
        raise typer.Exit(1)


@app.command("hash-password")
def hash_password_command(
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="the password to hash")
    ],
) -> None:
    """Print a salted scrypt hash of a password, for [auth] users in a deployment file."""
    from reckon.service.auth import hash_password

    typer.echo(hash_password(password))


@app.command()
def docs(
    modules: Annotated[
        list[str], typer.Argument(help="generated *_pb2 modules to document", metavar="MODULE")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Markdown file to write", metavar="FILE")
    ],
    path: Annotated[
        list[Path] | None, typer.Option("--path", help="folders to add to sys.path", metavar="DIR")
    ] = None,
) -> None:
    """Write Markdown API docs from the descriptors of generated modules."""
    import sys

    from reckon.errors import ConfigurationError
    from reckon.service.docgen import markdown

    for p in path or ():
        sys.path.insert(0, str(p.resolve()))
    try:
        text = markdown(modules)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {exc.name or 'a module'} ({exc}); name generated *_pb2 modules "
            "importable from here, or add their folder with --path"
        ) from None
    out.write_text(text)
    typer.echo(str(out))
