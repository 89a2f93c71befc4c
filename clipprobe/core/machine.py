"""What machine a result was computed on: CPU model and flags, native bf16, thread counts, accelerator.

Recorded in every result (clipprobe.results.Provenance): float results can differ in their last digits across
CPUs and thread counts, so a number is reproducible bit for bit only on the same kind of machine with the same
threads, and the record says which."""

from __future__ import annotations

import os
import platform
import sys
from functools import cache
from pathlib import Path
from typing import Any

# CPU flags of native bf16 arithmetic: AVX512-BF16 and AMX on x86-64, the BF16 extension on Arm.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def native_bf16() -> bool:
    """Whether the CPU does bf16 arithmetic in hardware (AVX512-BF16, AMX or Arm BF16), where bf16 pays on a CPU.

    torch's own check (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) says whether oneDNN can run bf16 at all,
    which it does on every AVX-512 CPU by emulation, 3-10x slower than fp32 without these instructions."""
    return bool(cpu_flags() & set(BF16_FLAGS))


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine() -> dict[str, Any]:
    """The facts a result's last digits may depend on. Thread counts are read now (torch's, when it is loaded)."""
    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "architecture": platform.machine(),
        "cores": cores(),
        "native_bf16": native_bf16(),
        "os": platform.system(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch_threads"] = torch.get_num_threads()
        facts["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        if torch.cuda.is_available():
            facts["cuda"] = torch.cuda.get_device_name(0)
    try:
        from threadpoolctl import threadpool_info

        facts["blas_threads"] = {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
    except ImportError:  # pragma: no cover (a dependency)
        pass
    return facts
