"""Images for trained baselines: each split decoded once, resized, and kept in memory as uint8 tensors."""

from __future__ import annotations

from collections import OrderedDict

import datasets
import numpy as np
import torch
from PIL import Image

from ..core.defaults import GEOMETRY
from ..core.errors import UsageError
from ..core.progress import track
from ..data.readers import DataSource
from ..features.geometry import fit_image

# (source fingerprint, image column, split, rows in the split, size) -> (N, 3, size, size) uint8.
# The dashcam world at 64 px is 43 MB for all three probe splits; a few sources fit comfortably.
_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_CACHE_ENTRIES = 12


def clear_image_cache() -> None:
    _CACHE.clear()


def split_images(
    source: DataSource, split: datasets.Dataset, split_name: str, size: int, resize: str = GEOMETRY
) -> torch.Tensor:
    """Every image of one split as an (N, 3, size, size) uint8 tensor, in row order.

    The whole split is decoded (not only a task's rows), so every task over one source shares the entry.
    Images are centre-cropped to size x size by default, as the models' preprocessing usually does
    (clipprobe.core.defaults.GEOMETRY), or squashed or padded (clipprobe.features.geometry), with PIL's bilinear
    filter."""
    column = source.image_column
    if column not in split.column_names:
        raise UsageError(f"No image column '{column}' in {source.name}. Columns: {', '.join(split.column_names)}")
    key = (source.fingerprint(), column, split_name, len(split), size, resize)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    out = torch.empty((len(split), 3, size, size), dtype=torch.uint8)
    images = split.select_columns([column])
    for i, example in enumerate(track(images, f"Decoding {source.name}/{split_name} at {size} px", total=len(split))):
        out[i] = to_tensor(example[column], size, resize)
    _CACHE[key] = out
    while len(_CACHE) > _CACHE_ENTRIES:
        _CACHE.popitem(last=False)
    return out


def to_tensor(image: Image.Image, size: int, resize: str = GEOMETRY) -> torch.Tensor:
    return torch.from_numpy(np.array(fit_image(image, size, resize), dtype=np.uint8)).permute(2, 0, 1)
