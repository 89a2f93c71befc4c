"""Zero-shot: classify by cosine similarity to text prompts per class, through the model's own text tower."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UsageError
from ..data.task import Task
from ..data.taskfile import read_prompt_file
from ..features.config import ExtractorConfig
from ..features.extract import extract_features
from ..features.extractors import resolve_precision
from ..probes.metrics import score_predictions
from ..probes.probe import Outcome
from ..results import DEFAULT_RESULTS_DIR, Identity, Result, Selection, claim, data_section
from .registry import BASELINES

# Bump when zero-shot scoring changes, so that stored results are not reused.
ZERO_SHOT_VERSION = 2


def task_prompts(task: Task, prompts: Mapping[str, list[str] | tuple[str, ...]] | None = None) -> dict[str, list[str]]:
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


def zero_shot(
    task: Task,
    config: ExtractorConfig | None = None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    prompts: Mapping[str, list[str] | tuple[str, ...]] | None = None,
    refresh: bool = False,
) -> Outcome:
    """Score `task`'s test images by their most similar class prompt; nothing is fitted or chosen, so no
    labels other than the test labels (for the score) are read. Returns (record, path)."""
    config = resolve_precision(config or ExtractorConfig())  # `auto` made concrete, as extraction does
    if config.extractor != "open_clip" or config.layer != "embedding":
        raise UsageError(
            "Zero-shot needs an open_clip model's final embedding (--extractor open_clip, --layer embedding), "
            f"got extractor '{config.extractor}', layer '{config.layer}'"
        )
    started = time.perf_counter()
    chosen = task_prompts(task, prompts)
    features = extract_features(task.source, config, splits=("test",))
    identity = Identity(task.name, features.meta["representation"], "zero-shot", config.seed)
    key = identity.key(
        {
            "code": ZERO_SHOT_VERSION,
            "features": features.meta["keys"],
            "prompts": chosen,
            "classes": list(task.classes),
            "where": [list(c) for c in task.where],
        }
    )
    # Another process running the same thing: wait for it, then reuse what it wrote.
    with claim(identity, key, results_dir, refresh) as stored:
        if stored is not None:
            return stored

        test = task.source.load()["test"]
        images = np.asarray(features.arrays["test"], dtype=np.float32)[task.rows(test)]
        images /= np.linalg.norm(images, axis=1, keepdims=True).clip(min=1e-12)
        similarity = images @ class_embeddings(config, chosen).T
        labels = task.labels(test)
        record = Result.build(
            identity,
            key,
            started,
            {"extracted_splits": features.computed},
            model=features.meta["model"],
            pretrained=features.meta["pretrained"],
            weights=features.meta["identity"].get("weights", {"kind": "none"}),
            classes=list(task.classes),
            metrics=score_predictions(labels, similarity.argmax(axis=1), task.classes),
            predictions=[int(p) for p in similarity.argmax(axis=1)],
            selection=Selection(
                metric=None,
                split=None,
                parameter=None,
                chosen=None,
                note="nothing is chosen: the prompts are fixed before any data is seen",
            ),
            prompts=chosen,
            data=data_section(task, {"test": len(labels)}),
            features={
                "dim": int(images.shape[1]),
                "layer": config.layer,
                "precision": config.precision,
                "device": config.device,
                "preprocess": features.meta.get("preprocess"),
                "cache_keys": features.meta["keys"],
            },
        )
        return record, record.write(results_dir)


@dataclass(frozen=True)
class ZeroShotBaseline:
    """The registry's face of `zero_shot`: the probed model itself, used as CLIP users use it."""

    name: str = "zero-shot"
    uses_model: bool = True  # the probed model's own text tower
    description: str = (
        "Zero-shot classification by the probed model's own text tower: each test image gets the class "
        "whose prompts it is most similar to (no training; prompts from the task, or zero-shot:FILE.toml)"
    )

    def check_option(self, option: str | None, budget: dict[str, Any] | None = None) -> None:
        if option is not None:
            read_prompt_file(option)

    def run(
        self,
        task: Task,
        config: ExtractorConfig,
        results_dir: Path,
        *,
        option: str | None = None,
        budget: dict[str, Any] | None = None,
        refresh: bool = False,
    ) -> Outcome:
        return zero_shot(
            task, config, results_dir, prompts=read_prompt_file(option) if option else None, refresh=refresh
        )


BASELINES.register("zero-shot", ZeroShotBaseline())
