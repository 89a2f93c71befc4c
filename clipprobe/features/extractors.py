"""Extractors: a registry of ways to turn images into features (open_clip towers, raw pixels)."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import datasets
import numpy as np

from ..core.errors import UsageError
from ..core.progress import progress_bar
from ..core.registry import Registry
from .config import DEFAULT_LAYER, LAYERS, ExtractorConfig, check_choice
from .devices import check_device
from .geometry import RESIZE_MODES, check_resize, tensor_transform
from .layers import layer_forward, layer_identity
from .precision import DEFAULT_PRECISION, PRECISIONS, with_autocast, with_channels_last


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
        """(transform from PIL image to tensor, forward from batch to features, input dtype)."""
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
        rows = split if (start, stop) == (0, len(split)) else split.select(range(start, stop))
        cuda = self.config.device.startswith("cuda")
        key = (getattr(split, "_fingerprint", None), start, stop, image_column, repr(transform))
        kept = _INPUTS.get(key) if key[0] is not None else None
        if kept is not None:  # decoded and preprocessed before in this process: the same tensors, without decoding
            _INPUTS.move_to_end(key)
            batches = kept.split(self.config.batch_size)
        else:
            batches = torch.utils.data.DataLoader(
                _ImageSplit(rows, transform, image_column),
                batch_size=self.config.batch_size,
                shuffle=False,
                num_workers=loader_workers(self.config.workers, len(rows), self.config.batch_size, self.config.device),
                pin_memory=cuda,  # page-locked batches copy to the GPU asynchronously
            )
        decoded = []
        out: np.ndarray | None = None
        done = 0
        with torch.inference_mode():
            for images in batches:
                if kept is None and decoded is not None:
                    # Kept only when the whole range fits the cache: a large split is not held in memory twice.
                    fits = images[0].element_size() * images[0].nelement() * len(rows) <= INPUT_CACHE_BYTES
                    if fits:
                        decoded.append(images)
                    else:
                        decoded = None
                images = images.to(device=self.config.device, dtype=input_dtype, non_blocking=cuda)
                features = orbit_average(forward, images, self.group) if self.group is not None else forward(images)
                batch = features.float().cpu().numpy()
                if out is None:
                    out = np.empty((len(rows), batch.shape[1]), dtype=np.float32)
                out[done : done + len(batch)] = batch
                done += len(batch)
                if advance is not None:
                    advance(len(batch))
        if kept is None and key[0] is not None and decoded:
            _keep_inputs(key, torch.cat(decoded))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


# Preprocessed inputs kept in this process, so that another layer, another model with the same preprocessing or
# another seed's weights read them without decoding again: (dataset fingerprint, rows, image column, transform)
# -> the stacked input tensor. The transforms are deterministic, so a kept tensor is what decoding would give.
_INPUTS: OrderedDict[tuple, Any] = OrderedDict()
# At most this many bytes are kept (least recently used first out); a larger split is simply decoded each time.
INPUT_CACHE_BYTES = 1 << 30


def _keep_inputs(key: tuple, inputs) -> None:
    size = inputs.element_size() * inputs.nelement()
    if size > INPUT_CACHE_BYTES:
        return
    _INPUTS[key] = inputs
    while sum(t.element_size() * t.nelement() for t in _INPUTS.values()) > INPUT_CACHE_BYTES:
        _INPUTS.popitem(last=False)


# Starting a worker process costs about as much as decoding a few batches: below this many batches, decode in-process.
MIN_BATCHES_FOR_WORKER = 4


MAX_AUTO_WORKERS = 4


def loader_workers(requested: int | None, rows: int, batch_size: int, device: str = "cpu") -> int:
    """DataLoader workers for one chunk: `requested` if given. Otherwise, for a chunk of at least
    MIN_BATCHES_FOR_WORKER batches, the cores that the forward pass leaves free: on a GPU all but one (the
    CPU only feeds it), on the CPU those beyond torch's intra-op threads (by default none: a worker then takes
    cores from the model; benchmarks/extract_speed.py measured ViT-B-32 at 10.2 img/s with 2 workers against
    13.0 with none on 2 cores). A decode-bound small model on a CPU gains from `--workers` (mini-clip 302 img/s
    with 2 workers against 211 with none, in one run of benchmarks/extract_speed.py)."""
    if requested is not None:
        if requested < 0:
            raise UsageError(f"--workers must be 0 or more, got {requested}")
        return requested
    if rows < MIN_BATCHES_FOR_WORKER * batch_size:
        return 0
    import torch

    cores = os.cpu_count() or 1
    free = cores - 1 if device.startswith("cuda") else cores - torch.get_num_threads()
    return max(0, min(free, MAX_AUTO_WORKERS))


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

        check_choice("precision", config.precision, tuple(PRECISIONS))
        check_choice("layer", config.layer, LAYERS)
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

    def describe(self) -> dict[str, str]:
        """How result tables name this representation."""
        # A non-default layer is another representation: its own row (and result file), e.g. "ViT-B-32/openai [tokens]".
        tags = [layer_identity(self.config.layer)] if self.config.layer != DEFAULT_LAYER else []
        # So is another precision: fp32 and bf16 results stand side by side, e.g. "ViT-B-32/openai [bf16]".
        tags += [self.config.precision] if self.config.precision != DEFAULT_PRECISION else []
        tags += [f"orbit:{self.config.orbit}"] if self.config.orbit else []
        tags += [f"resize={self.config.resize}"] if self.config.resize else []
        row = f"{self.config.model}/{self.weights.label}" + (f" [{', '.join(tags)}]" if tags else "")
        return {"representation": row, "model": self.config.model, "pretrained": self.weights.label}

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
        return preprocess, self._forward, open_clip.get_input_dtype(self.config.precision)


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
        tags = [f"orbit:{self.config.orbit}"] if self.config.orbit else []
        tags += [f"resize={self.config.resize}"] if self.config.resize else []
        row = f"pixels/{self.SIZE}px" + (f" [{', '.join(tags)}]" if tags else "")
        return {"representation": row, "model": "pixels", "pretrained": "none"}

    def preprocess_cfg(self) -> dict[str, Any]:
        mode = RESIZE_MODES[self.config.resize or "squash"]
        return {"size": self.SIZE, "interpolation": "bilinear", "resize_mode": mode, "mean": None, "std": None}

    def pipeline(self):
        import torch

        transform = tensor_transform(self.SIZE, self.config.resize or "squash")
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

    def __getitems__(self, indices: list[int]):
        """A batch's rows in one read of the Arrow table (the DataLoader asks for them together): `datasets` has a
        fixed cost per access, which a decode-bound small model otherwise pays once per image."""
        return [self.transform(image.convert("RGB")) for image in self.images[indices][self.column]]


def make_extractor(config: ExtractorConfig) -> Extractor:
    return EXTRACTORS.get(config.extractor)(config)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
