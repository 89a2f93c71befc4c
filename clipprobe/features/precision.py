"""The numeric precisions an image tower can run in, and how each is applied (no heavy imports: the CLI reads it)."""

from __future__ import annotations

from collections.abc import Callable

# name -> what it is and when it pays; the names are open_clip's own (`create_model(precision=...)`).
PRECISIONS = {
    "fp32": "float32 weights and arithmetic: the reference, and the fastest on CPUs without native bf16",
    "bf16": "bfloat16 weights and arithmetic (open_clip's bf16): half the memory; fast on GPUs and on CPUs with AMX or AVX-512 BF16",
    "fp16": "float16 weights and arithmetic (open_clip's fp16): GPUs",
    "amp": "float32 weights, float16 torch.autocast: the usual GPU setting (CLIP_benchmark's default)",
    "amp_bf16": "float32 weights, bfloat16 torch.autocast: GPUs and bf16-capable CPUs",
}
DEFAULT_PRECISION = "fp32"
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
