"""Frozen features: batched extraction through a registered extractor, cached on disk by content key."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import datasets
import numpy as np

from . import paths
from .chunks import DEFAULT_CHUNK_ROWS, ChunkStore, Shard, encode_chunks, shard_plan
from .errors import RunError, UsageError
from .precision import DEFAULT_PRECISION, PRECISIONS, with_autocast, with_channels_last
from .progress import progress_bar
from .registry import Registry
from .storage import atomic_path, file_sha256, stable_hash, write_json
from .tasks import PROBE_SPLITS, DataSource

# Which features of the image tower are read (see `layer_forward`); "embedding" is what CLIP users get.
LAYERS = ("embedding", "pre-projection", "tokens", "grid")
DEFAULT_LAYER = "embedding"
# The `grid` layer's cells (rows, columns): part of its identity, so a change of grid is a change of cache key.
GRID_CELLS = (2, 2)
# Bump when the extraction code changes what it stores, so old cache entries are not reused.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ExtractorConfig:
    """Everything the user chooses about a feature extractor."""

    model: str = "mini-clip"
    pretrained: str | None = None
    precision: str = DEFAULT_PRECISION
    # One of LAYERS: embedding (the projected embedding), pre-projection, tokens or grid (see `layer_forward`).
    layer: str = DEFAULT_LAYER
    device: str = "cpu"
    batch_size: int = 64
    seed: int = 0
    extractor: str = "open_clip"
    # A hard invariance imposed on the frozen features: `orbit:GROUP` averages them over the group's orbit.
    invariance: str | None = None
    # Processes that decode and preprocess images while the model runs; None: the cores the forward pass leaves
    # free, for chunks large enough to repay starting them (see `loader_workers`).
    workers: int | None = None
    # Run a conv tower on NHWC tensors (faster on CPUs: see benchmarks/extract_speed.py). How the numbers are laid out
    # in memory, like device and batch size, is not part of the cache key: the features agree to float rounding.
    channels_last: bool = False


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
        loader_workers(config.workers, 0, config.batch_size)  # a negative count fails here, before any work
        self.config = config
        self.group = parse_invariance(config.invariance)

    def pipeline(self):
        """(transform from PIL image to tensor, forward from batch to features, input dtype)."""
        raise NotImplementedError

    def _suffix(self) -> str:
        return f" [{self.config.invariance}]" if self.config.invariance else ""

    def encode(self, split: datasets.Dataset, description: str, image_column: str = "image") -> np.ndarray:
        """Every row of `split`, in order, as one (n, d) float32 array, with a progress bar."""
        with progress_bar() as progress:
            job = progress.add_task(description, total=len(split))
            return self.encode_rows(split, 0, len(split), image_column, lambda n: progress.advance(job, n))

    def encode_rows(self, split: datasets.Dataset, start: int, stop: int, image_column: str = "image",
                    advance: Callable[[int], None] | None = None) -> np.ndarray:
        """Rows start..stop of `split` as an (n, d) float32 array; `advance(k)` is called after each batch of k."""
        import torch

        from .invariance import orbit_average

        transform, forward, input_dtype = self.pipeline()
        rows = split if (start, stop) == (0, len(split)) else split.select(range(start, stop))
        cuda = self.config.device.startswith("cuda")
        loader = torch.utils.data.DataLoader(
            _ImageSplit(rows, transform, image_column), batch_size=self.config.batch_size, shuffle=False,
            num_workers=loader_workers(self.config.workers, len(rows), self.config.batch_size, self.config.device),
            pin_memory=cuda,  # page-locked batches copy to the GPU asynchronously
        )
        out: np.ndarray | None = None
        done = 0
        with torch.inference_mode():
            for images in loader:
                images = images.to(device=self.config.device, dtype=input_dtype, non_blocking=cuda)
                features = orbit_average(forward, images, self.group) if self.group is not None else forward(images)
                batch = features.float().cpu().numpy()
                if out is None:
                    out = np.empty((len(rows), batch.shape[1]), dtype=np.float32)
                out[done:done + len(batch)] = batch
                done += len(batch)
                if advance is not None:
                    advance(len(batch))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


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

        _check_choice("precision", config.precision, tuple(PRECISIONS))
        _check_choice("layer", config.layer, LAYERS)
        super().__init__(config)
        self.weights = resolve_weights(config.model, config.pretrained)
        self._model = None
        self._preprocess = None
        self._forward = None

    def identity(self) -> dict[str, Any]:
        import open_clip

        identity = {
            "extractor": "open_clip",
            "model": self.config.model,
            "weights": self.weights.identity,
            "precision": self.config.precision,
            "layer": layer_identity(self.config.layer),
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
        # A non-default layer is another representation: its own row (and result file), e.g. "ViT-B-32/openai [tokens]".
        tags = [layer_identity(self.config.layer)] if self.config.layer != DEFAULT_LAYER else []
        # So is another precision: fp32 and bf16 results stand side by side, e.g. "ViT-B-32/openai [bf16]".
        tags += [self.config.precision] if self.config.precision != DEFAULT_PRECISION else []
        tags += [self.config.invariance] if self.config.invariance else []
        row = f"{self.config.model}/{self.weights.label}" + (f" [{', '.join(tags)}]" if tags else "")
        return {"row": row, "model": self.config.model, "pretrained": self.weights.label}

    def _load(self):
        if self._model is None:
            import torch

            from .models import create_model

            model, self._preprocess = create_model(
                self.weights, device=self.config.device, precision=self.config.precision, seed=self.config.seed
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
        return _jsonable(open_clip.get_model_preprocess_cfg(model))

    def pipeline(self):
        import open_clip

        _, preprocess = self._load()
        return preprocess, self._forward, open_clip.get_input_dtype(self.config.precision)


def layer_identity(layer: str) -> str:
    """How a layer enters the cache key and the row name: the grid carries its size ("grid:2x2")."""
    return f"grid:{GRID_CELLS[0]}x{GRID_CELLS[1]}" if layer == "grid" else layer


def layer_forward(model, layer: str, model_name: str):
    """The function from an image batch to (n, d) features at `layer` of `model`'s image tower.

    open_clip ViT towers (VisionTransformer), width W, patch grid h x w:
      embedding       model.encode_image: the pooled token after the projection (embed_dim numbers).
      pre-projection  the same pooled token before `proj` (class token after ln_post for CLIP; W numbers),
                      so that pre-projection @ visual.proj == embedding. This is what the CLIP paper probed.
      tokens          the mean of the last block's h*w patch tokens (class token excluded), after ln_post
                      (not for towers with an attentional pooler, e.g. CoCa, whose final LayerNorm follows
                      the pooler); W numbers.
      grid            those patch tokens average-pooled to GRID_CELLS (2 x 2) cells, adaptively (cells
                      overlap by one patch when h or w is odd), concatenated cell by cell, row-major from the
                      top left: 4 * W numbers that keep where things are.
    open_clip ResNet towers (ModifiedResNet), whose final feature map (layer4) has C = 32 * width channels:
      embedding       model.encode_image: the attention pool's output (embed_dim numbers).
      pre-projection  the attention pool's output before its output projection c_proj (C numbers), so that
                      c_proj(pre-projection) == embedding: the ResNet's counterpart of the ViT's.
      tokens          the mean of the final feature map over its positions (C numbers; a ResNet has no
                      final norm, the map is the last block's ReLU output). It is also the query the
                      attention pool starts from, before the positional embedding.
      grid            the final feature map average-pooled to 2 x 2 cells, as for the ViT: 4 * C numbers.
    Any other image tower (a timm tower, ...) has only `embedding`; other layers raise a UsageError.
    The pre-projection layer drops the tower's projection in place (open_clip's `prune_intermediate_layers`
    for the ViT, an identity c_proj for the ResNet): the model must be one built for this extractor."""
    if layer == DEFAULT_LAYER:
        return model.encode_image
    import torch
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    visual = getattr(model, "visual", None)
    if isinstance(visual, VisionTransformer):
        if layer == "pre-projection":
            visual.prune_intermediate_layers(indices=1, prune_norm=False, prune_head=True)  # keeps every block
            return lambda images: _pooled(visual(images))
        # A tower with an attentional pooler applies ln_post after the pooler, on other widths: not to tokens.
        normalize = visual.attn_pool is None

        def final_map(images):
            out = visual.forward_intermediates(images, indices=1, normalize_intermediates=normalize, intermediates_only=True)
            return out["image_intermediates"][0]  # (n, W, h, w), class token removed
    elif isinstance(visual, ModifiedResNet):
        if layer == "pre-projection":
            c_proj = visual.attnpool.c_proj
            identity = torch.nn.Linear(c_proj.in_features, c_proj.in_features, device=c_proj.weight.device,
                                       dtype=c_proj.weight.dtype)
            with torch.no_grad():
                identity.weight.copy_(torch.eye(c_proj.in_features))
                identity.bias.zero_()
            visual.attnpool.c_proj = identity
            return visual

        def final_map(images):
            return visual.forward_intermediates(images, indices=1, intermediates_only=True)["image_intermediates"][0]
    else:
        tower = type(visual).__name__ if visual is not None else "none"
        raise UsageError(f"Layer '{layer}' does not exist for model '{model_name}' (image tower {tower}). "
                         f"Available: {DEFAULT_LAYER}")
    if layer == "tokens":
        return lambda images: final_map(images).mean(dim=(2, 3))
    return lambda images: _grid(final_map(images))


def _pooled(output):
    """A tower built with output_tokens returns (pooled, tokens)."""
    return output[0] if isinstance(output, tuple) else output


def _grid(feature_map):
    """(n, C, h, w) -> (n, cells * C): average-pooled to GRID_CELLS, concatenated cell by cell (row-major)."""
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(feature_map, GRID_CELLS).permute(0, 2, 3, 1).flatten(1)


@EXTRACTORS.register("pixels")
class PixelsExtractor(BatchExtractor):
    """The floor: raw pixels, downsampled to 32 x 32 and flattened (3,072 features)."""

    SIZE = 32

    def __init__(self, config: ExtractorConfig):
        _check_choice("layer", config.layer, LAYERS)
        if config.layer != DEFAULT_LAYER:
            raise UsageError(f"Layer '{config.layer}' does not exist for the pixels extractor (raw pixels have no layers). "
                             f"Available: {DEFAULT_LAYER}")
        super().__init__(config)

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

    def __getitems__(self, indices: list[int]):
        """A batch's rows in one read of the Arrow table (the DataLoader asks for them together): `datasets` has a
        fixed cost per access, which a decode-bound small model otherwise pays once per image."""
        return [self.transform(image.convert("RGB")) for image in self.images[indices][self.column]]


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

    def parts(self, key: str, rows: int, chunk_rows: int) -> ChunkStore:
        """The chunks of an entry still being extracted (see clipprobe.chunks), beside where the entry will be."""
        return ChunkStore(self._paths(key)[0].with_suffix(".parts"), rows, chunk_rows)

    def save_chunks(self, key: str, store: ChunkStore, meta: dict[str, Any]) -> None:
        """Assemble a complete ChunkStore into the entry (chunk by chunk, through a memory map), then drop the parts."""
        array_path, meta_path = self._paths(key)
        array = store.assemble(array_path)
        write_json(meta_path, {**meta, "shape": list(array.shape), "sha256": file_sha256(array_path)})
        store.remove()


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
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Features for `splits` of `source`, computing only what the cache lacks (or all with `refresh`).

    A missing split is extracted in chunks of `chunk_rows` rows (clipprobe.chunks): chunks that an earlier,
    killed run or other shards already wrote are kept, only the rest are computed, and the split is then
    assembled into its cache entry. The arrays come back memory-mapped."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    keys, missing, data, stores, meta = _prepare(source, config, extractor, splits, cache, refresh, chunk_rows)
    if missing:
        _compute(source, extractor, data, stores, shard_plan(stores.items(), None))
        for split in missing:
            cache.save_chunks(keys[split], stores[split], {**meta, "split": split})
    return _feature_set(cache, keys, splits, missing)


def extract_shard(
    source: DataSource,
    config: ExtractorConfig | None,
    shard: Shard,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, int]:
    """Compute shard `shard`'s chunks of every split the cache lacks; assemble nothing (see `merge_features`).

    Returns the number of chunks computed per split. Every process must use the same `chunk_rows`."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    _, missing, data, stores, _ = _prepare(source, config, extractor, splits, cache, False, chunk_rows)
    plan = shard_plan(stores.items(), shard)
    _compute(source, extractor, data, stores, plan, f" (shard {shard})")
    return {split: sum(1 for s, _, _ in plan if s == split) for split in missing}


def merge_features(
    source: DataSource,
    config: ExtractorConfig | None = None,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Assemble the shards' chunks into cache entries, after checking that they cover every row exactly once.

    Computes nothing: a missing or damaged chunk is a RunError that names it (run its shard again)."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    keys, missing, _, stores, meta = _prepare(source, config, extractor, splits, cache, False, chunk_rows)
    for split in missing:
        stores[split].check()
    for split in missing:
        cache.save_chunks(keys[split], stores[split], {**meta, "split": split})
    return _feature_set(cache, keys, splits, missing)


def _prepare(source, config, extractor, splits, cache, refresh, chunk_rows):
    """Cache keys, the missing splits, and for those the data, their chunk stores and the entry's metadata."""
    identity = extractor.identity()
    # The same dataset read through another image column is other data.
    fingerprint = f"{source.fingerprint()}:{source.image_column}"
    keys = {split: cache.key(identity, fingerprint, split) for split in splits}
    missing = [s for s in splits if refresh or not cache.has(keys[s])]
    if not missing:
        return keys, missing, None, {}, None
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
    stores = {split: cache.parts(keys[split], len(data[split]), chunk_rows) for split in missing}
    if refresh:
        for store in stores.values():
            store.remove()
    return keys, missing, data, stores, meta


def _compute(source, extractor, data, stores, plan, suffix: str = "") -> None:
    """Encode the planned chunks, one progress bar per split (its total: the rows this process computes)."""
    with progress_bar() as progress:
        jobs = {}
        for split, start, stop in plan:
            if split not in jobs:
                total = sum(b - a for s, a, b in plan if s == split)
                jobs[split] = progress.add_task(f"Extracting {source.name}/{split}{suffix}", total=total)

        def encode(split: str, start: int, stop: int) -> np.ndarray:
            return extractor.encode_rows(data[split], start, stop, source.image_column,
                                         lambda n: progress.advance(jobs[split], n))

        encode_chunks(plan, stores, encode)


def _feature_set(cache, keys, splits, computed) -> FeatureSet:
    arrays = {split: cache.load(keys[split]) for split in splits}
    stored = cache.meta(keys[splits[0]])
    meta = {k: stored[k] for k in ("identity", "row", "model", "pretrained", "data", "preprocess", "config")}
    meta["keys"] = keys
    return FeatureSet(arrays=arrays, meta=meta, computed=list(computed))


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
