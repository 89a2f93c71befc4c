"""Extractors: a registry of ways to turn images into features (open_clip towers, raw pixels)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import datasets
import numpy as np

from ..core.defaults import AUTO, GEOMETRY
from ..core.errors import UsageError
from ..core.progress import progress_bar
from ..core.registry import Registry
from .config import DEFAULT_LAYER, LAYERS, ExtractorConfig, check_choice
from .decode import Uint8Preprocess
from .devices import check_device
from .geometry import RESIZE_MODES, check_resize, tensor_transform
from .layers import layer_forward, layer_identity, token_width
from .loading import fits_input_cache, forward_threads, input_batches, keep_inputs, kept_inputs, loader_workers
from .naming import representation_name, weights_names
from .precision import PRECISION_CHOICES, with_autocast, with_channels_last


class Extractor(Protocol):
    """Turns a split of images into an (n, d) float32 array; `identity` is what decides the numbers."""

    def identity(self) -> dict[str, Any]: ...

    def describe(self) -> dict[str, str]: ...

    def preprocess_cfg(self) -> dict[str, Any]: ...

    def token_width(self) -> int | None:
        """Numbers per position when the features are every token (the all-tokens layer); None otherwise."""

    def encode(self, split: datasets.Dataset, description: str, image_column: str = "image") -> np.ndarray: ...

    def encode_rows(
        self,
        split: datasets.Dataset,
        start: int,
        stop: int,
        image_column: str = "image",
        advance: Callable[[int], None] | None = None,
    ) -> np.ndarray: ...


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
        decoded: list[torch.Tensor] | None = []
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
        if config.precision == AUTO:
            # Resolved once, in the run plan (clipprobe.jobs.precision.resolve_precision), before anything is keyed
            # or named: an extractor only ever sees a concrete precision.
            raise UsageError(
                "precision 'auto' must be resolved before extraction: clipprobe.jobs.precision.resolve_precision(config)"
            )
        super().__init__(config)
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
            orbit=self.config.orbit,
            resize=self.config.resize,
        )
        # The precision is not in the name (it may differ between machines, see clipprobe.features.naming): it goes
        # beside it, with why it was chosen (what `auto` saw, or "asked for"), into each result.
        return {
            "representation": row,
            "model": model,
            "pretrained": pretrained,
            "precision": self.config.precision,
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

    def token_width(self) -> int | None:
        model, _ = self._load()
        return token_width(model, self.config.layer)

    def pipeline(self):
        import open_clip

        _, preprocess = self._load()
        # open_clip's own steps on uint8 tensors when it recognises them (decode.py), else open_clip's PIL transform.
        transform = Uint8Preprocess.from_transform(preprocess) or preprocess
        return transform, self._forward, open_clip.get_input_dtype(self.config.precision)


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
        # The geometry always (the default changed from squash to crop: features of one must not answer the other).
        identity["resize"] = self.config.resize or GEOMETRY
        return identity

    def describe(self) -> dict[str, str]:
        # Raw pixels have one layer and one precision (no "precision" here): only an orbit and a resize make another row.
        row = representation_name(f"pixels/{self.SIZE}px", orbit=self.config.orbit, resize=self.config.resize)
        return {"representation": row, "model": "pixels", "pretrained": "none"}

    def token_width(self) -> int | None:
        return None  # raw pixels have one layer, no tokens

    def preprocess_cfg(self) -> dict[str, Any]:
        mode = RESIZE_MODES[self.config.resize or GEOMETRY]
        return {"size": self.SIZE, "interpolation": "bilinear", "resize_mode": mode, "mean": None, "std": None}

    def pipeline(self):
        import torch

        transform = tensor_transform(self.SIZE, self.config.resize or GEOMETRY)
        return transform, lambda images: images.flatten(1), torch.float32


def make_extractor(config: ExtractorConfig) -> Extractor:
    return EXTRACTORS.get(config.extractor)(config)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
