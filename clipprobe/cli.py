"""The `clipprobe` command line: parse flags, call the library, turn its errors into one-line messages."""

from __future__ import annotations

import functools
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .chunks import DEFAULT_CHUNK_ROWS
from .errors import ClipProbeError, UsageError
from .precision import PRECISIONS
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


# open_clip's precision names (clipprobe.precision says what each one is for).
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)


# Options shared by every command that builds features: defined once, reused.
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="open_clip model name, hf-hub:ORG/NAME or local-dir:PATH.")]
PretrainedOpt = Annotated[
    Optional[str],
    typer.Option("--pretrained", "-p", help="Weights: a tag (see `clipprobe models`), a checkpoint file, or 'random'. "
                 "Default: the model's built-in weights."),
]
DeviceOpt = Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
PrecisionOpt = Annotated[Precision, typer.Option(help="Model precision: fp32 (the reference; fastest on CPUs without native "
                                                   "bf16), bf16 or fp16 weights, amp or amp_bf16 (fp32 weights under torch.autocast: "
                                                   "the usual GPU setting is amp).")]
ChannelsLastOpt = Annotated[bool, typer.Option("--channels-last", help="Run a conv tower (ResNet, ConvNeXt, mini-clip) on NHWC "
                                               "tensors: faster on CPUs; the features agree to float rounding and share its cache.")]
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
WorkersOpt = Annotated[
    Optional[int],
    typer.Option("--workers", help="Processes that decode images while the model runs (default: the cores the forward "
                 "pass leaves free: none on a CPU-only run, all but one with --device cuda). A small model on a CPU is "
                 "decode-bound and gains from --workers 2."),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Stop at the first unreadable image instead of skipping and counting it.")]
LayerOpt = Annotated[
    str,
    typer.Option("--layer", help="Which features of the image tower: embedding (the projected embedding, what CLIP users get), "
                 "pre-projection (the pooled features before the projection), tokens (mean of the last block's patch "
                 "tokens) or grid (patch tokens average-pooled to 2x2 cells, concatenated)."),
]


def _config(model, pretrained, device, batch_size, precision, seed, extractor="open_clip", invariance=None, layer="embedding",
            workers=None, channels_last=False):
    from .features import ExtractorConfig

    return ExtractorConfig(
        model=model, pretrained=pretrained, device=device, batch_size=batch_size,
        precision=Precision(precision).value, seed=seed, extractor=extractor, invariance=invariance, layer=layer,
        workers=workers, channels_last=channels_last,
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
experiment_app = typer.Typer(help="Experiments that change how the pretraining data was curated.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
command = _command_for(app)
data_command = _command_for(data_app)
experiment_command = _command_for(experiment_app)


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
    layer: LayerOpt = "embedding",
    dataset: DatasetOpt = None,
    label: LabelOpt = None,
    image_column: ImageColumnOpt = None,
    strict: StrictOpt = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", metavar="I/N", help="Compute only shard I of N (0-based) into the shared cache; default: RANK/WORLD_SIZE "
        "when a launcher such as torchrun sets them.")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Assemble the shards' chunks, checking none is missing or doubled.")] = False,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per chunk: the unit of resuming and of sharding "
                                            "(every shard must use the same).")] = DEFAULT_CHUNK_ROWS,
    workers: WorkersOpt = None,
    channels_last: ChannelsLastOpt = False,
):
    """Extract frozen image features for every split and cache them.

    Extraction goes in chunks: a killed run resumes where it stopped. With --shard I/N (or under torchrun, which
    sets RANK and WORLD_SIZE) this process computes only its shard's chunks; --merge then assembles them.

    Examples: clipprobe extract --model ViT-B-32 --pretrained /models/vit-b-32.bin --device cuda --precision amp;
    clipprobe extract --shard 0/4 (and 1/4, 2/4, 3/4 elsewhere), then clipprobe extract --merge
    """
    from . import pipeline
    from .chunks import parse_shard
    from .sources import choose_task

    world = _world(world_seed, image_size, light_size, pedestrian_size)
    chosen = choose_task(task, dataset, label, image_column)
    config = _config(model, pretrained, device, batch_size, precision, seed, extractor, invariance, layer, workers, channels_last)
    which = None if merge else parse_shard(shard)
    if merge and shard is not None:
        raise UsageError("--merge assembles every shard: give it without --shard")
    if which is not None and refresh:
        raise UsageError("--refresh would delete the other shards' chunks: give it without --shard (or RANK/WORLD_SIZE)")
    if which is not None:
        done = pipeline.extract_shard(which, chosen, config, world=world, strict=strict, chunk_rows=chunk_rows)
        for split, count in done.items():
            console.print(f"shard {which}: {split}: {count} chunk{'s' if count != 1 else ''} computed")
        console.print(f"shard {which}: done; run `clipprobe extract --merge` with the same options once every shard is")
        return
    run = pipeline.merge if merge else functools.partial(pipeline.extract, refresh=refresh)
    features = run(chosen, config, world=world, strict=strict, chunk_rows=chunk_rows)
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
    layer: LayerOpt = "embedding",
    dataset: DatasetOpt = None,
    label: LabelOpt = None,
    image_column: ImageColumnOpt = None,
    strict: StrictOpt = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
    baselines: Annotated[str, typer.Option(
        "--baselines", help="Baselines to run beside the probe, comma-separated (see `clipprobe baselines`); "
        "orbit-cnn:GROUP picks the orbit group; 'none' for the probe alone.")] = "cnn,orbit-cnn,pixels,random",
    budget: Annotated[Optional[str], typer.Option(
        "--budget", help="Override the trained baselines' budget: KEY=VALUE,... e.g. epochs=40,image_size=96 "
        "(keys: epochs, batch_size, image_size, learning_rate, weight_decay, max_seconds, augment, ...).")] = None,
    refresh: Annotated[bool, typer.Option(help="Re-fit and re-train even when a stored result answers the same run.")] = False,
    probe_kinds: Annotated[str, typer.Option(
        "--probe", help="Probes, comma-separated (see `clipprobe probes`): linear, and mlp (one hidden layer) to tell "
        "'absent' from 'present but not linearly decodable'. Each runs on the model and on the pixels/random baselines.")] = "linear",
    shots: Annotated[Optional[str], typer.Option(
        "--shots", help="Also probe with k training examples per class (stratified, seeded), e.g. 1,2,4,8,16,all; "
        "C still chosen on validation. A k that some class cannot fill is skipped, with the reason in the results.")] = None,
    seeds: Annotated[int, typer.Option(
        "--seeds", help="Repeat with N seeds (--seed, --seed+1, ...): new few-shot samples and initialisations; "
        "the report gives mean and standard deviation.")] = 1,
    workers: WorkersOpt = None,
    channels_last: ChannelsLastOpt = False,
):
    """Fit a linear probe (C chosen on validation, scored once on test) and the baselines; one result file each.

    Examples: clipprobe probe --task traffic-light; clipprobe probe --task pedestrian --baselines none;
    clipprobe probe --task traffic-light --shots 1,2,4,8,16,all --seeds 5 --probe linear,mlp;
    clipprobe probe --task my_task.toml --baselines cnn --budget epochs=40;
    clipprobe probe --dataset imagefolder:photos --strict
    """
    from . import pipeline
    from .sources import choose_task

    from .baselines import parse_baselines, parse_budget
    from .probe import parse_probes
    from .shots import parse_shots

    world = _world(world_seed, image_size, light_size, pedestrian_size)
    config = _config(model, pretrained, device, batch_size, precision, seed, extractor, invariance, layer, workers, channels_last)
    # Resolve every task, baseline, budget, probe and shot first, so a typo in the last one fails before any work is done.
    chosen = [pipeline.resolve_task(choose_task(name, dataset, label, image_column, required=True)) for name in (task or [None])]
    overrides = parse_budget(budget)
    parse_baselines(baselines, overrides)
    parse_probes(probe_kinds)
    ks = parse_shots(shots) if shots is not None else None
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}")
    for one in chosen:
        pipeline.compare(one, config, baselines, results_dir=results, budget=overrides, world=world, strict=strict,
                         refresh=refresh, on_result=functools.partial(_print_outcome, show_seed=seeds > 1),
                         probes=probe_kinds, shots=ks, seeds=seeds)


def _print_outcome(record: dict, path: Path, show_seed: bool = False) -> None:
    reused = " (stored result reused)" if record["run"].get("reused") else ""
    shots = f" | {record['shots']}-shot" if record.get("shots") is not None else ""
    seed = f" | seed {record['seed']}" if show_seed else ""
    where = f"{record['task']} | {record['row']} | {record['method']}{shots}{seed}"
    if "skipped" in record:
        err_console.print(f"Skipped: {where}: {record['skipped']} -> {path}{reused}", markup=False, highlight=False)
        return
    selection = record["selection"]
    parameter = selection.get("parameter", "C" if "chosen_C" in selection else "epoch")
    value = selection.get(f"chosen_{parameter}")
    chosen = "nothing chosen" if value is None else f"{parameter} {value:.3g}" if parameter != "epoch" else f"epoch {value}"
    metrics = record["metrics"]
    low_high = metrics.get("intervals", {}).get("balanced_accuracy")
    interval = f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else ""
    console.print(
        f"{where} | balanced accuracy {metrics['balanced_accuracy']:.3f}"
        f"{interval} | accuracy {metrics['accuracy']:.3f} | {chosen} -> {path}{reused}"
    )
    if selection["at_grid_edge"]:
        err_console.print(f"Warning: {where}: the chosen {parameter} is at the edge of the grid; "
                          "the best value may lie outside it.", markup=False, highlight=False)


@command
def probes():
    """List the probes `clipprobe probe --probe` can fit on frozen features.

    Example: clipprobe probes
    """
    from .probe import DEFAULT_PROBES, get_probe, list_probes

    for name in list_probes():
        default = " (default)" if name in DEFAULT_PROBES else ""
        console.print(f"{name}{default}: {get_probe(name).description}")


@command
def baselines():
    """List the baselines `clipprobe probe --baselines` can run beside the probe.

    Example: clipprobe baselines
    """
    from .baselines import DEFAULT_BASELINES, get_baseline, list_baselines

    for name in list_baselines():
        baseline = get_baseline(name)
        default = " (default)" if name in DEFAULT_BASELINES else ""
        console.print(f"{name}{default}: {baseline.description}")


@command
def pretrain(
    out: Annotated[Path, typer.Option(help="Folder for the open_clip-format checkpoint.")],
    captions: Annotated[str, typer.Option(help="Caption policy: salient, descriptive, mixed:P or attribute-dropout:NAME.")] = "salient",
    model: ModelOpt = "mini-clip",
    steps: Annotated[Optional[int], typer.Option(help="Optimiser steps (default: the built-in recipe's, 250).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Image-caption pairs per step (default 64).")] = None,
    width: Annotated[Optional[int], typer.Option(help="Width of the image tower (default: the model config's).")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Input size of the image tower in pixels (default: the model config's).")] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
):
    """Pretrain a small CLIP-style model on the dashcam world under a caption policy.

    Examples: clipprobe pretrain --captions descriptive --out models/descriptive
              clipprobe pretrain --captions descriptive --width 32 --image-size 96 --steps 2000 --device cuda --out models/big
    """
    from .features import _check_device
    from .pretrain import PretrainConfig
    from .pretrain import pretrain as run_pretrain

    _check_device(device)
    chosen = {"steps": steps, "batch_size": batch_size, "width": width, "image_size": image_size}
    config = PretrainConfig(model=model, captions=captions, seed=seed, **{k: v for k, v in chosen.items() if v is not None})
    folder = run_pretrain(config, out, device=device)
    # A scaled architecture is not a registered config in a new process; its folder carries the config.
    load = f"--model local-dir:{folder}" if width or image_size else f"--model {model} --pretrained {folder}"
    console.print(f"Saved {folder}; load it with: clipprobe extract {load}")


@experiment_command
def curation(
    policies: Annotated[str, typer.Option(help="Caption policies, comma-separated; one model is pretrained for each. "
                                          "mixed:P for several P draws the dose-response plot.")] = "salient,descriptive,mixed:0.1",
    tasks: Annotated[Optional[str], typer.Option(help="World tasks, comma-separated (default: every dashcam task).")] = None,
    baselines: Annotated[str, typer.Option(help="Baselines beside the pretrained models ('none': no baselines).")] = "cnn,orbit-cnn:hflip,pixels,random",
    budget: Annotated[Optional[str], typer.Option(help="Overrides of the trained baselines' budget, e.g. epochs=24 "
                                                 "(the experiment's own: epochs=10,orbit_train_elements=1).")] = None,
    attributes: Annotated[Optional[str], typer.Option(help="Counterfactual attributes for the invariance columns, "
                                                      "comma-separated ('none' skips them; default: all).")] = None,
    pairs: Annotated[int, typer.Option(help="Counterfactual pairs per attribute.")] = 100,
    zero_shot: Annotated[bool, typer.Option("--zero-shot/--no-zero-shot", help="Add each model's zero-shot row.")] = True,
    models: Annotated[Optional[list[str]], typer.Option("--model", help="Also probe this open_clip model on the same tasks: "
                                                        "MODEL@WEIGHTS (a tag, checkpoint file or folder) or hf-hub:ORG/NAME; repeatable.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Pretraining steps (default: the built-in recipe's).")] = None,
    seed: SeedOpt = 0,
    results: ResultsOpt = DEFAULT_RESULTS_DIR,
    refresh: Annotated[bool, typer.Option("--refresh", help="Recompute every result and score (weights and features stay cached).")] = False,
):
    """Pretrain one mini CLIP per caption policy, probe every dashcam task and score invariance, beside the baselines.

    Same world, recipe and seed for every policy: only the captions differ. Everything is cached, so a
    re-run does only new work. Writes the headline table to RESULTS/experiments/; `clipprobe report` renders it.

    Examples: clipprobe experiment curation --policies mixed:0,0.01,0.05,0.2,1
              clipprobe experiment curation --model ViT-B-32@openai --model ViT-B-32@/models/vit-b-32.bin
    """
    from .baselines import parse_budget
    from .experiment import DEFAULT_EXPERIMENT_BUDGET, WORLD_TASK_NAMES, CurationExperiment, run_curation
    from .pretrain import PretrainConfig

    recipe = PretrainConfig() if steps is None else PretrainConfig(steps=steps)
    experiment = CurationExperiment(
        policies=tuple(_expand_policies(policies)),
        tasks=tuple(_split(tasks)) if tasks else WORLD_TASK_NAMES,
        baselines=baselines, budget={**DEFAULT_EXPERIMENT_BUDGET, **parse_budget(budget)},
        attributes=None if attributes is None else tuple(a for a in _split(attributes) if a != "none"),
        pairs=pairs, zero_shot=zero_shot, models=tuple(models or ()), recipe=recipe, seed=seed,
    )
    record, path = run_curation(experiment, results_dir=results, refresh=refresh, on_result=_print_outcome,
                                on_stage=lambda text: console.print(text, style="bold"))
    from .experiment_report import experiment_table

    console.print(experiment_table(record))
    console.print(f"Headline table -> {path}; render everything with: clipprobe report --results {results}")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _expand_policies(text: str) -> list[str]:
    """`mixed:0,0.01,0.2` is shorthand for mixed:0,mixed:0.01,mixed:0.2: a bare number continues the family before it."""
    policies: list[str] = []
    for part in _split(text):
        family = policies[-1].partition(":")[0] if policies else None
        policies.append(f"{family}:{part}" if family and part[:1].isdigit() else part)
    return policies


@command
def report(
    results: ResultsOpt = DEFAULT_RESULTS_DIR,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, results.json and results.csv.")] = DEFAULT_REPORTS_DIR,
    fail_under: Annotated[
        Optional[list[str]],
        typer.Option("--fail-under", metavar="TASK:ROW:METRIC=VALUE",
                     help="CI gate, repeatable: exit 1 when a matched row's METRIC (accuracy, balanced_accuracy, macro_f1) "
                     "is below VALUE. TASK and ROW (as printed) may be *."),
    ] = None,
    baseline: Annotated[
        Optional[Path],
        typer.Option("--compare", metavar="BASELINE.json",
                     help="CI gate: a results.json from an earlier report; exit 1 when a row's balanced accuracy regressed."),
    ] = None,
    max_drop: Annotated[
        Optional[float],
        typer.Option("--max-drop", help="With --compare: a row regressed when the top of its balanced-accuracy interval "
                     "is more than this below the baseline's value (default 0.02)."),
    ] = None,
):
    """Merge result files into one table: terminal, Markdown (CI job summary), HTML with plots, JSON and CSV.

    Every headline number shows its 95 % bootstrap interval. --fail-under and --compare make it a CI gate.

    Example: clipprobe report --compare baseline/results.json --max-drop 0.02 --fail-under 'traffic-light:*:balanced_accuracy=0.3'

    Exit code 0: the report is written and every gate passed.

    Exit code 1: a floor failed or a row regressed (one line per row on stderr; the report is still written), or unreadable results.

    Exit code 2: bad input: a malformed or unmatched --fail-under, a missing or invalid --compare file.
    """
    from .report import build_report, check_floors, compare, load_baseline, parse_floor

    floors = [parse_floor(spec) for spec in fail_under or []]
    if max_drop is not None and baseline is None:
        raise UsageError("--max-drop needs --compare BASELINE.json")
    baseline_rows = load_baseline(baseline) if baseline is not None else None
    built = build_report(results, out)
    from .experiment_report import experiment_table

    for experiment in built.experiments:
        console.print(experiment_table(experiment))
    for table in built.tables():
        console.print(table)
    *first, last = (str(path) for path in built.files.values())
    console.print(f"Wrote {', '.join(first)} and {last}")
    failures = check_floors(built.rows, floors)
    if baseline_rows is not None:
        comparison = compare(built.rows, baseline_rows, 0.02 if max_drop is None else max_drop)
        for note in comparison.notes():
            console.print(note)
        failures += comparison.failures()
    for failure in failures:
        err_console.print(failure, highlight=False)
    if failures:
        raise typer.Exit(1)


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


# Not under results/: `clipprobe report` reads results/*/*.json as probe records (clipprobe.sensitivity has the same default).
DEFAULT_INVARIANCE_DIR = Path("results-invariance")


@command
def invariance(
    attribute: Annotated[Optional[list[str]], typer.Option(
        help="Counterfactual attribute (traffic-light, pedestrian, car-colour, time-of-day). Repeat for several; default all.")] = None,
    n: Annotated[int, typer.Option("--n", help="Pairs per attribute.")] = 200,
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.fp32,
    seed: Annotated[int, typer.Option(help="Seed for the unrelated pairs, the bootstrap and random weights.")] = 0,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples for the 95% interval.")] = 1000,
    results: Annotated[Path, typer.Option("--results", help="Folder for the invariance result files.")] = DEFAULT_INVARIANCE_DIR,
    extractor: ExtractorOpt = "open_clip",
    invariance: InvarianceOpt = None,
    refresh: Annotated[bool, typer.Option(help="Re-embed the pairs even when cached embeddings exist.")] = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """How much a frozen embedding reacts to an attribute: mean cosine distance within counterfactual pairs
    over that between unrelated images (0 = blind to it, about 1 = as far as another scene), 95% bootstrap interval.

    Examples: clipprobe invariance --attribute traffic-light --n 200;
    clipprobe invariance --model ViT-B-32 --pretrained laion2b_s34b_b79k --invariance orbit:hflip
    """
    from rich.table import Table

    from .sensitivity import measure_invariance

    world = _world(world_seed, image_size, light_size, pedestrian_size)
    config = _config(model, pretrained, device, batch_size, precision, seed, extractor, invariance)
    record, path = measure_invariance(attribute, config, n=n, world=world, seed=seed, resamples=resamples,
                                      results_dir=results, refresh=refresh)
    table = Table(title=f"Invariance of {record['row']}", title_justify="left",
                  caption="score = mean cosine distance within pairs / between unrelated images; 0 = blind to the attribute")
    for column in ("Attribute", "Score", "95% interval", "n pairs", "Mean pair distance", "Mean unrelated distance"):
        table.add_column(column, justify="left" if column == "Attribute" else "right", no_wrap=True)
    for name, stats in record["scores"].items():
        score = "undefined" if stats["score"] is None else f"{stats['score']:.3f}"
        interval = "-" if stats["interval"] is None else f"{stats['interval'][0]:.3f} – {stats['interval'][1]:.3f}"
        table.add_row(name, score, interval, str(stats["n_pairs"]), f"{stats['mean_pair_distance']:.4f}",
                      f"{stats['mean_unrelated_distance']:.4f}")
    console.print(table)
    for name, stats in record["scores"].items():
        if "error" in stats:
            err_console.print(f"Warning: {name}: {stats['error']}")
    console.print(f"Wrote {path}")


def main() -> None:
    app()
