"""The torch devices this machine has, and a check that names them."""

from __future__ import annotations

from ..core.errors import UsageError


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


# The default device: the fastest this machine has.
AUTO = "auto"
AUTO_ORDER = ("cuda", "mps", "cpu")


def resolve_device(device: str) -> str:
    """`auto`: CUDA if torch sees a GPU, else Apple's MPS, else the CPU; any other name is returned as it is."""
    if device != AUTO:
        return device
    available = available_devices()
    return next(name for name in AUTO_ORDER if name in available)


def check_device(device: str) -> None:
    if device not in available_devices():
        raise UsageError(
            f"Device '{device}' is not available on this machine. Available: {', '.join(available_devices())}"
        )
