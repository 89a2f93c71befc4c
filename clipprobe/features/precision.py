"""The numeric precisions an image tower can run in, how each is applied, and which one `auto` picks on this
device (no heavy imports: the CLI reads it)."""

from __future__ import annotations

from collections.abc import Callable

from ..core import machine
from ..core.defaults import AUTO
from .devices import resolve_device

# name -> what it is and when it pays; the names are open_clip's own (`create_model(precision=...)`).
PRECISIONS = {
    "fp32": "float32 weights and arithmetic: the reference, and the fastest on CPUs without native bf16",
    "bf16": "bfloat16 weights and arithmetic (open_clip's bf16): half the memory; fast on GPUs and on CPUs with AMX or AVX-512 BF16",
    "fp16": "float16 weights and arithmetic (open_clip's fp16): GPUs",
    "amp": "float32 weights, float16 torch.autocast: the usual GPU setting (CLIP_benchmark's default)",
    "amp_bf16": "float32 weights, bfloat16 torch.autocast: GPUs and bf16-capable CPUs",
}
# `auto` (core.defaults.AUTO): bf16 where the device computes it natively (CUDA from Ampere on; CPUs with
# AVX512-BF16, AMX or Arm BF16) and bf16 keeps what the probe reads on the task's own images
# (clipprobe.jobs.precision); fp32 elsewhere. It is resolved in the run plan before anything is keyed, so a cache
# entry and a result always carry the concrete precision (a result in its identity and its record, never in its row
# name, which is the same on every machine), and the record says why it was chosen.
PRECISION_CHOICES = (AUTO, *PRECISIONS)
# Precisions whose weights stay float32 and whose matrix products run under torch.autocast in this dtype.
AUTOCAST_DTYPES = {"amp": "float16", "amp_bf16": "bfloat16"}


def with_autocast(forward: Callable, precision: str, device: str) -> Callable:
    """`forward` under torch.autocast for the amp precisions (on the device's type: cuda, cpu, ...); else itself."""
    if precision not in AUTOCAST_DTYPES:
        return forward
    import torch

    dtype = getattr(torch, AUTOCAST_DTYPES[precision])
    device_type = torch.device(device).type

    def autocast_forward(images):
        with torch.autocast(device_type=device_type, dtype=dtype):
            return forward(images)

    return autocast_forward


def with_channels_last(forward: Callable) -> Callable:
    """`forward` fed NHWC (channels-last) batches: convolutions then skip a layout conversion per layer."""
    import torch

    return lambda images: forward(images.contiguous(memory_format=torch.channels_last))


def native_bf16_device(device: str) -> tuple[bool, str]:
    """Whether `device` does bf16 arithmetic in hardware, and the reason in words (recorded with `auto`'s choice).

    CUDA: compute capability 8.0 or later (Ampere on). CPU: the AVX512-BF16, AMX or Arm BF16 flags
    (clipprobe.core.machine.native_bf16; not torch's mkldnn check, which says yes on any AVX-512 CPU, where bf16
    is emulated at a tenth of fp32's speed). Anything else (mps): no. `auto` is first resolved as `resolve_device`
    resolves it."""
    device = resolve_device(device)  # `auto` is the device extraction would run on: CUDA, then MPS, then the CPU
    if device.startswith("cuda"):
        import torch

        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        if (major, minor) >= (8, 0):
            return True, f"{name} (compute capability {major}.{minor}) computes bf16 natively"
        return False, f"{name} (compute capability {major}.{minor}, before Ampere) has no native bf16"
    if device == "cpu":
        if machine.native_bf16():
            flags = sorted(machine.cpu_flags() & set(machine.BF16_FLAGS))
            return True, f"the CPU computes bf16 natively ({', '.join(flags) or 'bf16 flags'})"
        return False, "the CPU has no native bf16 (no AVX512-BF16, AMX or Arm BF16 flag; bf16 would be emulated)"
    return False, f"device {device} is not known to compute bf16 natively"
