"""Precisions side by side (run: make bench): image-tower throughput, and whether bf16 gives fp32's probe results.

Throughput: random weights (the speed does not depend on their values, and nothing is downloaded), one batch
through `encode_image` in fp32, fp32 on channels-last tensors, bf16 weights, and fp32 weights under bf16
autocast (amp_bf16), alternated over rounds so drift on a noisy machine hits all alike; the median is kept.
The low-precision and layout wrappers are clipprobe's own (clipprobe.precision), as `extract` applies them.

Agreement: mini-clip pretrained on the dashcam world under descriptive captions (trained on first use, about a
minute; reused from the cache after `make demo`), probed by `clipprobe.pipeline.probe` on the light's colour,
the pedestrian and the car's colour, once per precision: each low precision's test balanced accuracy against
fp32's 95% bootstrap interval, and the cosine between the fp32 and low-precision embeddings of the test images."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch

import clipprobe.catalog  # noqa: F401  (registers every task, and mini-clip with open_clip)
from clipprobe.features.precision import with_autocast, with_channels_last

LOW_PRECISIONS = ("bf16", "amp_bf16")


def throughput(forward, images, repeats: int) -> float:
    with torch.inference_mode():
        forward(images)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            forward(images)
    return repeats * len(images) / (time.perf_counter() - started)


def speed_row(name: str, batch_size: int, rounds: int) -> dict:
    """Images per second of `name`'s image tower in each setting, and each one's ratio to fp32."""
    fp32 = open_clip.create_model(name, pretrained=None, precision="fp32").eval()
    nhwc = open_clip.create_model(name, pretrained=None, precision="fp32").eval().to(memory_format=torch.channels_last)
    bf16 = open_clip.create_model(name, pretrained=None, precision="bf16").eval()
    settings = {  # name -> (forward, input dtype)
        "fp32": (fp32.encode_image, torch.float32),
        "fp32 channels-last": (with_channels_last(nhwc.encode_image), torch.float32),
        "bf16": (bf16.encode_image, torch.bfloat16),
        "amp_bf16": (with_autocast(fp32.encode_image, "amp_bf16", "cpu"), torch.float32),
    }
    size = fp32.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.randn(batch_size, 3, size, size)
    repeats = 20 if name == "mini-clip" else 2
    speeds = {setting: [] for setting in settings}
    for _ in range(rounds):
        for setting, (forward, dtype) in settings.items():
            speeds[setting].append(throughput(forward, images.to(dtype), repeats))
    median = {setting: sorted(values)[len(values) // 2] for setting, values in speeds.items()}
    row = {
        "model": name,
        "batch_size": batch_size,
        "images_per_s": {s: round(v, 1) for s, v in median.items()},
        "over_fp32": {s: round(v / median["fp32"], 2) for s, v in median.items() if s != "fp32"},
    }
    print(
        f"{name:10s} "
        + "   ".join(
            f"{s} {row['images_per_s'][s]:.1f} img/s" + (f" ({row['over_fp32'][s]:.2f}x)" if s != "fp32" else "")
            for s in settings
        ),
        flush=True,
    )
    return row


def agreement(pretrained: str, tasks: list[str]) -> list[dict]:
    """Per task: fp32's test balanced accuracy and interval, each low precision's score and whether it lies inside."""
    from clipprobe.data.task import get_task
    from clipprobe.features.config import ExtractorConfig
    from clipprobe.features.extract import extract_features
    from clipprobe.runner import probe

    base = ExtractorConfig(model="mini-clip", pretrained=pretrained)
    configs = {"fp32": base, **{p: dataclasses.replace(base, precision=p) for p in LOW_PRECISIONS}}
    source = get_task(tasks[0]).source
    test = {p: np.asarray(extract_features(source, c).arrays["test"], dtype=np.float64) for p, c in configs.items()}
    cosines = {}
    for precision in LOW_PRECISIONS:
        a, b = test["fp32"], test[precision]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        cosines[precision] = {"min": round(float(cos.min()), 5), "median": round(float(np.median(cos)), 5)}
    rows = []
    with tempfile.TemporaryDirectory() as results:
        for task in tasks:
            metrics = {p: probe(task, c, results_dir=Path(results))[0].metrics for p, c in configs.items()}
            low, high = metrics["fp32"].intervals["balanced_accuracy"]
            row = {
                "task": task,
                "fp32": round(metrics["fp32"].balanced_accuracy, 3),
                "fp32_interval": [round(low, 3), round(high, 3)],
            }
            for precision in LOW_PRECISIONS:
                score = metrics[precision].balanced_accuracy
                row[precision] = round(score, 3)
                row[f"{precision}_inside"] = bool(low <= score <= high)
            rows.append(row)
            print(
                f"{task:14s} fp32 {row['fp32']:.3f} [{low:.3f}, {high:.3f}]   "
                + "   ".join(
                    f"{p} {row[p]:.3f} ({'inside' if row[f'{p}_inside'] else 'OUTSIDE'} fp32's interval)"
                    for p in LOW_PRECISIONS
                ),
                flush=True,
            )
    for precision, cos in cosines.items():
        print(f"cosine of {precision} to fp32 test embeddings: median {cos['median']}, min {cos['min']}")
    return [{**row, "cosine_to_fp32": cosines} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="mini-clip,ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds over the settings; the median is kept"
    )
    parser.add_argument("--pretrained", default="dashcam-descriptive", help="mini-clip weights for the agreement check")
    parser.add_argument(
        "--tasks", default="traffic-light,pedestrian,car-colour", help="tasks of the agreement check ('' for none)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision.json"))
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns that the weights are random: they are meant to be

    rows = [speed_row(name, args.batch_size, args.rounds) for name in args.models.split(",")]
    agreed = agreement(args.pretrained, args.tasks.split(",")) if args.tasks else []
    machine = {
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "bf16_cpu_flags": _bf16_flags(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": machine, "rows": rows, "agreement": agreed, "agreement_model": f"mini-clip/{args.pretrained}"},
            indent=2,
        )
        + "\n"
    )
    print(f"machine: {machine}\nwrote {args.out}")


def _bf16_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if "bf16" in f or f == "amx_tile"})


if __name__ == "__main__":
    main()
