"""The `clipprobe` application: the Typer apps, the one place library errors become one-line messages, and `main`.

Commands import the library (torch, open_clip, datasets) inside their bodies, so `--help` stays fast."""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Annotated

import typer
import typer.core

from ..core.errors import ClipProbeError
from ..core.progress import err_console, progress_interval

_state = {"debug": False}

# Help panels: each option's parameter name -> the panel it is listed in (others: "Options").
PANELS = {
    "Data": ("task", "dataset", "label", "image_column", "name", "allow_outside_root", "strict", "attribute", "split"),
    "Model": ("model", "models_file", "pretrained", "extractor", "layer", "orbit", "resize", "precision", "captions"),
    "Probe": ("probe_kinds", "shots", "seeds", "seed", "grid", "prompts"),
    "Baselines": ("baselines", "budget"),
    "Output": ("results", "out", "refresh", "fail_under", "reference", "max_drop", "n"),
    "Execution": ("device", "batch_size", "workers", "channels_last", "shard", "merge", "chunk_rows"),
}
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
_ORDER: dict[str | None, int] = {panel: index for index, panel in enumerate(PANELS)}
# A value's name where the parameter's own would read badly.
METAVARS = {
    "probe_kinds": "KINDS",
    "image_column": "COLUMN",
    "batch_size": "N",
    "chunk_rows": "N",
    "workers": "N",
    "seeds": "N",
    "n": "N",
    "results": "FOLDER",
    "out": "PATH",
}


def _tidy_help(command, ctx) -> None:
    """Help that reads at 80 columns: options grouped in panels, and a value's name (TASK, MODEL) in place of
    its Python type (`<str>`); a flag shows no value at all."""
    for param in command.get_params(ctx):
        if isinstance(param, typer.core.TyperArgument):  # its name is shown already; no type beside it
            # One instance's rich-help hook replaced on purpose (no subclass: Typer builds the parameters).
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        elif getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = METAVARS.get(param.name, (param.name or "value").upper())
        if isinstance(param, typer.core.TyperOption) and param.rich_help_panel is None:
            param.rich_help_panel = _PANEL_OF.get(param.name, "Options")
    # Panels in pipeline order (data, model, probe, ...), whatever the order of the function's parameters.
    command.params.sort(key=lambda p: _ORDER.get(getattr(p, "rich_help_panel", None), len(_ORDER)))


class Command(typer.core.TyperCommand):
    def format_help(self, ctx, formatter):
        _tidy_help(self, ctx)
        return super().format_help(ctx, formatter)


class Group(typer.core.TyperGroup):
    def format_help(self, ctx, formatter):
        _tidy_help(self, ctx)
        return super().format_help(ctx, formatter)


app = typer.Typer(
    name="clipprobe",
    help="Does a frozen image-text embedding keep the information your task needs?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)


def _command_for(target: typer.Typer):
    """Register functions as commands of `target`; library errors become `Error: ...` and their exit code, in this one place."""

    def command(fn=None, *, hidden: bool = False):
        if fn is None:  # @command(hidden=True)
            return lambda f: command(f, hidden=hidden)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                progress_interval()  # a bad setting in the environment fails before any work, not in the middle
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

        return target.command(cls=Command, hidden=hidden)(wrapper)

    return command


data_app = typer.Typer(
    help="Look at the dashcam world: contact sheets and counterfactual pairs.", no_args_is_help=True, cls=Group
)
app.add_typer(data_app, name="data")
experiment_app = typer.Typer(
    help="Experiments that change how the pretraining data was curated.", no_args_is_help=True, cls=Group
)
app.add_typer(experiment_app, name="experiment")
command = _command_for(app)
data_command = _command_for(data_app)
experiment_command = _command_for(experiment_app)


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"clipprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and library logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
):
    """clipprobe: frozen features -> linear probes -> reports.

    Exit codes: 0 success, 1 run failure, 2 bad input.
    """
    _state["debug"] = debug
    if not debug:  # a library's warning (Pillow's, torch's) is one line on stderr, as clipprobe's own are
        warnings.showwarning = _one_line_warning
    # open_clip logs on the root logger, errors included, and then raises: clipprobe reports those itself.
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.CRITICAL)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    err_console.print(f"Warning: {text} ({category.__name__})", markup=False, highlight=False)


def library(tasks_only: bool = False) -> None:
    """Load the library with everything registered (clipprobe.catalog); called by each command that needs it.

    `tasks_only`: only the modules that register tasks (no torch or open_clip), for commands that list them."""
    import datasets

    if tasks_only:
        from ..dashcam import tasks  # noqa: F401  (the dashcam world's tasks)
        from ..data import builtin  # noqa: F401  (traffic-light-crops)
    else:
        from .. import catalog  # noqa: F401  (registers every built-in task, extractor, probe, baseline, ...)

    datasets.disable_progress_bars()  # clipprobe shows its own bars
