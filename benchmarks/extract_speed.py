"""clipprobe's end-to-end extraction against the model's own speed and against the plain loop (run: make bench).

Three ways through the same images (dashcam scenes written as PNG files), the same model, weights, batch size
and threads, timed side by side in one process:

- ceiling: `model.encode_image` on tensors preprocessed beforehand (the forward pass alone), at clipprobe's
  settings (precision, --channels-last);
- anchor: the loop most tools use: PIL open -> open_clip preprocess -> stack a batch -> fp32 encode_image;
- clipprobe: `extract_features` end to end at the chosen settings: build the model, decode + preprocess +
  forward + write the chunked cache (the model's build time, measured on the first build, is also reported apart).

It prints and saves images per second for each and the ratios clipprobe / ceiling and clipprobe / anchor."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipprobe.features.precision import PRECISIONS, with_autocast, with_channels_last


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
    parser.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS))
    parser.add_argument(
        "--workers", type=int, default=None, help="clipprobe's DataLoader workers (default: its own choice)"
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="clipprobe (and the ceiling) on NHWC tensors, as `extract --channels-last`; the anchor stays the plain loop",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/extract_speed.json"))
    args = parser.parse_args()

    import open_clip

    from clipprobe.data.schemes import ImageFolderSource
    from clipprobe.features.cache import FeatureCache
    from clipprobe.features.config import ExtractorConfig
    from clipprobe.features.extract import extract_features
    from clipprobe.features.weights import create_model, resolve_weights

    config = ExtractorConfig(
        model=args.model,
        pretrained="random",
        batch_size=args.batch_size,
        precision=args.precision,
        workers=args.workers,
        channels_last=args.channels_last,
    )
    started = time.perf_counter()
    model, preprocess = create_model(resolve_weights(args.model, "random"), precision=args.precision, seed=config.seed)
    build_s = time.perf_counter() - started  # clipprobe's extract builds its own model: part of its time
    # The anchor is the plain loop: fp32, contiguous tensors, whatever clipprobe is set to.
    anchor_model = create_model(resolve_weights(args.model, "random"), seed=config.seed)[0]
    # The ceiling is the model's own speed at clipprobe's settings: the same wrappers `extract` applies.
    forward = model.encode_image
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        forward = with_channels_last(forward)
    forward = with_autocast(forward, args.precision, "cpu")
    dtype = open_clip.get_input_dtype(args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp) / "images", args.images)
        batches = [paths[i : i + args.batch_size] for i in range(0, len(paths), args.batch_size)]

        # Warm-up: one batch through each model (first-call allocations are nobody's steady state).
        with torch.inference_mode():
            first = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batches[0]])
            forward(first.to(dtype))
            anchor_model.encode_image(first)

        tensors = [
            torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batch]).to(dtype) for batch in batches
        ]
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in tensors:
                forward(batch)
        ceiling_s = time.perf_counter() - started
        del tensors

        started = time.perf_counter()
        with torch.no_grad():
            for batch in batches:
                images = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batch])
                anchor_model.encode_image(images).numpy()
        anchor_s = time.perf_counter() - started

        source = ImageFolderSource(root=str(Path(tmp) / "images"))
        source.load()  # the folder's index is built once, as a listing of files is for the anchor
        started = time.perf_counter()
        features = extract_features(source, config, cache=FeatureCache(Path(tmp) / "cache"))
        clipprobe_s = time.perf_counter() - started
        rows = sum(np.asarray(a).shape[0] for a in features.arrays.values())
    assert rows == args.images, (rows, args.images)

    speed = {
        name: round(args.images / seconds, 2)
        for name, seconds in (("ceiling", ceiling_s), ("anchor", anchor_s), ("clipprobe", clipprobe_s))
    }
    row = {
        "model": args.model,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "workers": config.workers,
        "batch_size": args.batch_size,
        "images": args.images,
        "images_per_s": speed,
        "model_build_s": round(build_s, 2),
        "clipprobe_after_build_images_per_s": round(args.images / (clipprobe_s - build_s), 2),
        "ceiling_ratio": round(speed["clipprobe"] / speed["ceiling"], 3),
        "anchor_ratio": round(speed["clipprobe"] / speed["anchor"], 3),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    print(
        f"{args.model} {settings(row)}, {args.images} images: ceiling {speed['ceiling']} img/s, "
        f"anchor {speed['anchor']} img/s, clipprobe {speed['clipprobe']} img/s; clipprobe / ceiling "
        f"{row['ceiling_ratio']:.2f} (target >= 0.9), clipprobe / anchor {row['anchor_ratio']:.2f}x (target >= 2); "
        f"clipprobe builds the model in about {build_s:.1f} s of that, "
        f"{row['clipprobe_after_build_images_per_s']} img/s without it"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2) + "\n")


def settings(row: dict) -> str:
    """clipprobe's settings in a record, as the summary names them: "fp32 batch 64, channels-last, 2 workers"."""
    parts = [f"{row['precision']} batch {row['batch_size']}"]
    parts += ["channels-last"] if row.get("channels_last") else []
    parts += [f"{row['workers']} workers"] if row.get("workers") is not None else []
    return ", ".join(parts)


if __name__ == "__main__":
    main()
