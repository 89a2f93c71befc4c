"""Adding a probe kind is one file and one registration. A probe written here, outside the package, that reads
every token (the largest value of each channel over the positions, then the linear probe), registered in PROBES and
nowhere else, is listed by `clipprobe probes`, runs through `clipprobe probe` beside a built-in probe on its own
layer, and is named in the stored record and in the report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
from typer.testing import CliRunner

from clipprobe.cli import app
from clipprobe.features.config import ALL_TOKENS
from clipprobe.probes.linear import DEFAULT_C_GRID, fit_probe
from clipprobe.probes.registry import PROBES, Probe
from clipprobe.probes.select import Predictor, ProbeFit


def _max_pooled(tokens: np.ndarray) -> np.ndarray:
    return np.asarray(tokens, dtype=np.float32).max(axis=1)


@dataclass
class MaxTokenModel:
    linear: Predictor

    def predict(self, tokens: np.ndarray) -> np.ndarray:
        return self.linear.predict(_max_pooled(tokens))


def fit_max_token_probe(train_x, train_y, val_x, val_y, grid=DEFAULT_C_GRID, seed=0) -> ProbeFit:
    fit = fit_probe(_max_pooled(train_x), train_y, _max_pooled(val_x), val_y, grid, seed=seed)
    fit.model = MaxTokenModel(fit.model)
    return fit


@pytest.fixture
def max_token_probe():
    PROBES.register(
        "max-token",
        Probe(
            name="max-token",
            method="max-token-probe",
            description="Each channel's largest value over every token, then the linear probe",
            parameter="C",
            grid=DEFAULT_C_GRID,
            fit=fit_max_token_probe,
            layer=ALL_TOKENS,
        ),
    )
    yield
    PROBES.unregister("max-token")


@pytest.mark.slow
def test_a_probe_registered_outside_the_package_runs_end_to_end(max_token_probe, tiny_model, tiny_tasks, tmp_path):
    cli = CliRunner()
    listed = cli.invoke(app, ["probes"]).output
    assert re.search(
        r"^max-token: Each channel's largest value over every token, then the linear probe "
        r"\[reads the all-tokens layer, whatever --layer says\]$",
        listed,
        re.M,
    )
    results, report = tmp_path / "results", tmp_path / "report"
    run = cli.invoke(
        app,
        ["probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random"]
        + ["--probe", "linear,max-token", "--baselines", "none", "--results", str(results)],
    )
    assert run.exit_code == 0, run.output
    rows = re.findall(r"^tiny-light \| (.+?) \| (\S+) \| balanced accuracy \d\.\d{3} \[", run.output, re.M)
    assert rows == [("tiny-clip/random", "linear-probe"), ("tiny-clip/random [all-tokens]", "max-token-probe")]
    (stored,) = [json.loads(p.read_text()) for p in results.rglob("*max-token-probe*.json")]
    assert stored["method"] == "max-token-probe" and stored["selection"]["parameter"] == "C"
    assert stored["features"]["dim"] == 16 * 32  # every token of tiny-clip: 16 positions of 32 numbers
    shown = cli.invoke(app, ["report", "--results", str(results), "--out", str(report)])
    assert shown.exit_code == 0, shown.output
    assert "max-token-probe" in (report / "report.md").read_text()
