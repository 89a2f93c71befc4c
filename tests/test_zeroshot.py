"""Zero-shot rows: the model's own text tower and open_clip's tokenizer, prompts from the task or a file."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from typer.testing import CliRunner

from clipprobe.baselines.registry import get_baseline
from clipprobe.baselines.zeroshot import class_embeddings, task_prompts
from clipprobe.cli.app import app
from clipprobe.core.errors import UsageError
from clipprobe.core.kinds import RowKind
from clipprobe.data.task import get_task
from clipprobe.features.config import ExtractorConfig
from clipprobe.features.extract import extract_features
from clipprobe.features.weights import create_model, resolve_weights
from clipprobe.runner import zero_shot

PROMPTS = {
    "red": ["a red traffic light", "the light is red"],
    "amber": ["an amber traffic light"],
    "green": ["a green traffic light", "the light is green", "go"],
}


def test_class_embeddings_are_clips_prompt_ensemble(tiny_model):
    config = ExtractorConfig(model=tiny_model, pretrained="random", seed=4)
    got = class_embeddings(config, PROMPTS)
    model, _ = create_model(resolve_weights(tiny_model, "random"), seed=4)
    tokenizer = open_clip.get_tokenizer(tiny_model)
    with torch.no_grad():
        for row, texts in zip(got, PROMPTS.values()):
            each = torch.nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1)
            expected = torch.nn.functional.normalize(each.mean(dim=0), dim=0).numpy()
            np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_zero_shot_predicts_the_most_similar_class_and_chooses_nothing(tiny_model, tiny_tasks, tmp_path):
    task = tiny_tasks["tiny-light"]
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    record, path = zero_shot(task, config, tmp_path / "results", prompts=PROMPTS)
    assert path == tmp_path / "results" / "tiny-light" / "tiny-clip-random__zero-shot__seed0.json"
    assert record.method == "zero-shot" and record.representation == "tiny-clip/random"
    assert record.selection.split is None and record.prompts == PROMPTS
    assert record.kind is RowKind.ZERO_SHOT

    # The same numbers by hand: cosine similarity of the cached test features to the class embeddings.
    test = task.source.load()["test"]
    features = np.asarray(extract_features(task.source, config, splits=("test",)).arrays["test"])[task.rows(test)]
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    predicted = (features @ class_embeddings(config, PROMPTS).T).argmax(axis=1)
    labels = task.labels(test)
    assert record.metrics.accuracy == pytest.approx(float(np.mean(predicted == labels)))
    assert record.metrics.n == len(labels) == 30

    again, _ = zero_shot(task, config, tmp_path / "results", prompts=PROMPTS)
    assert again.run.reused is True
    other, _ = zero_shot(task, config, tmp_path / "results", prompts={**PROMPTS, "go": ["x"]} | {"green": ["green"]})
    assert other.run.reused is None  # other prompts, another run


def test_every_world_task_ships_prompts_for_every_class():
    for name in (
        "traffic-light",
        "pedestrian",
        "pedestrian-side",
        "car-colour",
        "clouds",
        "time-of-day",
        "traffic-light-crops",
    ):
        task = get_task(name)
        assert set(task.prompts) == set(task.classes), name
        assert all(task.prompts[c] for c in task.classes)


def test_a_task_without_prompts_gets_clip_template_ensemble(tiny_model, tiny_tasks):
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    task = dataclasses.replace(tiny_tasks["tiny-light"], classes=("red", "amber_light", "green"))
    chosen = task_prompts(task)
    assert list(chosen) == ["red", "amber_light", "green"]
    assert len(chosen["amber_light"]) == len(OPENAI_IMAGENET_TEMPLATES) == 80
    assert chosen["amber_light"][0] == OPENAI_IMAGENET_TEMPLATES[0]("amber light")
    record, _ = zero_shot(tiny_tasks["tiny-light"], ExtractorConfig(model=tiny_model, pretrained="random"))
    assert record.prompts["red"][:2] == [t("red") for t in OPENAI_IMAGENET_TEMPLATES[:2]]


def test_zero_shot_errors_name_the_problem(tiny_model, tiny_tasks):
    task = tiny_tasks["tiny-light"]
    with pytest.raises(
        UsageError,
        match=r"^Zero-shot prompts for task 'tiny-light' lack the classes amber; classes: red, amber, green$",
    ):
        zero_shot(task, ExtractorConfig(model=tiny_model, pretrained="random"), prompts={"red": ["r"], "green": ["g"]})
    with pytest.raises(UsageError, match=r"^Zero-shot needs an open_clip model's final embedding"):
        zero_shot(dataclasses.replace(task, prompts=PROMPTS), ExtractorConfig(extractor="pixels"))


def test_prompts_from_a_file_on_the_command_line(tiny_model, tiny_tasks):
    Path("prompts.toml").write_text(
        "\n".join(f"{name} = {texts!r}".replace("'", '"') for name, texts in PROMPTS.items()) + "\n"
    )
    args = ["probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random"]
    result = CliRunner().invoke(app, [*args, "--baselines", "zero-shot:prompts.toml"])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"^tiny-light \| tiny-clip/random \| zero-shot \| balanced accuracy \d\.\d{3}.* \| nothing chosen -> results/",
        result.output,
        re.M,
    ), result.output

    Path("bad.toml").write_text('red = "not a list"\n')
    result = CliRunner().invoke(app, [*args, "--baselines", "zero-shot:bad.toml"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: Prompt file bad.toml: [prompts] must map each class to a list of prompts, "
        'e.g. red = ["a red traffic light"]'
    )
    result = CliRunner().invoke(app, [*args, "--baselines", "zero-shot:missing.toml"])
    assert result.output.strip() == "Error: Prompt file not found: missing.toml" and result.exit_code == 2


def test_a_task_file_can_carry_prompts(tmp_path):
    from PIL import Image

    from clipprobe.data.taskfile import load_task_file

    for colour, rgb in (("red", (200, 0, 0)), ("green", (0, 200, 0))):
        (tmp_path / "photos" / colour).mkdir(parents=True)
        Image.new("RGB", (8, 8), rgb).save(tmp_path / "photos" / colour / "1.png")
    Path("lights.toml").write_text('source = "imagefolder:photos"\n[prompts]\nred = ["a red light"]\n')
    assert load_task_file("lights.toml").prompts == {"red": ("a red light",)}
    assert get_baseline("zero-shot").name == "zero-shot"
