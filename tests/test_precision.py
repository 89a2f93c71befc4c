"""`--precision` (weights in bf16/fp16, or fp32 weights under torch.autocast) and `--channels-last`, on tiny real towers."""

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipprobe import runner
from clipprobe.cli.app import app
from clipprobe.cli.options import Precision
from clipprobe.core.defaults import PRECISION_NAMES
from clipprobe.core.errors import UsageError
from clipprobe.dashcam.scene import ATTRIBUTES
from clipprobe.data.task import Task
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.extractors import OpenClipExtractor
from clipprobe.features.precision import PRECISIONS
from clipprobe.jobs import precision as precision_checks


@pytest.fixture(scope="session")
def conv_model(tiny_towers):
    """A ModifiedResNet tower (conv layers: what channels-last is for), 64 px like the tiny world's images."""
    return tiny_towers["resnet"]


def _cosines(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_cli_offers_every_precision_and_auto_first():
    assert [p.value for p in Precision] == ["auto", *PRECISIONS] == ["auto", "fp32", "bf16", "fp16", "amp", "amp_bf16"]
    assert tuple(PRECISIONS) == PRECISION_NAMES  # the light list the report's gate reads


@pytest.mark.parametrize("precision", ["bf16", "fp16", "amp", "amp_bf16"])
def test_every_precision_runs_close_to_fp32_under_its_own_key_and_row(tiny_model, tiny_world, precision):
    config = ExtractorConfig(model=tiny_model, pretrained="random", batch_size=32)
    reference = extract_features(tiny_world, config)
    lower = extract_features(tiny_world, dataclasses.replace(config, precision=precision))
    assert lower.arrays["test"].dtype == np.float32
    # Rounded, not garbage: every feature vector points where fp32's does, yet the numbers differ.
    assert _cosines(lower.arrays["test"], reference.arrays["test"]).min() > 0.99
    assert not np.array_equal(lower.arrays["test"], reference.arrays["test"])
    assert lower.meta["keys"]["test"] != reference.meta["keys"]["test"]
    # The same row name as fp32's (names do not depend on the machine); the precision beside it.
    assert lower.meta["representation"] == reference.meta["representation"] == f"{tiny_model}/random"
    assert (lower.meta["precision"], reference.meta["precision"]) == (precision, "fp32")


def test_autocast_precisions_keep_float32_weights_and_run_the_products_in_low_precision(tiny_model, monkeypatch):
    import torch

    from clipprobe.features.extractors import OpenClipExtractor

    extractor = OpenClipExtractor(ExtractorConfig(model=tiny_model, pretrained="random", precision="amp_bf16"))
    _, forward, input_dtype = extractor.pipeline()
    assert {p.dtype for p in extractor._model.parameters()} == {torch.float32}
    assert input_dtype is None  # inputs stay float32; autocast casts them at each product
    linear = torch.nn.functional.linear
    product_dtypes = []

    def recording_linear(x, *args, **kwargs):
        product_dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return linear(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", recording_linear)
    with torch.inference_mode():
        forward(torch.randn(2, 3, 32, 32))
    assert product_dtypes and set(product_dtypes) == {torch.bfloat16}


def test_bf16_probe_results_agree_with_fp32_within_the_interval(conv_model, tiny_world):
    """The check behind the README's advice: the same probe on bf16 features scores inside fp32's 95% interval."""
    task = Task("tiny-time", "time of day, tiny world", tiny_world, "time_of_day", ATTRIBUTES["time_of_day"])
    config = ExtractorConfig(model=conv_model, pretrained="random")
    scores = {}
    for precision in ("fp32", "bf16", "amp_bf16"):
        record, _ = runner.probe(task, dataclasses.replace(config, precision=precision))
        scores[precision] = record.metrics
    low, high = scores["fp32"].intervals["balanced_accuracy"]
    assert scores["fp32"].balanced_accuracy > 0.6  # far enough above chance (1/3) for agreement to mean something
    for precision in ("bf16", "amp_bf16"):
        assert low <= scores[precision].balanced_accuracy <= high, (precision, scores)


def test_channels_last_gives_the_same_features_from_the_same_cache_entry(conv_model, tiny_world):
    config = ExtractorConfig(model=conv_model, pretrained="random", batch_size=32)
    contiguous = extract_features(tiny_world, config)
    nhwc_config = dataclasses.replace(config, channels_last=True)
    # A layout, like device and batch size, is not part of the key: the cached entry answers.
    assert extract_features(tiny_world, nhwc_config).computed == []
    nhwc = extract_features(tiny_world, nhwc_config, refresh=True)
    assert nhwc.computed == ["train", "validation", "test"]
    np.testing.assert_allclose(nhwc.arrays["test"], contiguous.arrays["test"], rtol=1e-4, atol=1e-5)
    assert (
        nhwc.meta["keys"] == contiguous.meta["keys"]
        and nhwc.meta["representation"] == contiguous.meta["representation"]
    )


def test_cli_extracts_with_autocast_and_channels_last(conv_model, tiny_tasks):
    args = ["extract", "--task", "tiny-light", "--model", conv_model, "--pretrained", "random"]
    result = CliRunner().invoke(app, [*args, "--precision", "amp_bf16", "--channels-last"])
    assert result.exit_code == 0, result.output
    assert f"{conv_model}/random (amp_bf16) train: 60 x 16 (extracted)" in result.output
    again = CliRunner().invoke(app, [*args, "--precision", "amp_bf16"])  # the same entry, whatever the layout
    assert again.exit_code == 0, again.output
    assert f"{conv_model}/random (amp_bf16) train: 60 x 16 (cached)" in again.output


# --precision auto: bf16 where the device computes it natively and bf16 agrees with fp32 for the model; else fp32.


@pytest.fixture
def native_bf16(monkeypatch):
    """A CPU with AVX512-BF16, whatever this machine is (conftest pins every other test to a CPU without)."""
    import clipprobe.core.machine as machine

    monkeypatch.setattr(machine, "native_bf16", lambda: True)
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))


def test_auto_picks_bf16_on_a_cpu_with_native_bf16_and_says_why(tiny_model, tiny_tasks, native_bf16):
    import json

    args = ["extract", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random"]
    result = CliRunner().invoke(app, args)  # --precision auto is the default
    assert result.exit_code == 0, result.output
    assert f"{tiny_model}/random (bf16) train: 60 x 16 (extracted)" in result.output
    # The same entry as an explicit bf16: auto is resolved before the key exists.
    again = CliRunner().invoke(app, [*args, "--precision", "bf16"])
    assert f"{tiny_model}/random (bf16) train: 60 x 16 (cached)" in again.output
    probed = CliRunner().invoke(
        app, ["probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random", "--baselines", "none"]
    )
    assert probed.exit_code == 0, probed.output
    (path,) = Path("results/tiny-light").glob("*linear-probe*.json")
    # The name is fp32's; the precision is in the record and the file name, beside fp32's file.
    assert path.name == f"{tiny_model}-random__linear-probe__bf16__seed0.json"
    record = json.loads(path.read_text())
    assert (record["representation"], record["precision"]) == (f"{tiny_model}/random", "bf16")
    features = record["features"]
    assert features["precision"] == "bf16"
    assert features["precision_reason"].startswith("auto: bf16, since the CPU computes bf16 natively (avx512_bf16)")
    # Checked on the task's own train and validation images (60 + 30 in the tiny world), never on test ones.
    assert "bf16 agreed with fp32 on 90 of tiny-light's train and validation images" in features["precision_reason"]


def test_auto_picks_fp32_on_a_cpu_without_native_bf16_and_says_why(tiny_model, tiny_tasks):
    result = CliRunner().invoke(
        app, ["extract", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random"]
    )
    assert result.exit_code == 0, result.output
    assert f"{tiny_model}/random train: 60 x 16 (extracted)" in result.output  # fp32: nothing beside the name
    config = precision_checks.resolve_precision(
        ExtractorConfig(model=tiny_model, pretrained="random", precision="auto"), tiny_tasks["tiny-light"]
    )
    assert config.precision == "fp32"
    assert config.precision_reason == (
        "auto: fp32, since the CPU has no native bf16 (no AVX512-BF16, AMX or Arm BF16 flag; bf16 would be emulated)"
    )


def test_auto_checks_bf16_once_per_model_layer_and_task_and_remembers_the_verdict(
    tiny_model, tiny_tasks, native_bf16, monkeypatch
):
    checks = []
    real = precision_checks.check_bf16
    monkeypatch.setattr(
        precision_checks,
        "check_bf16",
        lambda config, task: checks.append((config.model, config.layer, task.name)) or real(config, task),
    )
    task = tiny_tasks["tiny-light"]
    config = ExtractorConfig(model=tiny_model, pretrained="random", precision="auto")
    first = precision_checks.resolve_precision(config, task)
    # A batch size does not change the features: the stored verdict answers.
    second = precision_checks.resolve_precision(dataclasses.replace(config, batch_size=7), task)
    assert first.precision == second.precision == "bf16" and checks == [(tiny_model, "embedding", "tiny-light")]
    assert first == dataclasses.replace(config, precision="bf16")  # the reason is not part of the comparison
    # Another layer reads other features: checked on its own, once (its verdict is its own: either may hold).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a disagreeing layer warns that it stays fp32
        tokens = precision_checks.resolve_precision(dataclasses.replace(config, layer="tokens"), task)
        again = precision_checks.resolve_precision(dataclasses.replace(config, layer="tokens"), task)
    assert tokens.precision in ("bf16", "fp32") and again.precision == tokens.precision
    assert checks[1:] == [(tiny_model, "tokens", "tiny-light")]
    verdict = precision_checks.bf16_verdict(dataclasses.replace(config, device="cpu"), task)
    assert len(checks) == 2  # read back, not computed again
    assert verdict["agrees"] and verdict["cosine"]["p5"] >= precision_checks.CHECK_MIN_COSINE
    assert verdict["probe"]["gap"] <= precision_checks.CHECK_TOLERANCE and verdict["images"] == 90


def test_auto_falls_back_to_fp32_with_a_warning_when_bf16_disagrees(tiny_model, tiny_tasks, native_bf16, monkeypatch):
    monkeypatch.setattr(precision_checks, "CHECK_MIN_COSINE", 1.01)  # no bf16 embedding can meet it
    with pytest.warns(RuntimeWarning, match="stays fp32: bf16 disagreed with fp32"):
        config = precision_checks.resolve_precision(
            ExtractorConfig(model=tiny_model, pretrained="random", precision="auto"), tiny_tasks["tiny-light"]
        )
    assert config.precision == "fp32" and "but bf16 disagreed with fp32" in config.precision_reason


def test_auto_in_the_library_resolves_before_the_cache_key(tiny_model, tiny_tasks, tiny_world, native_bf16):
    config = ExtractorConfig(model=tiny_model, pretrained="random", precision="auto")
    # Extraction itself takes only a concrete precision: `auto` is resolved once, by the run plan (or runner.extract).
    with pytest.raises(UsageError, match=r"^precision 'auto' must be resolved before extraction"):
        extract_features(tiny_world, config)
    with pytest.raises(UsageError, match=r"^precision 'auto' must be resolved"):
        OpenClipExtractor(config)
    auto = runner.extract(tiny_tasks["tiny-light"], config)
    explicit = extract_features(tiny_world, dataclasses.replace(config, precision="bf16"))
    assert explicit.computed == [] and auto.meta["keys"] == explicit.meta["keys"]
    assert auto.meta["identity"]["precision"] == auto.meta["precision"] == "bf16"
    assert auto.meta["representation"] == f"{tiny_model}/random"
    assert (
        auto.meta["precision_reason"].startswith("auto: bf16")
        and explicit.meta["precision_reason"] == "asked for (bf16)"
    )


def test_native_bf16_on_cuda_means_ampere_or_later(monkeypatch):
    import torch

    from clipprobe.features.precision import native_bf16_device

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert native_bf16_device("cuda:0") == (True, "NVIDIA A100 (compute capability 8.0) computes bf16 natively")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert native_bf16_device("cuda") == (
        False,
        "Tesla V100 (compute capability 7.0, before Ampere) has no native bf16",
    )


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [
        (True, True, "NVIDIA A100 (compute capability 8.0) computes bf16 natively"),
        (False, True, "device mps is not known to compute bf16 natively"),
    ],
)
def test_native_bf16_resolves_auto_as_extraction_does(monkeypatch, cuda, mps, expected):
    """`auto` is the device extraction runs on (clipprobe.features.devices.resolve_device: CUDA, then MPS, then the
    CPU), so a Mac's `auto` is judged as MPS, not as its CPU."""
    import torch

    from clipprobe.features.devices import resolve_device
    from clipprobe.features.precision import native_bf16_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda else 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == ("cuda" if cuda else "mps")
    assert native_bf16_device("auto") == (cuda, expected)
    assert native_bf16_device("auto") == native_bf16_device(resolve_device("auto"))


def test_native_bf16_on_auto_without_cuda_or_mps_is_the_cpu(monkeypatch):
    import torch

    from clipprobe.core import machine
    from clipprobe.features.precision import native_bf16_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(machine, "native_bf16", lambda: False)
    assert native_bf16_device("auto") == native_bf16_device("cpu")
    assert native_bf16_device("auto")[1].startswith("the CPU has no native bf16")
