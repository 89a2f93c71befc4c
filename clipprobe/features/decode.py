"""Decoding at the model's pace: open_clip's preprocessing on uint8 tensors, normalised a batch at a time.

open_clip's transform works on PIL images: decode, resize (bicubic, antialiased), centre crop, convert to float
and normalise, one image at a time in float. For a small tower the forward pass takes less than a millisecond
per image and that transform several, so extraction waits on it. `Uint8Preprocess` does the same steps with
torchvision's decoders and tensor transforms: it decodes the encoded bytes straight to a uint8 tensor, resizes
and crops in uint8 (torchvision's uint8 antialiased resize, written to match PIL's), and leaves the conversion
to float and the normalisation to one vectorised operation on the whole batch, on the model's device. Batches
cross from decode workers (and to a GPU) in uint8, a quarter of float32's bytes.

It is built only from a transform it recognises exactly (`from_transform`: Resize, CenterCrop, MaybeConvertMode,
ToTensor, Normalize, as open_clip builds for its `shortest` and `squash` resize modes); for any other transform
(open_clip's `longest`, timm's, augmentations) extraction keeps the PIL path. The inputs differ from the PIL
path's by rounding in the resize only (at most a few levels of 255 at a pixel; the test pins the bound), the
features accordingly (tests/test_decode.py). The cache format was bumped when it became the default."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

from ..data.depth import to_rgb

if TYPE_CHECKING:
    import PIL.Image

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec (not a dependency) and says so at every
# call; the filter is set once here (per-call `catch_warnings` is not safe in the decoding threads). Without them,
# Pillow decodes (`decode`).
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)
# Interpolations whose uint8 antialiased resize torchvision implements to match PIL's.
_INTERPOLATIONS = ("bilinear", "bicubic")


class Uint8Preprocess:
    """An image (encoded bytes, or a PIL image) -> a uint8 (3, size, size) tensor; a uint8 batch -> the normalised
    float batch the model reads. `repr` names every setting (it keys the in-process cache of inputs)."""

    def __init__(self, resize: tuple[int, ...] | int, crop: tuple[int, int] | None, interpolation: str, mean, std):
        self.resize = resize
        self.crop = crop
        self.interpolation = interpolation
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __repr__(self) -> str:
        return (
            f"Uint8Preprocess(resize={self.resize}, crop={self.crop}, interpolation={self.interpolation}, "
            f"mean={self.mean}, std={self.std})"
        )

    @classmethod
    def from_transform(cls, transform: Any) -> Uint8Preprocess | None:
        """The uint8 equivalent of an open_clip eval transform, or None when it has steps this does not mirror."""
        from torchvision import transforms as T

        steps = list(getattr(transform, "transforms", []))
        names = [type(step).__name__ for step in steps]
        if names not in (
            ["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"],
            ["Resize", "MaybeConvertMode", "MaybeToTensor", "Normalize"],
            ["Resize", "CenterCrop", "ToTensor", "Normalize"],
        ):
            return None
        resize = steps[0]
        interpolation = getattr(resize.interpolation, "value", str(resize.interpolation))
        if interpolation not in _INTERPOLATIONS or resize.max_size is not None or resize.antialias is False:
            return None
        size = resize.size if isinstance(resize.size, int) else tuple(resize.size)
        if isinstance(size, tuple) and len(size) == 1:
            size = size[0]
        crop = tuple(steps[1].size) if isinstance(steps[1], T.CenterCrop) else None
        normalize = steps[-1]
        return cls(size, crop, interpolation, normalize.mean, normalize.std)

    def _fit(self, image):
        """Resize and crop a uint8 (3, H, W) tensor as the PIL transform would: torchvision's Resize and CenterCrop,
        with their sizes and rounding, calling torch's uint8 antialiased kernel directly (torchvision's wrapper
        costs as much again per image)."""
        import torch
        from torchvision.transforms.v2 import functional as F

        height, width = image.shape[-2:]
        if isinstance(self.resize, int):  # the short side to `resize`, the long one scaled and truncated
            short, long = min(height, width), max(height, width)
            scaled = int(self.resize * long / short)
            size = (self.resize, scaled) if height <= width else (scaled, self.resize)
        else:
            size = tuple(self.resize)
        if size != (height, width):
            try:
                image = torch.nn.functional.interpolate(
                    image[None], size=size, mode=self.interpolation, align_corners=False, antialias=True
                )[0]
            except (RuntimeError, NotImplementedError):  # a torch without uint8 kernels for this interpolation
                image = F.resize(
                    image, list(size), interpolation=F.InterpolationMode(self.interpolation), antialias=True
                )
        if self.crop is not None and tuple(image.shape[-2:]) != self.crop:
            crop_height, crop_width = self.crop
            height, width = image.shape[-2:]
            if crop_height > height or crop_width > width:  # smaller than the crop: padded with zeros
                image = F.center_crop(image, list(self.crop))
            else:
                top, left = int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0))
                image = image[:, top : top + crop_height, left : left + crop_width]
        return image.contiguous()

    def decode(self, data: bytes):
        """Encoded image bytes -> uint8 (3, size, size): torchvision's decoder (PNG, JPEG, WebP, GIF; the EXIF
        orientation applied, as `datasets` does), or Pillow for any format it does not read."""
        import torch

        try:
            from torchvision.io import ImageReadMode, decode_image
        except ImportError:  # a torchvision without its decoders (deprecated since 0.29): Pillow decodes
            return self(_pil_open(data))
        try:
            image = decode_image(
                torch.frombuffer(bytearray(data), dtype=torch.uint8),
                mode=ImageReadMode.RGB,
                apply_exif_orientation=True,
            )
        except (RuntimeError, ValueError):
            image = None
        if image is None or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            return self(_pil_open(data))
        return self._fit(image)

    def __call__(self, image):
        """A PIL image (any mode) -> uint8 (3, size, size)."""
        from torchvision.transforms.v2 import functional as F

        return self._fit(F.pil_to_tensor(to_rgb(image)))

    def normalize(self, batch):
        """A uint8 batch -> float32 in open_clip's numbers: ToTensor's /255, then Normalize, in the same order."""
        import torch

        mean = torch.tensor(self.mean, device=batch.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, -1, 1, 1)
        return batch.to(torch.float32).div_(255).sub_(mean).div_(std)


def _pil_open(data: bytes) -> PIL.Image.Image:
    from PIL import Image, ImageOps

    image: Image.Image = Image.open(io.BytesIO(data))
    image.load()
    if image.getexif().get(Image.ExifTags.Base.Orientation) is not None:
        image = ImageOps.exif_transpose(image)
    return image


def raw_images(split, column: str):
    """`split`'s image column as encoded bytes (datasets' {"bytes", "path"}), or None when the column is not
    a plain image column (another feature type, or images converted to a mode on decoding)."""
    import datasets

    feature = split.features.get(column)
    if not isinstance(feature, datasets.Image) or not feature.decode or feature.mode is not None:
        return None
    return split.select_columns([column]).cast_column(column, datasets.Image(decode=False))


def readable(entry: dict) -> bool:
    """Whether `read_bytes` can read this entry here: its bytes are stored, or its path is a local file."""
    path = entry.get("path")
    return entry.get("bytes") is not None or (isinstance(path, str) and "::" not in path and "://" not in path)


def read_bytes(entry: dict) -> bytes:
    """The encoded bytes of one datasets image entry (read from its file when only the path is stored)."""
    if entry.get("bytes") is not None:
        return entry["bytes"]
    with open(entry["path"], "rb") as f:
        return f.read()
