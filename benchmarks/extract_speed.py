"""clipprobe's end-to-end extraction against the model's own speed and against the plain loop (run: make bench).

Three ways through the same images (dashcam scenes written as PNG files), the same model, weights, batch size
and threads, timed side by side in one process, in `--rounds` rounds (each: half the ceiling, clipprobe on an
empty cache, the other half of the ceiling, then a share of the anchor), so that drift in a shared machine's load
weighs on all three alike; the ratio to the ceiling is taken within each round and the median reported, with
every round's value:

- ceiling: `model.encode_image` on tensors preprocessed beforehand (the forward pass alone), at clipprobe's
  settings (the precision `auto` resolved to, --channels-last);
- anchor: the loop most tools use: PIL open -> open_clip preprocess -> stack a batch -> fp32 encode_image;
- clipprobe: `extract_features` end to end at the chosen settings: build the model, decode + preprocess +
  forward + write the chunked cache (the model's build time, measured on the first build, is also reported apart).

`--precision auto` (the command line's default) is resolved first, as `extract` resolves it: on a CPU with native
bf16 it runs bf16's check against fp32 once per model and machine (its verdict is cached under $CLIPPROBE_HOME;
the time of a first check is reported apart, as a download would be). It prints and saves images per second for
each and the ratios clipprobe / ceiling and clipprobe / anchor, each against its target."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipprobe.core.machine import machine
from clipprobe.features.precision import PRECISION_CHOICES, with_autocast, with_channels_last

# Targets (issue 19): clipprobe end to end against the plain fp32 loop and against the model's own speed.
ANCHOR_TARGET = 2.0
CEILING_TARGET = 0.9
# On a CPU with native bf16, where `auto` picks bf16: clipprobe against the fp32 plain loop.
BF16_ANCHOR_TARGET = 1.4


def write_images(folder: Path, n: int) -> list[Path]:
    """The first n pretraining scenes (4,000) of the dashcam world as PNG files, in two class folders (for imagefolder:)."""
    from clipprobe.dashcam.tasks import DASHCAM

    scenes = DASHCAM.load()["pretrain"]
    paths = []
    for i in range(n):
        row = scenes[i]
        path = folder / ("day" if i % 2 else "night") / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        row["image"].save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="clipprobe runs, each bracketed by the ceiling (the median round's ratio is reported)",
    )
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (benchmarks/gpu.sh)")
    parser.add_argument(
        "--workers", type=int, default=None, help="clipprobe's DataLoader workers (default: its own choice)"
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="clipprobe (and the ceiling) on NHWC tensors, as `extract --channels-last`; the anchor stays the plain loop",
    )
    parser.add_argument(
        "--anchor-target",
        type=float,
        default=ANCHOR_TARGET,
        help=f"the target of clipprobe / anchor (the issue's: {ANCHOR_TARGET:g}; {BF16_ANCHOR_TARGET:g} for ViT-B-32 on a bf16 CPU)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/extract_speed.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        row = measure(args, Path(folder))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2) + "\n")


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    """Time the three ways through `args.images` images written under `tmp`; print and return the record."""
    import open_clip

    from clipprobe.data.readers.imagefolder import ImageFolderSource
    from clipprobe.data.taskfile import dataset_task
    from clipprobe.features.cache import FeatureCache
    from clipprobe.features.config import ExtractorConfig
    from clipprobe.features.extract import extract_features
    from clipprobe.features.loading import forget_inputs
    from clipprobe.features.weights import create_model, resolve_weights
    from clipprobe.jobs.precision import resolve_precision

    # The weights come from a checkpoint file, as a user's own or downloaded weights do (random values: nothing to
    # download): every model below loads it, and clipprobe's build is that of a real extraction.
    weights = save_weights(args.model, tmp / "weights")
    paths = write_images(tmp / "images", args.images)
    # `auto` is checked on the benchmark's own images (day/night folders), as a run plan checks it on its task's.
    task = dataset_task(f"imagefolder:{tmp / 'images'}", name="extract-speed")
    started = time.perf_counter()
    config = resolve_precision(
        ExtractorConfig(
            model=args.model,
            pretrained=str(weights),
            batch_size=args.batch_size,
            precision=args.precision,
            workers=args.workers,
            channels_last=args.channels_last,
            device=args.device,
        ),
        task,
    )
    check_s = time.perf_counter() - started
    precision = config.precision
    started = time.perf_counter()
    device = args.device
    model, preprocess = create_model(
        resolve_weights(args.model, str(weights)), device=device, precision=precision, seed=config.seed
    )
    build_s = time.perf_counter() - started  # clipprobe's extract builds its own model: part of its time
    # The anchor is the plain loop: open_clip's own build, fp32, contiguous tensors, whatever clipprobe is set to.
    anchor_model = open_clip.create_model(args.model, pretrained=str(weights), device=device).eval()
    # The ceiling is the model's own speed at clipprobe's settings: the same wrappers `extract` applies.
    forward = model.encode_image
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        forward = with_channels_last(forward)
    forward = with_autocast(forward, precision, device)
    dtype = open_clip.get_input_dtype(precision)
    batches = [paths[i : i + args.batch_size] for i in range(0, len(paths), args.batch_size)]

    # Warm-up: one batch through each model (first-call allocations are nobody's steady state).
    with torch.inference_mode():
        first = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batches[0]])
        forward(first.to(device=device, dtype=dtype))
        anchor_model.encode_image(first.to(device))
    synchronize(device)

    def ceiling(part: list) -> float:
        """Seconds of the forward pass alone over these batches (preprocessed beforehand, on the device)."""
        tensors = [
            torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batch]).to(device=device, dtype=dtype)
            for batch in part
        ]
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in tensors:
                forward(batch)
        synchronize(device)
        return time.perf_counter() - started

    def anchor(part: list) -> float:
        started = time.perf_counter()
        with torch.no_grad():
            for batch in part:
                images = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batch])
                anchor_model.encode_image(images.to(device)).cpu().numpy()
        return time.perf_counter() - started

    # Each round brackets one clipprobe run (an empty cache: it builds its model, decodes, computes and writes
    # everything) by the ceiling's two halves, in mirror order, so that a machine getting busier or quieter
    # during the round (a shared one does) weighs on both alike; the anchor runs a share of its batches after
    # each round. The ratio to the ceiling is taken within each round.
    first, second = batches[: len(batches) // 2], batches[len(batches) // 2 :]
    shares = [batches[r :: args.rounds] for r in range(args.rounds)]
    source = ImageFolderSource(root=str(tmp / "images"))
    source.load()  # the folder's index is built once, as a listing of files is for the anchor
    rounds, anchor_s = [], 0.0
    for r in range(args.rounds):
        ceiling_s = ceiling(first)
        forget_inputs()  # each round decodes its images, as a new `extract` process does
        started = time.perf_counter()
        features = extract_features(source, config, cache=FeatureCache(tmp / f"cache-{r}"))
        clipprobe_s = time.perf_counter() - started
        ceiling_s += ceiling(second)
        anchor_s += anchor(shares[r])
        rows = sum(np.asarray(a).shape[0] for a in features.arrays.values())
        rounds.append({"ceiling_s": ceiling_s, "clipprobe_s": clipprobe_s, "ratio": ceiling_s / clipprobe_s})
    assert rows == args.images, (rows, args.images)

    # The median round (by its ratio to the ceiling) gives the speeds; the anchor ran every batch once.
    middle = sorted(rounds, key=lambda row: row["ratio"])[(len(rounds) - 1) // 2]
    ceiling_s, clipprobe_s = middle["ceiling_s"], middle["clipprobe_s"]
    speed = {
        name: round(args.images / seconds, 2)
        for name, seconds in (("ceiling", ceiling_s), ("anchor", anchor_s), ("clipprobe", clipprobe_s))
    }
    row = {
        "model": args.model,
        "device": device,
        "precision": precision,
        "precision_requested": args.precision,
        "precision_reason": config.precision_reason,
        "precision_check_s": round(check_s, 1),
        "channels_last": args.channels_last,
        "workers": config.workers,
        "batch_size": args.batch_size,
        "images": args.images,
        "rounds": [round(row["ratio"], 3) for row in rounds],
        "images_per_s": speed,
        "model_build_s": round(build_s, 2),
        "clipprobe_after_build_images_per_s": round(args.images / (clipprobe_s - build_s), 2),
        "ceiling_ratio": round(speed["clipprobe"] / speed["ceiling"], 3),
        "anchor_ratio": round(speed["clipprobe"] / speed["anchor"], 3),
        "targets": {"ceiling": CEILING_TARGET, "anchor": args.anchor_target},
        "machine": {
            **machine(),
            "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        },
    }
    print(
        f"{args.model} {settings(row)}, {args.images} images: ceiling {speed['ceiling']} img/s, "
        f"anchor (fp32 plain loop) {speed['anchor']} img/s, clipprobe {speed['clipprobe']} img/s; "
        f"clipprobe / ceiling {row['ceiling_ratio']:.2f} ({verdict(row['ceiling_ratio'], CEILING_TARGET)}; "
        f"median of {len(rounds)} rounds: {', '.join(f'{r:.2f}' for r in row['rounds'])}), "
        f"clipprobe / anchor {row['anchor_ratio']:.2f}x ({verdict(row['anchor_ratio'], args.anchor_target, 'x')}); "
        f"clipprobe builds the model in about {build_s:.1f} s of that, "
        f"{row['clipprobe_after_build_images_per_s']} img/s without it"
        + (
            f"; precision {precision}: {config.precision_reason} (resolved in {check_s:.1f} s)"
            if args.precision == "auto"
            else ""
        )
    )
    return row


def save_weights(model: str, folder: Path) -> Path:
    """`model` with its seeded random weights, saved as a safetensors checkpoint in `folder`."""
    from safetensors.torch import save_file

    from clipprobe.features.weights import create_model, resolve_weights

    built = create_model(resolve_weights(model, "random"))[0]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "open_clip_model.safetensors"
    save_file({name: value.contiguous() for name, value in built.state_dict().items()}, path)
    return path


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def verdict(ratio: float, target: float, unit: str = "") -> str:
    return f"target >= {target:g}{unit}: {'ok' if ratio >= target else 'BELOW'}"


def settings(row: dict) -> str:
    """clipprobe's settings in a record, as the summary names them: "fp32 batch 64, channels-last, 2 workers"."""
    auto = " (auto)" if row.get("precision_requested") == "auto" else ""
    parts = [f"{row['precision']}{auto} batch {row['batch_size']}"]
    parts += [row["device"]] if row.get("device", "cpu") != "cpu" else []
    parts += ["channels-last"] if row.get("channels_last") else []
    parts += [f"{row['workers']} workers"] if row.get("workers") is not None else []
    return ", ".join(parts)


if __name__ == "__main__":
    main()
