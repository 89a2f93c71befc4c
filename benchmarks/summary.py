"""Gather the JSON records that the benchmarks wrote into one short Markdown summary (the last step of make bench)."""

from __future__ import annotations

import argparse
import json
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
        f"Machine: {machine()}, Python {platform.python_version()}. "
        "Every figure is a ratio measured side by side in one run.",
        "",
    ]
    targets = target_lines(folder)
    if targets:
        lines += [
            "## Every ratio against its target",
            "",
            "| measure | ratio | target | |",
            "| --- | ---: | ---: | --- |",
        ]
        lines += [
            f"| {name} | {value} | {target} | {'ok' if ok else '**BELOW**'} |" for name, value, target, ok in targets
        ]
        lines += ["", "Why a ratio is below its target, and how noisy these figures are: docs/performance.md.", ""]
    speeds = [_load(folder, path.stem) for path in sorted(folder.glob("extract_speed*.json"))]
    if speeds:
        lines += ["## Extraction speed", ""]
    for speed in speeds:
        ips = speed["images_per_s"]
        goal = speed.get("targets", {"ceiling": 0.9, "anchor": 2.0})
        lines += [
            f"{speed['model']} {settings(speed)}, {speed['images']} images: ceiling {ips['ceiling']} img/s, "
            f"anchor (the fp32 plain loop) {ips['anchor']} img/s, clipprobe end to end {ips['clipprobe']} img/s.",
            "",
            f"- clipprobe / ceiling: **{speed['ceiling_ratio']:.2f}** (target >= {goal['ceiling']:g})"
            + (f"; the median of rounds {', '.join(f'{r:.2f}' for r in speed['rounds'])}" if "rounds" in speed else ""),
            f"- clipprobe / anchor: **{speed['anchor_ratio']:.2f}x** (target >= {goal['anchor']:g}x)",
            f"- of clipprobe's time, building the model: {speed['model_build_s']} s "
            f"({speed['clipprobe_after_build_images_per_s']} img/s without it)",
        ]
        if speed.get("precision_requested") == "auto":
            lines.append(f"- precision: {speed['precision_reason']}")
        lines.append("")
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
            f"{row['anchor_balanced_accuracy']} {row['anchor_interval']} (target >= {PROBE_TARGET:g}x, accuracy as good)"
            for row in anchor["rows"]
        ]
        lines.append("")
    if scale := _load(folder, "probe_scale"):
        lines += ["## Probe sweep at scale", ""]
        lines += [
            f"- {scale['shape']}: {scale['seconds']} s for {scale['fitted_C']} C values (target < {scale['target_s']} s); "
            f"C = {scale['chosen_C']:g}, test balanced accuracy {scale['test_balanced_accuracy']}",
            "",
        ]
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


# The probe sweep's target against the CLIP_benchmark-style AdamW sweep (issue 19), at equal or better accuracy.
PROBE_TARGET = 10


def target_lines(folder: Path) -> list[tuple[str, str, str, bool]]:
    """(measure, ratio, target, met) for every figure that has a target."""
    rows = []
    for path in sorted(folder.glob("extract_speed*.json")):
        speed = _load(folder, path.stem)
        goal = speed.get("targets", {"ceiling": 0.9, "anchor": 2.0})
        name = f"{speed['model']} extraction ({settings(speed)})"
        rows.append(
            (
                f"{name} / ceiling"
                + (
                    f" (median of rounds {', '.join(f'{r:.2f}' for r in speed['rounds'])})" if "rounds" in speed else ""
                ),
                f"{speed['ceiling_ratio']:.2f}",
                f">= {goal['ceiling']:g}",
                speed["ceiling_ratio"] >= goal["ceiling"],
            )
        )
        rows.append(
            (
                f"{name} / fp32 plain loop",
                f"{speed['anchor_ratio']:.2f}x",
                f">= {goal['anchor']:g}x",
                speed["anchor_ratio"] >= goal["anchor"],
            )
        )
    if memory := _load(folder, "extract_memory"):
        rows.append(
            (
                "peak memory growth, 10x the images",
                f"{100 * memory['growth']:+.1f} %",
                f"within {100 * memory['tolerance']:.0f} %",
                abs(memory["growth"]) <= memory["tolerance"],
            )
        )
    if anchor := _load(folder, "probe_anchor"):
        for row in anchor["rows"]:
            better = row["clipprobe_balanced_accuracy"] >= row["anchor_balanced_accuracy"]
            rows.append(
                (
                    f"probe sweep {row['shape']} / AdamW sweep (accuracy {'as good' if better else 'WORSE'})",
                    f"{row['speedup']}x",
                    f">= {PROBE_TARGET}x",
                    row["speedup"] >= PROBE_TARGET and better,
                )
            )
    if scale := _load(folder, "probe_scale"):
        rows.append(
            (
                f"probe sweep {scale['shape']}, seconds",
                f"{scale['seconds']} s",
                f"< {scale['target_s']} s",
                scale["within_target"],
            )
        )
    if first := _load(folder, "first_extract"):
        rows.append(
            (
                "first extract on a fresh machine, seconds",
                f"{first['first_extract_s']} s",
                f"<= {first['budget_s']} s",
                first["within_budget"],
            )
        )
    return rows


# The block of a docs page that `--docs` replaces with the table of targets.
DOCS_START = "<!-- bench table: generated by benchmarks/summary.py (make bench) -->"
DOCS_END = "<!-- end of bench table -->"


def docs_block(folder: Path) -> str:
    """The table of every ratio against its target, with the machine, for a docs page."""
    rows = target_lines(folder)
    lines = [
        DOCS_START,
        "",
        f"Measured on {machine()}.",
        "",
        "| measure | ratio | target | |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [f"| {name} | {value} | {target} | {'ok' if ok else '**below**'} |" for name, value, target, ok in rows]
    return "\n".join(lines + ["", DOCS_END])


def machine() -> str:
    """The CPU's model, its cores and whether it computes bf16 natively, in words."""
    from clipprobe.core.machine import cores, cpu_model, native_bf16

    return f"{cores()} cores of an {cpu_model()} ({'native bf16' if native_bf16() else 'no native bf16'})"


def replace_block(page: Path, start_marker: str, end_marker: str, block: str, what: str) -> None:
    """Replace the lines of `page` from `start_marker` to `end_marker` with `block` (which holds both markers)."""
    text = page.read_text()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"Error: {page} has no {what} block ({start_marker} ... {end_marker})")
    page.write_text(text[:start] + block + text[end + len(end_marker) :])


def write_docs(page: Path, folder: Path) -> None:
    """Replace `page`'s bench table (between DOCS_START and DOCS_END) with this run's."""
    replace_block(page, DOCS_START, DOCS_END, docs_block(folder), "bench table")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--docs", type=Path, help="a docs page whose bench table block this run's table replaces")
    args = parser.parse_args()
    text = "\n".join(lines_for(args.results)).rstrip("\n") + "\n"
    (args.results / "SUMMARY.md").write_text(text)
    print(text, end="")
    if args.docs is not None:
        write_docs(args.docs, args.results)
        print(f"Wrote the table into {args.docs}")


if __name__ == "__main__":
    main()
