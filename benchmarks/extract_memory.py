"""Peak resident memory of `extract` at two dataset sizes: it must not grow with the data (run: make bench).

For each size, the dashcam world (64 px scenes, N training images) is rendered in one process, then the
features of mini-clip with random weights are extracted in a fresh process that reports its own peak RSS
(`ru_maxrss`) at the end: imports, model, data loading, chunked extraction and the assembled cache entry.
The target: peak RSS at the larger size within 10 % of the smaller."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOLERANCE = 0.10


def world(n: int):
    from clipprobe.dashcam.tasks import DashcamWorld
    from clipprobe.dashcam.world import WorldConfig

    return DashcamWorld(WorldConfig(image_size=64, sizes={"pretrain": 10, "train": n, "validation": 100, "test": 100}))


def child(n: int, render: bool) -> None:
    source = world(n)
    if render:
        source.load()
        return
    from clipprobe.features.config import ExtractorConfig
    from clipprobe.features.extract import extract_features

    started = time.perf_counter()
    features = extract_features(source, ExtractorConfig(pretrained="random"))
    seconds = time.perf_counter() - started
    rows = int(features.arrays["train"].shape[0])
    # ru_maxrss is in kilobytes on Linux.
    print(
        json.dumps(
            {
                "images": rows,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "seconds": round(seconds, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/extract_memory.json"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--render", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.render)
        return
    rows = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "CLIPPROBE_HOME": home}
        for n in (int(s) for s in args.sizes.split(",")):
            subprocess.run([sys.executable, __file__, "--child", str(n), "--render"], env=env, check=True)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(n)], env=env, check=True, capture_output=True, text=True
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(
                f"{rows[-1]['images']:6d} training images: peak RSS {rows[-1]['peak_rss_mb']:7.1f} MB "
                f"(extraction {rows[-1]['seconds']} s)"
            )
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
    print(
        f"peak RSS grew {100 * growth:+.1f} % from {rows[0]['images']} to {rows[-1]['images']} images "
        f"(target within {100 * TOLERANCE:.0f} %): {'ok' if abs(growth) <= TOLERANCE else 'OVER'}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "growth": round(growth, 4),
                "tolerance": TOLERANCE,
                "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
