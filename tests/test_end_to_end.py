"""The README's quick start on the real defaults: mini-clip trained on first use, full dashcam world."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipprobe.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def default_home(tmp_path_factory):
    """One cache home for the module, so the default model is pretrained once."""
    return tmp_path_factory.mktemp("default-home")


@pytest.mark.slow
def test_quick_start_extract_probe_report(default_home, monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPPROBE_HOME", str(default_home))
    # Renders the world and pretrains the default model: the slow part of the suite (timed in benchmarks/).
    result = runner.invoke(app, ["extract"])
    assert result.exit_code == 0, result.output
    assert "mini-clip/dashcam-salient train: 1000 x 128 (extracted)" in result.output

    again = runner.invoke(app, ["extract"])
    assert again.exit_code == 0
    assert again.output.count("(cached)") == 3

    # The acceptance command, with every default baseline; one epoch each keeps the suite in budget.
    result = runner.invoke(app, ["probe", "--task", "traffic-light", "--budget", "epochs=1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["probe", "--task", "pedestrian", "--baselines", "none"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    rows = json.loads(Path("reports/results.json").read_text())["entries"]
    assert {(r["task"], r["representation"], r["method"]) for r in rows} == {
        ("traffic-light", "mini-clip/dashcam-salient", "linear-probe"),
        ("traffic-light", "cnn/from-scratch[epochs=1]", "supervised-cnn"),  # a budget of its own, in its name
        ("traffic-light", "orbit-cnn/translate:4+hflip[epochs=1]", "orbit-cnn"),
        ("traffic-light", "pixels/32px", "linear-probe"),
        ("traffic-light", "mini-clip/random", "linear-probe"),
        ("pedestrian", "mini-clip/dashcam-salient", "linear-probe"),
    }
    assert all(
        0 <= r["balanced_accuracy"] <= 1 and r["n_test"] == (853 if r["task"] == "traffic-light" else 1000)
        for r in rows
    )
    markdown = Path("reports/report.md").read_text()
    assert (
        markdown.startswith("## clipprobe results") and "### traffic-light" in markdown and "### pedestrian" in markdown
    )


@pytest.mark.slow
def test_curation_experiment_from_the_command_line_then_again_from_the_cache(default_home, monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPPROBE_HOME", str(default_home))
    args = [
        "experiment",
        "curation",
        "--policies",
        "salient",
        "--tasks",
        "traffic-light,pedestrian-side",
        "--baselines",
        "random",
        "--attributes",
        "traffic-light",
        "--pairs",
        "20",
        "--layers",
        "embedding",
        "--seeds",
        "1",
        "--mlp-tasks",
        "none",
        "--attentive-tasks",
        "none",
        "--suite-tasks",
        "none",
    ]
    # The salient model is the default weights, trained by the test above when it ran first; otherwise here.
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Curation experiment: salient" in result.output
    path = Path("results/experiments/curation__salient__seed0.json")
    record = json.loads(path.read_text())
    assert [(r["representation"], r["method"]) for r in record["rows"]] == [
        ("mini-clip/dashcam-salient", "linear-probe"),
        ("mini-clip/dashcam-salient", "zero-shot"),
        ("mini-clip/random", "linear-probe"),
    ]  # the matched PCA probe reads the layers wider than the embedding only
    assert [r["kind"] for r in record["rows"]] == ["probe", "zero-shot", "control"]
    assert record["rows"][0]["sensitivity"]["traffic-light"]["score"] is not None

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("(stored result reused)") == 6
    assert "Pretraining" not in again.output and "Extracting" not in again.output

    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "### Curation experiment: salient" in Path("reports/report.md").read_text()
