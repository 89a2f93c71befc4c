import json

import numpy as np

from clipprobe.world import WorldConfig, caption_for, load_world, render_scene, sample_scene
from clipprobe.world.dataset import render_row
from clipprobe.world.scene import ATTRIBUTES, scene_rng


def test_same_seed_same_bytes_and_other_seed_differs():
    config = WorldConfig(image_size=64, sizes={"train": 4})
    assert render_row(config, "train", 3)["image"]["bytes"] == render_row(config, "train", 3)["image"]["bytes"]
    other = WorldConfig(seed=1, image_size=64, sizes={"train": 4})
    assert render_row(config, "train", 3)["image"]["bytes"] != render_row(other, "train", 3)["image"]["bytes"]


def test_stored_image_equals_image_rendered_alone(tiny_world):
    data = tiny_world.load()
    stored = data["test"].with_format(None)
    for index in (0, 7, len(stored) - 1):
        row = render_row(tiny_world.config, "test", index)
        assert stored[index]["image"].tobytes() == __import__("PIL.Image", fromlist=["Image"]).open(
            __import__("io").BytesIO(row["image"]["bytes"])
        ).tobytes()
        assert stored[index]["caption"] == row["caption"]


def test_world_is_generated_once_and_reused(tiny_world, monkeypatch):
    tiny_world.load()
    import clipprobe.world.dataset as dataset

    monkeypatch.setattr(dataset, "_generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated")))
    assert len(tiny_world.load()["train"]) == 60


def test_salient_captions_name_only_the_car():
    for index in range(50):
        rng = scene_rng(0, 0, index)
        scene = sample_scene(rng)
        caption = caption_for(scene, "salient", rng)
        assert scene.car_colour in caption
        assert "light" not in caption and "pedestrian" not in caption
        descriptive = caption_for(scene, "descriptive", rng)
        assert scene.light_state in descriptive


def test_labels_match_scene_and_all_classes_occur():
    data = load_world(WorldConfig(image_size=32, sizes={"train": 200}))["train"]
    for name, classes in ATTRIBUTES.items():
        counts = np.bincount(data[name], minlength=len(classes))
        assert (counts > 0).all(), name
    scene = json.loads(data[0]["scene"])
    assert ATTRIBUTES["light_state"][data[0]["light_state"]] == scene["light_state"]


def test_light_state_changes_only_light_pixels():
    scene = sample_scene(scene_rng(0, 1, 5))
    import dataclasses

    other_state = "green" if scene.light_state != "green" else "red"
    a = np.asarray(render_scene(scene, 224), dtype=int)
    b = np.asarray(render_scene(dataclasses.replace(scene, light_state=other_state), 224), dtype=int)
    changed = np.argwhere(np.abs(a - b).sum(-1) > 0)
    assert len(changed) > 0
    x = scene.light_x * 224
    assert np.all(np.abs(changed[:, 1] - x) < scene.light_height * 224)
