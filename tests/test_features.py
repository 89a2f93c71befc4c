import numpy as np
import pytest

from clipprobe import runner
from clipprobe.core.errors import RunError, UsageError
from clipprobe.data.readers import DataSource
from clipprobe.features.cache import FeatureCache
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.extractors import OpenClipExtractor


@pytest.fixture
def config(tiny_model):
    return ExtractorConfig(model=tiny_model, pretrained="random", batch_size=16)


def _forbid_forward(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(OpenClipExtractor, "encode", fail)
    monkeypatch.setattr("clipprobe.features.weights.create_model", fail)


def test_extract_caches_every_split_and_second_run_does_no_forward_pass(config, tiny_world, monkeypatch):
    first = extract_features(tiny_world, config)
    assert first.computed == ["train", "validation", "test"]
    assert {k: v.shape for k, v in first.arrays.items()} == {
        "train": (60, 16),
        "validation": (30, 16),
        "test": (30, 16),
    }
    _forbid_forward(monkeypatch)
    second = extract_features(tiny_world, config)
    assert second.computed == []
    for split in first.arrays:
        np.testing.assert_array_equal(first.arrays[split], second.arrays[split])


def test_changed_inputs_never_reuse_an_entry(config, tiny_world, tiny_model):
    import dataclasses

    from clipprobe.dashcam.tasks import DashcamWorld
    from clipprobe.dashcam.world import WorldConfig

    base = extract_features(tiny_world, config)
    for changed_config, source in [
        (dataclasses.replace(config, seed=1), tiny_world),  # other random weights
        (dataclasses.replace(config, precision="bf16"), tiny_world),
        (config, DashcamWorld(WorldConfig(seed=5, image_size=64, sizes=tiny_world.config.sizes))),
    ]:
        other = extract_features(source, changed_config)
        assert other.computed == ["train", "validation", "test"]
        assert other.meta["keys"]["train"] != base.meta["keys"]["train"]
        assert not np.array_equal(other.arrays["train"], base.arrays["train"])


def test_batch_size_does_not_change_the_key(config, tiny_world):
    import dataclasses

    extract_features(tiny_world, config)
    assert extract_features(tiny_world, dataclasses.replace(config, batch_size=7)).computed == []


def test_corrupted_cache_file_is_reported_and_refresh_recomputes(config, tiny_world):
    features = extract_features(tiny_world, config)
    original = np.array(features.arrays["test"])  # a copy: the cached array is memory-mapped
    cache = FeatureCache()
    array_path = cache._paths(features.meta["keys"]["test"])[0]
    array_path.write_bytes(array_path.read_bytes()[:50])
    with pytest.raises(RunError, match=r"Corrupted feature cache file .*test|Corrupted feature cache file"):
        extract_features(tiny_world, config)
    refreshed = extract_features(tiny_world, config, refresh=True)
    np.testing.assert_array_equal(refreshed.arrays["test"], original)


def test_killed_run_leaves_no_trusted_entry(config, tiny_world, monkeypatch):
    """A crash while writing a chunk leaves nothing that a later run would trust; the finished chunk is kept."""
    cache = FeatureCache()
    calls = {"n": 0}
    real_save = np.save

    def crash_on_second_split(f, array):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"half")
            raise KeyboardInterrupt
        real_save(f, array)

    monkeypatch.setattr(np, "save", crash_on_second_split)
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_world, config, cache=cache)
    monkeypatch.setattr(np, "save", real_save)
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    # No entry at all, only the first split's chunk (complete, with its checksum) in its parts folder.
    assert sorted(p.suffix for p in files) == [".json", ".npy"] and all(p.parent.suffix == ".parts" for p in files)
    from clipprobe.features.extractors import BatchExtractor

    encoded, real_encode = [], BatchExtractor.encode_rows
    monkeypatch.setattr(
        BatchExtractor,
        "encode_rows",
        lambda self, split, *a, **k: encoded.append(len(split)) or real_encode(self, split, *a, **k),
    )
    again = extract_features(tiny_world, config, cache=cache)
    assert encoded == [30, 30]  # validation and test; train's chunk was kept
    assert again.computed == ["train", "validation", "test"]  # all three entries assembled by this run


def test_bad_choices_are_usage_errors(tiny_model):
    with pytest.raises(
        UsageError, match=r"^Unknown precision 'fp8'\. Available: auto, fp32, bf16, fp16, amp, amp_bf16$"
    ):
        OpenClipExtractor(ExtractorConfig(model=tiny_model, pretrained="random", precision="fp8"))
    with pytest.raises(UsageError, match=r"^Device 'cuda:7' is not available on this machine\. Available: cpu"):
        OpenClipExtractor(ExtractorConfig(model=tiny_model, pretrained="random", device="cuda:7"))
    with pytest.raises(
        UsageError, match=r"^Unknown layer 'middle'\. Available: embedding, pre-projection, tokens, grid, all-tokens$"
    ):
        OpenClipExtractor(ExtractorConfig(model=tiny_model, pretrained="random", layer="middle"))


def test_extract_by_task_uses_the_task_source(config, tiny_tasks):
    features = runner.extract("tiny-light", config)
    assert features.arrays["train"].shape == (60, 16)
    assert features.meta["representation"] == "tiny-clip/random"


def test_a_users_saved_dataset_dict_works_as_a_task(config, tmp_path):
    """Own data: any DatasetDict with an image column and a ClassLabel column."""
    import datasets
    from PIL import Image

    from clipprobe.data.readers.hf import HuggingFaceSource
    from clipprobe.data.task import Task

    def split(n, offset):
        images = [
            Image.new("RGB", (40, 30), (255 * (i % 2), 40 + i, 90 + 50 * offset)) for i in range(n)
        ]  # all distinct
        return datasets.Dataset.from_dict(
            {"photo": images, "label": [i % 2 for i in range(n)]},
            features=datasets.Features(
                {"photo": datasets.Image(), "label": datasets.ClassLabel(names=["blue", "pink"])}
            ),
        )

    folder = tmp_path / "mine"
    datasets.DatasetDict({"train": split(20, 0), "validation": split(10, 1), "test": split(10, 2)}).save_to_disk(
        str(folder)
    )
    task = Task(
        "mine",
        "my colours",
        HuggingFaceSource(str(folder), image_column="photo", name="mine"),
        "label",
        ("blue", "pink"),
    )
    record, path = runner.probe(task, config, results_dir=tmp_path / "results")
    assert record.metrics.balanced_accuracy == 1.0  # the two classes differ in every pixel's red channel
    assert runner.extract(task, config).computed == []

    wrong = Task(
        "mine", "", HuggingFaceSource(str(folder), image_column="image", name="mine"), "label", ("blue", "pink")
    )
    with pytest.raises(UsageError, match=r"^No image column 'image'\. Columns: photo, label$"):
        runner.extract(wrong, config)


def test_pixels_floor_and_orbit_invariance_on_frozen_features(tiny_model, tiny_world):
    """--extractor pixels gives 32x32x3 raw pixels; --invariance orbit:hflip makes features mirror-invariant."""
    import datasets
    from PIL import ImageOps

    pixels = extract_features(tiny_world, ExtractorConfig(extractor="pixels"))
    assert pixels.arrays["train"].shape == (60, 32 * 32 * 3)
    assert pixels.meta["representation"] == "pixels/32px"

    config = ExtractorConfig(model=tiny_model, pretrained="random", orbit="hflip")
    plain = extract_features(tiny_world, ExtractorConfig(model=tiny_model, pretrained="random"))
    orbit = extract_features(tiny_world, config)
    assert orbit.meta["representation"] == "tiny-clip/random [orbit:hflip]"
    assert orbit.meta["keys"]["test"] != plain.meta["keys"]["test"]

    # The same images, mirrored, as another source: orbit features must not move, plain ones must.
    class Mirrored(DataSource):
        name, image_column = "mirrored", "image"

        def load(self):
            data = tiny_world.load()
            return datasets.DatasetDict(
                {s: data[s].map(lambda r: {"image": ImageOps.mirror(r["image"])}) for s in data}
            )

        def fingerprint(self):
            return "mirrored-" + tiny_world.fingerprint()

    mirrored_orbit = extract_features(Mirrored(), config)
    np.testing.assert_allclose(mirrored_orbit.arrays["test"], orbit.arrays["test"], rtol=1e-4, atol=1e-5)
    mirrored_plain = extract_features(Mirrored(), ExtractorConfig(model=tiny_model, pretrained="random"))
    assert not np.allclose(mirrored_plain.arrays["test"], plain.arrays["test"], atol=1e-3)

    with pytest.raises(UsageError, match=r"^Unknown group 'flip'\. Did you mean hflip\? Available: hflip, translate"):
        extract_features(tiny_world, ExtractorConfig(model=tiny_model, pretrained="random", orbit="flip"))
    with pytest.raises(UsageError, match=r"^Unknown extractor 'sift'\. Available: open_clip, pixels$"):
        extract_features(tiny_world, ExtractorConfig(extractor="sift"))


def test_decode_workers_take_only_the_cores_the_forward_pass_leaves(monkeypatch):
    import torch

    from clipprobe.features.loading import loader_workers

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert loader_workers(None, 10_000, 64, "cpu") == 0  # every core runs the model
    monkeypatch.setattr(torch, "get_num_threads", lambda: 6)
    assert loader_workers(None, 10_000, 64, "cpu") == 2
    assert loader_workers(None, 10_000, 64, "cuda:0") == 4  # the CPU only feeds the GPU (capped)
    assert loader_workers(None, 100, 64, "cuda") == 0  # too few batches to repay starting a process
    assert loader_workers(3, 100, 64, "cpu") == 3
    with pytest.raises(UsageError, match=r"^--workers must be 0 or more, got -1$"):
        loader_workers(-1, 100, 64)


def test_device_auto_takes_cuda_then_mps_then_cpu(monkeypatch):
    from clipprobe.features import devices

    for available, expected in ((["cpu", "cuda", "cuda:0", "mps"], "cuda"), (["cpu", "mps"], "mps"), (["cpu"], "cpu")):
        monkeypatch.setattr(devices, "available_devices", lambda available=available: available)
        assert ExtractorConfig(device="auto").device == expected
        assert ExtractorConfig().device == expected  # the default
    assert ExtractorConfig(device="cpu").device == "cpu"
