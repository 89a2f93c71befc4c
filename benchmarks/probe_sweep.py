"""clipprobe's C sweep against the textbook sweep, side by side on the same features (run: make bench).

The textbook sweep, as most probing code writes it: for each C, a fresh StandardScaler + LogisticRegression
pipeline fitted from zero, float64, with the BLAS thread pool left at its default. clipprobe's
`fit_probe`: standardised once, float32, its own L-BFGS warm-started along two chains of the C grid (every C
converged to its own optimum), one BLAS thread per chain. Both sweep the same 17-point grid and choose C on
validation; the textbook sweep then refits on train + validation, clipprobe does not. The script prints the
wall-clock ratio and both test balanced accuracies (which should agree within noise), and writes a JSON record.

The features are those of a random-weights mini-clip on the traffic-light task (real, correlated features,
as probes meet them) and synthetic Gaussian classes with overlapping means.
torch is imported and its thread pool started first, as after an extraction in clipprobe, since that pool is
part of what a probe runs beside."""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (loaded as in clipprobe: its thread pool is part of the measurement)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from clipprobe.probes.linear import DEFAULT_C_GRID, fit_probe


def features(n: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(0).normal(scale=0.12, size=(classes, dim))  # the same classes in every split
    y = rng.integers(0, classes, size=n)
    scales = np.random.default_rng(1).uniform(0.1, 10, size=dim)  # unscaled features, as embeddings are
    return ((means[y] + rng.normal(size=(n, dim))) * scales).astype(np.float32), y


def world_features(task_name: str):
    """Real, correlated features: a random-weights mini-clip on a dashcam task (renders the world if needed)."""
    import clipprobe.catalog  # noqa: F401  (the dashcam tasks)
    from clipprobe.data.task import get_task
    from clipprobe.features.config import ExtractorConfig
    from clipprobe.features.extract import extract_features

    task = get_task(task_name)
    features = extract_features(task.source, ExtractorConfig(pretrained="random"))
    data = task.source.load()
    return [
        (np.asarray(features.arrays[s])[task.rows(data[s])], task.labels(data[s]))
        for s in ("train", "validation", "test")
    ]


def textbook_sweep(train, val, grid):
    curve = []
    for c in sorted(grid):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(*train)
        curve.append((balanced_accuracy_score(val[1], model.predict(val[0])), -c))
    best_c = -max(curve)[1]
    both = (np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]]))
    return make_pipeline(StandardScaler(), LogisticRegression(C=best_c, max_iter=1000)).fit(*both), best_c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--shapes",
        default="traffic-light,2000x512x10",
        help="comma-separated: NxDIMxCLASSES synthetic train splits, or a dashcam task name (random mini-clip features)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_sweep.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    # In clipprobe the probe runs after extraction, in the same process: torch's OpenMP pool is awake.
    torch.ones(512, 512) @ torch.ones(512, 512)

    rows = []
    for shape in args.shapes.split(","):
        if shape[0].isdigit():
            n, dim, classes = (int(v) for v in shape.split("x"))
            train, val, test = (
                features(n, dim, classes, 1),
                features(n // 4, dim, classes, 2),
                features(n // 2, dim, classes, 3),
            )
        else:
            train, val, test = world_features(shape)
        started = time.perf_counter()
        textbook, textbook_c = textbook_sweep(train, val, DEFAULT_C_GRID)
        textbook_s = time.perf_counter() - started
        started = time.perf_counter()
        fit = fit_probe(*train, *val)
        clipprobe_s = time.perf_counter() - started
        row = {
            "shape": shape,
            "textbook_s": round(textbook_s, 2),
            "clipprobe_s": round(clipprobe_s, 2),
            "speedup": round(textbook_s / clipprobe_s, 1),
            "textbook_C": textbook_c,
            "clipprobe_C": fit.chosen,
            "textbook_test_bal_acc": round(balanced_accuracy_score(test[1], textbook.predict(test[0])), 3),
            "clipprobe_test_bal_acc": round(balanced_accuracy_score(test[1], fit.model.predict(test[0])), 3),
        }
        rows.append(row)
        print(
            f"{shape:14s} textbook {row['textbook_s']:7.1f} s   clipprobe {row['clipprobe_s']:6.1f} s   "
            f"speed-up {row['speedup']:5.1f}x   test bal. acc. {row['textbook_test_bal_acc']:.3f} vs "
            f"{row['clipprobe_test_bal_acc']:.3f}",
            flush=True,
        )

    machine = {"processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
