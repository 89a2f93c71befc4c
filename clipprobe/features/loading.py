"""Feeding an extractor: a split's images decoded and preprocessed into batches (threads for uint8 decoding,
DataLoader workers otherwise), how many of either run beside the forward pass, and the inputs kept in this process
so that another extraction from the same rows skips decoding."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from ..core.errors import UsageError
from ..core.machine import cores
from ..data.depth import to_rgb
from .decode import Uint8Preprocess, raw_images, read_bytes, readable

if TYPE_CHECKING:
    import datasets

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


def input_batches(
    rows: datasets.Dataset, transform, image_column: str, batch_size: int, requested: int | None, device: str
) -> tuple[Any, int]:
    """(an iterable of `rows`' input batches in order, the cores their decoding takes from the forward pass).
    A Uint8Preprocess transform decodes in threads (uint8 decoding releases the GIL: no process to start or feed);
    any other transform in DataLoader workers. Batches are page-locked for a GPU."""
    import torch

    cuda = device.startswith("cuda")
    workers = loader_workers(requested, len(rows), batch_size, device)
    images = _ImageSplit(rows, transform, image_column)
    if images.raw is not None:
        threads = decode_threads(requested, len(rows), batch_size, device)
        # Only threads asked for take cores from the forward pass; the default one decodes in its gaps.
        return _threaded_batches(images, batch_size, threads, pin=cuda), workers if requested is not None else 0
    loader = torch.utils.data.DataLoader(
        # A map-style dataset by protocol (__len__, __getitem__), not by subclassing torch's Dataset: torch is
        # imported only once a DataLoader is needed.
        cast("torch.utils.data.Dataset[Any]", images),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=cuda,  # page-locked batches copy to the GPU asynchronously
    )
    return loader, workers


@contextmanager
def forward_threads(workers: int, device: str):
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


class _ImageSplit:
    """A map-style torch dataset over one split's images, decoded and preprocessed on access."""

    def __init__(self, split: datasets.Dataset, transform, column: str = "image"):
        if column not in split.column_names:
            raise UsageError(f"No image column '{column}'. Columns: {', '.join(split.column_names)}")
        self.images = split.select_columns([column])
        self.column = column
        self.transform = transform
        # The encoded bytes, for a transform that decodes them itself (no PIL image in between).
        self.raw = raw_images(split, column) if isinstance(transform, Uint8Preprocess) else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(to_rgb(self.images[index][self.column]))

    def __getitems__(self, indices: list[int]):
        """A batch's rows in one read of the Arrow table (the DataLoader asks for them together): `datasets` has a
        fixed cost per access, which a decode-bound small model otherwise pays once per image."""
        if self.raw is not None:
            with _READ_LOCK:  # decoding threads share one Arrow table: its reads go one at a time
                entries = self.raw[indices][self.column]
            if all(readable(entry) for entry in entries):
                return [self.transform.decode(read_bytes(entry)) for entry in entries]
        with _READ_LOCK:
            images = self.images[indices][self.column]
        return [self.transform(to_rgb(image)) for image in images]


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


# Preprocessed inputs kept in this process, so that another layer, another model with the same preprocessing or
# another seed's weights read them without decoding again: (dataset fingerprint, rows, image column, transform)
# -> the stacked input tensor. The transforms are deterministic, so a kept tensor is what decoding would give.
_INPUTS: OrderedDict[tuple, Any] = OrderedDict()
# At most this many bytes are kept (least recently used first out); a larger split is simply decoded each time.
# uint8 inputs (clipprobe.features.decode) take a quarter of float32's: 256 MB holds what 1 GB held before.
INPUT_CACHE_BYTES = 256 << 20


def fits_input_cache(size: int) -> bool:
    """Whether inputs of `size` bytes may be kept."""
    return size <= INPUT_CACHE_BYTES


def kept_inputs(key: tuple):
    """The input tensor kept under `key` (now the most recently used), or None."""
    kept = _INPUTS.get(key)
    if kept is not None:
        _INPUTS.move_to_end(key)
    return kept


def keep_inputs(key: tuple, inputs) -> None:
    """Keep `inputs` under `key` if they fit INPUT_CACHE_BYTES, dropping the least recently used beyond it."""
    if not fits_input_cache(inputs.element_size() * inputs.nelement()):
        return
    _INPUTS[key] = inputs
    while sum(t.element_size() * t.nelement() for t in _INPUTS.values()) > INPUT_CACHE_BYTES:
        _INPUTS.popitem(last=False)


def forget_inputs() -> None:
    """Drop the preprocessed inputs kept in this process: the next extraction decodes its images, as a new
    process would (benchmarks/extract_speed.py times each round so)."""
    _INPUTS.clear()
