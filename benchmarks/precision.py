"""fp32 vs bf16 image-tower throughput, measured side by side in one run (run: make bench).

Random weights: throughput does not depend on the weights' values, and nothing has to be downloaded.
Prints images per second for each precision and the bf16 / fp32 ratio, and writes a JSON record."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import open_clip
import torch

import clipprobe.models  # noqa: F401  (registers mini-clip with open_clip)


def throughput(model, images, repeats: int) -> float:
    with torch.inference_mode():
        model.encode_image(images)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            model.encode_image(images)
    return repeats * len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="mini-clip,ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating fp32/bf16 rounds; the median is kept")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision.json"))
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that the weights are random: they are meant to be

    rows = []
    for name in args.models.split(","):
        models = {p: open_clip.create_model(name, pretrained=None, precision=p).eval() for p in ("fp32", "bf16")}
        size = models["fp32"].visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        images = torch.randn(args.batch_size, 3, size, size)
        repeats = 20 if name == "mini-clip" else 2
        speeds = {p: [] for p in models}
        for _ in range(args.rounds):  # alternate, so drift on a noisy machine hits both alike
            for precision, model in models.items():
                batch = images.to(open_clip.get_input_dtype(precision) or torch.float32)
                speeds[precision].append(throughput(model, batch, repeats))
        median = {p: sorted(v)[len(v) // 2] for p, v in speeds.items()}
        row = {"model": name, "batch_size": args.batch_size, "fp32_img_s": round(median["fp32"], 1),
               "bf16_img_s": round(median["bf16"], 1), "bf16_over_fp32": round(median["bf16"] / median["fp32"], 2)}
        rows.append(row)
        print(f"{name:12s} fp32 {row['fp32_img_s']:8.1f} img/s   bf16 {row['bf16_img_s']:8.1f} img/s   "
              f"bf16/fp32 {row['bf16_over_fp32']:.2f}x", flush=True)

    machine = {"processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "bf16_cpu_flags": _bf16_flags()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"machine: {machine}\nwrote {args.out}")


def _bf16_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if "bf16" in f or f == "amx_tile"})


if __name__ == "__main__":
    main()
