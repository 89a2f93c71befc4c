"""Zero-shot: classify by cosine similarity to text prompts per class, through the model's own text tower."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from ..core.errors import UsageError
from ..data.task import Task
from ..data.taskfile import read_prompt_file
from ..features.config import ExtractorConfig
from .registry import BASELINES, PromptBaseline

# Bump when zero-shot scoring changes, so that stored results are not reused.
ZERO_SHOT_VERSION = 2


def task_prompts(task: Task, prompts: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """The prompts per class: `prompts` if given, else the task's own, else `default_prompts` (CLIP's template
    ensemble filled with the class names); every class needs at least one."""
    chosen = prompts if prompts is not None else task.prompts
    if not chosen:
        chosen = default_prompts(task.classes)
    missing = [name for name in task.classes if not chosen.get(name)]
    if missing:
        raise UsageError(
            f"Zero-shot prompts for task '{task.name}' lack the classes {', '.join(missing)}; "
            f"classes: {', '.join(task.classes)}"
        )
    return {name: list(chosen[name]) for name in task.classes}


def default_prompts(classes: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """CLIP's standard prompt ensemble for a task without prompts of its own: open_clip's 80 OpenAI ImageNet
    templates ("a bad photo of a {}.", ...) with each class name (underscores read as spaces)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return {name: [template(name.replace("_", " ")) for template in OPENAI_IMAGENET_TEMPLATES] for name in classes}


def class_embeddings(config: ExtractorConfig, prompts: dict[str, list[str]]) -> np.ndarray:
    """One unit vector per class: the normalised mean of its prompts' normalised text embeddings (CLIP's ensemble)."""
    import open_clip
    import torch

    from ..core.hub import hub_offline, hub_reachable
    from ..features.weights import create_model, resolve_weights

    spec = resolve_weights(config.model, config.pretrained)
    model, _ = create_model(spec, device=config.device, precision=config.precision, seed=config.seed)
    # A hub model's tokenizer config comes from the hub too: read the local cache when it is unreachable.
    offline = config.model.startswith("hf-hub:") and not hub_reachable()
    with hub_offline() if offline else nullcontext():
        tokenizer = open_clip.get_tokenizer(config.model)
    rows = []
    with torch.inference_mode():
        for texts in prompts.values():
            embedded = model.encode_text(tokenizer(texts).to(config.device)).float()
            mean = torch.nn.functional.normalize(embedded, dim=-1).mean(dim=0)
            rows.append(torch.nn.functional.normalize(mean, dim=0))
    return torch.stack(rows).cpu().numpy()


class ZeroShotBaseline(PromptBaseline):
    """The probed model itself, used as CLIP users use it: each test image gets the class whose prompts it is most
    similar to. The option is a prompt file (zero-shot:FILE.toml)."""

    name = "zero-shot"
    method = "zero-shot"
    version = ZERO_SHOT_VERSION
    description = (
        "Zero-shot classification by the probed model's own text tower: each test image gets the class "
        "whose prompts it is most similar to (no training; prompts from the task, or zero-shot:FILE.toml)"
    )

    def check_option(self, option: str | None, budget: Mapping[str, Any] | None = None) -> None:
        if option is not None:
            read_prompt_file(option)

    def prompts(self, task: Task, option: str | None) -> dict[str, list[str]]:
        return task_prompts(task, read_prompt_file(option) if option else None)

    def class_embeddings(self, config: ExtractorConfig, prompts: dict[str, list[str]]) -> np.ndarray:
        return class_embeddings(config, prompts)


def check_zero_shot_config(config: ExtractorConfig) -> None:
    """Zero-shot reads an open_clip model's final embedding: any other extractor or layer is a UsageError."""
    if config.extractor != "open_clip" or config.layer != "embedding":
        raise UsageError(
            "Zero-shot needs an open_clip model's final embedding (--extractor open_clip, --layer embedding), "
            f"got extractor '{config.extractor}', layer '{config.layer}'"
        )


def predict_zero_shot(features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The class whose embedding is most similar (cosine) to each row of `features`."""
    images = np.asarray(features, dtype=np.float32).copy()
    images /= np.linalg.norm(images, axis=1, keepdims=True).clip(min=1e-12)
    return (images @ classes.T).argmax(axis=1)


BASELINES.register("zero-shot", ZeroShotBaseline())
