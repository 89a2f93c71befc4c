"""A result is a function of its inputs: no stale cache entry answers changed inputs, every C of the sweep is
really fitted, and every record says on which machine and with which code it was computed."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import open_clip
import pytest
from conftest import TINY_CONFIG, TINY_SIZES
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

import clipprobe.dashcam.captions as captions
import clipprobe.dashcam.pretrain as pretrain
from clipprobe.dashcam.world import WorldConfig
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.probes.linear import DEFAULT_C_GRID, fit_probe, sweep_models
from clipprobe.runner import probe


def _checkpoint(model: str, seed: int, path) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    built = open_clip.create_model(model, pretrained=None)
    save_file({k: v.contiguous() for k, v in built.state_dict().items()}, str(path))


def test_a_checkpoint_replaced_in_place_with_the_same_size_and_mtime_is_hashed_again(tiny_model, tiny_world, tmp_path):
    """As `cp -p`, `rsync -t` or `tar` leave a file: same path, size and modification time, other weights."""
    path = tmp_path / "weights.safetensors"
    _checkpoint(tiny_model, 0, path)
    config = ExtractorConfig(model=tiny_model, pretrained=str(path))
    first = np.array(extract_features(tiny_world, config).arrays["test"])
    stat = path.stat()
    other = tmp_path / "other.safetensors"
    _checkpoint(tiny_model, 1, other)
    assert other.stat().st_size == stat.st_size
    os.replace(other, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = extract_features(tiny_world, config)
    assert again.computed == ["train", "validation", "test"]
    assert not np.array_equal(first, np.asarray(again.arrays["test"]))


def test_a_model_config_edited_under_the_same_name_is_another_model(tiny_world, tmp_path):
    """Random weights of an architecture whose config changed: the old features must not be served."""
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "edited-clip.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    config = ExtractorConfig(model="edited-clip", pretrained="random")
    before = extract_features(tiny_world, config)
    assert before.arrays["test"].shape[1] == TINY_CONFIG["embed_dim"]
    (folder / "edited-clip.json").write_text(json.dumps({**TINY_CONFIG, "embed_dim": 24}))
    open_clip.add_model_config(folder)
    after = extract_features(tiny_world, config)
    assert after.computed == ["train", "validation", "test"] and after.arrays["test"].shape[1] == 24
    assert after.meta["keys"] != before.meta["keys"]


def test_edited_caption_templates_change_the_builtin_weights_fingerprint(tiny_model, monkeypatch):
    config = pretrain.PretrainConfig(model=tiny_model, world=WorldConfig(image_size=64, sizes=dict(TINY_SIZES)))
    before = config.fingerprint()
    monkeypatch.setattr(pretrain, "_CAPTION_HASHES", {})  # a new process, as after an edit of the templates
    monkeypatch.setattr(captions, "SALIENT_TEMPLATES", ("a photo of a {car} car",))
    assert config.fingerprint() != before
    assert pretrain.pretraining_captions(config)[0].startswith("a photo of a ")


def test_the_pretraining_captions_are_the_stored_scenes_captions(tiny_model):
    """The fingerprint hashes the captions computed from the scenes; training reads the same."""
    from clipprobe.dashcam.world import load_world

    config = pretrain.PretrainConfig(model=tiny_model, world=WorldConfig(image_size=64, sizes=dict(TINY_SIZES)))
    split = load_world(config.world)["pretrain"]
    assert pretrain._captions(split, config) == pretrain.pretraining_captions(config)
    assert len(set(pretrain.pretraining_captions(config))) > 1


def _digits():
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return (x[:900], y[:900]), (x[900:1300], y[900:1300])


@pytest.mark.slow  # 30 s of scikit-learn reference fits; tests/test_solver.py checks the solver in the fast lane
def test_every_c_of_the_sweep_is_fitted_to_that_cs_own_optimum():
    """On digits, large C matters (the features separate well). The sweep starts each C from the optimum of the
    previous C of its chain; every C must still end at its own optimum: scikit-learn's fit for that C alone,
    converged to tol 1e-10, within 1 % (and, over the grid, closer than scikit-learn's own fit at its default
    tol gets), and the validation curve must be that optimum's. scikit-learn's warm start at its default tol
    stalls at large C, the failure this guards against (issue 9)."""
    (tx, ty), (vx, vy) = _digits()
    fit = fit_probe(tx, ty, vx, vy)
    models = sweep_models(tx, ty, DEFAULT_C_GRID)
    scaler = StandardScaler().fit(tx)
    tz, vz = (scaler.transform(x).astype(np.float32) for x in (tx, vx))
    warm_path, errors, default_error = [], [], []
    balanced = dict(class_weight="balanced", random_state=0)  # the probe's class weighting
    warm = LogisticRegression(max_iter=1000, warm_start=True, **balanced)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        points = {point["C"]: point for point in fit.curve}  # the default grid, and any extension beyond it
        for c, model in zip(DEFAULT_C_GRID, models):
            point = points[c]
            optimum = LogisticRegression(C=c, tol=1e-10, max_iter=10_000, **balanced).fit(tz.astype(np.float64), ty)
            errors.append(np.linalg.norm(model.coef_ - optimum.coef_) / np.linalg.norm(optimum.coef_))
            assert errors[-1] < 1e-2, (c, errors[-1])
            default = LogisticRegression(C=c, **balanced).fit(tz, ty)
            default_error.append(np.linalg.norm(default.coef_ - optimum.coef_) / np.linalg.norm(optimum.coef_))
            # The curve scores the optimum's predictions, up to a near-tie between classes.
            assert abs(point["balanced_accuracy"] - balanced_accuracy_score(vy, optimum.predict(vz))) <= 0.01, c
            warm.set_params(C=c).fit(tz, ty)
            warm_path.append(warm.coef_.copy())
    assert set(DEFAULT_C_GRID) <= set(points)
    if fit.chosen in DEFAULT_C_GRID:
        chosen = models[DEFAULT_C_GRID.index(fit.chosen)]
        np.testing.assert_array_equal(fit.model[-1].coef_, chosen.coef_)
    # The cases the test exists for: the naive warm path stalls at large C, and the default fit is far off there.
    assert np.array_equal(warm_path[-1], warm_path[-2])
    assert max(errors) < 0.1 < max(default_error)


def test_a_warm_started_c_ends_where_a_cold_start_does():
    """The stopping tests do not depend on the start: each C of the warm path against a fit of that C alone."""
    (tx, ty), _ = _digits()
    grid = DEFAULT_C_GRID[::3]
    warm = sweep_models(tx, ty, grid)
    for c, model in zip(grid, warm):
        cold = sweep_models(tx, ty, (c,))[0]
        assert np.linalg.norm(model.coef_ - cold.coef_) / np.linalg.norm(cold.coef_) < 1e-2, c


def test_the_sweep_does_not_depend_on_how_many_threads_fit_it(monkeypatch):
    import clipprobe.probes.select as select_module

    (tx, ty), (vx, vy) = _digits()
    results = []
    for workers in (1, 3):
        monkeypatch.setattr(select_module, "MAX_SWEEP_WORKERS", workers)
        monkeypatch.setattr(select_module.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
        fit = fit_probe(tx, ty, vx, vy)
        results.append((fit.curve, fit.chosen, fit.model[-1].coef_.tobytes()))
    assert results[0] == results[1]


def test_every_record_says_which_machine_threads_and_code(tiny_model, tiny_tasks, tmp_path):
    record, path = probe("tiny-light", ExtractorConfig(model=tiny_model, pretrained="random"), results_dir=tmp_path)
    stored = json.loads(path.read_text())
    machine = stored["provenance"]["machine"]
    assert {"cpu", "cores", "native_bf16", "torch_threads", "blas_threads"} <= set(machine)
    assert isinstance(machine["native_bf16"], bool) and machine["cores"] >= 1
    assert {"torch", "open_clip_torch", "scikit-learn", "numpy"} <= set(stored["provenance"]["versions"])
    assert stored["weights"] == {"kind": "random"}
    assert (
        record.provenance.machine.cpu == machine["cpu"]
        and record.provenance.versions == stored["provenance"]["versions"]
    )


@pytest.mark.parametrize(
    "resize", [pytest.param("crop", marks=pytest.mark.slow), pytest.param("squash", marks=pytest.mark.slow), "pad"]
)
def test_resize_is_in_the_key_the_row_name_and_every_row_of_a_run(resize, tiny_model, tiny_tasks, tmp_path):
    from clipprobe.runner import compare

    config = ExtractorConfig(model=tiny_model, pretrained="random", resize=resize)
    outcomes = compare(
        "tiny-light",
        config,
        "cnn,pixels",
        results_dir=tmp_path,
        budget={"epochs": 1, "image_size": 16, "batch_size": 16},
    )
    names = [record.representation for record, _ in outcomes]
    assert names == [
        f"tiny-clip/random [resize={resize}]",
        f"cnn/from-scratch[epochs=1,batch_size=16,image_size=16,resize={resize}]",
        f"pixels/32px [resize={resize}]",
    ]
    assert {record.training.geometry for record, _ in outcomes if record.training} == {resize}
    default = extract_features(tiny_tasks["tiny-light"].source, ExtractorConfig(model=tiny_model, pretrained="random"))
    assert outcomes[0][0].features.cache_keys != default.meta["keys"]


def test_a_default_run_gives_every_row_the_same_geometry(tiny_model, tiny_tasks, tmp_path):
    """No --resize: the model (its own preprocessing crops), pixels and the CNN all crop, so the report has no
    geometry note; the names carry no resize tag."""
    from clipprobe.report.tables import geometry_note, summarise
    from clipprobe.runner import compare

    outcomes = compare(
        "tiny-light",
        ExtractorConfig(model=tiny_model, pretrained="random"),
        "cnn,pixels",
        results_dir=tmp_path,
        budget={"epochs": 1, "image_size": 16, "batch_size": 16},
    )
    assert [record.geometry for record, _ in outcomes] == ["crop", "crop", "crop"]
    assert not any("resize=" in record.representation for record, _ in outcomes)
    assert geometry_note([summarise(record) for record, _ in outcomes], "tiny-light") is None


def test_tall_images_keep_their_middle_when_cropped_and_everything_when_padded():
    from PIL import Image

    from clipprobe.features.geometry import fit_image

    tall = Image.new("RGB", (10, 40), (255, 0, 0))
    tall.paste((0, 0, 255), (0, 0, 10, 10))  # a blue top quarter
    assert fit_image(tall, 10, "crop").getpixel((5, 0)) == (255, 0, 0)  # the top quarter is cropped away
    padded = fit_image(tall, 40, "pad")
    assert padded.getpixel((0, 20)) == (0, 0, 0) and padded.getpixel((20, 2)) == (0, 0, 255)
    assert fit_image(tall, 8, "squash").size == (8, 8)


def test_the_report_says_when_rows_saw_different_geometry():
    from clipprobe.report.tables import geometry_note

    entries = [
        {"task": "t", "representation": r, "geometry": g}
        for r, g in (("ViT-B-32/openai", "crop"), ("pixels/32px", "squash"), ("cnn/from-scratch", "squash"))
    ]
    assert geometry_note(entries, "t") == (
        "Image geometry differs between rows (crop: ViT-B-32/openai; squash: pixels/32px, cnn/from-scratch); "
        "--resize crop|squash|pad gives every row the same."
    )
    assert geometry_note(entries[1:], "t") is None


def test_inputs_kept_in_memory_give_the_features_that_decoding_gives(tiny_model, tiny_world, tmp_path):
    """Another layer or model with the same preprocessing reads the kept inputs instead of decoding again."""
    import clipprobe.features.loading as loading
    from clipprobe.features.cache import FeatureCache

    loading.forget_inputs()
    config = ExtractorConfig(model=tiny_model, pretrained="random", layer="tokens")
    decoded = extract_features(tiny_world, config, cache=FeatureCache(tmp_path / "a"))
    assert len(loading._INPUTS) == 3  # one entry per split
    reused = extract_features(tiny_world, config, cache=FeatureCache(tmp_path / "b"))
    assert reused.computed == ["train", "validation", "test"]
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(decoded.arrays[split], reused.arrays[split])
