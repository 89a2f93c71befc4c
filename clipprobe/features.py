"""Frozen features: batched extraction through a registered extractor, cached on disk by content key."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import datasets
import numpy as np

from . import paths
from .errors import RunError, UsageError
from .progress import progress_bar
from .registry import Registry
from .storage import atomic_path, file_sha256, stable_hash, write_json
from .tasks import PROBE_SPLITS, DataSource

PRECISIONS = ("fp32", "bf16")
LAYERS = ("embedding",)
# Bump when the extraction code changes what it stores, so old cache entries are not reused.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ExtractorConfig:
    """Everything the user chooses about a feature extractor."""

    model: str = "mini-clip"
    pretrained: str | None = None
    precision: str = "fp32"
    layer: str = "embedding"
    device: str = "cpu"
    batch_size: int = 64
    seed: int = 0
    extractor: str = "open_clip"
    # A hard invariance imposed on the frozen features: `orbit:GROUP` averages them over the group's orbit.
    invariance: str | None = None


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
        _check_device(config.device)
        if config.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
        self.config = config
        self.group = parse_invariance(config.invariance)

    def pipeline(self):
        """(transform from PIL image to tensor, forward from batch to features, input dtype)."""
        raise NotImplementedError

    def _suffix(self) -> str:
        return f" [{self.config.invariance}]" if self.config.invariance else ""

    def encode(self, split: datasets.Dataset, description: str, image_column: str = "image") -> np.ndarray:
        import torch

        from .invariance import orbit_average

        transform, forward, input_dtype = self.pipeline()
        loader = torch.utils.data.DataLoader(
            _ImageSplit(split, transform, image_column), batch_size=self.config.batch_size, shuffle=False, num_workers=0
        )
        out: np.ndarray | None = None
        start = 0
        with torch.inference_mode(), progress_bar() as progress:
            job = progress.add_task(description, total=len(split))
            for images in loader:
                images = images.to(device=self.config.device, dtype=input_dtype)
                features = orbit_average(forward, images, self.group) if self.group is not None else forward(images)
                batch = features.float().cpu().numpy()
                if out is None:
                    out = np.empty((len(split), batch.shape[1]), dtype=np.float32)
                out[start:start + len(batch)] = batch
                start += len(batch)
                progress.advance(job, len(batch))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


def parse_invariance(spec: str | None):
    """`orbit:GROUP` -> the group (see clipprobe.invariance), or None."""
    if spec is None:
        return None
    kind, _, group = spec.partition(":")
    if kind != "orbit" or not group:
        raise UsageError(f"Unknown invariance '{spec}'. Available: orbit:GROUP, e.g. orbit:translate:4, orbit:hflip, orbit:translate:4+hflip")
    from .invariance import get_group

    return get_group(group)


@EXTRACTORS.register("open_clip")
class OpenClipExtractor(BatchExtractor):
    """Image features from any open_clip model; the model is built only when a split is missing."""

    def __init__(self, config: ExtractorConfig):
        from .models import resolve_weights

        _check_choice("precision", config.precision, PRECISIONS)
        _check_choice("layer", config.layer, LAYERS)
        super().__init__(config)
        self.weights = resolve_weights(config.model, config.pretrained)
        self._model = None
        self._preprocess = None

    def identity(self) -> dict[str, Any]:
        import open_clip

        identity = {
            "extractor": "open_clip",
            "model": self.config.model,
            "weights": self.weights.identity,
            "precision": self.config.precision,
            "layer": self.config.layer,
            # The final preprocessing follows from model, weights and open_clip's version.
            "open_clip": open_clip.__version__,
        }
        if self.weights.identity["kind"] == "random":
            identity["seed"] = self.config.seed
        if self.config.invariance:
            identity["invariance"] = self.config.invariance
        return identity

    def describe(self) -> dict[str, str]:
        """How result tables name this representation."""
        row = f"{self.config.model}/{self.weights.label}{self._suffix()}"
        return {"row": row, "model": self.config.model, "pretrained": self.weights.label}

    def _load(self):
        if self._model is None:
            from .models import create_model

            self._model, self._preprocess = create_model(
                self.weights, device=self.config.device, precision=self.config.precision, seed=self.config.seed
            )
        return self._model, self._preprocess

    def preprocess_cfg(self) -> dict[str, Any]:
        import open_clip

        model, _ = self._load()
        return _jsonable(open_clip.get_model_preprocess_cfg(model))

    def pipeline(self):
        import open_clip

        model, preprocess = self._load()
        return preprocess, model.encode_image, open_clip.get_input_dtype(self.config.precision)


@EXTRACTORS.register("pixels")
class PixelsExtractor(BatchExtractor):
    """The floor: raw pixels, downsampled to 32 x 32 and flattened (3,072 features)."""

    SIZE = 32

    def identity(self) -> dict[str, Any]:
        identity = {"extractor": "pixels", "size": self.SIZE}
        if self.config.invariance:
            identity["invariance"] = self.config.invariance
        return identity

    def describe(self) -> dict[str, str]:
        return {"row": f"pixels/{self.SIZE}px{self._suffix()}", "model": "pixels", "pretrained": "none"}

    def preprocess_cfg(self) -> dict[str, Any]:
        return {"size": self.SIZE, "interpolation": "bilinear", "resize_mode": "squash", "mean": None, "std": None}

    def pipeline(self):
        import torch
        from torchvision.transforms import v2

        transform = v2.Compose([v2.PILToTensor(), v2.Resize((self.SIZE, self.SIZE), antialias=True),
                                v2.ToDtype(torch.float32, scale=True)])
        return transform, lambda images: images.flatten(1), torch.float32


class _ImageSplit:
    """A map-style torch dataset over one split's images, decoded and preprocessed on access."""

    def __init__(self, split: datasets.Dataset, transform, column: str = "image"):
        if column not in split.column_names:
            raise UsageError(f"No image column '{column}'. Columns: {', '.join(split.column_names)}")
        self.images = split.select_columns([column])
        self.column = column
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index][self.column].convert("RGB"))


def make_extractor(config: ExtractorConfig) -> Extractor:
    return EXTRACTORS.get(config.extractor)(config)


class FeatureCache:
    """Features as .npy files keyed by a hash of everything that changes them.

    The .json beside each array is written last and holds the array's checksum: an array with
    no .json (a killed run) is recomputed; one whose checksum does not match is reported."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else paths.features_dir()

    def key(self, identity: dict[str, Any], data_fingerprint: str, split: str) -> str:
        return stable_hash({"format": CACHE_FORMAT, "extractor": identity, "data": data_fingerprint, "split": split}, 32)

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def has(self, key: str) -> bool:
        return self._paths(key)[1].exists()

    def meta(self, key: str) -> dict[str, Any]:
        array_path, meta_path = self._paths(key)
        try:
            return json.loads(meta_path.read_text())
        except ValueError as exc:
            raise RunError(f"Corrupted feature cache entry {meta_path}: {exc}. Re-run with --refresh to recompute it") from exc

    def load(self, key: str) -> np.ndarray:
        array_path, meta_path = self._paths(key)
        meta = self.meta(key)
        problem = None
        if not array_path.exists():
            problem = "the array file is missing"
        elif file_sha256(array_path) != meta.get("sha256"):
            problem = "its checksum does not match"
        if problem is None:
            try:
                return np.load(array_path, mmap_mode="r")
            except (ValueError, OSError) as exc:
                problem = str(exc)
        raise RunError(f"Corrupted feature cache file {array_path} ({problem}). Re-run with --refresh to recompute it")

    def save(self, key: str, array: np.ndarray, meta: dict[str, Any]) -> None:
        array_path, meta_path = self._paths(key)
        with atomic_path(array_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array, dtype=np.float32))
        write_json(meta_path, {**meta, "shape": list(array.shape), "sha256": file_sha256(array_path)})


@dataclass
class FeatureSet:
    """The features of every split of one data source under one extractor."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    computed: list[str]


def extract_features(
    source: DataSource,
    config: ExtractorConfig | None = None,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
    refresh: bool = False,
) -> FeatureSet:
    """Features for `splits` of `source`, computing only what the cache lacks (or all with `refresh`)."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    identity = extractor.identity()
    # The same dataset read through another image column is other data.
    fingerprint = f"{source.fingerprint()}:{source.image_column}"
    keys = {split: cache.key(identity, fingerprint, split) for split in splits}
    missing = [s for s in splits if refresh or not cache.has(keys[s])]
    if missing:
        # Build the model before touching the data, so a model that cannot load fails in seconds.
        meta = {
            "identity": identity,
            **extractor.describe(),
            "data": fingerprint,
            "preprocess": extractor.preprocess_cfg(),
            "config": asdict(config),
        }
        data = source.load()
        unknown = [s for s in missing if s not in data]
        if unknown:
            raise UsageError(f"Data source '{source.name}' has no split {unknown[0]!r}. Available: {', '.join(data)}")
        for split in missing:
            array = extractor.encode(data[split], f"Extracting {source.name}/{split}", source.image_column)
            cache.save(keys[split], array, {**meta, "split": split})
    arrays = {split: cache.load(keys[split]) for split in splits}
    stored = cache.meta(keys[splits[0]])
    meta = {k: stored[k] for k in ("identity", "row", "model", "pretrained", "data", "preprocess", "config")}
    meta["keys"] = keys
    return FeatureSet(arrays=arrays, meta=meta, computed=missing)


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"Unknown {flag} '{value}'. Available: {', '.join(choices)}")


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def _check_device(device: str) -> None:
    if device not in available_devices():
        raise UsageError(f"Device '{device}' is not available on this machine. Available: {', '.join(available_devices())}")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
