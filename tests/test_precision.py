"""`--precision` (weights in bf16/fp16, or fp32 weights under torch.autocast) and `--channels-last`, on tiny real towers."""

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from clipprobe import runner
from clipprobe.cli.app import app
from clipprobe.cli.options import Precision
from clipprobe.dashcam.scene import ATTRIBUTES
from clipprobe.data.task import Task
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.precision import PRECISIONS


@pytest.fixture(scope="session")
def conv_model(tiny_towers):
    """A ModifiedResNet tower (conv layers: what channels-last is for), 64 px like the tiny world's images."""
    return tiny_towers["resnet"]


def _cosines(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_cli_offers_every_precision():
    assert [p.value for p in Precision] == list(PRECISIONS) == ["fp32", "bf16", "fp16", "amp", "amp_bf16"]


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
    assert lower.meta["representation"] == f"{tiny_model}/random [{precision}]"


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
    low, high = scores["fp32"]["intervals"]["balanced_accuracy"]
    assert scores["fp32"]["balanced_accuracy"] > 0.6  # far enough above chance (1/3) for agreement to mean something
    for precision in ("bf16", "amp_bf16"):
        assert low <= scores[precision]["balanced_accuracy"] <= high, (precision, scores)


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
    assert f"{conv_model}/random [amp_bf16] train: 60 x 16 (extracted)" in result.output
    again = CliRunner().invoke(app, [*args, "--precision", "amp_bf16"])  # the same entry, whatever the layout
    assert again.exit_code == 0, again.output
    assert f"{conv_model}/random [amp_bf16] train: 60 x 16 (cached)" in again.output
