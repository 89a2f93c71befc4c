"""The `clipprobe` command line: parse flags, call the library, turn its errors into one-line messages."""

from __future__ import annotations

import functools
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import ClipProbeError, UsageError
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
ExtractorOpt = Annotated[str, typer.Option("--extractor", help="open_clip (the model's image tower) or pixels (32x32 raw pixels, a floor).")]
InvarianceOpt = Annotated[
    Optional[str],
    typer.Option("--invariance", help="Impose a hard invariance on the frozen features: orbit:GROUP averages them over "
                 "the group's orbit, e.g. orbit:translate:4, orbit:hflip, orbit:translate:4+hflip."),
]
# Your own data, instead of a task: `--dataset SCHEME:PATH` (a task file does the same with more control).
DatasetOpt = Annotated[
    Optional[str],
    typer.Option("--dataset", help="Your own data instead of --task: hf:ORG/NAME[:CONFIG], imagefolder:PATH, "
                 "parquet:PATH or csv:PATH. Without splits it is split 0.7/0.1/0.2 by label."),
]
LabelOpt = Annotated[Optional[str], typer.Option("--label", help="Label column of --dataset (default: label).")]
ImageColumnOpt = Annotated[Optional[str], typer.Option("--image-column", help="Image column of --dataset (default: image).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Stop at the first unreadable image instead of skipping and counting it.")]


def _config(model, pretrained, device, batch_size, precision, seed, extractor="open_clip", invariance=None):
    from .features import ExtractorConfig

    return ExtractorConfig(
        model=model, pretrained=pretrained, device=device, batch_size=batch_size,
        precision=Precision(precision).value, seed=seed, extractor=extractor, invariance=invariance,
    )


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
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as exc:  # a bug or an environment failure: still one line unless --debug
                if _state["debug"]:
                    raise
                err_console.print(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False, highlight=False)
                raise typer.Exit(1) from None

        return target.command()(wrapper)

    return command


data_app = typer.Typer(help="Look at the data: contact sheets and counterfactual pairs.", no_args_is_help=True)
app.add_typer(data_app, name="data")
command = _command_for(app)
data_command = _command_for(data_app)


def _size_range(flag: str, value: Optional[str]) -> Optional[tuple[float, float]]:
    if value is None:
        return None
    try:
        low, high = (float(part) for part in value.split(":"))
    except ValueError:
        raise UsageError(f"{flag} expects MIN:MAX fractions of the image, e.g. 0.02:0.05; got '{value}'") from None
    return low, high


# The dashcam world's settings, shared by every command that reads it. None keeps the default.
WorldSeedOpt = Annotated[Optional[int], typer.Option("--world-seed", help="Seed of the dashcam world.")]
ImageSizeOpt = Annotated[Optional[int], typer.Option("--image-size", help="Dashcam image size in pixels (default 224).")]
LightSizeOpt = Annotated[Optional[str], typer.Option("--light-size", help="Traffic-light height range MIN:MAX, fractions of the image (default 0.08:0.26).")]
PedestrianSizeOpt = Annotated[Optional[str], typer.Option("--pedestrian-size", help="Pedestrian height range MIN:MAX (default 0.16:0.32).")]


def _world(world_seed, image_size, light_size, pedestrian_size):
    from .tasks import world_config

    return world_config(
        world_seed, image_size, _size_range("--light-size", light_size), _size_range("--pedestrian-size", pedestrian_size)
    )


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
        try:
            info = get_task(name).summary()
        except ClipProbeError as exc:  # e.g. a task whose data package is missing: still list the others
            table.add_row(name, "-", "-", "-", "-", "-", f"unavailable: {exc}")
            continue
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
    task: Annotated[Optional[str], typer.Option(help="Extract this task's data, by name or task file (.toml) "
                                                "(default: the dashcam world, shared by its tasks).")] = None,
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.fp32,
    seed: SeedOpt = 0,
    refresh: Annotated[bool, typer.Option(help="Recompute even when cached features exist.")] = False,
    extractor: ExtractorOpt = "open_clip",
    invariance: InvarianceOpt = None,
    dataset: DatasetOpt = None,
    label: LabelOpt = None,
    image_column: ImageColumnOpt = None,
    strict: StrictOpt = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Extract frozen image features for every split and cache them.

    Example: clipprobe extract --model ViT-B-32 --pretrained /models/vit-b-32.bin --precision bf16
    """
    from . import pipeline
    from .sources import choose_task

    world = _world(world_seed, image_size, light_size, pedestrian_size)
    features = pipeline.extract(
        choose_task(task, dataset, label, image_column),
        _config(model, pretrained, device, batch_size, precision, seed, extractor, invariance),
        refresh=refresh, world=world, strict=strict,
    )
    for split, array in features.arrays.items():
        state = "extracted" if split in features.computed else "cached"
        console.print(f"{features.meta['row']} {split}: {array.shape[0]} x {array.shape[1]} ({state})")


@command
def probe(
    task: Annotated[
        Optional[list[str]],
        typer.Option(help="Task to probe: a name (see `clipprobe tasks`) or a task file (.toml). Repeat for several."),
    ] = None,
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.fp32,
    seed: SeedOpt = 0,
    results: ResultsOpt = DEFAULT_RESULTS_DIR,
    extractor: ExtractorOpt = "open_clip",
    invariance: InvarianceOpt = None,
    dataset: DatasetOpt = None,
    label: LabelOpt = None,
    image_column: ImageColumnOpt = None,
    strict: StrictOpt = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Fit a linear probe (C chosen on validation, scored once on test) and write a result file.

    Examples: clipprobe probe --task traffic-light --task pedestrian; clipprobe probe --task my_task.toml;
    clipprobe probe --dataset imagefolder:photos --strict
    """
    from . import pipeline
    from .sources import choose_task

    world = _world(world_seed, image_size, light_size, pedestrian_size)
    config = _config(model, pretrained, device, batch_size, precision, seed, extractor, invariance)
    # Resolve every task first, so a typo in the last one fails before any work is done.
    chosen = [pipeline.resolve_task(choose_task(name, dataset, label, image_column, required=True)) for name in (task or [None])]
    for one in chosen:
        record, path = pipeline.probe(one, config, results_dir=results, world=world, strict=strict)
        metrics = record["metrics"]
        console.print(
            f"{record['task']} | {record['row']} | balanced accuracy {metrics['balanced_accuracy']:.3f} | "
            f"accuracy {metrics['accuracy']:.3f} | C {record['selection']['chosen_C']:.3g} -> {path}"
        )
        if record["selection"]["at_grid_edge"]:
            err_console.print(f"Warning: {record['task']}: the chosen C is at the edge of the grid; the best C may lie outside it.")


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


@data_command
def show(
    task: Annotated[str, typer.Option(help="Task whose images to show.")] = "traffic-light",
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("reports/contact-sheet.png"),
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 12,
    split: Annotated[str, typer.Option(help="Split to sample from.")] = "train",
    seed: SeedOpt = 0,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Write a contact sheet: sample images with their labels and, for the dashcam world, one caption per policy.

    Example: clipprobe data show --task traffic-light --light-size 0.03:0.06 --out sheet.png
    """
    from .show import contact_sheet
    from .tasks import get_task, with_world

    world = _world(world_seed, image_size, light_size, pedestrian_size)
    path = contact_sheet(with_world(get_task(task), world), out, n=n, split=split, seed=seed)
    console.print(f"Wrote {path}")


@data_command
def pairs(
    attribute: Annotated[str, typer.Option(help="Attribute to flip (traffic-light, pedestrian, car-colour, time-of-day).")],
    n: Annotated[int, typer.Option("--n", help="Number of pairs.")] = 200,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the pairs dataset (default: in the cache).")] = None,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Render counterfactual pairs: the same scene, every random draw kept, with one attribute changed.

    Example: clipprobe data pairs --attribute traffic-light --n 200
    """
    from .world import WorldConfig
    from .world.pairs import make_pairs

    world = _world(world_seed, image_size, light_size, pedestrian_size) or WorldConfig()
    path = make_pairs(attribute, n=n, config=world, out=out)
    console.print(f"Wrote {n} {attribute} pairs to {path} (a datasets.Dataset: image_a, image_b, value_a, value_b, index, region)")


def main() -> None:
    app()
