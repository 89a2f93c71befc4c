import dataclasses
import json

import datasets
import numpy as np
import pytest

from clipprobe.core.errors import UsageError
from clipprobe.dashcam.captions import CAPTIONED_ATTRIBUTES, caption_for, get_caption_policy
from clipprobe.dashcam.pairs import COUNTERFACTUALS, decode, make_pairs, region_mask
from clipprobe.dashcam.scene import ATTRIBUTES, Knobs, Scene, render_scene, sample_scene, scene_rng
from clipprobe.dashcam.world import GENERATOR_VERSION, WorldConfig, load_world, render_row, scene_at, world_path


def test_same_seed_same_bytes_and_other_seed_differs():
    config = WorldConfig(image_size=64, sizes={"train": 4})
    assert render_row(config, "train", 3)["image"]["bytes"] == render_row(config, "train", 3)["image"]["bytes"]
    other = WorldConfig(seed=1, image_size=64, sizes={"train": 4})
    assert render_row(config, "train", 3)["image"]["bytes"] != render_row(other, "train", 3)["image"]["bytes"]


def test_stored_image_is_byte_identical_to_the_image_rendered_alone(tiny_world):
    stored = tiny_world.load()["test"].cast_column("image", datasets.Image(decode=False))
    for index in (0, 7, len(stored) - 1):
        row = render_row(tiny_world.config, "test", index)
        assert stored[index]["image"]["bytes"] == row["image"]["bytes"]
        assert stored[index]["caption"] == row["caption"]


def test_parallel_generation_gives_the_same_bytes_as_serial(monkeypatch):
    """Large worlds render in a process pool; the rows must not depend on it."""
    import clipprobe.dashcam.world as dataset

    monkeypatch.setattr(dataset, "CHUNK", 5)  # several chunks, so the pool is used
    config = WorldConfig(image_size=32, sizes={"train": 12})
    stored = load_world(config)["train"].cast_column("image", datasets.Image(decode=False))
    assert [r["image"]["bytes"] for r in stored] == [
        render_row(config, "train", i)["image"]["bytes"] for i in range(12)
    ]


def test_world_is_generated_once_and_reused(tiny_world, monkeypatch):
    tiny_world.load()
    import clipprobe.dashcam.world as dataset

    monkeypatch.setattr(dataset, "_generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated")))
    assert len(tiny_world.load()["train"]) == 60


def test_dataset_card_states_version_seed_sizes_marginals_and_templates(tiny_world):
    tiny_world.load()
    card = (world_path(tiny_world.config) / "README.md").read_text()
    assert f"- generator version: {GENERATOR_VERSION}" in card and "- seed: 0" in card
    assert '"train": 60' in card
    assert "| light_state |" in card and "| time_of_day |" in card
    assert "`i took a picture of a {car} car in front of me`" in card


def test_every_attribute_class_occurs_and_labels_match_the_scene():
    data = load_world(WorldConfig(image_size=32, sizes={"train": 400}))["train"]
    for name, classes in ATTRIBUTES.items():
        counts = np.bincount(data[name], minlength=len(classes))
        assert (counts > 0).all(), (name, counts)
    scene = Scene.from_dict(json.loads(data[0]["scene"]))
    for name in ATTRIBUTES:
        assert ATTRIBUTES[name][data[0][name]] == getattr(scene, name)


def test_difficulty_knobs_change_sizes():
    small = sample_scene(scene_rng(0, 1, 0), Knobs(light_size=(0.02, 0.03), pedestrian_size=(0.05, 0.06)))
    assert small.light_height <= 0.04 and small.pedestrian_height <= 0.06


def test_salient_captions_name_only_the_car():
    for index in range(60):
        rng = scene_rng(0, 0, index)
        scene = sample_scene(rng)
        caption = caption_for(scene, "salient", rng)
        assert scene.car_colour in caption
        assert not any(word in caption for word in ("light", "pedestrian", "night", "cloud", "dusk"))


def test_descriptive_captions_mention_every_attribute_and_dropout_removes_one():
    for index in range(60):
        scene = sample_scene(scene_rng(0, 0, index))
        full = caption_for(scene, "descriptive", np.random.default_rng(index))
        if scene.light == "present":
            assert scene.light_state in full
        dropped = caption_for(scene, "attribute-dropout:light_state", np.random.default_rng(index))
        assert "light" not in dropped
        assert scene.car_colour in dropped


def test_mixed_policy_fraction():
    scenes = [sample_scene(scene_rng(0, 0, i)) for i in range(400)]
    policy = get_caption_policy("mixed:0.25")
    captions = [policy(s, np.random.default_rng(i)) for i, s in enumerate(scenes)]
    descriptive = sum("," in c for c in captions) / len(captions)
    assert 0.18 < descriptive < 0.32
    assert all("," not in get_caption_policy("mixed:0")(s, np.random.default_rng(0)) for s in scenes[:20])


def test_bad_policies_name_the_choices():
    with pytest.raises(
        UsageError,
        match=r"^Unknown caption policy 'poetic'\. Available: attribute-dropout, descriptive, mixed, salient$",
    ):
        get_caption_policy("poetic")
    with pytest.raises(
        UsageError, match=r"^Caption policy 'mixed:P' needs a fraction P between 0 and 1, got 'mixed:1.5'$"
    ):
        get_caption_policy("mixed:1.5")
    with pytest.raises(
        UsageError,
        match=rf"^Caption policy 'attribute-dropout:NAME' needs an attribute\. Available: {', '.join(CAPTIONED_ATTRIBUTES)}$",
    ):
        get_caption_policy("attribute-dropout:weather")


def _jpeg_blocks(mask: np.ndarray, block: int = 8) -> np.ndarray:
    """Grow a mask to whole JPEG blocks (the encoder spreads a change over its 8x8 block)."""
    h, w = mask.shape
    grown = np.zeros_like(mask)
    for y in range(0, h, block):
        for x in range(0, w, block):
            if mask[max(0, y - 2) : y + block + 2, max(0, x - 2) : x + block + 2].any():  # +2 px for blur
                grown[y : y + block, x : x + block] = True
    return grown


# Every counterfactual with a region (the time of day changes the whole frame, by design).
@pytest.mark.parametrize("attribute", sorted(set(COUNTERFACTUALS.names()) - {"time-of-day"}))
def test_counterfactual_pairs_differ_only_where_the_attribute_lives(attribute):
    config = WorldConfig(image_size=96, sizes={})
    path = make_pairs(attribute, n=12, config=config)
    pairs = (
        datasets.load_from_disk(str(path))
        .cast_column("image_a", datasets.Image(decode=False))
        .cast_column("image_b", datasets.Image(decode=False))
    )
    counterfactual = COUNTERFACTUALS.get(attribute)
    for row in pairs:
        assert row["value_a"] != row["value_b"]
        a, b = decode(row["image_a"]["bytes"]), decode(row["image_b"]["bytes"])
        changed = np.abs(a.astype(int) - b).sum(-1) > 0
        assert changed.any()
        scene, _ = scene_at(config, "test", row["index"])
        allowed = _jpeg_blocks(region_mask(scene, counterfactual.region(scene), 96))
        assert not (changed & ~allowed).any(), f"pixels changed outside the {attribute} region"
        assert allowed.mean() < 0.5  # and the region is a part of the frame, not all of it


def test_pairs_are_cached_and_unknown_attributes_listed():
    config = WorldConfig(image_size=32, sizes={})
    first = make_pairs("pedestrian", n=3, config=config)
    assert make_pairs("pedestrian", n=3, config=config) == first
    with pytest.raises(
        UsageError,
        match=r"^Unknown counterfactual attribute 'weather'\. Available: car-colour, car-distance, car-facing, lane-markings, pedestrian, pedestrian-action, pedestrian-count, pedestrian-side, speed-limit, time-of-day, traffic-light$",
    ):
        make_pairs("weather", n=3, config=config)


def test_render_is_deterministic_at_any_size():
    scene = sample_scene(scene_rng(0, 1, 3))
    for size in (64, 224):
        assert render_scene(scene, size).tobytes() == render_scene(dataclasses.replace(scene), size).tobytes()
        assert render_scene(scene, size).size == (size, size)
