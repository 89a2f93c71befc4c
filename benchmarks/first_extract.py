"""Time the first `clipprobe extract` on a fresh machine: render the world, pretrain mini-clip, extract.

The core issue's budget is 5 minutes on 2 CPU cores. Run on an otherwise idle machine (make bench)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 300


def main() -> None:
    out = Path("benchmarks/results/first_extract.json")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "CLIPPROBE_HOME": home}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clipprobe", "extract"], env=env, check=True)
        total = time.perf_counter() - started
        timing = json.loads(next(Path(home, "models").glob("*/timing.json")).read_text())
    row = {
        "first_extract_s": round(total, 1),
        "pretrain_s": timing["seconds"],
        "budget_s": BUDGET_SECONDS,
        "within_budget": total <= BUDGET_SECONDS,
        "cpus": os.cpu_count(),
    }
    print(
        f"first extract: {row['first_extract_s']} s (of which pretraining {row['pretrain_s']} s); "
        f"budget {BUDGET_SECONDS} s: {'ok' if row['within_budget'] else 'OVER'}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
