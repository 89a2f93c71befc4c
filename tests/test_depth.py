"""Images of other depths: 16-bit and 32-bit grey, float grey, scaled by their mode's range in every decode path
(Pillow's convert("RGB") alone clips them to 255)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipprobe.baselines.images import to_tensor
from clipprobe.data.depth import to_rgb
from clipprobe.data.safety import image_problem
from clipprobe.features.decode import Uint8Preprocess
from clipprobe.features.geometry import fit_image


def grey16(level: int, size: int = 8) -> Image.Image:
    return Image.fromarray(np.full((size, size), level, dtype=np.uint16))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image, expected",
    [
        (grey16(5000), 19),
        (grey16(60000), 233),
        (grey16(65535), 255),
        (Image.fromarray(np.full((8, 8), 40000, dtype=np.int32), "I"), 156),
        (Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), "F"), 128),
        (Image.new("L", (8, 8), 77), 77),
    ],
    ids=["I;16 low", "I;16 high", "I;16 max", "I", "F", "L"],
)
def test_every_depth_maps_by_its_modes_range(image, expected):
    assert np.asarray(to_rgb(image)).tolist() == np.full((8, 8, 3), expected).tolist()


def test_two_sixteen_bit_levels_stay_apart_in_every_decode_path():
    """The levels the hostile run used: 5000 and 60000, as PNG bytes and as PIL images, through the features'
    decoder (torchvision's, then Pillow's), its PIL path, the geometry used by pixels and CNNs, and the check."""
    preprocess = Uint8Preprocess(8, (8, 8), "bilinear", (0.5,) * 3, (0.5,) * 3)
    for level, expected in ((5000, 19), (60000, 233)):
        encoded = png(grey16(level))
        assert Image.open(io.BytesIO(encoded)).mode.startswith("I")  # the file really is 16-bit
        assert int(preprocess.decode(encoded).float().mean()) == expected
        assert int(preprocess(Image.open(io.BytesIO(encoded))).float().mean()) == expected
        assert int(np.asarray(fit_image(Image.open(io.BytesIO(encoded)), 4)).mean()) == expected
        assert int(to_tensor(Image.open(io.BytesIO(encoded)), 4).float().mean()) == expected


def test_values_a_mode_cannot_hold_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^float image with values outside \[0, 1\]"):
        to_rgb(Image.fromarray(np.full((4, 4), 3.0, dtype=np.float32), "F"))
    with pytest.raises(ValueError, match=r"^32-bit integer image with values 70000\.\.70000, outside the 16-bit"):
        to_rgb(Image.fromarray(np.full((4, 4), 70000, dtype=np.int32), "I"))


def test_the_image_check_reports_an_unmappable_image(tmp_path):
    path = tmp_path / "hot.tiff"
    Image.fromarray(np.full((4, 4), 3.0, dtype=np.float32), "F").save(path)
    assert "float image with values outside [0, 1]" in (image_problem({"bytes": None, "path": str(path)}) or "")
