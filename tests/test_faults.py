"""Faults and hostile input through the command line, one parametrised case per kind of failure.

Every case starts from a finished run (a probe result and its cached features), does something hostile, and
checks three things: the exit code (2 bad input, 1 a fault), the one-line message, and that every file the
earlier run wrote is still there, byte for byte. The concurrency test runs two real processes side by side."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from clipprobe.cli.app import app

runner = CliRunner()
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60)}


def png(colour, size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def photos(root: Path, per_class: int = 10) -> Path:
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i:02d}.png").write_bytes(png(tuple(max(0, c - 3 * i) for c in colour)))
    return root


def probe_args(*extra: str, model: str = "tiny-clip", pretrained: str = "random", data: str = "imagefolder:photos"):
    return ["probe", "--dataset", data, "--model", model, "--pretrained", pretrained, "--baselines", "none", *extra]


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under `folders` (lock files aside: they are how runs wait for each other)."""
    files = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.parent.name != "locks":
                files[str(path)] = path.read_bytes()
    return files


@pytest.fixture
def earlier(tiny_model, home):
    """A finished run: photos/, a stored probe result, cached features."""
    photos(Path("photos"))
    result = runner.invoke(app, probe_args())
    assert result.exit_code == 0, result.output
    assert list(Path("results").glob("*/*.json")) and list(home.glob("features/*/*.npy"))


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@dataclass
class Case:
    """`setup(tmp_path, monkeypatch)` prepares the hostile situation and returns the command's arguments."""

    id: str
    setup: Callable[..., list[str]]
    exit_code: int
    message: str  # a regular expression the one-line error must match


# --- lost results: one task name, two data sets ----------------------------------------------------------------


def other_photos_same_name(tmp_path, monkeypatch):
    photos(Path("elsewhere/photos"), per_class=8)
    return probe_args(data="imagefolder:elsewhere/photos")


def parquet_same_name(tmp_path, monkeypatch):
    table = pa.table(
        {
            "image": [{"bytes": png(c), "path": None} for c in [COLOURS["red"], COLOURS["green"]] * 6],
            "label": ["red", "green"] * 6,
        }
    )
    pq.write_table(table, "photos.parquet")
    return probe_args(data="parquet:photos.parquet")


# --- checks bypassed by what is stored -------------------------------------------------------------------------


def strict_after_lenient(tmp_path, monkeypatch):
    Path("photos/red/99.png").write_bytes(b"\x89PNG broken")  # a lenient run skips it and stores a result
    assert runner.invoke(app, probe_args()).exit_code == 0
    return probe_args("--strict")


# --- checkpoints that are not what they claim ------------------------------------------------------------------


def empty_checkpoint(tmp_path, monkeypatch):
    Path("empty.pt").write_bytes(b"")
    return probe_args(pretrained="empty.pt")


def text_checkpoint(tmp_path, monkeypatch):
    Path("notes.bin").write_text("these are not weights\n")
    return probe_args(pretrained="notes.bin")


def folder_without_weights(tmp_path, monkeypatch):
    Path("weights").mkdir()
    (Path("weights") / "README.md").write_text("nothing here")
    return probe_args(pretrained="weights")


def other_architecture(tmp_path, monkeypatch):
    import open_clip

    torch.save(open_clip.create_model("tiny-clip").state_dict(), "tiny.pt")
    return probe_args(model="mini-clip", pretrained="tiny.pt")


def truncated_checkpoint(tmp_path, monkeypatch):
    import open_clip

    torch.save(open_clip.create_model("tiny-clip").state_dict(), "tiny.pt")
    Path("cut.pt").write_bytes(Path("tiny.pt").read_bytes()[:5000])
    return probe_args(pretrained="cut.pt")


# --- the machine: a full disk, a read-only folder --------------------------------------------------------------


def disk_full(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError("4096 requested and 0 written")  # what numpy says when the disk fills mid-write

    monkeypatch.setattr(np, "save", full)
    return probe_args("--layer", "tokens")  # new features to write


def read_only_results(tmp_path, monkeypatch):
    real = os.replace

    def refuse(src, dst, *args, **kwargs):
        if "results" in str(dst):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse)
    return probe_args("--seed", "3")  # a new result to write


# --- manifests, labels, numbers --------------------------------------------------------------------------------


def manifest_outside_its_folder(tmp_path, monkeypatch):
    Path("data").mkdir()
    lines = ["path,label"] + [f"../photos/{c}/{i:02d}.png,{c}" for c in COLOURS for i in range(10)]
    Path("data/labels.csv").write_text("\n".join(lines) + "\n")
    return probe_args(data="csv:data/labels.csv")


def manifest_with_absolute_path(tmp_path, monkeypatch):
    lines = ["path,label"] + [f"{c}/{i:02d}.png,{c}" for c in COLOURS for i in range(10)]
    Path("outside.png").write_bytes(png(COLOURS["red"]))
    lines[1] = f"{Path('outside.png').resolve()},red"
    Path("photos/labels.csv").write_text("\n".join(lines) + "\n")
    return probe_args(data="csv:photos/labels.csv")


def nan_label_in_parquet(tmp_path, monkeypatch):
    labels = ["red", "green"] * 6
    labels[4] = None
    table = pa.table({"image": [{"bytes": png((9 * i, 9, 9)), "path": None} for i in range(12)], "label": labels})
    pq.write_table(table, "labelled.parquet")
    return probe_args(data="parquet:labelled.parquet")


def label_for_a_folder(tmp_path, monkeypatch):
    return probe_args("--label", "colour")


def empty_name(tmp_path, monkeypatch):
    return probe_args("--name", " ")


def split_mapped_twice(split: str) -> Callable[..., list[str]]:
    def setup(tmp_path, monkeypatch):
        for part in ("train", "test"):
            photos(Path("split") / part, per_class=4)
        Path("leak.toml").write_text(f'source = "imagefolder:split"\n[splits]\n{split} = "train"\n')
        return ["probe", "--task", "leak.toml", "--model", "tiny-clip", "--pretrained", "random", "--baselines", "none"]

    return setup


def class_without_images(tmp_path, monkeypatch):
    Path("three.toml").write_text('source = "imagefolder:photos"\nclasses = ["red", "green", "blue"]\n')
    return ["probe", "--task", "three.toml", "--model", "tiny-clip", "--pretrained", "random", "--baselines", "none"]


def numbers_here_names_there(tmp_path, monkeypatch):
    lines = ["path,label,split"]
    lines += [f"{c}/{i:02d}.png,{k},train" for k, c in enumerate(COLOURS) for i in range(8)]
    lines += [f"{c}/{i:02d}.png,{c},test" for c in COLOURS for i in range(8, 10)]
    Path("photos/labels.csv").write_text("\n".join(lines) + "\n")
    return probe_args(data="csv:photos/labels.csv")


def two_label_columns(tmp_path, monkeypatch):
    lines = ["path,label,label"] + [f"{c}/{i:02d}.png,{c},other" for c in COLOURS for i in range(10)]
    Path("photos/labels.csv").write_text("\n".join(lines) + "\n")
    return probe_args(data="csv:photos/labels.csv")


def rows_repeat_train(tmp_path, monkeypatch):
    write_leaky_manifest()
    return probe_args(data="csv:photos/leak.csv")


def write_leaky_manifest() -> None:
    """Train, validation and test rows from the same files: the test split repeats 4 training images."""
    lines = ["path,label,split"]
    lines += [f"{c}/{i:02d}.png,{c},train" for c in COLOURS for i in range(8)]
    lines += [f"{c}/{i:02d}.png,{c},validation" for c in COLOURS for i in range(8, 10)]
    lines += [f"{c}/{i:02d}.png,{c},test" for c in COLOURS for i in range(2)]
    Path("photos/leak.csv").write_text("\n".join(lines) + "\n")


def named(name: str) -> Callable[..., list[str]]:
    return lambda tmp_path, monkeypatch: probe_args("--name", name)


CASES = [
    Case(
        "same-name-other-folder",
        other_photos_same_name,
        2,
        r"^Error: results/photos holds results of imagefolder:/.*/photos, but this run's task 'photos' reads "
        r"imagefolder:/.*/elsewhere/photos: two data sets under one task name would overwrite each other\. Name "
        r"this one with --name NAME",
    ),
    Case("same-name-parquet", parquet_same_name, 2, r"^Error: results/photos holds results of imagefolder:.* --name"),
    Case(
        "strict-after-lenient", strict_after_lenient, 1, r"^Error: Unreadable image red/99\.png in imagefolder:photos"
    ),
    Case("empty-checkpoint", empty_checkpoint, 2, r"^Error: Checkpoint empty\.pt is empty \(0 bytes\)"),
    Case("text-checkpoint", text_checkpoint, 2, r"^Error: notes\.bin is not a checkpoint: expected a file written by"),
    Case(
        "folder-without-weights",
        folder_without_weights,
        2,
        r"^Error: No checkpoint \(\*\.safetensors, \*\.bin, \*\.pth, \*\.pt\) in folder weights$",
    ),
    Case(
        "other-architecture",
        other_architecture,
        2,
        r"^Error: Weights tiny\.pt do not load into mini-clip \(.*\): check that --model names the architecture",
    ),
    Case("truncated-checkpoint", truncated_checkpoint, 2, r"^Error: Weights cut\.pt do not load into tiny-clip \("),
    Case("disk-full", disk_full, 1, r"^Error: No space left on the device while writing /.*\.npy: free some space"),
    Case(
        "read-only-results",
        read_only_results,
        1,
        r"^Error: Cannot write results/photos/.*seed3\.json \(Permission denied\): the folder is read-only",
    ),
    Case(
        "manifest-outside",
        manifest_outside_its_folder,
        2,
        r"^Error: data/labels\.csv line 2: image .*photos/red/00\.png lies outside the manifest's folder .*data; "
        r"move it inside, or allow this with --allow-outside-root",
    ),
    Case(
        "manifest-absolute",
        manifest_with_absolute_path,
        2,
        r"^Error: photos/labels\.csv line 2: image /.* lies outside",
    ),
    Case(
        "nan-label-parquet", nan_label_in_parquet, 2, r"has no label in column 'label' \(got .*\); give every image a"
    ),
    Case(
        "label-for-a-folder",
        label_for_a_folder,
        2,
        r"^Error: imagefolder:photos: imagefolder data takes its labels from its class folders' names",
    ),
    Case("empty-name", empty_name, 2, r"^Error: --name must not be empty$"),
    # --- no split leaks: a probe scored on (or tuned on) its own training rows ---------------------------------
    Case(
        "test-is-train",
        split_mapped_twice("test"),
        2,
        r"^Error: imagefolder:split: the probe's train and test splits are both the data's split 'train'; each must be a split",
    ),
    Case(
        "validation-is-train",
        split_mapped_twice("validation"),
        2,
        r"^Error: imagefolder:split: the probe's train and validation splits are both the data's split 'train'",
    ),
    Case(
        "test-rows-repeat-train",
        rows_repeat_train,
        2,
        r"^Error: csv:photos/leak\.csv: 4 images in one split have the content of an image in another \(e\.g\. "
        r"00\.png in test is 00\.png in train\): a probe would be scored on what it trained on\. Remove them, or "
        r"allow this in a task file: allow_duplicates = true$",
    ),
    # --- labels as given ---------------------------------------------------------------------------------------
    Case(
        "class-without-images",
        class_without_images,
        2,
        r"^Error: imagefolder:photos: class 'blue' has no training images; every class needs some\. Classes: red, "
        r"green, blue$",
    ),
    Case(
        "numbers-and-names",
        numbers_here_names_there,
        2,
        r"^Error: csv:photos/labels\.csv: the labels in column 'label' are numbers in the train split and names in "
        r"the test split",
    ),
    Case(
        "two-label-columns",
        two_label_columns,
        2,
        r"^Error: photos/labels\.csv has the column 'label' more than once; give each column one name$",
    ),
    # --- unbounded work, refused before any ------------------------------------------------------------------
    Case(
        "learning-rate-inf",
        lambda tmp_path, monkeypatch: [*probe_args()[:-2], "--baselines", "cnn", "--budget", "learning_rate=inf"],
        2,
        r"^Error: Invalid budget: learning_rate=inf; it must be a number in \(0, 10\]$",
    ),
    Case(
        "orbit-too-large",
        lambda tmp_path, monkeypatch: probe_args("--orbit", "translate:100000"),
        2,
        r"^Error: Group 'translate:N' needs a whole number N from 1 to 32 \(N\*N copies of every image\), got "
        r"'translate:100000'$",
    ),
    # --- names that leave their folder, or share one ---------------------------------------------------------
    Case("name-dotdot", named(".."), 2, r"^Error: Task name '\.\.' is '\.\.', a folder of its own: a task's name is"),
    Case("name-dot", named("."), 2, r"^Error: Task name '\.' is '\.', a folder of its own"),
    Case("name-separator", named("a/../../b"), 2, r"^Error: Task name 'a/\.\./\.\./b' holds a path separator"),
    Case("name-escape", named("x\x1b[31mred"), 2, r"^Error: Task name 'x\\x1b\[31mred' holds a control or escape"),
    Case("name-long", named("n" * 300), 2, r"^Error: Task name 'n+' has 300 characters; at most 100"),
    Case(
        "name-same-folder",
        named("photos?"),
        2,
        r"^Error: Task names 'photos' and 'photos\?' share the results folder results/photos: one would replace",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_fault_is_one_line_with_its_exit_code_and_keeps_what_was_written(case, earlier, tmp_path, home):
    with pytest.MonkeyPatch.context() as patches:  # np.save, os.replace are back before the checks
        args = case.setup(tmp_path, patches)
        before = snapshot(Path("results"), home)
        result = runner.invoke(app, args)
    assert result.exit_code == case.exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(case.message, lines[0]), lines[0]
    after = snapshot(Path("results"), home)
    assert {path: after.get(path) for path in before} == before  # every earlier file intact


def test_a_task_name_keeps_two_data_sets_apart(earlier):
    """The way out the error names: --name puts the other data under its own name, both results stay."""
    photos(Path("elsewhere/photos"), per_class=8)
    result = runner.invoke(app, probe_args("--name", "photos-elsewhere", data="imagefolder:elsewhere/photos"))
    assert result.exit_code == 0, result.output
    assert sorted(p.parent.name for p in Path("results").glob("*/*.json")) == ["photos", "photos-elsewhere"]


def test_class_folders_are_classes_as_named(tiny_model, home):
    """A folder named like a missing-value token is a class (the world's clouds task has a class `none`), and
    `red` and `red ` are two classes, not one."""
    for folder in ("red", "red ", "none"):
        (Path("shades") / folder).mkdir(parents=True)
        for i in range(12):
            shade = {"red": (220, 30, 30), "red ": (120, 10, 10), "none": (250, 250, 250)}[folder]
            (Path("shades") / folder / f"{i:02d}.png").write_bytes(png(tuple(max(0, c - 3 * i) for c in shade)))
    result = runner.invoke(app, probe_args(data="imagefolder:shades"))
    assert result.exit_code == 0, result.output
    (path,) = Path("results/shades").glob("*.json")
    assert json.loads(path.read_text())["classes"] == ["none", "red", "red "]


def test_escape_sequences_and_links_in_names_stay_inert_in_every_output(tiny_model, home):
    """A class folder named with an ANSI escape, and a task named like a Markdown image: the terminal, report.md
    and report.html show them as text, never as an escape sequence or a live link."""
    hostile = {"red\x1b[31m": (220, 30, 30), "green": (30, 200, 60)}
    for folder, colour in hostile.items():
        (Path("odd") / folder).mkdir(parents=True)
        for i in range(10):
            (Path("odd") / folder / f"{i:02d}.png").write_bytes(png(tuple(max(0, c - 3 * i) for c in colour)))
    result = runner.invoke(app, probe_args("--name", "![x](javascript:alert)", data="imagefolder:odd"))
    assert result.exit_code == 0, result.output
    report = runner.invoke(app, ["report"])
    assert report.exit_code == 0, report.output
    markdown = Path("reports/report.md").read_text()
    assert all("\x1b" not in text for text in (result.output, report.output, markdown))
    assert "](" not in markdown and "![x]\\(javascript:alert)" in markdown  # text, not a live image or link
    assert "red\\x1b[31m" in report.output
    assert "\x1b" not in Path("reports/report.html").read_text()


def test_inert_writes_control_characters_as_escapes():
    from clipprobe.core.text import inert

    assert inert("a\x1b]8;;https://x\x07b\r\n\tc") == "a\\x1b]8;;https://x\\x07b\\r\n\tc"
    assert inert("plain [0.1, 0.2] ünïcode") == "plain [0.1, 0.2] ünïcode"


def test_an_automatic_split_is_announced_with_its_sizes(tiny_model, home):
    photos(Path("pool"), per_class=20)
    result = runner.invoke(app, probe_args(data="imagefolder:pool"))
    assert result.exit_code == 0, result.output
    assert (
        "imagefolder:pool has no train, validation and test splits: split by label 70%/10%/20% (seed 0); "
        "images: train 28, validation 4, test 8"
    ) in result.output.splitlines()


def test_a_task_file_may_allow_duplicates_and_every_result_records_them(earlier):
    write_leaky_manifest()
    Path("photos/leak.toml").write_text('source = "csv:leak.csv"\nallow_duplicates = true\n')
    args = ["probe", "--task", "photos/leak.toml", "--model", "tiny-clip", "--pretrained", "random"]
    result = runner.invoke(app, [*args, "--baselines", "none"])
    assert result.exit_code == 0, result.output
    (path,) = Path("results/leak").glob("*.json")
    assert json.loads(path.read_text())["data"]["duplicates"] == 4
    report = runner.invoke(app, ["report"])
    assert report.exit_code == 0, report.output
    note = "4 validation and test images repeat images of another split (allowed by the task file)"
    for text in (report.output, Path("reports/report.md").read_text(), Path("reports/report.html").read_text()):
        assert note in " ".join(text.split()), text


def test_sixteen_bit_images_keep_their_levels_through_a_run(earlier, home):
    """Grey 16-bit PNGs at levels near 5000 and near 60000: raw pixels tell them apart (Pillow's own conversion made
    both white, 0.500), and the earlier run's files stay as they were."""
    for name, level in (("dark", 5000), ("bright", 60000)):
        (Path("deep") / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.full((16, 16), level + 40 * i, dtype=np.uint16)
            Image.fromarray(pixels).save(Path("deep") / name / f"{i:02d}.png")
    before = snapshot(Path("results"), home)
    result = runner.invoke(app, [*probe_args(data="imagefolder:deep")[:-2], "--baselines", "pixels"])
    assert result.exit_code == 0, result.output
    (pixels,) = Path("results/deep").glob("pixels-*.json")
    assert json.loads(pixels.read_text())["metrics"]["balanced_accuracy"] == 1.0
    after = snapshot(Path("results"), home)
    assert {path: after.get(path) for path in before} == before


def test_allow_outside_root_lets_a_manifest_reach_out(earlier):
    manifest_outside_its_folder(None, None)
    result = runner.invoke(app, probe_args("--allow-outside-root", data="csv:data/labels.csv"))
    assert result.exit_code == 0, result.output


def test_a_library_warning_is_one_line(earlier):
    """Pillow warns about a palette image with transparency bytes: one `Warning:` line, no source line."""
    image = Image.new("P", (16, 16))
    image.putpalette([200, 30, 30] * 256)
    image.save("photos/red/palette.png", transparency=b"\x00" * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = runner.invoke(app, probe_args("--seed", "1"))
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if "Palette images" in line]
    assert warning and all(
        line == "Warning: Palette images with Transparency expressed in bytes should be converted to RGBA images "
        "(UserWarning)"
        for line in warning
    ), result.output
    assert "warnings.warn(" not in result.output


# --- concurrency: two real processes of the same thing ---------------------------------------------------------


def _side_by_side(args: list[str], env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    command = [sys.executable, "-m", "clipprobe", *args]
    runs = [
        subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    done = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(command, run.returncode, out, err))
    return done


@pytest.mark.slow
def test_two_concurrent_extracts_and_probes_both_succeed_with_identical_results(tmp_path, home):
    photos(Path("photos"), per_class=24)
    env = {**os.environ, "CLIPPROBE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    data = ["--dataset", "imagefolder:photos", "--model", "mini-clip", "--pretrained", "random"]

    extracts = _side_by_side(["extract", *data, "--chunk-rows", "8"], env, tmp_path)
    assert [run.returncode for run in extracts] == [0, 0], [run.stderr for run in extracts]
    assert not list(home.rglob("*.parts")), "orphan chunk folders"
    entries = sorted(home.glob("features/*/*.npy"))
    assert len(entries) == 3  # train, validation, test: once each

    probes = _side_by_side(["probe", *data, "--baselines", "none"], env, tmp_path)
    assert [run.returncode for run in probes] == [0, 0], [run.stderr for run in probes]
    lines = [run.stdout.replace(" (stored result reused)", "").strip() for run in probes]
    assert lines[0] == lines[1] and "balanced accuracy" in lines[0]
    (stored,) = Path("results/photos").glob("*.json")
    assert json.loads(stored.read_text())["metrics"]["balanced_accuracy"] >= 0
