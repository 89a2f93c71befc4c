"""Extractors: a registry of ways to turn images into features (open_clip towers, raw pixels)."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import datasets
import numpy as np

from ..core.defaults import AUTO, PRECISION
from ..core.errors import UsageError
from ..core.machine import cores
from ..core.progress import progress_bar
from ..core.registry import Registry
from .config import DEFAULT_LAYER, LAYERS, ExtractorConfig, check_choice
from .devices import check_device
from .geometry import RESIZE_MODES, check_resize, tensor_transform
from .layers import layer_forward, layer_identity
from .precision import PRECISION_CHOICES, with_autocast, with_channels_last


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
        """(transform from PIL image to tensor, forward from batch to features, input dtype). A transform with a
        `normalize` method (clipprobe.features.decode.Uint8Preprocess) gives uint8 tensors, decodes encoded bytes
        (`decode`) and turns each uint8 batch into the model's input on the device."""
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
        normalize = getattr(transform, "normalize", None)
        whole = (start, stop) == (0, len(split))
        rows = split if whole else split.select(range(start, stop))
        cuda = self.config.device.startswith("cuda")
        key = (getattr(split, "_fingerprint", None), start, stop, image_column, repr(transform))
        kept = _INPUTS.get(key) if key[0] is not None else None
        workers = 0
        if kept is not None:  # decoded and preprocessed before in this process: the same tensors, without decoding
            _INPUTS.move_to_end(key)
            batches = kept.split(self.config.batch_size)
        else:
            workers = loader_workers(self.config.workers, len(rows), self.config.batch_size, self.config.device)
            images = _ImageSplit(rows, transform, image_column)
            if images.raw is not None:  # uint8 decoding releases the GIL: threads, no process to start or feed
                threads = decode_threads(self.config.workers, len(rows), self.config.batch_size, self.config.device)
                batches = _threaded_batches(images, self.config.batch_size, threads, pin=cuda)
                # Only threads asked for take cores from the forward pass; the default one decodes in its gaps.
                workers = workers if self.config.workers is not None else 0
            else:
                batches = torch.utils.data.DataLoader(
                    images,
                    batch_size=self.config.batch_size,
                    shuffle=False,
                    num_workers=workers,
                    pin_memory=cuda,  # page-locked batches copy to the GPU asynchronously
                )
        decoded = []
        out: np.ndarray | None = None
        done = 0
        with torch.inference_mode(), _forward_threads(workers, self.config.device):
            for images in batches:
                if kept is None and decoded is not None:
                    # Kept only for a whole split (one chunk) that fits the cache: a split large enough to be
                    # extracted in chunks is not held in memory, so peak memory does not grow with the data.
                    fits = whole and images[0].element_size() * images[0].nelement() * len(rows) <= INPUT_CACHE_BYTES
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
            _keep_inputs(key, torch.cat(decoded))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


# Preprocessed inputs kept in this process, so that another layer, another model with the same preprocessing or
# another seed's weights read them without decoding again: (dataset fingerprint, rows, image column, transform)
# -> the stacked input tensor. The transforms are deterministic, so a kept tensor is what decoding would give.
_INPUTS: OrderedDict[tuple, Any] = OrderedDict()
# At most this many bytes are kept (least recently used first out); a larger split is simply decoded each time.
# uint8 inputs (clipprobe.features.decode) take a quarter of float32's: 256 MB holds what 1 GB held before.
INPUT_CACHE_BYTES = 256 << 20


def forget_inputs() -> None:
    """Drop the preprocessed inputs kept in this process: the next extraction decodes its images, as a new
    process would (benchmarks/extract_speed.py times each round so)."""
    _INPUTS.clear()


def _keep_inputs(key: tuple, inputs) -> None:
    size = inputs.element_size() * inputs.nelement()
    if size > INPUT_CACHE_BYTES:
        return
    _INPUTS[key] = inputs
    while sum(t.element_size() * t.nelement() for t in _INPUTS.values()) > INPUT_CACHE_BYTES:
        _INPUTS.popitem(last=False)


@contextmanager
def _forward_threads(workers: int, device: str):
    """On a CPU with decode workers, the forward pass runs on the cores they leave (at least one) and gives the
    rest back afterwards: torch's threads would otherwise spin against the workers for the same cores
    (mini-clip, 2 cores, 2 workers: 897 img/s with one forward thread, 625 with two)."""
    import torch

    if workers == 0 or not device.startswith("cpu"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, cores() - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Starting a worker process costs about as much as decoding a few batches: below this many batches, decode in-process.
MIN_BATCHES_FOR_WORKER = 4


MAX_AUTO_WORKERS = 4


def decode_threads(requested: int | None, rows: int, batch_size: int, device: str = "cpu") -> int:
    """Threads that decode uint8 batches (clipprobe.features.decode) ahead of the forward pass: `requested` if
    given; on a GPU, as many as `loader_workers` would start processes; on a CPU, one for a split of more than
    one batch. That one overlaps decoding with the forward pass without taking a core from it: a compute-bound
    tower (ViT-B-32) decodes in about 4 % of its time, which the thread fills; a decode-bound small tower gains
    more from `--workers 2`, whose threads do take cores (the forward pass keeps the rest, at least one)."""
    if requested is not None or device.startswith("cuda"):
        return loader_workers(requested, rows, batch_size, device)
    return 1 if rows > batch_size else 0


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


# Checkpoint file names that say nothing about the weights (open_clip's, the hub's): such a file is named after its folder.
GENERIC_CHECKPOINT_NAMES = ("open_clip_model", "open_clip_pytorch_model", "pytorch_model", "model", "checkpoint")


def weights_names(model: str, weights: Any) -> tuple[str, str]:
    """(model, pretrained) as result tables name them: from the model's name and the weights' identity, never
    from the path typed, so the same weights reached through another path are the same row. A tag names itself
    (`openai`, `dashcam-salient`, `random`); a checkpoint file is its name and the start of its content hash
    (`rn50_random-1a2b3c4d`; a file named like `open_clip_model.safetensors` takes its folder's name); a hub model
    is its id (`hf-hub:ORG/NAME` for both); a `local-dir:` folder is `local-dir:FOLDER-NAME` with its checkpoint's
    hash as the weights."""
    identity = weights.identity
    kind = identity.get("kind")
    if kind == "hf-hub":
        return model, model
    if kind == "local-dir":
        folder = Path(model[len("local-dir:") :]).expanduser()
        return f"local-dir:{folder.resolve().name or folder}", identity["sha256"][:8]
    if identity.get("tag") or kind == "random" or not identity.get("sha256") or weights.load_arg is None:
        return model, weights.label
    checkpoint = Path(weights.load_arg)
    name = checkpoint.parent.resolve().name if checkpoint.stem in GENERIC_CHECKPOINT_NAMES else checkpoint.stem
    return model, f"{name or checkpoint.stem}-{identity['sha256'][:8]}"


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
        # A non-default layer is another representation: its own row (and result file), e.g. "ViT-B-32/openai [tokens]".
        tags = [layer_identity(self.config.layer)] if self.config.layer != DEFAULT_LAYER else []
        # So is another precision: fp32 and bf16 results stand side by side, e.g. "ViT-B-32/openai [bf16]".
        tags += [self.config.precision] if self.config.precision != PRECISION else []
        tags += [f"orbit:{self.config.orbit}"] if self.config.orbit else []
        tags += [f"resize={self.config.resize}"] if self.config.resize else []
        model, pretrained = weights_names(self.config.model, self.weights)
        name = model if model == pretrained else f"{model}/{pretrained}"
        row = name + (f" [{', '.join(tags)}]" if tags else "")
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

        from .decode import Uint8Preprocess

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
        from .decode import raw_images

        if column not in split.column_names:
            raise UsageError(f"No image column '{column}'. Columns: {', '.join(split.column_names)}")
        self.images = split.select_columns([column])
        self.column = column
        self.transform = transform
        # The encoded bytes, for a transform that decodes them itself (no PIL image in between).
        self.raw = raw_images(split, column) if hasattr(transform, "decode") else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index][self.column].convert("RGB"))

    def __getitems__(self, indices: list[int]):
        """A batch's rows in one read of the Arrow table (the DataLoader asks for them together): `datasets` has a
        fixed cost per access, which a decode-bound small model otherwise pays once per image."""
        from .decode import read_bytes, readable

        if self.raw is not None:
            with _READ_LOCK:  # decoding threads share one Arrow table: its reads go one at a time
                entries = self.raw[indices][self.column]
            if all(readable(entry) for entry in entries):
                return [self.transform.decode(read_bytes(entry)) for entry in entries]
        with _READ_LOCK:
            images = self.images[indices][self.column]
        return [self.transform(image.convert("RGB")) for image in images]


_READ_LOCK = threading.Lock()


def _threaded_batches(images: _ImageSplit, batch_size: int, threads: int, pin: bool = False):
    """`images`' batches in order, stacked, decoded by `threads` threads (none: in this thread) a few batches
    ahead of the forward pass. Decoding in uint8 (torchvision's decoders, torch's resize) releases the GIL, so
    threads decode side by side without starting or feeding worker processes; page-locked for a GPU."""
    import torch

    def batch(start: int):
        stacked = torch.stack(images.__getitems__(list(range(start, min(start + batch_size, len(images))))))
        return stacked.pin_memory() if pin else stacked

    starts = range(0, len(images), batch_size)
    if threads == 0:
        yield from (batch(start) for start in starts)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead = deque(pool.submit(batch, start) for start in starts[: 2 * threads])
        for start in starts[2 * threads :]:
            done = ahead.popleft().result()
            ahead.append(pool.submit(batch, start))
            yield done
        while ahead:
            yield ahead.popleft().result()


def make_extractor(config: ExtractorConfig) -> Extractor:
    return EXTRACTORS.get(config.extractor)(config)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
