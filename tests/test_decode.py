"""Decoding at the model's pace (clipprobe.features.decode): open_clip's preprocessing on uint8 tensors, pinned
against open_clip's own PIL transform."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipprobe.features.config import ExtractorConfig
from clipprobe.features.decode import Uint8Preprocess
from clipprobe.features.extract import extract_features
from clipprobe.features.extractors import OpenClipExtractor

# The bounds the uint8 path keeps to open_clip's PIL transform, in levels of 255 before normalisation: torchvision's
# uint8 antialiased resize rounds as PIL's does, give or take a level, and differs by a few levels only at rare
# pixels on a hard edge being shrunk (6 levels at 0.02 % of pixels in one of these cases).
MAX_LEVELS = 8
MEAN_LEVELS = 0.2
FRACTION_OVER_TWO_LEVELS = 1e-3


def _scene(width: int, height: int, seed: int) -> Image.Image:
    """A picture with edges and gradients (what a resize rounds differently), not noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 3) % 256], axis=-1).astype(np.float64)
    for _ in range(4):
        x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
        pixels[y0 : y0 + height // 4, x0 : x0 + width // 4] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _levels(fast: Uint8Preprocess, reference: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """The differences between two normalised inputs, in levels of 255."""
    std = torch.tensor(fast.std).view(-1, 1, 1)
    return ((reference - got) * std * 255).abs()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
@pytest.mark.parametrize("size", [(224, 224), (300, 224), (160, 400), (40, 30)])
@pytest.mark.parametrize("input_size", [64, 224])
def test_uint8_preprocessing_gives_open_clips_inputs_within_a_level_or_two(fmt, size, input_size):
    preprocess = open_clip.image_transform(input_size, is_train=False)
    fast = Uint8Preprocess.from_transform(preprocess)
    assert fast is not None
    data = _encoded(_scene(*size, seed=sum(size)), fmt)
    reference = preprocess(Image.open(io.BytesIO(data)).convert("RGB"))
    got = fast.normalize(fast.decode(data)[None])[0]
    assert got.shape == reference.shape == (3, input_size, input_size) and got.dtype == torch.float32
    levels = _levels(fast, reference, got)
    assert levels.max() <= MAX_LEVELS and levels.mean() <= MEAN_LEVELS
    assert (levels > 2.5).float().mean() <= FRACTION_OVER_TWO_LEVELS


def test_the_uint8_path_is_taken_only_for_transforms_it_mirrors():
    assert Uint8Preprocess.from_transform(open_clip.image_transform(64, is_train=False)) is not None
    squash = Uint8Preprocess.from_transform(open_clip.image_transform(64, is_train=False, resize_mode="squash"))
    assert squash is not None and squash.resize == (64, 64) and squash.crop is None
    # open_clip's `longest` (pad) keeps its own transform; so does a training transform.
    assert Uint8Preprocess.from_transform(open_clip.image_transform(64, is_train=False, resize_mode="longest")) is None
    assert Uint8Preprocess.from_transform(open_clip.image_transform(64, is_train=True)) is None


def test_a_pil_image_and_its_bytes_give_the_same_uint8_input():
    fast = Uint8Preprocess.from_transform(open_clip.image_transform(64, is_train=False))
    image = _scene(120, 90, seed=1)
    assert torch.equal(fast(image), fast.decode(_encoded(image, "PNG")))
    grey = image.convert("L")  # other modes are converted to RGB, as open_clip's transform does
    assert torch.equal(fast(grey), fast.decode(_encoded(grey, "PNG")))


def test_normalisation_is_open_clips_arithmetic_bit_for_bit():
    preprocess = open_clip.image_transform(32, is_train=False)
    fast = Uint8Preprocess.from_transform(preprocess)
    image = _scene(32, 32, seed=2)  # already at the input size: no resize, so the inputs must be identical
    assert torch.equal(fast.normalize(fast(image)[None])[0], preprocess(image))


def test_extraction_decodes_in_uint8_and_gives_features_close_to_the_pil_path(tiny_model, tiny_world, monkeypatch):
    import clipprobe.features.loading as loading

    config = ExtractorConfig(model=tiny_model, pretrained="random", batch_size=16)
    transform, _, _ = OpenClipExtractor(config).pipeline()
    assert isinstance(transform, Uint8Preprocess)
    fast = extract_features(tiny_world, config)
    loading.forget_inputs()
    monkeypatch.setattr(Uint8Preprocess, "from_transform", classmethod(lambda cls, transform: None))
    pil = extract_features(tiny_world, config, refresh=True)
    a, b = np.asarray(fast.arrays["test"], dtype=np.float64), np.asarray(pil.arrays["test"], dtype=np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999
    np.testing.assert_allclose(a, b, atol=0.05 * np.abs(b).max())


def test_uint8_batches_are_kept_in_memory_and_reused(tiny_model, tiny_world, tmp_path):
    import clipprobe.features.loading as loading
    from clipprobe.features.cache import FeatureCache

    loading.forget_inputs()
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    first = extract_features(tiny_world, config, cache=FeatureCache(tmp_path / "a"))
    assert {tensor.dtype for tensor in loading._INPUTS.values()} == {torch.uint8}
    again = extract_features(tiny_world, dataclasses.replace(config), cache=FeatureCache(tmp_path / "b"))
    np.testing.assert_array_equal(first.arrays["train"], again.arrays["train"])
