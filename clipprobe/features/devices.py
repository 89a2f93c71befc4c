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


def check_device(device: str) -> None:
    if device not in available_devices():
        raise UsageError(
            f"Device '{device}' is not available on this machine. Available: {', '.join(available_devices())}"
        )
