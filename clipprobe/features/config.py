"""What the user chooses about a feature extractor: model, weights, layer, precision, device, orbit averaging."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.defaults import ALL_TOKENS, PRECISION
from ..core.errors import UsageError, did_you_mean
from .devices import AUTO, resolve_device

# Which features of the image tower are read (see `layer_forward`); "embedding" is what CLIP users get.
LAYERS = ("embedding", "pre-projection", "tokens", "grid", ALL_TOKENS)


DEFAULT_LAYER = "embedding"


# The `grid` layer's cells (rows, columns): part of its identity, so a change of grid is a change of cache key.
GRID_CELLS = (2, 2)


@dataclass(frozen=True)
class ExtractorConfig:
    """Everything the user chooses about a feature extractor."""

    model: str = "mini-clip"
    pretrained: str | None = None
    # One of clipprobe.features.precision.PRECISION_CHOICES: fp32 (the default here), bf16, fp16, amp, amp_bf16, or
    # auto, which `resolve_precision` turns into bf16 or fp32 for this device and model before anything is keyed.
    precision: str = PRECISION
    # One of LAYERS: embedding (the projected embedding), pre-projection, tokens, grid or all-tokens (see
    # `layer_forward`).
    layer: str = DEFAULT_LAYER
    # A torch device, or "auto" (CUDA, then MPS, then the CPU), resolved when the config is made: records say which.
    device: str = "auto"
    batch_size: int = 64
    seed: int = 0
    extractor: str = "open_clip"
    # A hard invariance imposed on the frozen features: the features averaged over this group's orbit (a group spec of
    # clipprobe.features.orbits, e.g. "hflip", "translate:4+hflip"); None: none.
    orbit: str | None = None
    # Threads that decode images in uint8 while the model runs, on cores the forward pass then leaves them
    # (processes, for transforms decode.py does not mirror: raw pixels); None: on a CPU one thread in the forward
    # pass's gaps, on a GPU the cores it leaves free (see clipprobe.features.loading).
    workers: int | None = None
    # Run a conv tower on NHWC tensors (faster on CPUs: see benchmarks/extract_speed.py). How the numbers are laid out
    # in memory, like device and batch size, is not part of the cache key: the features agree to float rounding.
    channels_last: bool = False
    # How an image is fitted to the model's square input: crop (resize the short side, centre crop), squash
    # (resize both sides) or pad (resize the long side, pad); None: the model's own preprocessing (open_clip's
    # resize mode for the weights, usually crop; for raw pixels core.defaults.GEOMETRY, crop). Part of the cache
    # key and the row name.
    resize: str | None = None
    # Why `precision` is what it is, when `auto` chose it (resolve_precision); recorded with the features and in
    # each result. Not part of any key or comparison: the features depend on the precision, not on the reason.
    precision_reason: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"--seed must be a whole number 0 or more, got {self.seed!r}")
        if self.device == AUTO:
            object.__setattr__(self, "device", resolve_device(self.device))


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"Unknown {flag} '{value}'. {did_you_mean(value, choices)}Available: {', '.join(choices)}")
