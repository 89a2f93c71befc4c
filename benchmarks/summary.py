"""Gather the JSON records that the benchmarks wrote into one short Markdown summary (the last step of make bench)."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from extract_speed import settings


def _load(folder: Path, name: str):
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def lines_for(folder: Path) -> list[str]:
    lines = [
        "# clipprobe benchmarks",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}. "
        "Every figure is a ratio measured side by side in one run.",
        "",
    ]
    speeds = [_load(folder, path.stem) for path in sorted(folder.glob("extract_speed*.json"))]
    if speeds:
        lines += ["## Extraction speed", ""]
    for speed in speeds:
        ips = speed["images_per_s"]
        lines += [
            f"{speed['model']} {settings(speed)}, {speed['images']} images: ceiling {ips['ceiling']} img/s, "
            f"anchor {ips['anchor']} img/s, clipprobe end to end {ips['clipprobe']} img/s.",
            "",
            f"- clipprobe / ceiling: **{speed['ceiling_ratio']:.2f}** (target >= 0.9)",
            f"- clipprobe / anchor: **{speed['anchor_ratio']:.2f}x** (target >= 2)",
            f"- of clipprobe's time, building the model: {speed['model_build_s']} s "
            f"({speed['clipprobe_after_build_images_per_s']} img/s without it)",
            "",
        ]
    if memory := _load(folder, "extract_memory"):
        lines += ["## Peak memory of extract", ""]
        lines += [f"- {row['images']} training images: {row['peak_rss_mb']} MB" for row in memory["rows"]]
        lines += [
            f"- growth: **{100 * memory['growth']:+.1f} %** (target within {100 * memory['tolerance']:.0f} %)",
            "",
        ]
    if anchor := _load(folder, "probe_anchor"):
        lines += ["## Probe sweep against the CLIP_benchmark-style AdamW sweep", ""]
        lines += [
            f"- {row['shape']}: **{row['speedup']}x** faster ({row['anchor_s']} s vs {row['clipprobe_s']} s); test balanced "
            f"accuracy {row['clipprobe_balanced_accuracy']} {row['clipprobe_interval']} vs "
            f"{row['anchor_balanced_accuracy']} {row['anchor_interval']} (target >= 5x, accuracy as good)"
            for row in anchor["rows"]
        ]
        lines.append("")
    if sweep := _load(folder, "probe_sweep"):
        lines += ["## Probe sweep against the textbook sweep", ""]
        lines += [f"- {row['shape']}: {row['speedup']}x" for row in sweep["rows"]]
        lines.append("")
    if precision := _load(folder, "precision"):
        lines += ["## Precisions and channels-last against fp32", ""]
        lines += [
            f"- {row['model']} (random weights, batch {row['batch_size']}): fp32 {row['images_per_s']['fp32']} img/s; "
            + ", ".join(f"{setting} {ratio}x" for setting, ratio in row["over_fp32"].items())
            for row in precision["rows"]
        ]
        if precision.get("agreement"):
            lines += [
                "",
                f"Probe agreement ({precision['agreement_model']}, linear probe, test balanced accuracy):",
                "",
            ]
            for row in precision["agreement"]:
                others = [
                    f"{p} {row[p]} ({'inside' if row[p + '_inside'] else 'OUTSIDE'})" for p in row["cosine_to_fp32"]
                ]
                lines.append(f"- {row['task']}: fp32 {row['fp32']} {row['fp32_interval']}; " + ", ".join(others))
        lines.append("")
    if first := _load(folder, "first_extract"):
        lines += [
            "## First extract on a fresh machine",
            "",
            f"- {first['first_extract_s']} s (pretraining {first['pretrain_s']} s; budget {first['budget_s']} s)",
            "",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    text = "\n".join(lines_for(args.results)).rstrip("\n") + "\n"
    (args.results / "SUMMARY.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
