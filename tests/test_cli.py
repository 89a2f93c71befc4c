"""The command line: exact exit codes and one-line messages, as in sqlite-utils' tests."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer.main
from PIL import Image
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.results import Result

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    assert "Traceback" not in result.output
    return lines[0]


def test_unknown_task_is_a_usage_error():
    result = invoke("probe", "--baselines", "none", "--task", "nope")
    assert result.exit_code == 2
    from clipprobe.data.task import list_tasks

    assert error_line(result) == f"Error: Unknown task 'nope'. Available: {', '.join(list_tasks())}"
    assert "traffic-light" in list_tasks()


def test_unknown_model_is_a_usage_error():
    result = invoke("extract", "--model", "ViT-B32")
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("Error: Unknown model 'ViT-B32'. Did you mean ViT-B-32, ")
    assert line.endswith("open_clip architectures; or give hf-hub:ORG/NAME or local-dir:PATH")
    assert len(line) < 250  # close matches, not every name


def test_unknown_pretrained_tag_lists_the_tags():
    result = invoke("extract", "--model", "mini-clip", "--pretrained", "laion9000")
    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: Unknown pretrained tag 'laion9000' for model 'mini-clip'. "
        "Available: dashcam-descriptive, dashcam-salient, dashcam-POLICY, random, or a checkpoint file"
    )


def test_missing_checkpoint_file():
    result = invoke("extract", "--model", "mini-clip", "--pretrained", "weights/missing.safetensors")
    assert result.exit_code == 2
    assert error_line(result) == "Error: Checkpoint file not found: weights/missing.safetensors"


def test_unavailable_device():
    result = invoke("extract", "--model", "mini-clip", "--pretrained", "random", "--device", "cuda")
    assert result.exit_code == 2
    assert error_line(result) == "Error: Device 'cuda' is not available on this machine. Available: cpu"


def test_invalid_precision_is_rejected_by_the_parser():
    result = invoke("extract", "--precision", "fp8")
    assert result.exit_code == 2
    assert "Invalid value for '--precision'" in result.output
    assert "'fp8' is not one of" in result.output


def test_real_tag_without_network_is_a_run_error(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr("clipprobe.features.weights.hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    result = invoke("extract", "--model", "RN50", "--pretrained", "openai")
    assert result.exit_code == 1
    assert error_line(result).startswith(
        "Error: Cannot download the weights for RN50 'openai': the Hugging Face hub is unreachable and they are "
        "not in the local cache. Download them where there is network and pass --pretrained /path/to/checkpoint"
    )


def test_extract_probe_report_on_a_tiny_task(tiny_model, tiny_tasks):
    result = invoke("extract", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random")
    assert result.exit_code == 0, result.output
    assert "tiny-clip/random train: 60 x 16 (extracted)" in result.output
    again = invoke("extract", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random")
    assert "tiny-clip/random train: 60 x 16 (cached)" in again.output

    for task in ("tiny-light", "tiny-pedestrian"):
        result = invoke("probe", "--baselines", "none", "--task", task, "--model", tiny_model, "--pretrained", "random")
        assert result.exit_code == 0, result.output
        assert re.search(
            rf"^{task} \| tiny-clip/random \| linear-probe \| balanced accuracy \d\.\d{{3}}", result.output, re.M
        )
    record = Result.from_json(
        json.loads(Path("results/tiny-light/tiny-clip-random__linear-probe__seed0.json").read_text())
    )
    assert record.selection.split == "validation"
    assert record.data.sizes == {"train": 60, "validation": 30, "test": 30}

    result = invoke("report")
    assert result.exit_code == 0, result.output
    assert "tiny-light" in result.output and "tiny-pedestrian" in result.output
    markdown = Path("reports/report.md").read_text()
    # One table per task, one row in each.
    assert [line for line in markdown.splitlines() if line.startswith("### ")] == [
        "### tiny-light",
        "### tiny-pedestrian",
    ]
    assert sum(line.startswith("| tiny-clip/random | linear-probe | ") for line in markdown.splitlines()) == 2
    merged = json.loads(Path("reports/results.json").read_text())
    assert {row["task"] for row in merged["entries"]} == {"tiny-light", "tiny-pedestrian"}


def test_corrupted_cache_is_a_run_error_and_refresh_recovers(tiny_model, tiny_tasks, home):
    args = ("extract", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random")
    assert invoke(*args).exit_code == 0
    for array in (home / "features").rglob("*.npy"):
        array.write_bytes(b"not an array")
    result = invoke(*args)
    assert result.exit_code == 1
    assert re.fullmatch(
        r"Error: Corrupted feature cache file \S+\.npy \(its checksum does not match\)\. Re-run with --refresh to recompute it",
        error_line(result),
    )
    assert invoke(*args, "--refresh").exit_code == 0
    assert invoke(*args).exit_code == 0


def test_failed_run_keeps_earlier_results(tiny_model, tiny_tasks):
    assert (
        invoke(
            "probe", "--baselines", "none", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random"
        ).exit_code
        == 0
    )
    path = Path("results/tiny-light/tiny-clip-random__linear-probe__seed0.json")
    before = path.read_bytes()
    result = invoke(
        "probe",
        "--baselines",
        "none",
        "--task",
        "tiny-light",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--device",
        "cuda",
    )
    assert result.exit_code == 2
    assert path.read_bytes() == before
    assert sorted(p.name for p in Path("results").rglob("*") if p.is_file()) == [path.name]


def test_report_without_results():
    result = invoke("report")
    assert result.exit_code == 1
    assert error_line(result) == "Error: No results folder at results: run `clipprobe probe --task TASK` first"


def test_report_with_a_corrupted_result_file(tiny_model, tiny_tasks):
    bad = Path("results/tiny-light/broken.json")
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    result = invoke("report")
    assert result.exit_code == 1
    assert error_line(result).startswith("Error: Result file results/tiny-light/broken.json is not valid JSON")


def test_debug_shows_the_traceback():
    result = invoke("--debug", "probe", "--task", "nope")
    assert result.exit_code == 1
    from clipprobe.core.errors import UsageError

    assert isinstance(result.exception, UsageError)


def test_unexpected_errors_are_one_line_too(monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("clipprobe.report.build.build_report", boom)
    result = invoke("report")
    assert result.exit_code == 1
    assert error_line(result) == "Error: OSError: disk full (run with --debug for the traceback)"


def test_tasks_lists_classes_and_sizes(tiny_tasks, monkeypatch):
    from clipprobe.data import task as tasks_module

    monkeypatch.setattr(tasks_module, "list_tasks", lambda pattern=None: ["tiny-light", "speed-limit"])
    result = runner.invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"tiny-light\s+│\s+│\s+red, amber, green\s+│\s+60\s+│\s+30\s+│\s+30", result.output)
    # A task of the blind-pattern suite says which pattern it tests.
    assert re.search(r"speed-limit\s+│\s+text\s+│\s+30, 50, 70", result.output)


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "clipprobe", "--help"], capture_output=True, text=True, check=True)
    assert "extract" in result.stdout and "probe" in result.stdout and "report" in result.stdout


def test_data_show_writes_a_contact_sheet(tiny_tasks):
    from PIL import Image

    result = invoke("data", "show", "--task", "tiny-light", "--n", "5", "--out", "sheet.png")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("Wrote sheet.png")
    sheet = Image.open("sheet.png")
    assert sheet.width == 4 * 224 and sheet.height > 2 * 224
    assert invoke("data", "show", "--task", "tiny-light", "--n", "0").exit_code == 2


def test_data_pairs_and_bad_attribute(home):
    result = invoke("data", "pairs", "--attribute", "pedestrian", "--n", "4", "--image-size", "32", "--out", "pairs")
    assert result.exit_code == 0, result.output
    import datasets

    assert len(datasets.load_from_disk("pairs")) == 4
    sheet = Image.open("reports/pairs-sheet.png")  # beside the dataset, a sheet a person can look at
    assert sheet.size == (2 * (2 * 224 + 8), 2 * (224 + 2 * 13 + 8))
    pixels = np.asarray(sheet)
    assert (pixels == (255, 0, 0)).all(axis=-1).any()  # the changed region is outlined
    result = invoke("data", "pairs", "--attribute", "weather")
    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: Unknown counterfactual attribute 'weather'. Available: car-colour, car-distance, car-facing, "
        "lane-markings, pedestrian, pedestrian-action, pedestrian-count, pedestrian-side, speed-limit, time-of-day, "
        "traffic-light"
    )


def test_world_options_are_validated_and_named_in_results(tiny_model):
    """The tool's commands reach another dashcam world through the task's name; the dashcam commands take options."""
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light[light_size=0.5]")
    assert result.exit_code == 2
    assert error_line(result) == "Error: light_size expects MIN:MAX fractions of the image, e.g. 0.02:0.05; got '0.5'"
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light[pedestrian_size=0.3:0.1]")
    assert result.exit_code == 2
    assert (
        error_line(result) == "Error: --pedestrian-size needs 0 < MIN <= MAX < 1 (fractions of the image), got 0.3:0.1"
    )
    # Bounded before anything is rendered: a 3000 px world would take hours and gigabytes.
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light[image_size=3000]")
    assert result.exit_code == 2
    assert error_line(result) == "Error: --image-size must be from 16 to 512 pixels, got 3000"
    result = invoke("data", "show", "--task", "traffic-light", "--light-size", "0.5")
    assert result.exit_code == 2
    assert error_line(result) == "Error: --light-size expects MIN:MAX fractions of the image, e.g. 0.02:0.05; got '0.5'"
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light", "--light-size", "0.02:0.04")
    assert result.exit_code == 2 and "No such option: --light-size" in result.output


def test_world_variant_task_name_and_source():
    from clipprobe.dashcam.tasks import DashcamWorld, with_world, world_config
    from clipprobe.data.task import get_task

    variant = with_world(get_task("traffic-light"), world_config(seed=2, light_size=(0.02, 0.04)))
    assert variant.name == "traffic-light[seed=2,light_size=0.02:0.04]"
    assert isinstance(variant.source, DashcamWorld) and variant.source.config.knobs.light_size == (0.02, 0.04)
    assert with_world(get_task("traffic-light"), None) is get_task("traffic-light")


def test_probe_several_tasks_and_a_typo_fails_before_any_work(tiny_model, tiny_tasks):
    args = ("--model", tiny_model, "--pretrained", "random")
    result = invoke("probe", "--baselines", "none", "--task", "tiny-light", "--task", "nope", *args)
    assert result.exit_code == 2
    assert error_line(result).startswith("Error: Unknown task 'nope'. Available: ")
    assert not Path("results").exists()
    result = invoke("probe", "--baselines", "none", "--task", "tiny-light", "--task", "tiny-pedestrian", *args)
    assert result.exit_code == 0, result.output
    assert sorted(p.parent.name for p in Path("results").rglob("*.json")) == ["tiny-light", "tiny-pedestrian"]


@pytest.mark.slow
def test_probe_runs_the_baselines_beside_the_probe_and_reuses_stored_results(tiny_model, tiny_tasks):
    args = (
        "probe",
        "--task",
        "tiny-light",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--baselines",
        "cnn,orbit-cnn:hflip,pixels",
        "--budget",
        "epochs=1,image_size=16,batch_size=16",
    )
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for row, method, chosen in [
        ("tiny-clip/random", "linear-probe", "C"),
        ("cnn/from-scratch[epochs=1,batch_size=16,image_size=16]", "supervised-cnn", "epoch"),
        ("orbit-cnn/hflip[epochs=1,batch_size=16,image_size=16]", "orbit-cnn", "epoch"),
        ("pixels/32px", "linear-probe", "C"),
    ]:
        pattern = rf"^tiny-light \| {re.escape(row)} \| {method} \| balanced accuracy \d\.\d{{3}} \[\d\.\d{{3}}, \d\.\d{{3}}\] \| accuracy \d\.\d{{3}} \| {chosen} \S+ -> results/"
        assert sum(bool(re.match(pattern, line)) for line in lines) == 1, (pattern, result.output)
    assert len(list(Path("results/tiny-light").glob("*.json"))) == 4

    again = invoke(*args)
    assert again.exit_code == 0
    assert sum(line.endswith("(stored result reused)") for line in again.output.splitlines()) == 4

    report = invoke("report")
    assert report.exit_code == 0
    assert "orbit-cnn/hflip" in report.output and "pixels/32px" in report.output


def test_bad_baselines_and_budgets_fail_before_any_work(tiny_model, tiny_tasks):
    args = ("probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random")
    result = invoke(*args, "--baselines", "cnn,resnet")
    assert result.exit_code == 2
    assert (
        error_line(result) == "Error: Unknown baseline 'resnet'. Available: cnn, orbit-cnn, pixels, random, zero-shot"
    )
    result = invoke(*args, "--budget", "epochs=0")
    assert result.exit_code == 2
    assert error_line(result) == "Error: Invalid budget: epochs=0; it must be a whole number from 1 to 10000"
    result = invoke(*args, "--baselines", "orbit-cnn:translate:3", "--budget", "image_size=16")
    assert result.exit_code == 2
    assert error_line(result) == "Error: Group translate:3 needs an image size divisible by 3, got 16x16"
    assert not Path("results").exists()


def test_the_cli_default_baselines_are_the_library_defaults():
    import inspect

    from clipprobe.baselines.registry import DEFAULT_BASELINES
    from clipprobe.cli import tool

    assert inspect.signature(tool.probe).parameters["baselines"].default == ",".join(DEFAULT_BASELINES)


def test_row_names_with_brackets_print_verbatim(tiny_model, tiny_tasks):
    """Rich would swallow '[orbit:hflip]' as a markup tag; rows must print as they are named."""
    result = invoke(
        "probe",
        "--baselines",
        "none",
        "--task",
        "tiny-light",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--orbit",
        "hflip",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"^tiny-light \| tiny-clip/random \[orbit:hflip\] \| linear-probe \| ", result.output, re.M), (
        result.output
    )
    report = invoke("report")
    assert "tiny-clip/random [orbit:hflip]" in report.output


def test_two_budgets_of_one_baseline_keep_two_results_named_apart(tiny_model, tiny_tasks):
    """A CNN at one budget, then at another: both result files stay, and the report shows both rows by name."""
    for epochs in (2, 3):
        budget = f"epochs={epochs},image_size=16,batch_size=16"
        args = f"probe --task tiny-light --model {tiny_model} --pretrained random --baselines cnn --budget {budget}"
        result = invoke(*args.split())
        assert result.exit_code == 0, result.output
    files = sorted(p.name for p in Path("results/tiny-light").glob("cnn-*.json"))
    assert files == [
        "cnn-from-scratch-epochs-2-batch_size-16-image_size-16__supervised-cnn__seed0.json",
        "cnn-from-scratch-epochs-3-batch_size-16-image_size-16__supervised-cnn__seed0.json",
    ]
    assert invoke("report").exit_code == 0
    markdown = Path("reports/report.md").read_text()
    for epochs in (2, 3):
        assert f"| cnn/from-scratch[epochs={epochs},batch_size=16,image_size=16] |" in markdown


def test_a_time_limited_run_is_marked_incomplete_everywhere_and_the_gate_refuses_it(tiny_model, tiny_tasks):
    budget = "epochs=50,image_size=16,batch_size=16,max_seconds=0.001"
    result = invoke(
        "probe",
        "--task",
        "tiny-light",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--baselines",
        "cnn",
        "--budget",
        budget,
    )
    assert result.exit_code == 0, result.output
    note = "INCOMPLETE: 1 of 50 epochs (max_seconds=0.001 would have passed during epoch 2)"
    CNN_50 = "cnn/from-scratch[epochs=50,batch_size=16,image_size=16]"  # noqa: N806  (its budget, in its name)
    assert re.search(
        rf"^tiny-light \| {re.escape(CNN_50)} \| supervised-cnn \| {re.escape(note)} \| balanced", result.output, re.M
    )
    report = invoke("report", "--fail-under", f"tiny-light:{CNN_50}:balanced_accuracy=0")
    assert report.exit_code == 1
    assert "[INCOMPLETE: 1 of 50 epochs" in report.stdout  # the terminal table (the note wraps in its cell)
    assert f"{CNN_50} [{note}]" in Path("reports/report.md").read_text()
    assert f"{CNN_50} [{note}]" in Path("reports/report.html").read_text()
    (line,) = [r for r in csv.DictReader(open("reports/results.csv", newline="")) if r["method"] == "supervised-cnn"]
    assert line["incomplete"] == note
    (entry,) = [
        e for e in json.loads(Path("reports/results.json").read_text())["entries"] if e["method"] == "supervised-cnn"
    ]
    assert entry["incomplete"] == note
    assert report.stderr.strip().splitlines() == [
        f"Incomplete: tiny-light | {CNN_50} | supervised-cnn | seed 0: {note}; an incomplete result cannot pass "
        f"the gate (--fail-under tiny-light:{CNN_50}:balanced_accuracy=0)",
        f"CI gate: FAILED (1 problem) (--fail-under tiny-light:{CNN_50}:balanced_accuracy=0: 1 entries, 1 below "
        "the floor)",
    ]


def _commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("path", list(_commands(typer.main.get_command(app))), ids=" ".join)
def test_help_reads_whole_at_80_columns(path, monkeypatch):
    """Every option's help complete at 80 columns: no value or default cut with an ellipsis, no Python types."""
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0
    assert "…" not in result.output, result.output
    assert not re.search(r"<(bool|str|int|float|path|list\[str\])>", result.output), result.output
    # An example longer than the terminal runs on whole rather than wrapping (tests/test_help.py).
    before_examples = result.output.partition("\n Example")[0]
    assert all(len(line) <= 80 for line in before_examples.splitlines())


def test_help_groups_the_options_of_probe_in_panels():
    result = runner.invoke(app, ["probe", "--help"], terminal_width=80)
    titles = re.findall(r"╭─ (\w+) ─", result.output)
    assert titles == ["Options", "Data", "Model", "Probe", "Baselines", "Output", "Execution"]


def test_version():
    from clipprobe import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"clipprobe {__version__}\n"


@pytest.mark.slow
def test_several_models_in_one_run_give_one_row_each(tiny_towers, tiny_tasks, tmp_path):
    """`--models FILE` (CLIP_benchmark's format) and repeated `--model MODEL@PRETRAINED`: one row per model."""
    tiny_model = tiny_towers["vit"]
    (tmp_path / "models.txt").write_text(f"# models\n{tiny_towers['resnet']},random\n\n")
    result = runner.invoke(
        app,
        ["probe", "--task", "tiny-light", "--models", "models.txt", "--model", "pixels@none", "--baselines", "pixels"],
    )
    assert result.exit_code == 2
    assert error_line(result).startswith("Error: Unknown model 'pixels'.")  # every model checked before any work
    assert not Path("results").exists()
    result = runner.invoke(
        app,
        ["probe", "--task", "tiny-light", "--models", "models.txt", "--model", f"{tiny_model}@random", "--seeds", "1"]
        + ["--baselines", "pixels", "--layer", "tokens", "--precision", "fp32"],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in Path("results/tiny-light").glob("*.json"))
    # one row per model and one per model with random weights (here the same), pixels once: it has no model
    assert names == [
        "pixels-32px__linear-probe__seed0.json",
        "tiny-clip-random-tokens__linear-probe__seed0.json",
        "tiny-resnet-random-tokens__linear-probe__seed0.json",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ViT-B-32,openai,extra\n", "models.txt line 1: expected MODEL,PRETRAINED (e.g. ViT-B-32,openai), got"),
        ("# nothing\n\n", "Models file models.txt lists no model (one MODEL,PRETRAINED per line)"),
    ],
)
def test_a_bad_models_file_is_a_usage_error(text, message, tmp_path):
    (tmp_path / "models.txt").write_text(text)
    result = runner.invoke(app, ["probe", "--task", "traffic-light", "--models", "models.txt", "--baselines", "none"])
    assert result.exit_code == 2
    assert error_line(result).startswith(f"Error: {message}")


def test_weights_given_twice_is_a_usage_error():
    result = runner.invoke(app, ["extract", "--model", "ViT-B-32@openai", "--pretrained", "openai"])
    assert result.exit_code == 2
    assert error_line(result) == "Error: Give the weights once: --model ViT-B-32@openai or --pretrained"


def test_a_model_listed_many_times_runs_once_with_a_note(tmp_path):
    from clipprobe.cli.options import model_configs

    (tmp_path / "models.txt").write_text("mini-clip,random\n" * 10_000)
    with pytest.warns(UserWarning, match=r"^Models listed more than once run once: mini-clip@random \(10001 times\)$"):
        configs = model_configs(["mini-clip@random"], tmp_path / "models.txt", None)
    assert [(c.model, c.pretrained) for c in configs] == [("mini-clip", "random")]
