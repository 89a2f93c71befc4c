"""Extractors: a registry of ways to turn images into features (open_clip towers, raw pixels)."""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import datasets
import numpy as np

from ..core.errors import UsageError
from ..core.progress import progress_bar
from ..core.registry import Registry
from .config import DEFAULT_LAYER, LAYERS, ExtractorConfig, check_choice
from .decode import Uint8Preprocess
from .devices import check_device, resolve_device
from .geometry import RESIZE_MODES, check_resize, tensor_transform
from .layers import layer_forward, layer_identity
from .loading import fits_input_cache, forward_threads, input_batches, keep_inputs, kept_inputs, loader_workers
from .naming import representation_name, weights_names
from .precision import AUTO, DEFAULT_PRECISION, PRECISION_CHOICES, native_bf16_device, with_autocast, with_channels_last


class Extractor(Protocol):
    """Turns a split of images into an (n, d) float32 array; `identity` is what decides the numbers."""

    def identity(self) -> dict[str, Any]: ...

    def describe(self) -> dict[str, str]: ...

    def preprocess_cfg(self) -> dict[str, Any]: ...

    def encode(self, split: datasets.Dataset, description: str, image_column: str = "image") -> np.ndarray: ...


EXTRACTORS: Registry[type] = Registry("extractor")


def list_extractors() -> list[str]:
    return EXTRACTORS.names()


class BatchExtractor:
    """Shared by extractors that map batches of preprocessed image tensors to features: the loop, the
    progress bar, and the optional orbit averaging that makes the features exactly invariant to a group."""

    def __init__(self, config: ExtractorConfig):
        check_device(config.device)
        if config.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
        loader_workers(config.workers, 0, config.batch_size)  # a negative count fails here, before any work
        check_resize(config.resize)
        self.config = config
        self.group = parse_orbit(config.orbit)

    def pipeline(self):
        """(transform from PIL image to tensor, forward from batch to features, input dtype). A Uint8Preprocess
        transform (clipprobe.features.decode) gives uint8 tensors, decodes encoded bytes (`decode`) and turns each
        uint8 batch into the model's input on the device (`normalize`)."""
        raise NotImplementedError

    def encode(self, split: datasets.Dataset, description: str, image_column: str = "image") -> np.ndarray:
        """Every row of `split`, in order, as one (n, d) float32 array, with a progress bar."""
        with progress_bar() as progress:
            job = progress.add_task(description, total=len(split))
            return self.encode_rows(split, 0, len(split), image_column, lambda n: progress.advance(job, n))

    def encode_rows(
        self,
        split: datasets.Dataset,
        start: int,
        stop: int,
        image_column: str = "image",
        advance: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Rows start..stop of `split` as an (n, d) float32 array; `advance(k)` is called after each batch of k."""
        import torch

        from .orbits import orbit_average

        transform, forward, input_dtype = self.pipeline()
        # uint8 batches (clipprobe's own preprocessing) are converted and normalised on the device, a batch at a time.
        normalize = transform.normalize if isinstance(transform, Uint8Preprocess) else None
        whole = (start, stop) == (0, len(split))
        rows = split if whole else split.select(range(start, stop))
        cuda = self.config.device.startswith("cuda")
        key = (getattr(split, "_fingerprint", None), start, stop, image_column, repr(transform))
        kept = kept_inputs(key) if key[0] is not None else None
        workers = 0
        if kept is not None:  # decoded and preprocessed before in this process: the same tensors, without decoding
            batches = kept.split(self.config.batch_size)
        else:
            batches, workers = input_batches(
                rows, transform, image_column, self.config.batch_size, self.config.workers, self.config.device
            )
        decoded = []
        out: np.ndarray | None = None
        done = 0
        with torch.inference_mode(), forward_threads(workers, self.config.device):
            for images in batches:
                if kept is None and decoded is not None:
                    # Kept only for a whole split (one chunk) that fits the cache: a split large enough to be
                    # extracted in chunks is not held in memory, so peak memory does not grow with the data.
                    fits = whole and fits_input_cache(images[0].element_size() * images[0].nelement() * len(rows))
                    if fits:
                        decoded.append(images)
                    else:
                        decoded = None
                images = images.to(device=self.config.device, non_blocking=cuda)
                if normalize is not None:  # uint8 batches: converted and normalised here, on the device
                    images = normalize(images)
                if input_dtype is not None:
                    images = images.to(dtype=input_dtype)
                features = orbit_average(forward, images, self.group) if self.group is not None else forward(images)
                batch = features.float().cpu().numpy()
                if out is None:
                    out = np.empty((len(rows), batch.shape[1]), dtype=np.float32)
                out[done : done + len(batch)] = batch
                done += len(batch)
                if advance is not None:
                    advance(len(batch))
        if kept is None and key[0] is not None and decoded:
            keep_inputs(key, torch.cat(decoded))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


def parse_orbit(spec: str | None):
    """A group spec (`hflip`, `translate:4+hflip`, see clipprobe.features.orbits) -> the group, or None."""
    if spec is None:
        return None
    from .orbits import get_group

    return get_group(spec)


@EXTRACTORS.register("open_clip")
class OpenClipExtractor(BatchExtractor):
    """Image features from any open_clip model; the model is built only when a split is missing."""

    def __init__(self, config: ExtractorConfig):
        from .weights import resolve_weights

        check_choice("precision", config.precision, PRECISION_CHOICES)
        check_choice("layer", config.layer, LAYERS)
        super().__init__(config)
        # `auto` becomes a concrete precision here, before the identity (hence the cache key) or the row name exists.
        self.config = config = resolve_precision(config)
        self.weights = resolve_weights(config.model, config.pretrained)
        self._model = None
        self._preprocess = None
        self._forward = None

    def identity(self) -> dict[str, Any]:
        import open_clip

        from .weights import model_config

        identity = {
            "extractor": "open_clip",
            "model": self.config.model,
            # The architecture as resolved now: a config edited under the same name is another model.
            "model_config": model_config(self.config.model),
            "weights": self.weights.identity,
            "precision": self.config.precision,
            "layer": layer_identity(self.config.layer),
            # The final preprocessing follows from the model config, the weights' settings, a --resize and
            # open_clip's version.
            "open_clip": open_clip.__version__,
        }
        if self.config.resize is not None:
            identity["resize"] = self.config.resize
        if self.weights.identity["kind"] == "random":
            identity["seed"] = self.config.seed
        if self.config.orbit:
            identity["orbit"] = self.config.orbit
        return identity

    @property
    def precision_reason(self) -> str:
        return self.config.precision_reason or f"asked for ({self.config.precision})"

    def describe(self) -> dict[str, str]:
        """How result tables name this representation."""
        model, pretrained = weights_names(self.config.model, self.weights)
        row = representation_name(
            model if model == pretrained else f"{model}/{pretrained}",
            layer=self.config.layer,
            precision=self.config.precision,
            orbit=self.config.orbit,
            resize=self.config.resize,
        )
        # Why this precision (what `auto` saw, or "asked for"): it travels with the features into each result.
        return {
            "representation": row,
            "model": model,
            "pretrained": pretrained,
            "precision_reason": self.precision_reason,
        }

    def _load(self):
        if self._model is None:
            import torch

            from .weights import create_model

            model, self._preprocess = create_model(
                self.weights,
                device=self.config.device,
                precision=self.config.precision,
                seed=self.config.seed,
                resize_mode=RESIZE_MODES[self.config.resize] if self.config.resize else None,
            )
            if self.config.channels_last:
                model = model.to(memory_format=torch.channels_last)
            # Checked here, before any data is read: whether a layer exists depends on the built image tower.
            forward = layer_forward(model, self.config.layer, self.config.model)
            forward = with_channels_last(forward) if self.config.channels_last else forward
            self._forward = with_autocast(forward, self.config.precision, self.config.device)
            self._model = model
        return self._model, self._preprocess

    def preprocess_cfg(self) -> dict[str, Any]:
        import open_clip

        model, _ = self._load()
        return jsonable(open_clip.get_model_preprocess_cfg(model))

    def pipeline(self):
        import open_clip

        _, preprocess = self._load()
        # open_clip's own steps on uint8 tensors when it recognises them (decode.py), else open_clip's PIL transform.
        transform = Uint8Preprocess.from_transform(preprocess) or preprocess
        return transform, self._forward, open_clip.get_input_dtype(self.config.precision)


def resolve_precision(config: ExtractorConfig) -> ExtractorConfig:
    """`config` with a concrete precision: `auto` becomes bf16 where the device computes bf16 natively and bf16's
    features agree with fp32's for this model and weights (`bf16_verdict`, run once per model, weights, device and
    machine, then read from the cache folder), fp32 elsewhere; `precision_reason` says which test decided.
    A concrete precision is returned as it is."""
    if config.precision != AUTO:
        return config
    if config.extractor != "open_clip":
        return dataclasses.replace(
            config, precision=DEFAULT_PRECISION, precision_reason=f"auto: the {config.extractor} extractor is float32"
        )
    device = resolve_device(config.device)
    check_device(device)  # an unknown device is named as such, before any probing of it
    native, why = native_bf16_device(device)
    if not native:
        return dataclasses.replace(config, precision="fp32", precision_reason=f"auto: fp32, since {why}")
    verdict = bf16_verdict(dataclasses.replace(config, device=device))
    if verdict["agrees"]:
        return dataclasses.replace(
            config, precision="bf16", precision_reason=f"auto: bf16, since {why} and {verdict['summary']}"
        )
    warnings.warn(
        f"--precision auto: {config.model}/{config.pretrained or 'default'} falls back to fp32: {verdict['summary']}",
        RuntimeWarning,
        stacklevel=2,
    )
    return dataclasses.replace(
        config, precision="fp32", precision_reason=f"auto: fp32, since {why} but {verdict['summary']}"
    )


# The check that stands between native bf16 and trusting it for a model: CHECK_CLASSES x CHECK_PER_CLASS generated
# images (a coloured disc on a graded background, the class its dominant channel), encoded in fp32 and in bf16.
# bf16 is trusted when every image's embedding points where fp32's does (cosine >= CHECK_MIN_COSINE) and a linear
# probe on bf16's features scores inside the 95 % bootstrap interval of the same probe on fp32's (trained on half
# the images, scored on the other half). Bump CHECK_VERSION when the check changes: verdicts are cached under it.
CHECK_VERSION = 1
CHECK_CLASSES = 3
CHECK_PER_CLASS = 24
CHECK_MIN_COSINE = 0.99
CHECK_RESAMPLES = 1000


def bf16_verdict(config: ExtractorConfig) -> dict[str, Any]:
    """Whether bf16 features of `config`'s model agree with fp32's (see CHECK_*); cached as JSON under
    $CLIPPROBE_HOME/precision, keyed by model, weights, device and machine, so that it runs once."""
    import torch

    from ..core import machine, paths
    from ..core.storage import stable_hash, write_json
    from .weights import model_config, resolve_weights

    weights = resolve_weights(config.model, config.pretrained)
    device = config.device
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else machine.cpu_model()
    key = {
        "check": CHECK_VERSION,
        "model": config.model,
        "model_config": model_config(config.model),
        "weights": weights.identity,
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
    verdict = _check_bf16(config)
    verdict["seconds"] = round(time.perf_counter() - started, 1)
    write_json(path, {"key": key, "verdict": verdict})
    return verdict


def check_images() -> tuple[list, np.ndarray]:
    """The check's images (224 px, deterministic) and their labels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    size = 224
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, labels = [], []
    for i in range(CHECK_CLASSES * CHECK_PER_CLASS):
        label = i % CHECK_CLASSES
        pixels = (
            rng.uniform(0.2, 0.8, 3)
            + xx[..., None] * rng.uniform(-0.3, 0.3, 3)
            + yy[..., None] * rng.uniform(-0.3, 0.3, 3)
        )
        (cx, cy), radius = rng.uniform(0.25, 0.75, 2), rng.uniform(0.1, 0.25)
        colour = rng.uniform(0.1, 0.5, 3)
        colour[label] += rng.uniform(0.2, 0.5)
        pixels[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = colour
        pixels += rng.normal(0, 0.05, pixels.shape)
        images.append(Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)))
        labels.append(label)
    return images, np.array(labels)


def _check_bf16(config: ExtractorConfig) -> dict[str, Any]:
    """Encode the check's images in fp32 and bf16 (the final embedding) and compare them."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    images, labels = check_images()
    base = dataclasses.replace(
        config, layer=DEFAULT_LAYER, orbit=None, resize=None, channels_last=False, precision_reason=None
    )
    features = {}
    for precision in ("fp32", "bf16"):
        transform, forward, dtype = OpenClipExtractor(dataclasses.replace(base, precision=precision)).pipeline()
        inputs = torch.stack([transform(image) for image in images])
        if hasattr(transform, "normalize"):  # uint8 inputs (decode.Uint8Preprocess)
            inputs = transform.normalize(inputs)
        with torch.inference_mode():
            batches = inputs.split(config.batch_size)
            out = [forward(b.to(device=config.device, dtype=dtype)).float().cpu() for b in batches]
        features[precision] = torch.cat(out).double().numpy()
    a, b = features["fp32"], features["bf16"]
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    train, held_out = np.arange(0, len(labels), 2), np.arange(1, len(labels), 2)
    predicted = {}
    for precision, x in features.items():
        scaler = StandardScaler().fit(x[train])
        probe = LogisticRegression(max_iter=1000).fit(scaler.transform(x[train]), labels[train])
        predicted[precision] = probe.predict(scaler.transform(x[held_out]))
    y = labels[held_out]
    scores = {p: float(balanced_accuracy_score(y, predicted[p])) for p in predicted}
    rng = np.random.default_rng(0)
    resampled = []
    for _ in range(CHECK_RESAMPLES):
        pick = rng.integers(0, len(y), len(y))
        if len(np.unique(y[pick])) == CHECK_CLASSES:
            resampled.append(balanced_accuracy_score(y[pick], predicted["fp32"][pick]))
    low, high = (float(v) for v in np.percentile(resampled, [2.5, 97.5]))
    inside = low <= scores["bf16"] <= high
    close = bool(cosine.min() >= CHECK_MIN_COSINE)
    summary = (
        f"bf16 {'agreed' if close and inside else 'disagreed'} with fp32 on {len(labels)} check images "
        f"(cosine min {cosine.min():.5f}, target >= {CHECK_MIN_COSINE}; held-out probe {scores['bf16']:.3f} "
        f"{'inside' if inside else 'outside'} fp32's {scores['fp32']:.3f} [{low:.3f}, {high:.3f}])"
    )
    return {
        "agrees": close and inside,
        "summary": summary,
        "images": len(labels),
        "cosine": {"min": round(float(cosine.min()), 6), "median": round(float(np.median(cosine)), 6)},
        "probe": {"fp32": scores["fp32"], "fp32_interval": [low, high], "bf16": scores["bf16"], "inside": inside},
    }


@EXTRACTORS.register("pixels")
class PixelsExtractor(BatchExtractor):
    """The floor: raw pixels, downsampled to 32 x 32 and flattened (3,072 features)."""

    SIZE = 32

    def __init__(self, config: ExtractorConfig):
        check_choice("layer", config.layer, LAYERS)
        if config.layer != DEFAULT_LAYER:
            raise UsageError(
                f"Layer '{config.layer}' does not exist for the pixels extractor (raw pixels have no layers). "
                f"Available: {DEFAULT_LAYER}"
            )
        super().__init__(config)

    def identity(self) -> dict[str, Any]:
        identity = {"extractor": "pixels", "size": self.SIZE}
        if self.config.orbit:
            identity["orbit"] = self.config.orbit
        if self.config.resize is not None:
            identity["resize"] = self.config.resize
        return identity

    def describe(self) -> dict[str, str]:
        # Raw pixels have one layer and one precision: only an orbit and a resize make another row.
        row = representation_name(f"pixels/{self.SIZE}px", orbit=self.config.orbit, resize=self.config.resize)
        return {"representation": row, "model": "pixels", "pretrained": "none"}

    def preprocess_cfg(self) -> dict[str, Any]:
        mode = RESIZE_MODES[self.config.resize or "squash"]
        return {"size": self.SIZE, "interpolation": "bilinear", "resize_mode": mode, "mean": None, "std": None}

    def pipeline(self):
        import torch

        transform = tensor_transform(self.SIZE, self.config.resize or "squash")
        return transform, lambda images: images.flatten(1), torch.float32


def make_extractor(config: ExtractorConfig) -> Extractor:
    return EXTRACTORS.get(config.extractor)(config)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
