"""A zero-shot job: the model's final embedding of the test images against its own text prompts per class; nothing
is fitted or chosen, so no labels but the test labels (to score) are read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..baselines.registry import PromptBaseline
from ..core.kinds import RowKind
from ..data.task import Task
from ..features.cache import FeatureCache
from ..features.config import ExtractorConfig
from ..features.extract import FeaturePlan, extract_features, plan_features
from ..probes.metrics import score_predictions
from ..results import Identity, Result, Selection
from .base import Job, Origin, data_info, record, typed
from .probe import feature_info, weights_of

SPLITS = ("test",)


@dataclass
class ZeroShotJob(Job):
    """`baseline` (a clipprobe.baselines.registry.PromptBaseline) with `config`'s model on `task`'s test images."""

    task: Task
    config: ExtractorConfig
    baseline: PromptBaseline
    origin: Origin
    option: str | None = None
    cache: FeatureCache | None = None
    # Prompts per class given directly (a caller's own), instead of the baseline's for the task and option.
    given_prompts: Mapping[str, Sequence[str]] | None = None
    kind: RowKind = field(default=RowKind.ZERO_SHOT, init=False)
    _plan: FeaturePlan | None = field(default=None, init=False, repr=False)
    _prompts: dict[str, list[str]] | None = field(default=None, init=False, repr=False)

    def outline(self) -> str:
        return f"{self.task.name} | {typed(self.config)} | zero-shot | seed {self.config.seed} | zero-shot"

    def resolve(self) -> None:
        if self._plan is None:
            from ..baselines.zeroshot import check_zero_shot_config

            check_zero_shot_config(self.config)
            if self.given_prompts is not None:
                from ..baselines.zeroshot import task_prompts

                self._prompts = task_prompts(self.task, self.given_prompts)
            else:
                self._prompts = self.baseline.prompts(self.task, self.option)
            self._plan = plan_features(self.task.source, self.config, SPLITS, self.cache)

    @property
    def plan(self) -> FeaturePlan:
        self.resolve()
        assert self._plan is not None
        return self._plan

    @property
    def prompts(self) -> dict[str, list[str]]:
        self.resolve()
        assert self._prompts is not None
        return self._prompts

    def identity(self) -> Identity:
        plan = self.plan
        return Identity(
            self.task.name, plan.representation, self.baseline.method, self.config.seed, precision=plan.precision
        )

    def key(self) -> str:
        return self.identity().key(
            {
                "code": self.baseline.version,
                "features": self.plan.keys,
                "prompts": self.prompts,
                "classes": list(self.task.classes),
                "where": [list(c) for c in self.task.where],
            }
        )

    def compute(self, started: float) -> Result:
        from ..baselines.zeroshot import predict_zero_shot

        task, config = self.task, self.config
        features = extract_features(task.source, config, splits=SPLITS, cache=self.cache)
        test = task.source.load()["test"]
        images = np.asarray(features.arrays["test"], dtype=np.float32)[task.rows(test)]
        predicted = predict_zero_shot(images, self.baseline.class_embeddings(config, self.prompts))
        labels = task.labels(test)
        return record(
            self,
            started,
            {"extracted_splits": list(features.computed)},
            model=features.meta["model"],
            pretrained=features.meta["pretrained"],
            weights=weights_of(features.meta["identity"]),
            classes=list(task.classes),
            metrics=score_predictions(labels, predicted, task.classes),
            predictions=[int(p) for p in predicted],
            labels=[int(y) for y in labels],
            selection=Selection(
                metric=None,
                split=None,
                parameter=None,
                chosen=None,
                note="nothing is chosen: the prompts are fixed before any data is seen",
            ),
            prompts=self.prompts,
            data=data_info(task, {"test": len(labels)}),
            features=feature_info(config, images.shape[1], features.meta, features.meta["keys"]),
        )
