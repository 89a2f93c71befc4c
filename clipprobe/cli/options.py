"""Options shared by several commands, defined once; and turning flags into the library's objects, once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..core.errors import UsageError
from ..features.precision import PRECISIONS

if TYPE_CHECKING:
    from ..data.task import Task
    from ..features.config import ExtractorConfig

DEFAULT_RESULTS_DIR = Path("results")
DEFAULT_REPORTS_DIR = Path("reports")


# open_clip's precision names (clipprobe.features.precision says what each one is for).
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)


# Options shared by every command that builds features: defined once, reused.
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="open_clip model name, hf-hub:ORG/NAME or local-dir:PATH.")
]


PretrainedOpt = Annotated[
    Optional[str],
    typer.Option(
        "--pretrained",
        "-p",
        help="Weights: a tag (see `clipprobe models`), a checkpoint file, or 'random'. "
        "Default: the model's built-in weights.",
    ),
]


DeviceOpt = Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")]


BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]


PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help="Model precision: fp32 (the reference; fastest on CPUs without native "
        "bf16), bf16 or fp16 weights, amp or amp_bf16 (fp32 weights under torch.autocast: "
        "the usual GPU setting is amp)."
    ),
]


ChannelsLastOpt = Annotated[
    bool,
    typer.Option(
        "--channels-last",
        help="Run a conv tower (ResNet, ConvNeXt, mini-clip) on NHWC "
        "tensors: faster on CPUs; the features agree to float rounding and share its cache.",
    ),
]


SeedOpt = Annotated[int, typer.Option(help="Seed for the probe, few-shot samples, networks and random weights.")]


ResizeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--resize",
        help="How images become the model's square input: crop (short side resized, centre cropped), squash or "
        "pad; applies to every row of the run, baselines too. Default: each model's own (open_clip's weights "
        "usually crop; pixels and the CNN baselines squash).",
    ),
]
ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder of result files.")]


ExtractorOpt = Annotated[
    str, typer.Option("--extractor", help="open_clip (the model's image tower) or pixels (32x32 raw pixels, a floor).")
]


OrbitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--orbit",
        metavar="GROUP",
        help="Impose a hard invariance on the frozen features: average them over "
        "the orbit of GROUP, e.g. hflip, translate:4, translate:4+hflip (see `clipprobe groups`).",
    ),
]


# Your own data, instead of a task: `--dataset SCHEME:PATH` (a task file does the same with more control).
DatasetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--dataset",
        help="Your own data instead of --task: hf:ORG/NAME[:CONFIG], imagefolder:PATH, "
        "parquet:PATH or csv:PATH. Without splits it is split 0.7/0.1/0.2 by label.",
    ),
]


LabelOpt = Annotated[Optional[str], typer.Option("--label", help="Label column of --dataset (default: label).")]


ImageColumnOpt = Annotated[
    Optional[str], typer.Option("--image-column", help="Image column of --dataset (default: image).")
]


WorkersOpt = Annotated[
    Optional[int],
    typer.Option(
        "--workers",
        help="Processes that decode images while the model runs (default: the cores the forward "
        "pass leaves free: none on a CPU-only run, all but one with --device cuda). A small model on a CPU is "
        "decode-bound and gains from --workers 2.",
    ),
]


StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Stop at the first unreadable image instead of skipping and counting it.")
]


LayerOpt = Annotated[
    str,
    typer.Option(
        "--layer",
        help="Which features of the image tower: embedding (the projected embedding, what CLIP users get), "
        "pre-projection (the pooled features before the projection), tokens (mean of the last block's patch "
        "tokens) or grid (patch tokens average-pooled to 2x2 cells, concatenated).",
    ),
]


def extractor_config(*, precision: str = "fp32", **options: Any) -> ExtractorConfig:
    """The feature options of a command (named as ExtractorConfig's fields), as the library's ExtractorConfig;
    the defaults are the library's own."""
    from ..features.config import ExtractorConfig

    return ExtractorConfig(precision=Precision(precision).value, **options)


def choose_task(
    task: str | None,
    dataset: str | None,
    label: str | None = None,
    image_column: str | None = None,
    required: bool = False,
) -> str | Task | None:
    """The command line's `--task NAME|FILE.toml` or `--dataset SCHEME:PATH [--label] [--image-column]`."""
    if task is not None and dataset is not None:
        raise UsageError("Give --task or --dataset, not both")
    if dataset is None and (label is not None or image_column is not None):
        raise UsageError("--label and --image-column go with --dataset (a task sets its own columns)")
    if dataset is not None:
        from ..data.taskfile import dataset_task

        return dataset_task(dataset, label=label or "label", image_column=image_column or "image")
    if task is None and required:
        raise UsageError("Give --task TASK (see `clipprobe tasks`), --task FILE.toml or --dataset SCHEME:PATH")
    return task
