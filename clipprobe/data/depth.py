"""Images of any depth as 8-bit RGB, one rule for every decode path.

Pillow's `convert("RGB")` clips 16-bit and 32-bit grey images to 255, so that levels 5000 and 60000 both become
white. Here an image is scaled by its mode's own range, never by its content (two images of one data set get the
same mapping): 16-bit grey (`I;16`, `I;16B`, `I;16L`, `I;16N`) and 32-bit integer grey (`I`) by 255/65535, the
16-bit range (an `I` image with values outside 0..65535 is refused); float grey (`F`) by 255 from [0, 1] (values
outside it, or not finite, are refused). Every other mode is Pillow's `convert("RGB")`."""

from __future__ import annotations

import numpy as np
from PIL import Image

SIXTEEN_BIT = 65535


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB (see the module's text); a ValueError names what cannot be mapped."""
    mode = image.mode
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > SIXTEEN_BIT):
            raise ValueError(
                f"32-bit integer image with values {values.min()}..{values.max()}, outside the 16-bit range "
                f"0..{SIXTEEN_BIT}: save it with 8 or 16 bits"
            )
        grey = (values * 255 + SIXTEEN_BIT // 2) // SIXTEEN_BIT
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
            raise ValueError("float image with values outside [0, 1] (or not finite): save it with 8 or 16 bits")
        return Image.fromarray(np.round(values * 255).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")
