"""`--precision auto`, resolved once per run plan: bf16 only where the device computes it natively *and* bf16 keeps
what the probe reads on the task's own images; fp32 everywhere else.

The check, per (model, weights, layer, task data, device, machine), cached under $CLIPPROBE_HOME/precision:
CHECK_TRAIN training and CHECK_VALIDATION validation images of the task (a seeded subset; never a test image or
label) are encoded in fp32 and in bf16. bf16 is trusted when both hold:

- the centred features agree: after subtracting fp32's training mean from both, the 5th percentile of the cosine
  between each image's fp32 and bf16 features is at least CHECK_MIN_COSINE. Centring matters: random-weights
  embeddings lie almost on one direction, where every raw cosine is near 1 and bf16's rounding still erases what
  separates the images;
- the linear probe (clipprobe.probes, the same code and grid as every probe row), fitted on the training subset with
  its C chosen on the validation subset, scores within CHECK_TOLERANCE balanced accuracy of fp32's on validation.

The thresholds were set before any test split was looked at, from what rounding to bf16 may cost (its 8-bit
mantissa: about 3 significant digits). A verdict that fails says which test failed, and auto means fp32."""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from typing import Any

import numpy as np

from ..core import machine, paths
from ..core.defaults import AUTO, PRECISION
from ..core.storage import stable_hash, write_json
from ..data.task import Task
from ..features.config import DEFAULT_LAYER, ExtractorConfig
from ..features.devices import check_device, resolve_device
from ..features.extractors import make_extractor
from ..features.precision import native_bf16_device
from ..probes.linear import DEFAULT_C_GRID
from ..probes.registry import SELECTION_METRIC, get_probe

# Bump when the check changes: verdicts are cached under it.
CHECK_VERSION = 2
CHECK_TRAIN = 600
CHECK_VALIDATION = 300
CHECK_MIN_COSINE = 0.98
CHECK_TOLERANCE = 0.02
CHECK_SEED = 0


def resolve_precision(config: ExtractorConfig, task: Task) -> ExtractorConfig:
    """`config` with a concrete precision: `auto` becomes bf16 where the device computes bf16 natively and bf16
    agrees with fp32 on `task`'s own training and validation images (`bf16_verdict`), fp32 elsewhere;
    `precision_reason` says which test decided. A concrete precision is returned as it is."""
    if config.precision != AUTO:
        return config
    if config.extractor != "open_clip":
        return dataclasses.replace(
            config, precision=PRECISION, precision_reason=f"auto: the {config.extractor} extractor is float32"
        )
    device = resolve_device(config.device)
    check_device(device)  # an unknown device is named as such, before any probing of it
    native, why = native_bf16_device(device)
    if not native:
        return dataclasses.replace(config, precision="fp32", precision_reason=f"auto: fp32, since {why}")
    verdict = bf16_verdict(dataclasses.replace(config, device=device), task)
    if verdict["agrees"]:
        return dataclasses.replace(
            config, precision="bf16", precision_reason=f"auto: bf16, since {why} and {verdict['summary']}"
        )
    warnings.warn(
        f"--precision auto: {config.model}/{config.pretrained or 'default'} on {task.name} stays fp32: "
        f"{verdict['summary']}",
        RuntimeWarning,
        stacklevel=2,
    )
    return dataclasses.replace(
        config, precision="fp32", precision_reason=f"auto: fp32, since {why} but {verdict['summary']}"
    )


def bf16_verdict(config: ExtractorConfig, task: Task) -> dict[str, Any]:
    """Whether bf16 features of `config`'s model agree with fp32's on `task`'s images (see the module's text);
    cached as JSON under $CLIPPROBE_HOME/precision, keyed by model, weights, layer, data, device and machine."""
    import torch

    from ..features.weights import model_config, resolve_weights

    weights = resolve_weights(config.model, config.pretrained)
    device = config.device
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else machine.cpu_model()
    key = {
        "check": CHECK_VERSION,
        "model": config.model,
        "model_config": model_config(config.model),
        "weights": weights.identity,
        "layer": config.layer,
        "resize": config.resize,
        "orbit": config.orbit,
        "seed": config.seed if weights.identity.get("kind") == "random" else None,
        "data": [task.source.fingerprint(), task.source.image_column, task.label, list(task.classes)],
        "where": [list(c) for c in task.where],
        "device": [device, device_name, sorted(machine.cpu_flags() & set(machine.BF16_FLAGS))],
        "torch": torch.__version__,
    }
    path = paths.home() / "precision" / f"{paths.slug(config.model)}-{stable_hash(key, 16)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())["verdict"]
        except (ValueError, KeyError):
            pass  # a damaged verdict is simply computed again
    started = time.perf_counter()
    verdict = check_bf16(config, task)
    verdict["seconds"] = round(time.perf_counter() - started, 1)
    write_json(path, {"key": key, "verdict": verdict})
    return verdict


def check_rows(labels: np.ndarray, limit: int, seed: int = CHECK_SEED) -> np.ndarray:
    """At most `limit` of a split's rows, a seeded random subset in their original order."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    return np.sort(np.random.default_rng(seed).permutation(len(labels))[:limit])


def check_bf16(config: ExtractorConfig, task: Task) -> dict[str, Any]:
    """Encode the check's images in fp32 and bf16 and compare them (centred cosine, the probe's validation score)."""
    data = task.source.load()
    picked, labels = {}, {}
    for split, limit in (("train", CHECK_TRAIN), ("validation", CHECK_VALIDATION)):
        rows = task.rows(data[split])
        y = task.labels(data[split])
        keep = check_rows(y, limit)
        picked[split] = data[split].select(rows[keep].tolist())
        labels[split] = y[keep]
    features: dict[str, dict[str, np.ndarray]] = {}
    for precision in ("fp32", "bf16"):
        extractor = make_extractor(dataclasses.replace(config, precision=precision, precision_reason=None))
        features[precision] = {
            split: extractor.encode_rows(rows, 0, len(rows), task.source.image_column).astype(np.float64)
            for split, rows in picked.items()
        }
    centre = features["fp32"]["train"].mean(axis=0)
    a = np.concatenate([features["fp32"][s] for s in picked]) - centre
    b = np.concatenate([features["bf16"][s] for s in picked]) - centre
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    low_cosine = float(np.percentile(cosine, 5))
    linear = get_probe("linear")
    scores = {}
    for precision, x in features.items():
        fit = linear.fit(x["train"], labels["train"], x["validation"], labels["validation"], DEFAULT_C_GRID, seed=0)
        scores[precision] = max(point[SELECTION_METRIC] for point in fit.curve)  # the chosen C's score
    gap = abs(scores["bf16"] - scores["fp32"])
    close = low_cosine >= CHECK_MIN_COSINE
    same = gap <= CHECK_TOLERANCE
    agrees = close and same
    summary = (
        f"bf16 {'agreed' if agrees else 'disagreed'} with fp32 on {len(a)} of {task.name}'s train and validation "
        f"images (centred cosine 5th percentile {low_cosine:.4f}, target >= {CHECK_MIN_COSINE}; validation score "
        f"{scores['bf16']:.3f} vs {scores['fp32']:.3f}, gap {gap:.3f}, target <= {CHECK_TOLERANCE})"
    )
    return {
        "agrees": agrees,
        "summary": summary,
        "images": int(len(a)),
        "layer": config.layer or DEFAULT_LAYER,
        "cosine": {"p5": round(low_cosine, 6), "median": round(float(np.median(cosine)), 6)},
        "probe": {"fp32": scores["fp32"], "bf16": scores["bf16"], "gap": gap, "tolerance": CHECK_TOLERANCE},
    }
