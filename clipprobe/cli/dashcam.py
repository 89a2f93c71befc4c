"""The dashcam application's commands: pretrain, experiment curation, blind-spots, data show, data pairs,
sensitivity. Only these
take the dashcam world's options; the tool's commands reach another world through a task name
(`--task 'traffic-light[light_size=0.03:0.06]'`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.defaults import RESULTS_DIR, SENSITIVITY_DIR
from ..core.errors import UsageError
from ..core.progress import console, err_console
from .app import command, data_command, experiment_command, library
from .options import (
    BatchOpt,
    DeviceOpt,
    ExtractorOpt,
    ModelOpt,
    OrbitOpt,
    Precision,
    PrecisionOpt,
    PretrainedOpt,
    ResultsOpt,
    extractor_config,
)
from .tool import print_outcome

# The dashcam world's settings, shared by the commands that read it. None keeps the default.
WorldSeedOpt = Annotated[Optional[int], typer.Option("--world-seed", help="Seed of the dashcam world.")]
ImageSizeOpt = Annotated[
    Optional[int], typer.Option("--image-size", help="Dashcam image size in pixels (default 224).")
]
LightSizeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--light-size", help="Traffic-light height range MIN:MAX, fractions of the image (default 0.08:0.26)."
    ),
]
BlindThresholdOpt = Annotated[
    float, typer.Option("--blind-threshold", help="Cosine similarity above which a pair counts as blind (MMVP's 0.95).")
]
PedestrianSizeOpt = Annotated[
    Optional[str], typer.Option("--pedestrian-size", help="Pedestrian height range MIN:MAX (default 0.16:0.32).")
]


def world_from_options(world_seed, image_size, light_size, pedestrian_size):
    """The dashcam world the options describe, or None for the default one."""
    from ..dashcam.tasks import size_range, world_config

    return world_config(
        world_seed,
        image_size,
        None if light_size is None else size_range("--light-size", light_size),
        None if pedestrian_size is None else size_range("--pedestrian-size", pedestrian_size),
    )


@command
def pretrain(
    out: Annotated[Path, typer.Option(help="Folder for the open_clip-format checkpoint.")],
    captions: Annotated[
        str, typer.Option(help="Caption policy: salient, descriptive, mixed:P or attribute-dropout:NAME.")
    ] = "salient",
    model: ModelOpt = "mini-clip",
    steps: Annotated[Optional[int], typer.Option(help="Optimiser steps (default: the built-in recipe's, 250).")] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", help="Image-caption pairs per step (default 64).")
    ] = None,
    width: Annotated[
        Optional[int], typer.Option(help="Width of the image tower (default: the model config's).")
    ] = None,
    image_size: Annotated[
        Optional[int],
        typer.Option("--image-size", help="Input size of the image tower in pixels (default: the model config's)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Pretraining seed: initialisation, batch order and caption draws.")] = 0,
    device: DeviceOpt = "auto",
):
    """Pretrain a small CLIP-style model on the dashcam world under a caption policy.

    Examples:
        clipprobe pretrain --captions descriptive --out models/descriptive
        clipprobe pretrain --captions descriptive --width 32 --image-size 96 --steps 2000 --device cuda --out models/big
    """
    from ..dashcam.pretrain import PretrainConfig
    from ..dashcam.pretrain import pretrain as run_pretrain
    from ..features.devices import check_device, resolve_device

    library()
    device = resolve_device(device)
    check_device(device)
    recipe = PretrainConfig()  # the built-in recipe's steps and batch size where none is given
    config = PretrainConfig(
        model=model,
        captions=captions,
        seed=seed,
        steps=recipe.steps if steps is None else steps,
        batch_size=recipe.batch_size if batch_size is None else batch_size,
        width=width,
        image_size=image_size,
    )
    folder = run_pretrain(config, out, device=device)
    # A scaled architecture is not a registered config in a new process; its folder carries the config.
    load = f"--model local-dir:{folder}" if width or image_size else f"--model {model} --pretrained {folder}"
    console.print(f"Saved {folder}; load it with: clipprobe extract {load}")


@experiment_command
def curation(
    policies: Annotated[
        str,
        typer.Option(
            help="Caption policies, comma-separated; one model is pretrained for each. "
            "mixed:P for several P draws the dose-response plot."
        ),
    ] = "salient,descriptive,mixed:0.1,attribute-dropout:light_state",
    tasks: Annotated[
        Optional[str], typer.Option(help="World tasks, comma-separated (default: every dashcam task).")
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(
            help="Baselines beside the pretrained models ('none': no baselines). The orbit CNN averages over the "
            "mirror alone here (probe's default group is translate:4+hflip): the cheapest group that shows what a "
            "hard invariance keeps and what it destroys (the pedestrian's side)."
        ),
    ] = "cnn,orbit-cnn:hflip,pixels,random",
    budget: Annotated[
        Optional[str],
        typer.Option(
            help="Overrides of the trained baselines' budget, e.g. epochs=40 (default: probe's budget, 24 epochs "
            "with the epoch chosen on validation; the orbit model sees one group element per image and step, "
            "orbit_train_elements=1)."
        ),
    ] = None,
    attributes: Annotated[
        Optional[str],
        typer.Option(
            help="Counterfactual attributes for the sensitivity columns, "
            "comma-separated ('none' skips them; default: all)."
        ),
    ] = None,
    pairs: Annotated[int, typer.Option(help="Counterfactual pairs per attribute.")] = 100,
    blind_threshold: BlindThresholdOpt = 0.95,
    zero_shot: Annotated[
        bool, typer.Option("--zero-shot/--no-zero-shot", help="Add each model's zero-shot row.")
    ] = True,
    models: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model",
            help="Also probe this open_clip model on the same tasks: "
            "MODEL@WEIGHTS (a tag, checkpoint file or folder) or hf-hub:ORG/NAME; repeatable.",
        ),
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="Pretraining steps (default: the built-in recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="The first pretraining seed (also the probes' and baselines').")] = 0,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            help="Pretrain every policy with N seeds (--seed, --seed+1, ...), the unit of every interval and test.",
        ),
    ] = 5,
    baseline_seeds: Annotated[
        int,
        typer.Option(
            "--baseline-seeds",
            help="Seeds of the baselines with seeds of their own (the CNN, the orbit CNN, pixels): the first N.",
        ),
    ] = 3,
    mlp_tasks: Annotated[
        str,
        typer.Option(
            "--mlp-tasks", help="Tasks also read by the MLP probe on each embedding, comma-separated ('none': none)."
        ),
    ] = "traffic-light",
    attentive_tasks: Annotated[
        Optional[str],
        typer.Option(
            "--attentive-tasks",
            help="Tasks also read by the attentive probe over every token of each model, comma-separated "
            "('none': none). Default: traffic-light and pedestrian-side, those of them the experiment has.",
            show_default=False,
        ),
    ] = None,
    attentive_policies: Annotated[
        Optional[str],
        typer.Option(
            "--attentive-policies",
            help="Policies whose models the attentive probe reads, comma-separated (random weights always). "
            "Default: salient and descriptive, those of them the experiment has (the pre-registered layer family).",
            show_default=False,
        ),
    ] = None,
    suite_tasks: Annotated[
        Optional[str],
        typer.Option(
            "--suite-tasks",
            help="Tasks of the blind-pattern suite read at the embedding only (linear probe, CNN, random weights, "
            "zero-shot), comma-separated ('none': none). Default: every suite task not in --tasks.",
            show_default=False,
        ),
    ] = None,
    probes: Annotated[
        str,
        typer.Option(
            "--probes",
            help="Probes that read every layer of --layers, comma-separated (see `clipprobe probes`); the MLP "
            "and the attentive probe have their own task lists.",
        ),
    ] = "linear,linear-pca:128",
    part: Annotated[
        Optional[str],
        typer.Option(
            "--part",
            metavar="K/N",
            help="Run part K of N (K from 0) and store its results only; run every part (e.g. as a Slurm array), "
            "then the same command without --part to write the tables.",
        ),
    ] = None,
    layers: Annotated[
        str,
        typer.Option(
            "--layers",
            help="Where to probe each frozen tower, comma-separated: embedding, pre-projection, tokens, grid. "
            "Default: embedding, pre-projection, tokens.",
            show_default=False,
        ),
    ] = "embedding,pre-projection,tokens",
    results: ResultsOpt = RESULTS_DIR,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Recompute every result and score (weights and features stay cached).")
    ] = False,
):
    """Pretrain one mini CLIP per caption policy, probe every dashcam task and score sensitivity, beside the baselines.

    Same world, recipe and seeds for every policy: only the captions differ. Every task is probed at each of
    --layers; the paired differences (each policy against salient captions, each representation against the
    CNN and against random weights) say which differences the data resolves. Everything is cached, so a re-run
    does only new work. Writes the headline tables to RESULTS/experiments/; `clipprobe report` renders them.

    Examples:
        clipprobe experiment curation --seeds 3
        clipprobe experiment curation --policies mixed:0,0.01,0.05,0.2,1
        clipprobe experiment curation --model ViT-B-32@openai --model ViT-B-32@/models/vit-b-32.bin
    """
    from ..baselines.training import parse_budget
    from ..dashcam.experiment import DEFAULT_EXPERIMENT_BUDGET, WORLD_TASK_NAMES, CurationExperiment, run_curation
    from ..dashcam.pretrain import PretrainConfig
    from ..dashcam.report import experiment_tables

    library()

    recipe = PretrainConfig() if steps is None else PretrainConfig(steps=steps)
    experiment = CurationExperiment(
        policies=tuple(_expand_policies(policies)),
        tasks=tuple(_split(tasks)) if tasks else WORLD_TASK_NAMES,
        baselines=baselines,
        budget={**DEFAULT_EXPERIMENT_BUDGET, **parse_budget(budget)},
        attributes=None if attributes is None else tuple(a for a in _split(attributes) if a != "none"),
        pairs=pairs,
        blind_threshold=blind_threshold,
        zero_shot=zero_shot,
        models=tuple(models or ()),
        recipe=recipe,
        seed=seed,
        seeds=seeds,
        baseline_seeds=baseline_seeds,
        layers=tuple(_split(layers)),
        mlp_tasks=tuple(t for t in _split(mlp_tasks) if t != "none"),
        attentive_tasks=None if attentive_tasks is None else tuple(t for t in _split(attentive_tasks) if t != "none"),
        attentive_policies=None if attentive_policies is None else tuple(_split(attentive_policies)),
        suite_tasks=None if suite_tasks is None else tuple(t for t in _split(suite_tasks) if t != "none"),
        probes=tuple(_split(probes)),
        part=_part(part),
    )
    record, path = run_curation(
        experiment,
        results_dir=results,
        sensitivity_dir=SENSITIVITY_DIR,
        refresh=refresh,
        on_result=print_outcome,
        on_stage=lambda text: console.print(text, style="bold"),
    )

    if path is None:
        k, n = experiment.part or (0, 1)
        console.print(
            f"Part {k}/{n} stored in {results}; once every part is done, run the same command without --part to "
            "write the tables."
        )
        return
    for table in experiment_tables(record):
        console.print(table)
    console.print(f"Headline table -> {path}; render everything with: clipprobe report --results {results}")


def _part(text: str | None) -> tuple[int, int] | None:
    """`K/N` -> (K, N); checked by the experiment (0 <= K < N)."""
    if text is None:
        return None
    k, slash, n = text.partition("/")
    if not slash or not k.strip().isdigit() or not n.strip().isdigit():
        raise UsageError(f"--part expects K/N with whole numbers, e.g. 0/4; got '{text}'")
    return int(k), int(n)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _expand_policies(text: str) -> list[str]:
    """`mixed:0,0.01,0.2` is shorthand for mixed:0,mixed:0.01,mixed:0.2: a bare number continues the family before it."""
    policies: list[str] = []
    for part in _split(text):
        family = policies[-1].partition(":")[0] if policies else None
        policies.append(f"{family}:{part}" if family and part[:1].isdigit() else part)
    return policies


@data_command
def show(
    task: Annotated[str, typer.Option(help="Task whose images to show.")] = "traffic-light",
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("reports/contact-sheet.png"),
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 12,
    split: Annotated[str, typer.Option(help="Split to sample from.")] = "train",
    seed: Annotated[int, typer.Option(help="Seed for which images are drawn.")] = 0,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Write a contact sheet: sample images with their labels and, for the dashcam world, one caption per policy.

    Example:
        clipprobe data show --task traffic-light --light-size 0.03:0.06 --out sheet.png
    """
    from ..dashcam.sheets import contact_sheet
    from ..dashcam.tasks import with_world
    from ..data.task import get_task

    library()
    world = world_from_options(world_seed, image_size, light_size, pedestrian_size)
    path = contact_sheet(with_world(get_task(task), world), out, n=n, split=split, seed=seed)
    console.print(f"Wrote {path}")


@data_command
def pairs(
    attribute: Annotated[
        str,
        typer.Option(
            help="Attribute to flip, by its task's name: traffic-light, pedestrian, pedestrian-side, "
            "pedestrian-action, pedestrian-count, car-colour, car-facing, car-distance, lane-markings, speed-limit, "
            "time-of-day."
        ),
    ],
    n: Annotated[int, typer.Option("--n", help="Number of pairs.")] = 200,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the pairs dataset (default: in the cache).")] = None,
    sheet: Annotated[
        Path, typer.Option("--sheet", help="PNG of the first pairs side by side, the changed region outlined.")
    ] = Path("reports/pairs-sheet.png"),
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Render counterfactual pairs: the same scene, every random draw kept, with one attribute changed.

    Example:
        clipprobe data pairs --attribute traffic-light --n 200
    """
    from ..dashcam.pairs import make_pairs
    from ..dashcam.sheets import pairs_sheet
    from ..dashcam.world import WorldConfig

    library()
    world = world_from_options(world_seed, image_size, light_size, pedestrian_size) or WorldConfig()
    path = make_pairs(attribute, n=n, config=world, out=out)
    console.print(
        f"Wrote {n} {attribute} pairs to {path} (a datasets.Dataset: image_a, image_b, value_a, value_b, index, region)"
    )
    console.print(f"Wrote {pairs_sheet(path, sheet)} (the first pairs side by side)")


@command(name="blind-spots")
def blind_spots(
    models: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="The open_clip model: MODEL@WEIGHTS (a tag, a checkpoint file or folder, hf-hub:ORG/NAME), "
            "e.g. ViT-B-32@openai or mini-clip@dashcam-salient; repeat for several in one table.",
        ),
    ],
    tasks: Annotated[
        Optional[str],
        typer.Option(help="Tasks of the suite, comma-separated (default: all of them; see `clipprobe tasks`)."),
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(
            help="Beside the models: cnn (the reference: a network trained on the labels), random (random weights "
            "of each model's architecture), comma-separated, or none."
        ),
    ] = "cnn",
    seeds: Annotated[
        int,
        typer.Option(
            help="Seeds (0 .. N-1): the CNN's, random weights' and, for built-in weights, the pretraining's; "
            "with one, intervals are over test images (probe) and pairs (blind-pair rate)."
        ),
    ] = 1,
    pairs: Annotated[int, typer.Option(help="Counterfactual pairs per attribute.")] = 100,
    blind_threshold: BlindThresholdOpt = 0.95,
    precision: PrecisionOpt = Precision.auto,
    results: ResultsOpt = RESULTS_DIR,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Recompute every result and score (weights and features stay cached).")
    ] = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """The blind-pattern suite for a model: one blindness table over the nine visual patterns CLIP is known to miss.

    Each attribute of the dashcam world that renders a pattern (its facing, count, state, text, ...) is read from
    the model's frozen embedding by a linear probe, beside a CNN trained on the labels; its counterfactual pairs
    give the sensitivity score and MMVP's blind-pair rate (pairs at cosine similarity above --blind-threshold,
    beside the same share among unrelated images). Results are cached and reused like any probe's. Writes
    RESULTS/experiments/blind-spots__MODELS.json; `clipprobe report` renders it in every format.

    Examples:
        clipprobe blind-spots --model mini-clip@dashcam-salient --model mini-clip@dashcam-descriptive
        clipprobe blind-spots --model ViT-B-32@openai --baselines cnn,random --seeds 3
    """
    from ..dashcam.blindspots import BLIND_SPOTS_SCHEMA_VERSION, blind_spots_experiment, run_blind_spots
    from ..dashcam.blindspots_view import BlindSpotsView, blind_spots_summary

    library()
    world = world_from_options(world_seed, image_size, light_size, pedestrian_size)
    experiment = blind_spots_experiment(
        tuple(models),
        seeds=seeds,
        baselines=baselines,
        pairs=pairs,
        threshold=blind_threshold,
        precision=precision.value,
        tasks=tuple(_split(tasks)) if tasks else None,
        **({"world": world} if world is not None else {}),
    )
    record, path = run_blind_spots(
        experiment,
        results_dir=results,
        sensitivity_dir=SENSITIVITY_DIR,
        refresh=refresh,
        on_result=print_outcome,
        on_stage=lambda text: console.print(text, style="bold"),
    )
    view = BlindSpotsView(BLIND_SPOTS_SCHEMA_VERSION)
    for table in view.tables(record):
        console.print(table)
    for line in blind_spots_summary(record.rows):
        console.print(line, highlight=False)
    console.print(f"Blindness table -> {path}; render everything with: clipprobe report --results {results}")


@command
def sensitivity(
    attribute: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Counterfactual attribute (see `clipprobe data pairs --help`: one per task of the blind-pattern "
            "suite, and time-of-day). Repeat for several; default all."
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Pairs per attribute.")] = 200,
    blind_threshold: BlindThresholdOpt = 0.95,
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.auto,
    seed: Annotated[int, typer.Option(help="Seed for the unrelated pairs, the bootstrap and random weights.")] = 0,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples for the 95% interval.")] = 1000,
    results: Annotated[
        Path, typer.Option("--results", help="Folder for the sensitivity result files.")
    ] = SENSITIVITY_DIR,
    extractor: ExtractorOpt = "open_clip",
    orbit: OrbitOpt = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Re-embed the pairs even when cached embeddings exist.")
    ] = False,
    world_seed: WorldSeedOpt = None,
    image_size: ImageSizeOpt = None,
    light_size: LightSizeOpt = None,
    pedestrian_size: PedestrianSizeOpt = None,
):
    """Score how much a frozen embedding moves when one attribute of the scene changes.

    The score is the mean cosine distance within counterfactual pairs (the same scene with one attribute changed)
    over that within unrelated pairs that make the same value change: 0 = blind to the attribute, 1 = as sensitive
    as an embedding of that attribute alone, larger = more sensitive. Each score comes with its 95% bootstrap
    interval and both distances, and with MMVP's blind-pair rate: the share of pairs whose two embeddings have
    cosine similarity above --blind-threshold, beside the same share among unrelated images.

    Examples:
        clipprobe sensitivity --attribute traffic-light --n 200
        clipprobe sensitivity --model ViT-B-32 --pretrained laion2b_s34b_b79k --orbit hflip
    """
    from rich.table import Table

    from ..dashcam.sensitivity import measure_sensitivity

    library()
    world = world_from_options(world_seed, image_size, light_size, pedestrian_size)
    config = extractor_config(
        model=model,
        pretrained=pretrained,
        device=device,
        batch_size=batch_size,
        precision=precision,
        seed=seed,
        extractor=extractor,
        orbit=orbit,
    )
    record, path = measure_sensitivity(
        attribute,
        config,
        n=n,
        world=world,
        seed=seed,
        resamples=resamples,
        results_dir=results,
        refresh=refresh,
        threshold=blind_threshold,
    )
    table = Table(
        title=f"Sensitivity of {record.representation}",
        title_justify="left",
        caption="score = numerator / denominator: mean cosine distance within pairs / within unrelated pairs that "
        "make the same value change; 0 = blind to it, 1 = as sensitive as an embedding of the attribute alone",
    )
    threshold = record.method.blind_threshold
    for column in (
        "Attribute",
        "Score",
        "95% interval",
        "n pairs",
        "Numerator",
        "Denominator",
        f"Blind pairs (cos > {threshold:g})",
        "Unrelated",
    ):
        table.add_column(column, justify="left" if column == "Attribute" else "right", no_wrap=True)
    for name, scored in record.scores.items():
        stats = scored.stats
        score = "undefined" if stats.score is None else f"{stats.score:.3f}"
        interval = "[-]" if stats.interval is None else f"[{stats.interval[0]:.3f}, {stats.interval[1]:.3f}]"
        table.add_row(
            name,
            score,
            interval,
            str(stats.n_pairs),
            "-" if stats.numerator is None else f"{stats.numerator:.4f}",
            "-" if stats.denominator is None else f"{stats.denominator:.4f}",
            f"{stats.blind_pair_rate:.2f} [{stats.blind_pair_interval[0]:.2f}, {stats.blind_pair_interval[1]:.2f}]"
            if stats.blind_pair_interval
            else f"{stats.blind_pair_rate:.2f}",
            f"{stats.unrelated_blind_rate:.2f}",
        )
    console.print(table)
    for name, scored in record.scores.items():
        if scored.stats.error is not None:
            err_console.print(f"Warning: {name}: {scored.stats.error}")
    console.print(f"Wrote {path}")


@command(hidden=True)
def invariance():
    """Renamed: `clipprobe sensitivity` (sensitivity is what is measured; an orbit is what is imposed)."""
    raise UsageError("`clipprobe invariance` is now `clipprobe sensitivity` (same options)")
