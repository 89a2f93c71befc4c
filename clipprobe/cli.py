"""The `clipprobe` command line: parse flags, call the library, turn its errors into one-line messages."""

from __future__ import annotations

import functools
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import ClipProbeError
from .progress import console, err_console

# The library (torch, open_clip, datasets) is imported inside the commands, so `--help` stays fast.
DEFAULT_RESULTS_DIR = Path("results")
DEFAULT_REPORTS_DIR = Path("reports")

app = typer.Typer(
    name="clipprobe",
    help="Does a frozen image-text embedding keep the information your task needs?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


# Options shared by every command that builds features: defined once, reused.
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="open_clip model name, hf-hub:ORG/NAME or local-dir:PATH.")]
PretrainedOpt = Annotated[
    Optional[str],
    typer.Option("--pretrained", "-p", help="Weights: a tag (see `clipprobe models`), a checkpoint file, or 'random'. "
                 "Default: the model's built-in weights."),
]
DeviceOpt = Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
PrecisionOpt = Annotated[Precision, typer.Option(help="Model precision.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for the probe and for random weights.")]
ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder of result files.")]


def _config(model, pretrained, device, batch_size, precision, seed):
    from .features import ExtractorConfig

    return ExtractorConfig(
        model=model, pretrained=pretrained, device=device, batch_size=batch_size,
        precision=Precision(precision).value, seed=seed,
    )


def command(fn):
    """Register `fn` as a command; library errors become `Error: ...` and their exit code, in this one place."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ClipProbeError as exc:
            if _state["debug"]:
                raise
            err_console.print(f"Error: {exc}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug or an environment failure: still one line unless --debug
            if _state["debug"]:
                raise
            err_console.print(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False, highlight=False)
            raise typer.Exit(1) from None

    return app.command()(wrapper)


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and library logs.")] = False):
    """clipprobe: frozen features -> linear probes -> reports.

    Exit codes: 0 success, 1 run failure, 2 bad input.
    """
    _state["debug"] = debug
    # open_clip logs on the root logger, errors included, and then raises: clipprobe reports those itself.
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.CRITICAL)
    import datasets

    datasets.disable_progress_bars()  # clipprobe shows its own bars


@command
def tasks():
    """List the tasks with their classes, split sizes and class counts.

    Example: clipprobe tasks
    """
    from rich.table import Table

    from .tasks import get_task, list_tasks

    table = Table(title="clipprobe tasks")
    for column in ("Task", "Classes", "train", "validation", "test", "Test class counts", "Description"):
        table.add_column(column)
    for name in list_tasks():
        info = get_task(name).summary()
        counts = " · ".join(f"{k} {v}" for k, v in info["class_counts"]["test"].items())
        table.add_row(name, ", ".join(info["classes"]), *(str(info["splits"][s]) for s in ("train", "validation", "test")),
                      counts, info["description"])
    console.print(table)


@command
def models(pattern: Annotated[Optional[str], typer.Argument(help="Wildcard filter, e.g. '*ViT-B*'.")] = None):
    """List open_clip architectures and the built-in weights clipprobe can train offline.

    Example: clipprobe models 'ViT-B*'
    """
    import fnmatch

    import open_clip

    from .models import builtin_weights

    for _, weights in builtin_weights().items():
        console.print(f"{weights.model} --pretrained {weights.tag}  (built in: {weights.description})")
    for name in open_clip.list_models():
        if pattern is None or fnmatch.fnmatch(name, pattern):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "-"
            console.print(f"{name}  tags: {tags}")


@command
def extract(
    task: Annotated[Optional[str], typer.Option(help="Extract this task's data (default: the dashcam world, shared by its tasks).")] = None,
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.fp32,
    seed: SeedOpt = 0,
    refresh: Annotated[bool, typer.Option(help="Recompute even when cached features exist.")] = False,
):
    """Extract frozen image features for every split and cache them.

    Example: clipprobe extract --model ViT-B-32 --pretrained /models/vit-b-32.bin --precision bf16
    """
    from . import pipeline

    features = pipeline.extract(task, _config(model, pretrained, device, batch_size, precision, seed), refresh=refresh)
    for split, array in features.arrays.items():
        state = "extracted" if split in features.computed else "cached"
        console.print(f"{features.meta['row']} {split}: {array.shape[0]} x {array.shape[1]} ({state})")


@command
def probe(
    task: Annotated[str, typer.Option(help="Task to probe (see `clipprobe tasks`).")],
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.fp32,
    seed: SeedOpt = 0,
    results: ResultsOpt = DEFAULT_RESULTS_DIR,
):
    """Fit a linear probe (C chosen on validation, scored once on test) and write a result file.

    Example: clipprobe probe --task traffic-light
    """
    from . import pipeline

    record, path = pipeline.probe(task, _config(model, pretrained, device, batch_size, precision, seed), results_dir=results)
    metrics = record["metrics"]
    console.print(
        f"{record['task']} | {record['row']} | balanced accuracy {metrics['balanced_accuracy']:.3f} | "
        f"accuracy {metrics['accuracy']:.3f} | C {record['selection']['chosen_C']:.3g} -> {path}"
    )
    if record["selection"]["at_grid_edge"]:
        err_console.print("Warning: the chosen C is at the edge of the grid; the best C may lie outside it.")


@command
def pretrain(
    out: Annotated[Path, typer.Option(help="Folder for the open_clip-format checkpoint.")],
    captions: Annotated[str, typer.Option(help="Caption policy (salient, descriptive, ...).")] = "salient",
    model: ModelOpt = "mini-clip",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 250,
    batch_size: BatchOpt = 128,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
):
    """Pretrain a small CLIP-style model on the dashcam world under a caption policy.

    Example: clipprobe pretrain --captions descriptive --out models/descriptive
    """
    from .features import _check_device
    from .pretrain import PretrainConfig
    from .pretrain import pretrain as run_pretrain

    _check_device(device)
    folder = run_pretrain(PretrainConfig(model=model, captions=captions, steps=steps, batch_size=batch_size, seed=seed), out, device=device)
    console.print(f"Saved {folder}; load it with: clipprobe extract --model {model} --pretrained {folder}")


@command
def report(
    results: ResultsOpt = DEFAULT_RESULTS_DIR,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and results.json.")] = DEFAULT_REPORTS_DIR,
):
    """Merge result files into one table: terminal, Markdown (CI job summary) and JSON.

    Example: clipprobe report --results results --out reports
    """
    from .report import build_report

    built = build_report(results, out)
    console.print(built.table())
    console.print(f"Wrote {built.files['markdown']} and {built.files['json']}")


def main() -> None:
    app()
