"""``reckon``: the package's single command line.

Each layer contributes its commands from its own ``cli`` module; this file only assembles them,
so a layer's command-line code lives beside the layer and imports stay lazy where they are heavy.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="reckon",
    help="Expensive computations, done once: cache, memoize, observe, serve, publish.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """reckon: expensive computations, done once."""


@app.command()
def demo(
    act: str | None = typer.Option(
        None, "--act", help="Run one act: core, memo, observe, pva or services."
    ),
) -> None:
    """Run the guided tour on the embedded defaults (what `make demo` runs)."""
    from reckon.demo import ACTS, run

    if act is not None and act not in ACTS:
        raise typer.BadParameter(
            f"no act {act!r}; choose one of: {', '.join(ACTS)}", param_hint="--act"
        )
    raise typer.Exit(run(act))


# Layer command groups. Each line is owned by its layer; keep one line per layer.
# (memo)     cache
from reckon.memo.cli import app as cache_app  # noqa: E402

app.add_typer(cache_app, name="cache")
# (observe)  serve / shell / top
from reckon.observe.cli import app as observe_app  # noqa: E402

app.add_typer(observe_app)
# (pva)      pva
from reckon.pva.cli import app as pva_app  # noqa: E402

app.add_typer(pva_app, name="pva")
# (service)  svc
from reckon.service.cli import app as svc_app  # noqa: E402

app.add_typer(svc_app, name="svc")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
