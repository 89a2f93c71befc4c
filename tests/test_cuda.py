"""The CUDA paths: extraction on a GPU in every precision, `auto` there, uint8 batches normalised on the device,
pinned-memory copies from decode workers. Marked `cuda`: skipped where torch sees no CUDA device (tests/conftest.py);
benchmarks/gpu.sh runs them on a GPU machine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features

pytestmark = pytest.mark.cuda


def _cosines(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("precision", ["fp32", "amp", "amp_bf16", "bf16", "fp16"])
def test_gpu_features_point_where_the_cpus_do(tiny_model, tiny_world, precision):
    cpu = ExtractorConfig(model=tiny_model, pretrained="random", batch_size=16)
    reference = extract_features(tiny_world, cpu)
    gpu = extract_features(tiny_world, dataclasses.replace(cpu, device="cuda", precision=precision))
    assert gpu.arrays["test"].dtype == np.float32
    assert _cosines(gpu.arrays["test"], reference.arrays["test"]).min() > (0.9999 if precision == "fp32" else 0.99)


def test_auto_on_cuda_picks_bf16_from_ampere_on(tiny_model):
    import torch

    from clipprobe.features.extractors import resolve_precision

    config = resolve_precision(ExtractorConfig(model=tiny_model, pretrained="random", device="cuda", precision="auto"))
    ampere = torch.cuda.get_device_capability() >= (8, 0)
    assert config.precision == ("bf16" if ampere else "fp32")
    assert torch.cuda.get_device_name() in config.precision_reason


def test_uint8_batches_are_normalised_on_the_gpu_as_on_the_cpu():
    import open_clip
    import torch

    from clipprobe.features.decode import Uint8Preprocess

    fast = Uint8Preprocess.from_transform(open_clip.image_transform(64, is_train=False))
    batch = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(fast.normalize(batch.cuda()).cpu(), fast.normalize(batch))


def test_decode_workers_feed_the_gpu_from_pinned_memory(tiny_model, tiny_world):
    config = ExtractorConfig(model=tiny_model, pretrained="random", batch_size=8, device="cuda", workers=2)
    with_workers = extract_features(tiny_world, config)
    in_process = extract_features(tiny_world, dataclasses.replace(config, workers=0), refresh=True)
    np.testing.assert_allclose(with_workers.arrays["train"], in_process.arrays["train"], rtol=1e-5, atol=1e-6)
