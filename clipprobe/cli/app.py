"""The `clipprobe` application: the Typer apps, the one place errors become one-line messages (the library's, in
each command; Click's, for the command line itself, in `Group.main`), and help from docstrings.

Commands import the library (torch, open_clip, datasets) inside their bodies, so `--help` stays fast."""

from __future__ import annotations

import functools
import logging
import re
import sys
import warnings
from typing import Annotated

import typer
import typer.core

from ..core.errors import ClipProbeError, did_you_mean
from ..core.progress import err_console, progress_interval
from .help import print_examples, split_help, summary

try:  # a recent Typer carries its own copy of Click and raises that copy's exceptions
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover  (an older Typer, on the Click package)
    from click import exceptions as click_errors  # type: ignore[no-redef]
# Click raises it for a group given no command, having shown the help (Click before 8.2 exits instead).
_NO_ARGS_IS_HELP = getattr(click_errors, "NoArgsIsHelpError", ())

_state = {"debug": False}

# Help panels, in the order they are shown: each option's parameter name -> the panel it is listed in (others:
# "Options", with --help).
PANELS = {
    "Data": (
        "task",
        "tasks",
        "dataset",
        "label",
        "image_column",
        "name",
        "allow_outside_root",
        "strict",
        "split",
        "attribute",
    ),
    "World": ("world_seed", "light_size", "pedestrian_size"),
    "Model": (
        "model",
        "models",
        "models_file",
        "pretrained",
        "extractor",
        "layer",
        "layers",
        "orbit",
        "resize",
        "precision",
    ),
    "Pretraining": ("policies", "captions", "steps", "width"),
    "Probe": (
        "probe_kinds",
        "shots",
        "seeds",
        "seed",
        "grid",
        "prompts",
        "mlp_tasks",
        "attentive_tasks",
        "attentive_policies",
        "suite_tasks",
    ),
    "Sensitivity": ("attributes", "pairs", "resamples", "blind_threshold"),
    "Baselines": ("baselines", "budget", "baseline_seeds", "zero_shot"),
    "Output": ("results", "out", "sheet", "refresh", "fail_under", "reference", "max_drop", "n"),
    "Execution": ("device", "batch_size", "workers", "channels_last", "shard", "merge", "chunk_rows", "part"),
}
# Where one command's option belongs elsewhere than its name says: command name -> {parameter: panel}.
COMMAND_PANELS = {
    "pretrain": {"seed": "Pretraining", "batch_size": "Pretraining", "image_size": "Pretraining"},
    "curation": {"seed": "Pretraining", "seeds": "Pretraining"},
    "show": {"seed": "Data", "image_size": "World", "n": "Output"},
    "pairs": {"image_size": "World", "n": "Data"},
    "sensitivity": {"image_size": "World", "n": "Data", "seed": "Sensitivity"},
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
    "baseline_seeds": "N",
    "n": "N",
    "pairs": "N",
    "resamples": "N",
    "steps": "N",
    "width": "N",
    "image_size": "PIXELS",
    "world_seed": "SEED",
    "light_size": "MIN:MAX",
    "pedestrian_size": "MIN:MAX",
    "results": "FOLDER",
    "out": "PATH",
    "sheet": "PNG",
    "models": "MODEL",
}


def _tidy_help(command, ctx) -> None:
    """Help that reads at 80 columns: options grouped in panels, and a value's name (TASK, MODEL) in place of
    its Python type (`<str>`); a flag shows no value at all."""
    panel_of = {**_PANEL_OF, **COMMAND_PANELS.get(command.name, {})}
    for param in command.get_params(ctx):
        if isinstance(param, typer.core.TyperArgument):  # its name is shown already; no type beside it
            # One instance's rich-help hook replaced on purpose (no subclass: Typer builds the parameters).
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        elif getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = METAVARS.get(param.name, (param.name or "value").upper())
        if isinstance(param, typer.core.TyperOption) and param.rich_help_panel is None:
            param.rich_help_panel = panel_of.get(param.name, "Options")
    # Panels in pipeline order (data, model, probe, ...), whatever the order of the function's parameters.
    command.params.sort(key=lambda p: _ORDER.get(getattr(p, "rich_help_panel", None), len(_ORDER)))


def _read_docstring(command: Command | Group) -> None:
    """A command's help from its docstring (clipprobe.cli.help): prose reflowed, the summary in its group's list,
    the examples kept apart, to follow the options one a line."""
    command.help, command.examples = split_help(command.help)
    if command.help and not command.short_help:
        command.short_help = summary(command.help)


def _write_examples(command: Command | Group, formatter) -> None:
    if command.rich_markup_mode is not None:
        print_examples(command.examples)  # Typer's rich help is printed, not returned: the examples follow it
    elif command.examples:  # Click's plain help, written as it is (not wrapped either)
        formatter.write("\nExamples:\n" + "".join(f"  {example}\n" for example in command.examples))


class Command(typer.core.TyperCommand):
    examples: list[str]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _read_docstring(self)

    def format_help(self, ctx, formatter):
        _tidy_help(self, ctx)
        super().format_help(ctx, formatter)
        _write_examples(self, formatter)


class Group(typer.core.TyperGroup):
    examples: list[str]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _read_docstring(self)

    def format_help(self, ctx, formatter):
        _tidy_help(self, ctx)
        super().format_help(ctx, formatter)
        _write_examples(self, formatter)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Run the command line. Click's own errors (a bad value for a typed option, an unknown option, a missing
        one) are one line on stderr, `Error: ...`, with exit code 2, as the library's are."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP:  # `clipprobe data`: the help is shown already
            sys.exit(2)
        except click_errors.ClickException as exc:
            err_console.print(f"Error: {click_error(exc)}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("Aborted", markup=False, highlight=False)
            sys.exit(1)
        # Without standalone mode Click returns an Exit's code (0 for --help), or what the command returned (None).
        sys.exit(code if isinstance(code, int) else 0)


def click_error(exc: click_errors.ClickException) -> str:
    """A Click error as one line: its message, "Did you mean ...?" for a close option or choice, and where the
    command's options are listed."""
    if isinstance(exc, click_errors.NoSuchOption):  # --seed-s: "Did you mean --seeds or --seed?"
        message = f"No such option: {exc.option_name}. {did_you_mean(exc.option_name, exc.possibilities or [])}"
    else:
        # Typer checks a typed value with pydantic, whose message starts "Value error, ".
        message = exc.format_message().replace(": Value error, ", ": ")
        choice = re.search(r"'([^']*)' is not one of ((?:'[^']*'(?:, )?)+)", message)
        if choice is not None:  # --precision fp61: "Did you mean fp16?"
            choices = re.findall(r"'([^']*)'", choice[2])
            message = f"{message.rstrip('.')}. {did_you_mean(choice[1], choices)}"
    message = " ".join(message.split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click_errors.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


app = typer.Typer(
    name="clipprobe",
    help="Does a frozen image-text embedding keep the information your task needs?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=Group,
)


def _command_for(target: typer.Typer):
    """Register functions as commands of `target`; library errors become `Error: ...` and their exit code, in this one place."""

    def command(fn=None, *, hidden: bool = False, name: str | None = None):
        if fn is None:  # @command(hidden=True), @command(name="blind-spots")
            return lambda f: command(f, hidden=hidden, name=name)

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

        return target.command(name, cls=Command, hidden=hidden)(wrapper)

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
