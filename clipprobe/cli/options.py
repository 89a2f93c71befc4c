"""Options shared by several commands, defined once; and turning flags into the library's objects, once."""

from __future__ import annotations

import warnings
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, overload

import typer

from ..core.defaults import CLI_PRECISION
from ..core.errors import UsageError
from ..features.precision import PRECISION_CHOICES

if TYPE_CHECKING:
    from ..data.task import Task
    from ..features.config import ExtractorConfig


class Precision(str, Enum):
    """auto, then open_clip's precision names (clipprobe.features.precision says what each one is for): the members
    of PRECISION_CHOICES, spelled out so that a type checker knows them (tests/test_precision.py checks they agree)."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    amp = "amp"
    amp_bf16 = "amp_bf16"


assert tuple(p.value for p in Precision) == PRECISION_CHOICES, "Precision must list PRECISION_CHOICES, in order"


# Every key of `--budget KEY=VALUE,...`: the fields of clipprobe.baselines.training.Budget, which the help cannot
# import (it loads torch); tests/test_help.py checks that they agree.
BUDGET_KEYS = (
    "epochs, batch_size, image_size, learning_rate, weight_decay, max_seconds (none: no limit), "
    "augment (auto, translate+hflip, translate, hflip or none), orbit_train_elements (none: the whole orbit), "
    "eval_batch_images"
)


# Options shared by every command that builds features: defined once, reused.
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="open_clip model name, hf-hub:ORG/NAME or local-dir:PATH; MODEL@PRETRAINED gives its weights too.",
    ),
]


ModelsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--model",
        "-m",
        help="open_clip model name, hf-hub:ORG/NAME or local-dir:PATH, or MODEL@PRETRAINED (e.g. ViT-B-32@openai); "
        "repeat for several models in one run and one report. Default: mini-clip.",
        show_default=False,
    ),
]


ModelsFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--models",
        metavar="FILE",
        help="A file of models to probe, one MODEL,PRETRAINED per line (CLIP_benchmark's models.txt format); "
        "with --model, both.",
    ),
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


DeviceOpt = Annotated[
    str,
    typer.Option(help="Torch device: auto (CUDA, then MPS, then the CPU; the one used is in the results), cpu, cuda."),
]


BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]


PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help="Model precision: auto (bf16 where the device computes it natively, CUDA from Ampere on or a CPU "
        "with AVX512-BF16 or AMX, once bf16's features are checked against fp32's for the model; fp32 elsewhere; "
        "results say which and why), fp32 (the reference), bf16 or fp16 weights, amp or amp_bf16 (fp32 weights "
        "under torch.autocast: the usual GPU setting is amp)."
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
        "pad; applies to every row of the run, baselines too. Default: crop for pixels and the CNN baselines, "
        "and each model's own preprocessing (open_clip's weights usually crop).",
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
        help="Threads (processes, for raw pixels) that decode images while the model runs, on cores the "
        "forward pass then leaves them (default: on a CPU one thread in the forward pass's gaps, with --device "
        "cuda all cores but one). A small model on a CPU is decode-bound and gains from --workers 2.",
    ),
]


NameOpt = Annotated[
    Optional[str],
    typer.Option(
        "--name",
        help="Task name for --dataset (default: the folder or file name); results go to RESULTS/NAME/. Two data "
        "sets with the same folder name need different names.",
    ),
]


AllowOutsideRootOpt = Annotated[
    bool,
    typer.Option(
        "--allow-outside-root",
        help="Let a CSV manifest name images outside its own folder (../ or absolute paths); refused by default.",
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
        "tokens), grid (patch tokens average-pooled to 2x2 cells, concatenated) or all-tokens (every patch "
        "token, what --probe attentive reads).",
    ),
]


def extractor_config(*, precision: str = CLI_PRECISION, **options: Any) -> ExtractorConfig:
    """The feature options of a command (named as ExtractorConfig's fields), as the library's ExtractorConfig;
    the defaults are the library's own, but for the precision: `auto`, which the run plan resolves to bf16 or
    fp32 (with the reason) once, before any job is keyed, as it does for a library caller."""
    from ..features.config import ExtractorConfig

    if "@" in options.get("model", ""):  # MODEL@PRETRAINED, as everywhere
        from ..features.weights import parse_model_spec

        options["model"], weights = parse_model_spec(options["model"])
        if options.get("pretrained") is not None and weights is not None:
            raise UsageError(f"Give the weights once: --model {options['model']}@{weights} or --pretrained")
        options["pretrained"] = weights or options.get("pretrained")
    return ExtractorConfig(precision=Precision(precision).value, **options)


def model_configs(
    models: list[str] | None, models_file: Path | None, pretrained: str | None, **options: Any
) -> list[ExtractorConfig]:
    """Every model of a run: repeated `--model MODEL[@PRETRAINED]` and a `--models FILE` (CLIP_benchmark's
    `model,pretrained` lines), checked before any work; `--pretrained` goes to each --model given without @."""
    from ..features.weights import check_weights, read_models_file

    specs = [(model, pretrained) for model in models or []]
    if models_file is not None:
        specs += read_models_file(models_file)
    specs = specs or [("mini-clip", pretrained)]
    configs = [extractor_config(model=model, pretrained=weights, **options) for model, weights in specs]
    counts = Counter((c.model, c.pretrained) for c in configs)
    if len(counts) < len(configs):  # a model listed twice is run once, with a note
        repeated = ", ".join(f"{m}@{w or 'default'} ({n} times)" for (m, w), n in counts.items() if n > 1)
        warnings.warn(f"Models listed more than once run once: {repeated}", UserWarning, stacklevel=2)
        first: dict[tuple[str, str | None], ExtractorConfig] = {}
        for config in configs:
            first.setdefault((config.model, config.pretrained), config)
        configs = list(first.values())
    for config in configs:
        if config.extractor == "open_clip":
            check_weights(config.model, config.pretrained)
    return configs


@overload
def choose_task(
    task: str | None,
    dataset: str | None,
    label: str | None,
    image_column: str | None,
    required: Literal[True],
    name: str | None = None,
    allow_outside_root: bool = False,
) -> str | Task: ...


@overload
def choose_task(
    task: str | None,
    dataset: str | None,
    label: str | None = None,
    image_column: str | None = None,
    required: bool = False,
    name: str | None = None,
    allow_outside_root: bool = False,
) -> str | Task | None: ...


def choose_task(
    task: str | None,
    dataset: str | None,
    label: str | None = None,
    image_column: str | None = None,
    required: bool = False,
    name: str | None = None,
    allow_outside_root: bool = False,
) -> str | Task | None:
    """The command line's `--task NAME|FILE.toml` or `--dataset SCHEME:PATH [--label] [--image-column] [--name]`."""
    if task is not None and dataset is not None:
        raise UsageError("Give --task or --dataset, not both")
    given = [flag for flag, value in (("--label", label), ("--image-column", image_column), ("--name", name)) if value]
    if dataset is None and (given or allow_outside_root):
        flag = given[0] if given else "--allow-outside-root"
        raise UsageError(f"{flag} goes with --dataset (a task file sets its own name, columns and rules)")
    if dataset is not None:
        from ..data.taskfile import dataset_task

        return dataset_task(
            dataset,
            label=label,
            image_column=image_column or "image",
            name=name,
            allow_outside_root=allow_outside_root,
        )
    if task is None and required:
        raise UsageError("Give --task TASK (see `clipprobe tasks`), --task FILE.toml or --dataset SCHEME:PATH")
    return task
