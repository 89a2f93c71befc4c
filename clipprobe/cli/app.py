"""The `clipprobe` application: the Typer apps, the one place library errors become one-line messages, and `main`.

Commands import the library (torch, open_clip, datasets) inside their bodies, so `--help` stays fast."""

from __future__ import annotations

import functools
import logging
from typing import Annotated

import typer

from ..core.errors import ClipProbeError
from ..core.progress import err_console

app = typer.Typer(
    name="clipprobe",
    help="Does a frozen image-text embedding keep the information your task needs?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def _command_for(target: typer.Typer):
    """Register functions as commands of `target`; library errors become `Error: ...` and their exit code, in this one place."""

    def command(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ClipProbeError as exc:
                if _state["debug"]:
                    raise
                err_console.print(f"Error: {exc}", markup=False, highlight=False)
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                if _state["debug"]:
                    raise
                # Chunks, result files and caches are written atomically: what finished is kept.
                err_console.print(
                    "Interrupted: every finished chunk and result file is kept; run the same command again to resume",
                    markup=False,
                    highlight=False,
                )
                raise typer.Exit(130) from None
            except (typer.Exit, typer.Abort):
                raise
            except Exception as exc:  # a bug or an environment failure: still one line unless --debug
                if _state["debug"]:
                    raise
                err_console.print(
                    f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                    markup=False,
                    highlight=False,
                )
                raise typer.Exit(1) from None

        return target.command()(wrapper)

    return command


data_app = typer.Typer(help="Look at the dashcam world: contact sheets and counterfactual pairs.", no_args_is_help=True)
app.add_typer(data_app, name="data")
experiment_app = typer.Typer(help="Experiments that change how the pretraining data was curated.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
command = _command_for(app)
data_command = _command_for(data_app)
experiment_command = _command_for(experiment_app)


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and library logs.")] = False):
    """clipprobe: frozen features -> linear probes -> reports.

    Exit codes: 0 success, 1 run failure, 2 bad input.
    """
    _state["debug"] = debug
    # open_clip logs on the root logger, errors included, and then raises: clipprobe reports those itself.
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.CRITICAL)


def library() -> None:
    """Load the library with everything registered (clipprobe.catalog); called by each command that needs it."""
    import datasets

    from .. import catalog  # noqa: F401  (registers every built-in task, extractor, probe, baseline, ...)

    datasets.disable_progress_bars()  # clipprobe shows its own bars
