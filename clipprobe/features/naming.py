"""How result tables name a representation: the model and weights as a row name (from what the weights are, not
the path typed), tagged with every setting that makes it another representation (layer, orbit, resize).

The numeric precision is not in the name: `--precision auto` picks bf16 on one machine and fp32 on another, and a
name that changed with the machine would break every `--fail-under` and README excerpt that names the row. The
precision is a column of the tables and part of the result's identity (clipprobe.results.Identity) instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import DEFAULT_LAYER
from .layers import layer_identity

# Checkpoint file names that say nothing about the weights (open_clip's, the hub's): such a file is named after its folder.
GENERIC_CHECKPOINT_NAMES = ("open_clip_model", "open_clip_pytorch_model", "pytorch_model", "model", "checkpoint")


def weights_names(model: str, weights: Any) -> tuple[str, str]:
    """(model, pretrained) as result tables name them: from the model's name and the weights' identity, never
    from the path typed, so the same weights reached through another path are the same row. A tag names itself
    (`openai`, `dashcam-salient`, `random`); a checkpoint file is its name and the start of its content hash
    (`rn50_random-1a2b3c4d`; a file named like `open_clip_model.safetensors` takes its folder's name); a hub model
    is its id (`hf-hub:ORG/NAME` for both); a `local-dir:` folder is `local-dir:FOLDER-NAME` with its checkpoint's
    hash as the weights."""
    identity = weights.identity
    kind = identity.get("kind")
    if kind == "hf-hub":
        return model, model
    if kind == "local-dir":
        folder = Path(model[len("local-dir:") :]).expanduser()
        return f"local-dir:{folder.resolve().name or folder}", identity["sha256"][:8]
    if identity.get("tag") or kind == "random" or not identity.get("sha256") or weights.load_arg is None:
        return model, weights.label
    checkpoint = Path(weights.load_arg)
    name = checkpoint.parent.resolve().name if checkpoint.stem in GENERIC_CHECKPOINT_NAMES else checkpoint.stem
    return model, f"{name or checkpoint.stem}-{identity['sha256'][:8]}"


def representation_name(
    name: str,
    *,
    layer: str = DEFAULT_LAYER,
    orbit: str | None = None,
    resize: str | None = None,
) -> str:
    """`name` (e.g. "ViT-B-32/openai") with a tag for each setting that is not the default, each its own row (and
    result file): "ViT-B-32/openai [tokens, orbit:hflip, resize=pad]". An extractor passes only the settings
    that change its numbers. The precision is never a tag: the same representation in bf16 has the same name (its
    precision is a column, and a part of the result's identity)."""
    # A non-default layer is another representation: its own row, e.g. "ViT-B-32/openai [tokens]".
    tags = [layer_identity(layer)] if layer != DEFAULT_LAYER else []
    tags += [f"orbit:{orbit}"] if orbit else []
    tags += [f"resize={resize}"] if resize else []
    return name + (f" [{', '.join(tags)}]" if tags else "")
