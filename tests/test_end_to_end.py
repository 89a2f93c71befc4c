"""The README's quick start on the real defaults: mini-clip trained on first use, full dashcam world."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipprobe.cli import app

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
    assert "mini-clip/dashcam-salient train: 2000 x 128 (extracted)" in result.output

    again = runner.invoke(app, ["extract"])
    assert again.exit_code == 0
    assert again.output.count("(cached)") == 3

    for task in ("traffic-light", "pedestrian"):
        result = runner.invoke(app, ["probe", "--task", task])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    rows = json.loads(Path("reports/results.json").read_text())["rows"]
    assert {(r["task"], r["row"]) for r in rows} == {
        ("traffic-light", "mini-clip/dashcam-salient"),
        ("pedestrian", "mini-clip/dashcam-salient"),
    }
    assert all(0 <= r["balanced_accuracy"] <= 1 for r in rows)
    assert Path("reports/report.md").read_text().startswith("## clipprobe results")
