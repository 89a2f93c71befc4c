"""Image safety: whether an image can be used before anything relies on it. Decompression bombs are refused from
their header, FIFOs and devices are never read (a read would block forever), and unreadable files get a reason."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from .depth import to_rgb

# Images above this many pixels are refused unread (a decompression bomb decodes a few KB into gigabytes).
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_PIXELS_VARIABLE = "CLIPPROBE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit: $CLIPPROBE_MAX_IMAGE_PIXELS, else DEFAULT_MAX_IMAGE_PIXELS."""
    text = os.environ.get(MAX_PIXELS_VARIABLE)
    if text is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{MAX_PIXELS_VARIABLE} must be a positive number of pixels, got '{text}'")
    return value


def image_problem(value: dict[str, Any]) -> str | None:
    """Why this image (datasets' {"bytes", "path"}) cannot be used, or None if it decodes to RGB."""
    from PIL import Image, UnidentifiedImageError

    data, path = value.get("bytes"), value.get("path")
    cap = max_image_pixels()
    try:
        if data is None:
            if not path:
                return "no image"
            if Path(path).exists() and not Path(path).is_file():
                return "not a regular file"  # a FIFO or a device would block a read forever
            data = Path(path).read_bytes()
        if not data:
            return "empty file"
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > cap:  # read from the header: nothing decoded yet
                return (
                    f"too large: {image.width}x{image.height} pixels, over the limit of {cap:,} "
                    f"(set {MAX_PIXELS_VARIABLE} to allow more)"
                )
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale; every byte is still read
            image.load()
            to_rgb(image)
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
        text = re.sub(r"\s+", " ", re.sub(r" at 0x[0-9a-fA-F]+", "", str(exc))).strip()
        return text or type(exc).__name__
    return None
