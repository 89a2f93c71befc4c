#!/usr/bin/env bash
# The GPU run of issue 19, ready for a machine with a CUDA device (none was available where it was written):
#   1. the CUDA tests (pytest -m cuda: extraction in every precision on the GPU, `auto` there, uint8 batches
#      normalised on the device, decode workers feeding it from pinned memory);
#   2. benchmarks/extract_speed.py on the GPU for ViT-B-32 and ViT-L-14, each at amp and at bf16, with decode
#      threads (page-locked batches): clipprobe end to end against the plain fp32 loop and the model-only ceiling;
#   3. every ratio gathered into benchmarks/results/gpu/gpu.json (and printed).
# It installs nothing beyond the project: it uses .venv when there is one (make bench builds it), else the
# python3 on PATH, which must already have the project installed (pip install -e '.[dev]').
# On a machine without a CUDA device it says so and exits with status 1 before doing anything.
# Variables: PYTHON, OUT (results folder), WORKERS (decode threads; default: all cores but two), IMAGES_B32,
# IMAGES_L14 (images per run, at most 4000), BATCH (batch size).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-benchmarks/results/gpu}
CORES=$(nproc 2>/dev/null || echo 2)
WORKERS=${WORKERS:-$(( CORES > 2 ? CORES - 2 : 1 ))}
IMAGES_B32=${IMAGES_B32:-4000}
IMAGES_L14=${IMAGES_L14:-2000}
BATCH=${BATCH:-256}

if ! "$PYTHON" -c "import clipprobe" 2>/dev/null; then
    echo "benchmarks/gpu.sh: $PYTHON cannot import clipprobe; install the project first (make bench builds .venv)" >&2
    exit 1
fi
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: no CUDA device (torch.cuda.is_available() is False on this machine): nothing to run." >&2
    echo "Run it on a machine with an NVIDIA GPU and a CUDA build of torch." >&2
    exit 1
fi
"$PYTHON" -c "import torch; print('CUDA device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

mkdir -p "$OUT"
echo "== CUDA tests"
"$PYTHON" -m pytest -q -m cuda tests

echo "== extraction on the GPU ($WORKERS decode threads, batch $BATCH)"
for model in ViT-B-32 ViT-L-14; do
    images=$IMAGES_B32
    [ "$model" = ViT-L-14 ] && images=$IMAGES_L14
    for precision in amp bf16; do
        "$PYTHON" benchmarks/extract_speed.py --model "$model" --device cuda --precision "$precision" \
            --workers "$WORKERS" --batch-size "$BATCH" --images "$images" \
            --out "$OUT/extract_speed_${model}_${precision}.json"
    done
done

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = []
for path in sorted(out.glob("extract_speed_*.json")):
    r = json.loads(path.read_text())
    rows.append({
        "model": r["model"], "precision": r["precision"], "device": r["machine"]["device"],
        "images": r["images"], "batch_size": r["batch_size"], "decode_threads": r["workers"],
        "images_per_s": r["images_per_s"],
        "clipprobe_over_plain_loop": r["anchor_ratio"], "clipprobe_over_ceiling": r["ceiling_ratio"],
        "plain_loop_over_ceiling": round(r["images_per_s"]["anchor"] / r["images_per_s"]["ceiling"], 3),
        "targets": r["targets"],
    })
(out / "gpu.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
for row in rows:
    print(f"{row['model']:9s} {row['precision']:5s} clipprobe / plain loop {row['clipprobe_over_plain_loop']:.2f}x, "
          f"clipprobe / ceiling {row['clipprobe_over_ceiling']:.2f}, plain loop / ceiling {row['plain_loop_over_ceiling']:.2f}")
print(f"wrote {out / 'gpu.json'}")
PY
