"""The tool's commands: tasks, models, extract, probe, report, and the registries' listings (probes, baselines,
groups, extractors, schemes)."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..core.defaults import PRECISION, REPORTS_DIR, RESULTS_DIR
from ..core.errors import ClipProbeError, UsageError
from ..core.progress import console, err_console
from ..features.chunks import DEFAULT_CHUNK_ROWS
from .app import command, library
from .options import (
    BUDGET_KEYS,
    AllowOutsideRootOpt,
    BatchOpt,
    ChannelsLastOpt,
    DatasetOpt,
    DeviceOpt,
    ExtractorOpt,
    ImageColumnOpt,
    LabelOpt,
    LayerOpt,
    ModelOpt,
    ModelsFileOpt,
    ModelsOpt,
    NameOpt,
    OrbitOpt,
    Precision,
    PrecisionOpt,
    PretrainedOpt,
    ResizeOpt,
    ResultsOpt,
    SeedOpt,
    StrictOpt,
    WorkersOpt,
    choose_task,
    extractor_config,
    model_configs,
)

if TYPE_CHECKING:
    from ..results import Result


@command
def tasks():
    """List the tasks with the visual pattern each tests, their classes, split sizes and class counts.

    Example:
        clipprobe tasks
    """
    from rich.table import Table

    from ..data.task import get_task, list_tasks, overview

    library(tasks_only=True)  # answers from metadata, without torch

    table = Table(title="clipprobe tasks")
    for column in ("Task", "Pattern", "Classes", "train", "validation", "test", "Test class counts", "Description"):
        table.add_column(column)
    pending = False
    for name in list_tasks():
        try:
            info = overview(get_task(name))
        except ClipProbeError as exc:  # e.g. a task whose data package is missing: still list the others
            table.add_row(name, "-", "-", "-", "-", "-", "-", f"unavailable: {exc}")
            continue
        if info["class_counts"] is None:
            pending = True
            counts = "after rendering *"
        else:
            counts = " · ".join(f"{k} {v}" for k, v in info["class_counts"]["test"].items())
        bound = "" if info["exact"] else "≤ "
        table.add_row(
            name,
            info["pattern"] or "",
            ", ".join(info["classes"]),
            *(f"{bound}{info['splits'][s]}" for s in ("train", "validation", "test")),
            counts,
            info["description"],
        )
    console.print(table)
    if pending:
        console.print(
            "* The dashcam world is rendered on first use (by the first probe, extract or `clipprobe data show`); "
            "until then its split sizes are the generator's, and '≤' marks tasks that keep only some scenes."
        )


@command
def models(
    pattern: Annotated[
        Optional[str],
        typer.Argument(
            help="Only the architectures whose name matches: * and ? wildcards, any case, e.g. 'vit-b-32*'; "
            "a name without wildcards matches the names that contain it."
        ),
    ] = None,
):
    """List the built-in weights and the open_clip architectures with their tags, saying which load offline.

    Built-in weights are trained by clipprobe on first use (no network); an open_clip tag marked (offline) is in
    the local cache already, the others download on first use.

    Examples:
        clipprobe models
        clipprobe models 'ViT-B-32*'
        clipprobe models convnext
    """
    import open_clip

    from ..features.weights import BUILTIN_FAMILIES, builtin_weights, tag_available_offline

    library()
    matches = functools.partial(name_matches, pattern)
    builtins = [weights for _, weights in builtin_weights().items() if weights.listed and matches(weights.model)]
    families = [(model, prefix) for model, prefix in BUILTIN_FAMILIES if matches(model)]
    architectures = [name for name in open_clip.list_models() if matches(name)]
    if not (builtins or families or architectures):
        err_console.print(f"No model matches '{pattern}'", markup=False, highlight=False)
        return
    if builtins or families:
        console.print("Built-in weights (trained by clipprobe, no network needed):")
    for weights in builtins:
        state = "trained, cached" if weights.trained() else "trained on first use"
        default = ", the default" if weights.default else ""
        console.print(f"  {weights.model}@{weights.tag}  ({state}{default}): {weights.description}")
    for model, prefix in families:
        console.print(f"  {model}@{prefix}POLICY  (any caption policy, trained on first use)")
    console.print("open_clip architectures and tags ((offline): in the local cache; the others download on first use):")
    for name in architectures:
        tags = [
            f"{tag} (offline)" if tag_available_offline(name, tag) else tag
            for tag in open_clip.list_pretrained_tags_by_model(name)
        ]
        console.print(f"  {name}  tags: {', '.join(tags) or '-'}")


def name_matches(pattern: str | None, name: str) -> bool:
    """`clipprobe models PATTERN`: shell wildcards in any case, as `timm.list_models('vit*')` takes them; a pattern
    without wildcards matches the names that contain it."""
    if pattern is None:
        return True
    if not any(char in pattern for char in "*?["):
        pattern = f"*{pattern}*"
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


@command
def extract(
    task: Annotated[
        Optional[str],
        typer.Option(
            help="Extract this task's data, by name or task file (.toml) "
            "(default: the dashcam world, which all its tasks share)."
        ),
    ] = None,
    model: ModelOpt = "mini-clip",
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.auto,
    seed: SeedOpt = 0,
    refresh: Annotated[bool, typer.Option("--refresh", help="Recompute even when cached features exist.")] = False,
    extractor: ExtractorOpt = "open_clip",
    orbit: OrbitOpt = None,
    layer: LayerOpt = "embedding",
    dataset: DatasetOpt = None,
    label: LabelOpt = None,
    image_column: ImageColumnOpt = None,
    name: NameOpt = None,
    allow_outside_root: AllowOutsideRootOpt = False,
    strict: StrictOpt = False,
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Compute only shard I of N (0-based) into the shared cache; default: RANK/WORLD_SIZE "
            "when a launcher such as torchrun sets them.",
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Assemble the shards' chunks, checking none is missing or doubled.")
    ] = False,
    chunk_rows: Annotated[
        int,
        typer.Option(
            "--chunk-rows", help="Rows per chunk: the unit of resuming and of sharding (every shard must use the same)."
        ),
    ] = DEFAULT_CHUNK_ROWS,
    workers: WorkersOpt = None,
    channels_last: ChannelsLastOpt = False,
    resize: ResizeOpt = None,
):
    """Extract frozen image features for every split and cache them.

    Extraction goes in chunks: a killed run resumes where it stopped. With --shard I/N (or under torchrun, which
    sets RANK and WORLD_SIZE) this process computes only its shard's chunks into the shared cache: run --shard 0/4
    to --shard 3/4 on four machines, say, then --merge once to assemble them.

    Examples:
        clipprobe extract --model ViT-B-32 --pretrained /models/vit-b-32.bin --device cuda --precision amp
        clipprobe extract --shard 0/4
        clipprobe extract --merge
    """
    from .. import runner
    from ..data.taskfile import resolve_task
    from ..features.chunks import parse_shard

    library()
    chosen = resolve_task(
        choose_task(task, dataset, label, image_column, name=name, allow_outside_root=allow_outside_root)
        or runner.DEFAULT_EXTRACT_TASK,
        strict,
    )
    config = extractor_config(
        model=model,
        pretrained=pretrained,
        device=device,
        batch_size=batch_size,
        precision=precision,
        seed=seed,
        extractor=extractor,
        orbit=orbit,
        layer=layer,
        workers=workers,
        channels_last=channels_last,
        resize=resize,
    )
    which = None if merge else parse_shard(shard)
    if merge and shard is not None:
        raise UsageError("--merge assembles every shard: give it without --shard")
    if which is not None and refresh:
        raise UsageError(
            "--refresh would delete the other shards' chunks: give it without --shard (or RANK/WORLD_SIZE)"
        )
    if which is not None:
        done = runner.extract_shard(which, chosen, config, chunk_rows=chunk_rows)
        for split, count in done.items():
            console.print(f"shard {which}: {split}: {count} chunk{'s' if count != 1 else ''} computed")
        console.print(f"shard {which}: done; run `clipprobe extract --merge` with the same options once every shard is")
        return
    run = runner.merge if merge else functools.partial(runner.extract, refresh=refresh)
    features = run(chosen, config, chunk_rows=chunk_rows)
    for split, array in features.arrays.items():
        state = "extracted" if split in features.computed else "cached"
        # The precision beside the name, not in it (the name is the same on every machine): "(bf16)", none for fp32.
        precision = features.meta.get("precision", PRECISION)
        named = features.meta["representation"] + (f" ({precision})" if precision != PRECISION else "")
        console.print(f"{named} {split}: {array.shape[0]} x {array.shape[1]} ({state})")


@command
def probe(
    task: Annotated[
        Optional[list[str]],
        typer.Option(help="Task to probe: a name (see `clipprobe tasks`) or a task file (.toml). Repeat for several."),
    ] = None,
    model: ModelsOpt = None,
    models_file: ModelsFileOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 64,
    precision: PrecisionOpt = Precision.auto,
    seed: SeedOpt = 0,
    results: ResultsOpt = RESULTS_DIR,
    extractor: ExtractorOpt = "open_clip",
    orbit: OrbitOpt = None,
    layer: LayerOpt = "embedding",
    dataset: DatasetOpt = None,
    label: LabelOpt = None,
    image_column: ImageColumnOpt = None,
    name: NameOpt = None,
    allow_outside_root: AllowOutsideRootOpt = False,
    strict: StrictOpt = False,
    baselines: Annotated[
        str,
        typer.Option(
            "--baselines",
            help="Baselines to run beside the probe, comma-separated (see `clipprobe baselines`); "
            "orbit-cnn:GROUP picks the orbit group; 'none' for the probe alone.",
        ),
    ] = "cnn,orbit-cnn,pixels,random",
    budget: Annotated[
        Optional[str],
        typer.Option(
            "--budget",
            help="Override the trained baselines' budget: KEY=VALUE,... e.g. epochs=40,image_size=96. "
            f"Keys: {BUDGET_KEYS}.",
        ),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Re-fit and re-train even when a stored result answers the same run.")
    ] = False,
    probe_kinds: Annotated[
        str,
        typer.Option(
            "--probe",
            help="Probes, comma-separated: `clipprobe probes` lists every registered probe and family with what "
            "it reads (e.g. linear, the default; mlp to tell 'absent' from 'present but not linearly decodable'; "
            "linear-pca:K at a matched width). A probe that reads a layer of its own (every token) reads it "
            "whatever --layer says. Each runs on the model and on the pixels/random baselines that have its layer.",
        ),
    ] = "linear",
    shots: Annotated[
        Optional[str],
        typer.Option(
            "--shots",
            help="Also probe with k training examples per class (stratified, seeded), e.g. 1,2,4,8,16,all; "
            "C still chosen on validation. A k that some class cannot fill is skipped, with the reason in the results.",
        ),
    ] = None,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            help="Repeat with N seeds (--seed, --seed+1, ...): new few-shot samples and initialisations; "
            "the report gives mean and standard deviation.",
        ),
    ] = 1,
    workers: WorkersOpt = None,
    channels_last: ChannelsLastOpt = False,
    resize: ResizeOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check every option and the data (splits, labels), list the rows the run would write, one "
            "line each, and stop: no weights loaded, nothing extracted or trained.",
        ),
    ] = False,
):
    """Fit a linear probe (C chosen on validation, scored once on test) and the baselines; one result file each.

    Examples:
        clipprobe probe --task traffic-light
        clipprobe probe --task pedestrian --baselines none
        clipprobe probe --task traffic-light --shots 1,2,4,8,16,all --seeds 5 --probe linear,mlp
        clipprobe probe --task my_task.toml --baselines cnn --budget epochs=40,augment=none
        clipprobe probe --task traffic-light --models models.txt --model ViT-B-32@openai --baselines none
        clipprobe probe --dataset imagefolder:photos --strict
    """
    from .. import runner

    library()
    configs = model_configs(
        model,
        models_file,
        pretrained,
        device=device,
        batch_size=batch_size,
        precision=precision,
        seed=seed,
        extractor=extractor,
        orbit=orbit,
        layer=layer,
        workers=workers,
        channels_last=channels_last,
        resize=resize,
    )
    # Every task, baseline, budget, probe and shot is checked here, so a typo in the last one fails before any work.
    tasks: Sequence[str | None] = task or [None]
    plan = runner.RunPlan.build(
        [choose_task(t, dataset, label, image_column, True, name, allow_outside_root) for t in tasks],
        configs,
        probes=probe_kinds,
        baselines=baselines,
        budget=budget,
        shots=shots,
        seeds=seeds,
        results_dir=results,
        refresh=refresh,
        strict=strict,
    )
    if dry_run:
        for line in plan.check_data():
            console.print(line, markup=False, highlight=False)
        lines = plan.outline()
        for line in lines:
            console.print(line, markup=False, highlight=False)
        console.print(f"{len(lines)} rows planned; nothing run (--dry-run).", markup=False, highlight=False)
        return
    outcomes = runner.run(plan, on_result=functools.partial(print_outcome, show_seed=seeds > 1))
    print_answers([record for record, _ in outcomes])


def print_answers(records: Sequence[Result]) -> None:
    """After a run, each task's one-line answers from this run's rows (clipprobe.report.answers), and how they were
    made; `clipprobe report` gives the same for every stored row."""
    from ..report.answers import task_answers
    from ..report.terminal import answer_text

    for task in dict.fromkeys(record.task for record in records):
        found = task_answers(records, task)
        if any(answer.comparisons for answer in found):
            console.print(f"\n{task}:", markup=False, highlight=False)
            for text in answer_text(found):
                console.print(text)


def print_outcome(record, path: Path, show_seed: bool = False) -> None:
    """One line per result as it is written (a skipped few-shot run on stderr, with its reason)."""
    reused = " (stored result reused)" if record.reused else ""
    shots = f" | {record.shots}-shot" if record.shots is not None else ""
    seed = f" | seed {record.seed}" if show_seed else ""
    precision = f" | {record.precision}" if record.precision is not None else ""
    where = f"{record.task} | {record.representation} | {record.method}{shots}{precision}{seed}"
    if record.skipped is not None:
        err_console.print(f"Skipped: {where}: {record.skipped} -> {path}{reused}", markup=False, highlight=False)
        return
    if record.incomplete is not None:
        where += f" | {record.incomplete.note()}"
    selection = record.selection
    metrics = record.metrics
    assert selection is not None and metrics is not None  # a record that is not skipped has both
    if selection.chosen is None:
        chosen = "nothing chosen"
    elif selection.parameter == "epoch":
        chosen = f"epoch {selection.chosen}"
    else:
        chosen = f"{selection.parameter} {selection.chosen:.3g}"
    low_high = metrics.intervals.get("balanced_accuracy")
    interval = f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else ""
    console.print(
        f"{where} | balanced accuracy {metrics.balanced_accuracy:.3f}"
        f"{interval} | accuracy {metrics.accuracy:.3f} | {chosen} -> {path}{reused}"
    )
    if selection.at_grid_edge:
        if selection.parameter == "epoch":
            edge = "is the last epoch of the budget; more epochs may do better"
        else:
            swept = f" ({selection.grid[0]:.3g} to {selection.grid[-1]:.3g})" if selection.grid else ""
            edge = f"is at the edge of the grid swept{swept}; the best value may lie outside it"
        err_console.print(f"Warning: {where}: the chosen {selection.parameter} {edge}.", markup=False, highlight=False)


@command
def probes():
    """List the probes `clipprobe probe --probe` can fit on frozen features.

    Example:
        clipprobe probes
    """
    from ..probes.registry import DEFAULT_PROBES, PROBE_FAMILIES, PROBES

    library()
    # The defaults first, then the others as registered.
    for name, probe in sorted(PROBES.items(), key=lambda item: item[0] not in DEFAULT_PROBES):
        default = " (default)" if name in DEFAULT_PROBES else ""
        reads = f" [reads the {probe.layer} layer, whatever --layer says]" if probe.layer is not None else ""
        console.print(f"{name}{default}: {probe.description}{reads}", markup=False, highlight=False)
    for _, family in PROBE_FAMILIES.items():
        console.print(f"{family.usage}: {family.description}", markup=False, highlight=False)


@command
def baselines():
    """List the baselines `clipprobe probe --baselines` can run beside the probe.

    Example:
        clipprobe baselines
    """
    from ..baselines.registry import DEFAULT_BASELINES, get_baseline, list_baselines

    library()
    for name in list_baselines():
        baseline = get_baseline(name)
        default = " (default)" if name in DEFAULT_BASELINES else ""
        console.print(f"{name}{default}: {baseline.description}")


@command
def report(
    results: ResultsOpt = RESULTS_DIR,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for report.md, report.html, results.json and results.csv.")
    ] = REPORTS_DIR,
    fail_under: Annotated[
        Optional[list[str]],
        typer.Option(
            "--fail-under",
            metavar="TASK:REPRESENTATION:METRIC=VALUE",
            help="CI gate, repeatable: exit 1 when a matched entry's METRIC (accuracy, balanced_accuracy, "
            "macro_f1) is below VALUE. TASK and REPRESENTATION (as printed) may hold * wildcards; a wildcard "
            "in REPRESENTATION matches the model rows only, a control is gated when named. A name matches its "
            "rows in every precision; end it in one, e.g. 'ViT-B-32/openai (bf16)', to gate that precision's "
            "rows only.",
        ),
    ] = None,
    reference: Annotated[
        Optional[Path],
        typer.Option(
            "--compare",
            metavar="REFERENCE.json",
            help="CI gate: a results.json from an earlier report; exit 1 when an entry's balanced accuracy "
            "regressed, an entry of the reference is missing, or nothing matched. Entries match by name; one "
            "computed in another precision than the reference's (--precision auto on another machine) is "
            "compared all the same, with a note.",
        ),
    ] = None,
    max_drop: Annotated[
        Optional[float],
        typer.Option(
            "--max-drop",
            help="With --compare: an entry regressed when the top of its balanced-accuracy interval "
            "is more than this below the reference's value (default 0.02).",
        ),
    ] = None,
):
    """Merge result files into one table: terminal, Markdown (CI job summary), HTML with plots, JSON and CSV.

    Every headline number shows its 95 % bootstrap interval. --fail-under and --compare make it a CI gate.

    Exit codes:
    - 0: the report is written and every gate passed.
    - 1: a floor failed, an entry regressed or is missing, or the reference matched nothing (one line each on
      stderr; the report is still written), or unreadable results.
    - 2: bad input: a malformed or unmatched --fail-under, a missing or invalid --compare file.

    Examples:
        clipprobe report
        clipprobe report --results results --out reports
        clipprobe report --compare reference/results.json --max-drop 0.02 --fail-under 'traffic-light:*:balanced_accuracy=0.3'
    """
    from ..report.build import build_report
    from ..report.gate import Gate

    library()
    gate = Gate.from_options(fail_under, reference, max_drop)  # bad input stops here, before anything is read
    built = build_report(results, out, gate=gate)  # the gate's outcome is in report.md and report.html
    for table in built.tables():
        console.print(table)
    *first, last = (str(path) for path in built.files.values())
    console.print(f"Wrote {', '.join(first)} and {last}")
    if built.gate is not None:
        for note in built.gate.notes:
            console.print(note, highlight=False, markup=False)
        for failure in built.gate.failures:
            err_console.print(failure, highlight=False, markup=False)
        checks = "; ".join(f"{what}: {entries} entries, {outcome}" for what, entries, outcome in built.gate.checks())
        line = f"CI gate: {built.gate.summary()} ({checks})"
        (console if built.gate.passed else err_console).print(line, highlight=False, markup=False)
        if not built.gate.passed:
            raise typer.Exit(1)


@command
def groups():
    """List the groups that orbit averaging uses (`--orbit GROUP`, `--baselines orbit-cnn:GROUP`).

    Example:
        clipprobe groups
    """
    from ..features.orbits import GROUP_FACTORS

    for name, factor in GROUP_FACTORS.items():
        console.print(f"{name}: {(factor.__doc__ or '').strip()}")
    console.print("Join factors with '+' for their product, e.g. translate:4+hflip.")
