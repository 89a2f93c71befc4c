import json
import time

import numpy as np
import open_clip
import pytest
import torch
from conftest import TINY_SIZES

from clipprobe.core.errors import RunError, UsageError
from clipprobe.dashcam.pretrain import PretrainConfig, save, train
from clipprobe.dashcam.world import WorldConfig
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.weights import create_model, resolve_weights


@pytest.fixture
def tiny_pretrain(tiny_model):
    return PretrainConfig(
        model=tiny_model, world=WorldConfig(image_size=64, sizes=dict(TINY_SIZES)), steps=3, batch_size=8
    )


def test_saved_checkpoint_loads_through_pretrained_path_with_identical_features(tiny_pretrain, tiny_world, tmp_path):
    trained = train(tiny_pretrain)
    folder = save(trained, tmp_path / "ckpt")
    assert {p.name for p in folder.iterdir()} >= {
        "open_clip_model.safetensors",
        "open_clip_config.json",
        "train_log.json",
    }

    spec = resolve_weights(tiny_pretrain.model, str(folder / "open_clip_model.safetensors"))
    loaded, preprocess = create_model(spec)
    images = torch.stack(
        [preprocess(row["image"].convert("RGB")) for row in tiny_world.load()["test"].select(range(8))]
    )
    with torch.inference_mode():
        torch.testing.assert_close(loaded.encode_image(images), trained.model.encode_image(images), rtol=0, atol=0)

    # The same through the CLI-facing path, with the folder instead of the file.
    features = extract_features(tiny_world, ExtractorConfig(model=tiny_pretrain.model, pretrained=str(folder)))
    from clipprobe.features.decode import Uint8Preprocess  # extraction's preprocessing (pinned in test_decode.py)

    fast = Uint8Preprocess.from_transform(preprocess)
    with torch.inference_mode():
        expected = trained.model.encode_image(
            fast.normalize(torch.stack([fast(r["image"]) for r in tiny_world.load()["test"]]))
        ).numpy()
    np.testing.assert_allclose(features.arrays["test"], expected, rtol=0, atol=1e-6)


def test_pretraining_is_deterministic_and_learns(tiny_pretrain):
    import dataclasses

    config = dataclasses.replace(tiny_pretrain, steps=12)
    first, second = train(config), train(config)
    assert [s["loss"] for s in first.log] == [s["loss"] for s in second.log]
    assert first.log[-1]["loss"] < first.log[0]["loss"]


def test_sidecar_preprocessing_is_applied_to_a_local_file(tiny_pretrain, tmp_path):
    folder = save(train(tiny_pretrain), tmp_path / "ckpt")
    config_path = folder / "open_clip_config.json"
    config = json.loads(config_path.read_text())
    config["preprocess_cfg"]["mean"] = [0.5, 0.5, 0.5]
    config_path.write_text(json.dumps(config))
    spec = resolve_weights(tiny_pretrain.model, str(folder / "open_clip_model.safetensors"))
    model, _ = create_model(spec)
    assert tuple(model.visual.preprocess_cfg["mean"]) == (0.5, 0.5, 0.5)
    # ...and it changes the cache identity, so features made with the old preprocessing are not reused.
    assert spec.identity["preprocess"]["mean"] == [0.5, 0.5, 0.5]


def test_local_dir_schema_loads_the_same_folder(tiny_pretrain, tmp_path):
    folder = save(train(tiny_pretrain), tmp_path / "ckpt")
    spec = resolve_weights(f"local-dir:{folder}", None)
    model, _ = create_model(spec)
    assert spec.identity["kind"] == "local-dir"
    # Built without random draws, it is open_clip's own local-dir: model, bit for bit.
    theirs = open_clip.create_model(f"local-dir:{folder}").eval()
    mine, reference = model.state_dict(), theirs.state_dict()
    assert mine.keys() == reference.keys() and all(torch.equal(mine[name], reference[name]) for name in mine)


def test_local_dir_without_a_checkpoint_open_clip_reads_is_refused(tiny_pretrain, tmp_path):
    """open_clip's local-dir: reads *.safetensors, *.bin and *.pth: a folder whose only weights are a *.pt would
    build random weights under the .pt's hash, so it is refused."""
    folder = save(train(tiny_pretrain), tmp_path / "ckpt")
    (folder / "open_clip_model.safetensors").rename(folder / "weights.pt")
    with pytest.raises(
        UsageError, match=r"^No checkpoint open_clip reads \(\*\.safetensors, \*\.bin, \*\.pth\) in local-dir"
    ):
        resolve_weights(f"local-dir:{folder}", None)


def test_unknown_model_tag_and_missing_file(tiny_model):
    with pytest.raises(
        UsageError,
        match=r"^Unknown model 'ViT-Q-99'\. (Did you mean .*\? )?`clipprobe models` lists the \d+ open_clip architectures; or give",
    ):
        resolve_weights("ViT-Q-99", None)
    with pytest.raises(
        UsageError,
        match=r"^Unknown pretrained tag 'nope' for model 'ViT-B-32'\. Available: openai, .*random, or a checkpoint file$",
    ):
        resolve_weights("ViT-B-32", "nope")
    with pytest.raises(UsageError, match=r"^Checkpoint file not found: /no/such/weights\.bin$"):
        resolve_weights("ViT-B-32", "/no/such/weights.bin")
    with pytest.raises(
        UsageError, match=r"^Model 'ViT-B-32' needs --pretrained: one of openai, .*, random, or a checkpoint file$"
    ):
        resolve_weights("ViT-B-32", None)


def test_real_tag_offline_fails_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setattr("clipprobe.features.weights.hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    spec = resolve_weights("RN50", "openai")
    started = time.monotonic()
    with pytest.raises(
        RunError, match=r"^Cannot download the weights for RN50 'openai': the Hugging Face hub is unreachable"
    ):
        create_model(spec)
    assert time.monotonic() - started < 20


def test_default_weights_for_mini_clip_are_the_salient_recipe():
    from clipprobe.features.weights import default_pretrained

    assert default_pretrained("mini-clip") == "dashcam-salient"
    assert default_pretrained("ViT-B-32") is None


def test_open_clips_loss_already_treats_identical_captions_as_positives():
    """Many images share one salient caption. Counting them as each other's positives means soft targets spread
    over the equal captions (UniCL's formulation, written out here). Because equal captions get equal text
    embeddings, that loss is exactly open_clip's ClipLoss, value and gradients: pretraining can use ClipLoss as is."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    caption_ids = torch.tensor([0, 0, 1, 2, 2, 2, 3, 0])  # eight images, four distinct captions
    images = F.normalize(torch.randn(8, 16), dim=-1).requires_grad_()
    # One embedding per distinct caption, as a text tower gives equal tokens: its gradient is what trains the tower.
    captions = F.normalize(torch.randn(4, 16), dim=-1).requires_grad_()
    texts = captions[caption_ids]
    scale = torch.tensor(14.0)

    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    logits = scale * images @ texts.T
    shared = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    plain = open_clip.ClipLoss()(images, texts, scale)
    torch.testing.assert_close(plain, shared)
    for tensor in (images, captions):
        torch.testing.assert_close(
            *(torch.autograd.grad(loss, tensor, retain_graph=True)[0] for loss in (plain, shared))
        )


def test_width_and_image_size_scale_the_tower_and_the_folder_loads_through_local_dir(
    tiny_pretrain, tiny_world, tmp_path
):
    import dataclasses

    from clipprobe.dashcam.pretrain import pretrain

    folder = pretrain(dataclasses.replace(tiny_pretrain, width=16, image_size=48), tmp_path / "scaled")
    saved = json.loads((folder / "open_clip_config.json").read_text())
    assert (saved["model_cfg"]["vision_cfg"]["width"], saved["model_cfg"]["vision_cfg"]["image_size"]) == (16, 48)
    assert saved["preprocess_cfg"]["size"] in (48, [48, 48])
    features = extract_features(tiny_world, ExtractorConfig(model=f"local-dir:{folder}"))
    assert features.arrays["test"].shape == (TINY_SIZES["test"], 16)  # the tiny config's embedding size
    # The default recipe keeps its fingerprint (and the cached built-in weights) when nothing is scaled.
    assert dataclasses.replace(tiny_pretrain, width=None).fingerprint() == tiny_pretrain.fingerprint()


def test_a_bad_scale_is_a_usage_error(tiny_pretrain):
    import dataclasses

    with pytest.raises(UsageError, match="^--image-size must be a positive number of pixels, got 0$"):
        train(dataclasses.replace(tiny_pretrain, image_size=0))


def test_models_says_which_tags_load_offline(monkeypatch, tmp_path):
    """A tag whose weights are in the Hugging Face cache is marked (offline); built-in weights say if trained."""
    cache = tmp_path / "hf"
    snapshot = cache / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    (cache / "models--timm--vit_base_patch32_clip_224.openai" / "refs").mkdir()
    (cache / "models--timm--vit_base_patch32_clip_224.openai" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.file_download.HF_HUB_CACHE", str(cache), raising=False)
    from clipprobe.features.weights import tag_available_offline

    assert tag_available_offline("ViT-B-32", "openai")
    assert not tag_available_offline("ViT-B-32", "laion2b_s34b_b79k")
    from typer.testing import CliRunner

    from clipprobe.cli.app import app

    result = CliRunner().invoke(app, ["models", "ViT-B-32"])
    assert result.exit_code == 0
    assert "  ViT-B-32  tags: openai (offline), laion400m_e31," in result.output
    result = CliRunner().invoke(app, ["models", "mini-clip"])  # the pattern filters the built-ins too
    assert "  mini-clip@dashcam-salient  (trained on first use, the default)" in result.output


@pytest.mark.parametrize("kind", ["vit", "resnet", "timm"])
def test_checkpoint_build_skips_random_init_and_equals_open_clips_own(kind, tiny_towers, tmp_path):
    """A checkpoint replaces every weight, so clipprobe builds without drawing random numbers first; the model is
    open_clip's own, bit for bit, buffers that no checkpoint holds included."""
    from safetensors.torch import save_file

    model_name = tiny_towers[kind]
    source = create_model(resolve_weights(model_name, "random"), seed=7)[0]
    path = tmp_path / "weights.safetensors"
    save_file({name: value.contiguous() for name, value in source.state_dict().items()}, path)

    draws = []
    original = torch.nn.init.uniform_
    torch.nn.init.uniform_ = lambda tensor, *args, **kwargs: (
        draws.append(tensor.shape) or original(tensor, *args, **kwargs)
    )
    try:
        ours = create_model(resolve_weights(model_name, str(path)))[0]
        assert draws == []  # the tracer was replaced while the model was built: no uniform draw reached it
        random_build = create_model(resolve_weights(model_name, "random"))[0]
        assert draws  # random weights are drawn as before
    finally:
        torch.nn.init.uniform_ = original
    del random_build
    theirs = open_clip.create_model(model_name, pretrained=str(path)).eval()
    mine, reference = dict(ours.named_buffers()) | ours.state_dict(), dict(theirs.named_buffers()) | theirs.state_dict()
    assert mine.keys() == reference.keys()
    assert all(torch.equal(mine[name], reference[name]) for name in mine)


def test_initialisers_are_restored_after_a_failed_build(tiny_model, tmp_path):
    from clipprobe.features.weights import initialisers_skipped

    before = {name: getattr(torch.nn.init, name) for name in ("uniform_", "normal_", "kaiming_uniform_")}
    with pytest.raises(RuntimeError, match="boom"), initialisers_skipped():
        assert torch.nn.init.uniform_ is not before["uniform_"]
        raise RuntimeError("boom")
    assert {name: getattr(torch.nn.init, name) for name in before} == before
    torch.manual_seed(0)
    assert torch.nn.init.uniform_(torch.empty(3)).abs().sum() > 0  # drawing again
