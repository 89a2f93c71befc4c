"""`--layer`: which features of the image tower are read, on tiny real open_clip ViT and ResNet towers."""

import datasets
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.core import paths
from clipprobe.core.errors import UsageError
from clipprobe.data.readers import DataSource
from clipprobe.features.config import GRID_CELLS, LAYERS, ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.extractors import OpenClipExtractor
from clipprobe.features.weights import create_model, resolve_weights

# Feature width of each tower's final tokens / map: tiny-clip (conftest) is a ViT of width 32 on a 4 x 4 patch grid.
WIDTHS = {"vit": 32, "resnet": 256}
CELLS = GRID_CELLS[0] * GRID_CELLS[1]
# Positions of each tiny tower's final map: the ViT's 4 x 4 patches, the ResNet's 2 x 2 map.
POSITIONS = {"vit": 16, "resnet": 4}


class Noise(DataSource):
    """A data source of 8 / 4 / 4 random 40 x 40 images (optionally mirrored): fast to extract."""

    image_column = "image"

    def __init__(self, mirrored: bool = False):
        self.mirrored = mirrored
        self.name = "noise-mirrored" if mirrored else "noise"

    def load(self) -> datasets.DatasetDict:
        rng = np.random.default_rng(0)

        def split(n):
            images = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]
            images = [ImageOps.mirror(image) for image in images] if self.mirrored else images
            return datasets.Dataset.from_dict(
                {"image": images}, features=datasets.Features({"image": datasets.Image()})
            )

        return datasets.DatasetDict({"train": split(8), "validation": split(4), "test": split(4)})

    def fingerprint(self) -> str:
        return self.name


def _features(model, layer, **kwargs):
    return extract_features(
        Noise(), ExtractorConfig(model=model, pretrained="random", layer=layer, batch_size=16, **kwargs)
    )


def _fresh_model_and_test_images(model):
    """The same random weights as the extractor's (same seed), and the test split preprocessed as one batch, as
    extraction preprocesses it (open_clip's steps on uint8 tensors: tests/test_decode.py pins them to open_clip's)."""
    from clipprobe.features.decode import Uint8Preprocess

    built, preprocess = create_model(resolve_weights(model, "random"), seed=0)
    fast = Uint8Preprocess.from_transform(preprocess)
    images = fast.normalize(torch.stack([fast(image) for image in Noise().load()["test"]["image"]]))
    return built, images


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_every_layer_has_its_shape_row_and_cache_key(tiny_towers, tower):
    model, width = tiny_towers[tower], WIDTHS[tower]
    sets = {layer: _features(model, layer) for layer in LAYERS}
    dims = {layer: features.arrays["test"].shape for layer, features in sets.items()}
    assert dims == {
        "embedding": (4, 16),
        "pre-projection": (4, width),
        "tokens": (4, width),
        "grid": (4, CELLS * width),
        "all-tokens": (4, POSITIONS[tower] * width),
    }
    assert {layer: features.meta["representation"] for layer, features in sets.items()} == {
        "embedding": f"{model}/random",
        "pre-projection": f"{model}/random [pre-projection]",
        "tokens": f"{model}/random [tokens]",
        "grid": f"{model}/random [grid:2x2]",
        "all-tokens": f"{model}/random [all-tokens]",
    }
    # Every token, position by position, each its full width: their mean is `tokens`; the width is recorded.
    assert sets["all-tokens"].meta["token_width"] == width
    assert all(features.meta["token_width"] is None for layer, features in sets.items() if layer != "all-tokens")
    every = sets["all-tokens"].arrays["test"].reshape(4, POSITIONS[tower], width)
    np.testing.assert_allclose(every.mean(axis=1), sets["tokens"].arrays["test"], rtol=1e-5, atol=1e-6)
    # The grid size is part of the grid's identity; every layer has its own cache entries.
    assert sets["grid"].meta["identity"]["layer"] == "grid:2x2"
    assert len({features.meta["keys"]["test"] for features in sets.values()}) == len(LAYERS)
    # Both towers' final grids (4 x 4 patches, a 2 x 2 map) split evenly into the 2 x 2 cells: their mean is `tokens`.
    grid, tokens = sets["grid"].arrays["test"], sets["tokens"].arrays["test"]
    np.testing.assert_allclose(grid.reshape(4, CELLS, width).mean(axis=1), tokens, rtol=1e-5, atol=1e-6)


def test_embedding_layer_is_what_encode_image_gives_and_its_identity_names_every_input(tiny_model):
    features = _features(tiny_model, "embedding")
    # The identity (hence the cache key): the architecture as resolved, the weights, precision, layer, open_clip.
    assert features.meta["identity"] == {
        "extractor": "open_clip",
        "model": tiny_model,
        "model_config": open_clip.get_model_config(tiny_model),
        "weights": {"kind": "random"},
        "precision": "fp32",
        "layer": "embedding",
        "open_clip": open_clip.__version__,
        "seed": 0,
    }
    model, images = _fresh_model_and_test_images(tiny_model)
    with torch.inference_mode():
        expected = model.encode_image(images).numpy()
    np.testing.assert_array_equal(features.arrays["test"], expected)


def test_pre_projection_is_what_the_projection_maps_to_the_embedding(tiny_towers):
    vit_pre, vit_embedding = (
        _features(tiny_towers["vit"], layer).arrays["test"] for layer in ("pre-projection", "embedding")
    )
    vit, _ = create_model(resolve_weights(tiny_towers["vit"], "random"), seed=0)
    np.testing.assert_allclose(vit_pre @ vit.visual.proj.detach().numpy(), vit_embedding, rtol=1e-4, atol=1e-5)

    rn_pre, rn_embedding = (
        _features(tiny_towers["resnet"], layer).arrays["test"] for layer in ("pre-projection", "embedding")
    )
    resnet, _ = create_model(resolve_weights(tiny_towers["resnet"], "random"), seed=0)
    c_proj = resnet.visual.attnpool.c_proj
    projected = rn_pre @ c_proj.weight.detach().numpy().T + c_proj.bias.detach().numpy()
    np.testing.assert_allclose(projected, rn_embedding, rtol=1e-4, atol=1e-5)


def test_tokens_are_the_mean_of_the_final_patch_tokens_or_feature_map(tiny_towers):
    vit, images = _fresh_model_and_test_images(tiny_towers["vit"])
    vit.visual.output_tokens = True  # open_clip's own output: the patch tokens after ln_post, class token excluded
    with torch.inference_mode():
        _, patch_tokens = vit.visual(images)
    np.testing.assert_allclose(
        _features(tiny_towers["vit"], "tokens").arrays["test"], patch_tokens.mean(dim=1).numpy(), rtol=1e-5, atol=1e-6
    )

    resnet, images = _fresh_model_and_test_images(tiny_towers["resnet"])
    visual = resnet.visual
    with torch.inference_mode():
        final_map = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
    assert final_map.shape[1:] == (256, 2, 2)
    np.testing.assert_allclose(
        _features(tiny_towers["resnet"], "tokens").arrays["test"],
        final_map.mean(dim=(2, 3)).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_layers_keep_working_with_orbit_invariance_and_bf16(tiny_model):
    config = ExtractorConfig(model=tiny_model, pretrained="random", layer="grid", precision="bf16", orbit="hflip")
    orbit = extract_features(Noise(), config)
    assert orbit.arrays["test"].shape == (4, CELLS * WIDTHS["vit"])
    assert np.isfinite(orbit.arrays["test"]).all()
    # The precision is beside the name, not in it (the name is the same on every machine).
    assert orbit.meta["representation"] == f"{tiny_model}/random [grid:2x2, orbit:hflip]"
    assert orbit.meta["precision"] == "bf16"
    assert orbit.meta["keys"]["test"] != _features(tiny_model, "grid").meta["keys"]["test"]
    # Mirrored images land on the same orbit: the same features, even at a layer that keeps where things are.
    mirrored = extract_features(Noise(mirrored=True), config)
    np.testing.assert_allclose(mirrored.arrays["test"], orbit.arrays["test"], rtol=1e-2, atol=1e-2)


def test_missing_layers_are_usage_errors(tiny_towers):
    timm = OpenClipExtractor(ExtractorConfig(model="tiny-timm", pretrained="random", layer="tokens"))
    with pytest.raises(
        UsageError,
        match=r"^Layer 'tokens' does not exist for model 'tiny-timm' \(image tower TimmModel\)\. "
        r"Available: embedding$",
    ):
        timm.preprocess_cfg()  # the tower is known once the model is built, before any data is read
    assert _features("tiny-timm", "embedding").arrays["test"].shape == (4, 16)
    with pytest.raises(
        UsageError,
        match=r"^Layer 'grid' does not exist for the pixels extractor \(raw pixels have no layers\)\. "
        r"Available: embedding$",
    ):
        extract_features(Noise(), ExtractorConfig(extractor="pixels", layer="grid"))


runner = CliRunner()


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    return lines[0]


def test_cli_unknown_layer_lists_the_layers(tiny_model, tiny_tasks):
    for command in (["extract"], ["probe", "--baselines", "none", "--task", "tiny-light"]):
        result = runner.invoke(app, [*command, "--model", tiny_model, "--pretrained", "random", "--layer", "middle"])
        assert result.exit_code == 2
        assert (
            _error_line(result)
            == "Error: Unknown layer 'middle'. Available: embedding, pre-projection, tokens, grid, all-tokens"
        )


def test_cli_layer_missing_for_the_architecture(tiny_towers):
    result = runner.invoke(app, ["extract", "--model", "tiny-timm", "--pretrained", "random", "--layer", "tokens"])
    assert result.exit_code == 2
    assert _error_line(result) == (
        "Error: Layer 'tokens' does not exist for model 'tiny-timm' (image tower TimmModel). Available: embedding"
    )
    assert not paths.worlds_dir().exists()  # failed before rendering any data
    result = runner.invoke(app, ["extract", "--extractor", "pixels", "--layer", "pre-projection"])
    assert result.exit_code == 2
    assert _error_line(result) == (
        "Error: Layer 'pre-projection' does not exist for the pixels extractor (raw pixels have no layers). Available: embedding"
    )
