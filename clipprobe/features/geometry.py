"""How an image of any shape becomes a square input: crop, squash or pad (`--resize`).

open_clip's models usually crop (resize the short side, centre crop): a tall traffic-light photo keeps about its
middle half. Raw pixels and the trained baselines crop by default too (clipprobe.core.defaults.GEOMETRY), so a
default run compares rows that saw the same pixels; a model whose own preprocessing squashes or pads keeps it
unless `--resize` gives every row one geometry."""

from __future__ import annotations

from PIL import Image, ImageOps

from ..core.defaults import GEOMETRY
from ..core.errors import UsageError, did_you_mean
from ..data.depth import to_rgb

# --resize choices, and open_clip's name for each (its `image_resize_mode`).
RESIZE_MODES = {"crop": "shortest", "squash": "squash", "pad": "longest"}
OPEN_CLIP_NAMES = {name: ours for ours, name in RESIZE_MODES.items()}


def check_resize(mode: str | None) -> None:
    if mode is not None and mode not in RESIZE_MODES:
        raise UsageError(
            f"Unknown resize '{mode}'. {did_you_mean(mode, RESIZE_MODES)}Available: {', '.join(RESIZE_MODES)}"
        )


def fit_image(image: Image.Image, size: int, mode: str = GEOMETRY) -> Image.Image:
    """`image` as a size x size RGB image (bilinear): squashed, centre-cropped after resizing its short side, or
    padded with black after resizing its long side."""
    check_resize(mode)
    image = to_rgb(image)
    if image.size == (size, size):
        return image
    if mode == "crop":
        return ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
    if mode == "pad":
        return ImageOps.pad(image, (size, size), Image.Resampling.BILINEAR, color=(0, 0, 0))
    return image.resize((size, size), Image.Resampling.BILINEAR)


def tensor_transform(size: int, mode: str = GEOMETRY):
    """The same on tensors (torchvision v2, antialiased): PIL image -> (3, size, size) float32 in [0, 1]."""
    import torch
    from torchvision.transforms import v2

    check_resize(mode)
    if mode == "crop":
        fit = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    elif mode == "pad":
        fit = [v2.Resize(size=None, max_size=size, antialias=True), v2.CenterCrop(size)]  # CenterCrop pads with 0
    else:
        fit = [v2.Resize((size, size), antialias=True)]
    return v2.Compose([v2.PILToTensor(), *fit, v2.ToDtype(torch.float32, scale=True)])
