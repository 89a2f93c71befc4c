"""The probe sweep at scale: 100,000 x 768 training features, 100 classes, under 2 minutes on 2 cores (make bench).

ViT-L-14's embedding width, ImageNet's order of classes and a training split of 100,000 rows: clipprobe's
`fit_probe` sweeps its 17-point C grid (every C fitted to its own optimum, warm-started along two chains),
chooses C on a validation split of 25,000 rows and is scored once on a test split of 25,000. The features are
synthetic Gaussian classes with overlapping means, unscaled as embeddings are (benchmarks/probe_anchor.py's
generator). The script prints and saves the sweep's wall-clock time against the 2-minute target, the chosen C,
iterations per C and the test balanced accuracy."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from probe_anchor import features
from sklearn.metrics import balanced_accuracy_score

from clipprobe.probes.linear import fit_probe

TARGET_S = 120


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="100000x768x100", help="NxDIMxCLASSES of the training split")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_scale.json"))
    args = parser.parse_args()
    n, dim, classes = (int(v) for v in args.shape.split("x"))
    train, val, test = (
        features(n, dim, classes, 1),
        features(n // 4, dim, classes, 2),
        features(n // 4, dim, classes, 3),
    )
    started = time.perf_counter()
    fit = fit_probe(*train, *val)
    seconds = time.perf_counter() - started
    accuracy = balanced_accuracy_score(test[1], fit.model.predict(test[0]))
    row = {
        "shape": args.shape,
        "seconds": round(seconds, 1),
        "target_s": TARGET_S,
        "within_target": seconds <= TARGET_S,
        "chosen_C": fit.chosen,
        "fitted_C": len(fit.curve),
        "test_balanced_accuracy": round(float(accuracy), 4),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
    }
    print(
        f"{args.shape}: sweep of {len(fit.curve)} C values {row['seconds']} s (target < {TARGET_S} s: "
        f"{'ok' if row['within_target'] else 'OVER'}); C = {fit.chosen:g}, test bal. acc. {row['test_balanced_accuracy']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
