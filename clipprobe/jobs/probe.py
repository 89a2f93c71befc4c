"""A probe job: frozen features (extracted if the cache is cold) -> the probe's choice on validation -> its test
predictions -> scored once -> one record. The model's own probe rows and the controls (pixels, random weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import RunError
from ..core.kinds import RowKind
from ..data.task import PROBE_SPLITS, Task
from ..features.cache import FeatureCache
from ..features.config import ExtractorConfig
from ..features.extract import FeaturePlan, extract_features, plan_features
from ..features.geometry import OPEN_CLIP_NAMES
from ..probes.metrics import score_predictions
from ..probes.probe import run_probe
from ..probes.registry import PROBE_VERSION, Probe
from ..probes.shots import Shots
from ..results import FeatureInfo, Identity, Preprocess, Result, Weights, package_versions
from .base import Job, Origin, data_info, record, typed


def weights_of(identity: dict) -> Weights:
    """The record's view of an extractor's weights identity (the kind and what pins them down)."""
    weights = identity.get("weights") or {"kind": "none"}
    return Weights(
        kind=str(weights.get("kind", "none")),
        tag=weights.get("tag"),
        sha256=weights.get("sha256"),
        source=weights.get("source"),
        repo=weights.get("repo"),
    )


def preprocess_of(meta: dict | None) -> Preprocess | None:
    """open_clip's preprocessing configuration (or the pixels') as the record's typed section."""
    if not meta:
        return None
    size = meta.get("size")
    return Preprocess(
        size=list(size) if isinstance(size, (list, tuple)) else size,
        mode=meta.get("mode"),
        mean=list(meta["mean"]) if meta.get("mean") is not None else None,
        std=list(meta["std"]) if meta.get("std") is not None else None,
        interpolation=meta.get("interpolation"),
        resize_mode=meta.get("resize_mode"),
        fill_color=meta.get("fill_color"),
    )


def feature_info(config: ExtractorConfig, dim: int, meta: dict, keys: dict[str, str]) -> FeatureInfo:
    """The features section of a record, built one way for probes, zero-shot and sensitivity scores."""
    preprocess = preprocess_of(meta.get("preprocess"))
    mode = preprocess.resize_mode if preprocess is not None else None
    return FeatureInfo(
        dim=int(dim),
        layer=config.layer,
        precision=str(meta["identity"].get("precision", config.precision)),
        precision_reason=config.precision_reason or meta.get("precision_reason"),
        device=config.device,
        preprocess=preprocess,
        geometry=OPEN_CLIP_NAMES.get(mode, mode) if mode is not None else config.resize,
        cache_keys=dict(keys),
        orbit=config.orbit,
    )


@dataclass
class ProbeJob(Job):
    """`probe` on `config`'s features of `task` (few-shot with `shots`); `kind` PROBE for a model's own row, CONTROL
    for a control's. `grid`: the probe's hyperparameter grid (default: its own)."""

    task: Task
    config: ExtractorConfig
    probe: Probe
    origin: Origin
    kind: RowKind = RowKind.PROBE
    shots: Shots | None = None
    grid: tuple[float, ...] | None = None
    cache: FeatureCache | None = None
    _plan: FeaturePlan | None = field(default=None, init=False, repr=False)

    def resolve(self) -> None:
        if self._plan is None:
            self._plan = plan_features(self.task.source, self.config, PROBE_SPLITS, self.cache)

    @property
    def plan(self) -> FeaturePlan:
        self.resolve()
        assert self._plan is not None
        return self._plan

    @property
    def chosen_grid(self) -> tuple[float, ...]:
        return tuple(sorted(float(value) for value in (self.grid or self.probe.grid)))

    def outline(self) -> str:
        shots = f" | {self.shots}-shot" if self.shots is not None else ""
        what = "probe" if self.kind is RowKind.PROBE else f"control: {self.origin.baseline}"
        return f"{self.task.name} | {typed(self.config)} | {self.probe.name}{shots} | seed {self.config.seed} | {what}"

    def identity(self) -> Identity:
        plan = self.plan
        return Identity(
            self.task.name, plan.representation, self.probe.method, self.config.seed, self.shots, plan.precision
        )

    def key(self) -> str:
        return self.identity().key(
            {
                "probe": [self.probe.name, PROBE_VERSION],
                "scikit-learn": package_versions()["scikit-learn"],
                "features": self.plan.keys,
                "task": [self.task.label, list(self.task.classes), [list(c) for c in self.task.where]],
                "grid": list(self.chosen_grid),
            }
        )

    def compute(self, started: float) -> Result:
        task, config = self.task, self.config
        features = extract_features(task.source, config, cache=self.cache)
        data = task.source.load()
        # Features cover every row of the source; the task keeps its own rows (e.g. scenes with a light).
        inputs = {split: np.asarray(array)[task.rows(data[split])] for split, array in features.arrays.items()}
        if self.probe.layer is not None:  # every token: (n, positions * width) -> (n, positions, width)
            width = features.meta["token_width"]
            if not width:
                raise RunError(f"Features of {config.model} at layer {config.layer} do not say their token width")
            inputs = {split: x.reshape(len(x), -1, int(width)) for split, x in inputs.items()}
        labels = {split: task.labels(data[split]) for split in ("train", "validation")}
        outcome = run_probe(self.probe, inputs, labels, task.classes, self.chosen_grid, config.seed, self.shots)
        sizes = {split: len(x) for split, x in inputs.items()}
        if outcome.sample is not None:
            sizes["train"] = outcome.train_rows
        described = dict(
            model=features.meta["model"],
            pretrained=features.meta["pretrained"],
            weights=weights_of(features.meta["identity"]),
            classes=list(task.classes),
            data=data_info(task, sizes),
        )
        run = {"extracted_splits": list(features.computed)}
        if outcome.skipped is not None:
            # Recorded, not silently dropped: the report lists it under the task's few-shot table.
            return record(self, started, run, skipped=outcome.skipped, **described)
        assert outcome.predictions is not None
        # The probe is fixed and its test predictions made: only now are the test labels read, once.
        test_labels = task.labels(data["test"])
        return record(
            self,
            started,
            run,
            **described,
            metrics=score_predictions(test_labels, outcome.predictions, task.classes),
            predictions=[int(p) for p in outcome.predictions],
            labels=[int(y) for y in test_labels],
            selection=outcome.selection,
            features=feature_info(config, features.arrays["train"].shape[1], features.meta, features.meta["keys"]),
            sample=outcome.sample,
        )
