"""Resolve `--model` / `--pretrained` to open_clip weights, offline-safe, and build the model."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import open_clip

from ..core import paths
from ..core.errors import RunError, UsageError, close_matches, did_you_mean
from ..core.hub import hub_offline, hub_reachable
from ..core.registry import Registry
from ..core.storage import file_sha256, stable_hash, write_json

MODEL_CONFIG_DIR = Path(__file__).parent.parent / "model_configs"
# Register clipprobe's own architectures (mini-clip) with open_clip, as open_clip's tests do.
open_clip.add_model_config(MODEL_CONFIG_DIR)

# A weights value that means "this architecture with seeded random weights" (a control).
RANDOM = "random"
OPEN_CLIP_CONFIG = "open_clip_config.json"


@dataclass(frozen=True)
class BuiltinWeights:
    """Weights clipprobe trains itself on first use, then loads like any local checkpoint."""

    model: str
    tag: str
    description: str
    # Returns the folder of an open_clip-format checkpoint, training it if missing.
    materialise: Callable[[], Path]
    # Used when `--pretrained` is omitted for this model.
    default: bool = False
    # Whether they are trained and stored already (else the first use trains them).
    trained: Callable[[], bool] = lambda: False
    # Whether `--pretrained`'s choices and `clipprobe models` list it by name; False for a family's members and
    # recipe variants registered on first use, so a list never depends on what ran before in the process.
    listed: bool = True


BUILTIN_WEIGHTS: Registry[BuiltinWeights] = Registry("built-in weights")


def register_builtin_weights(weights: BuiltinWeights, replace: bool = False) -> BuiltinWeights:
    return BUILTIN_WEIGHTS.register(f"{weights.model}/{weights.tag}", weights, replace=replace)


# Families of built-in tags, keyed by (model, tag prefix): the rest of the tag is the family's argument
# (mini-clip/dashcam-POLICY for any caption policy, e.g. dashcam-mixed:0.05).
BUILTIN_FAMILIES: dict[tuple[str, str], Callable[[str], BuiltinWeights]] = {}


def builtin_weights() -> Registry[BuiltinWeights]:
    """The registry of built-in weights (clipprobe.catalog registers the dashcam application's recipes)."""
    return BUILTIN_WEIGHTS


def find_builtin_weights(model: str, tag: str) -> BuiltinWeights | None:
    """A registered tag, or a member of a registered family (registered on first use); None if neither."""
    registry = builtin_weights()
    if f"{model}/{tag}" in registry:
        return registry.get(f"{model}/{tag}")
    for (family_model, prefix), make in BUILTIN_FAMILIES.items():
        if model == family_model and tag.startswith(prefix) and len(tag) > len(prefix):
            try:
                return register_builtin_weights(make(tag[len(prefix) :]), replace=True)
            except UsageError:
                # A near miss of a known tag (dashcam-salent) is a typo of that tag, not a new family member:
                # suggest the tag; otherwise the family's own message (an unknown caption policy) says more.
                if close_matches(tag, _known_tags(model), cutoff=0.8):
                    raise _unknown_tag(model, tag) from None
                raise
    return None


def _known_tags(model: str) -> list[str]:
    """The tags `--pretrained` takes for `model` by name: built-in weights, then open_clip's."""
    tags = [w.tag for _, w in BUILTIN_WEIGHTS.items() if w.model == model and w.listed]
    return tags + open_clip.list_pretrained_tags_by_model(model)


def _unknown_tag(model: str, pretrained: str) -> UsageError:
    """An unknown tag: the close tags, then every choice (a family as PREFIXPOLICY)."""
    choices = [w.tag for _, w in BUILTIN_WEIGHTS.items() if w.model == model and w.listed]
    choices += [f"{prefix}POLICY" for family_model, prefix in BUILTIN_FAMILIES if family_model == model]
    choices += open_clip.list_pretrained_tags_by_model(model) + [RANDOM]
    return UsageError(
        f"Unknown pretrained tag '{pretrained}' for model '{model}'. {did_you_mean(pretrained, _known_tags(model))}"
        f"Available: {', '.join(choices)}, or a checkpoint file"
    )


def default_pretrained(model: str) -> str | None:
    """The weights used when `--pretrained` is omitted: the model's default built-in tag, if any."""
    for _, weights in builtin_weights().items():
        if weights.model == model and weights.default:
            return weights.tag
    return None


@dataclass(frozen=True)
class WeightsSpec:
    """Where a model's weights come from, and everything about them that changes features."""

    model: str
    pretrained: str | None
    # What `create_model` receives: a tag, a file path, or None.
    load_arg: str | None
    # Stable identity for cache keys and result files (file content hash, tag, hub id).
    identity: dict[str, Any]
    # Preprocessing and model overrides that a local file needs to match how it was trained.
    preprocess_overrides: dict[str, Any] = field(default_factory=dict)
    force_quick_gelu: bool = False

    @property
    def label(self) -> str:
        """How result tables name these weights."""
        return self.pretrained or "none"


def list_models() -> list[str]:
    return open_clip.list_models()


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """`MODEL@PRETRAINED` -> (MODEL, PRETRAINED), e.g. `ViT-B-32@openai` or `RN50@/models/rn50.pt`; a bare
    `MODEL` -> (MODEL, None): its default weights."""
    model, _, pretrained = spec.strip().partition("@")
    if not model:
        raise UsageError(
            f"Model '{spec}' has no name before '@': write MODEL or MODEL@PRETRAINED, e.g. ViT-B-32@openai"
        )
    return model, pretrained or None


def read_models_file(path: str | Path) -> list[tuple[str, str | None]]:
    """A models file as CLIP_benchmark reads it: one `model,pretrained` per line (`pretrained` may be left out;
    blank lines and lines starting with # are skipped). Returns (model, pretrained) pairs in order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read models file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    models = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) > 2 or not fields[0]:
            raise UsageError(f"{path} line {number}: expected MODEL,PRETRAINED (e.g. ViT-B-32,openai), got {line!r}")
        models.append((fields[0], (fields[1] if len(fields) == 2 else "") or None))
    if not models:
        raise UsageError(f"Models file {path} lists no model (one MODEL,PRETRAINED per line)")
    return models


def tag_available_offline(model: str, tag: str) -> bool:
    """Whether an open_clip tag's weights are on this machine already (the Hugging Face cache, or open_clip's
    ~/.cache/clip for URL downloads), so it loads without network. Looks only; downloads nothing."""
    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        return False
    if cfg.get("file"):
        return Path(cfg["file"]).is_file()
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(cfg["hf_hub"])  # "org/name/" (open_clip's file names) or "org/name/file"
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename[: -len(".bin")] + ".safetensors")
        if any(isinstance(try_to_load_from_cache(repo, name), str) for name in names):
            return True
    if cfg.get("url"):
        return (Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])).is_file()
    return False


def check_weights(model: str, pretrained: str | None) -> None:
    """What `resolve_weights` checks, without hashing, downloading or training anything: for checking every model
    of a run before the first one starts."""
    resolve_weights(model, pretrained, check_only=True)


@overload
def resolve_weights(model: str, pretrained: str | None, check_only: Literal[False] = False) -> WeightsSpec: ...


@overload
def resolve_weights(model: str, pretrained: str | None, check_only: bool) -> WeightsSpec | None: ...


def resolve_weights(model: str, pretrained: str | None, check_only: bool = False) -> WeightsSpec | None:
    """Check `model` and `pretrained` without building anything; raise errors that list the choices.

    With `check_only`, stop once the names are known to be valid (no weights are trained or hashed); None."""
    if model.startswith("hf-hub:"):
        return _resolve_hf_hub(model)
    if model.startswith("local-dir:"):
        return None if check_only and _local_dir_checkpoint(model) else _resolve_local_dir(model)
    if model not in open_clip.list_models():
        close = difflib.get_close_matches(model, open_clip.list_models(), n=5, cutoff=0.6)
        close += [name for name in open_clip.list_models() if model.lower() == name.lower() and name not in close]
        suggestion = f"Did you mean {', '.join(close)}? " if close else ""
        raise UsageError(
            f"Unknown model '{model}'. {suggestion}`clipprobe models` lists the {len(open_clip.list_models())} "
            "open_clip architectures; or give hf-hub:ORG/NAME or local-dir:PATH"
        )
    pretrained = pretrained if pretrained is not None else default_pretrained(model)
    if pretrained is None:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise UsageError(
            f"Model '{model}' needs --pretrained: one of {', '.join(tags + [RANDOM])}, or a checkpoint file"
        )
    if pretrained == RANDOM:
        return WeightsSpec(model, RANDOM, None, {"kind": RANDOM})
    if (builtin := find_builtin_weights(model, pretrained)) is not None:
        if check_only:
            return None
        folder = builtin.materialise()
        spec = _resolve_file(model, _checkpoint_in(folder))
        return WeightsSpec(
            model,
            pretrained,
            spec.load_arg,
            {**spec.identity, "kind": "builtin", "tag": pretrained},
            spec.preprocess_overrides,
            spec.force_quick_gelu,
        )
    if open_clip.get_pretrained_cfg(model, pretrained):
        return _resolve_tag(model, pretrained)
    path = Path(pretrained).expanduser()
    if path.is_dir():
        path = Path(_checkpoint_in(path))
    if path.is_file():
        if check_only:
            check_checkpoint(path)
            return None
        return _resolve_file(model, str(path))
    if _looks_like_path(pretrained):
        raise UsageError(f"Checkpoint file not found: {pretrained}")
    raise _unknown_tag(model, pretrained)


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


# The names open_clip and the Hugging Face hub give checkpoints, preferred in this order; then any other file of
# these kinds (safetensors first).
CHECKPOINT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def _checkpoint_in(folder: Path) -> str:
    """The checkpoint file in a folder: a conventional name first, else the first file by suffix and name."""
    folder = Path(folder)
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return str(folder / name)
    for suffix in CHECKPOINT_SUFFIXES:
        found = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
        if found:
            return str(found[0])
    raise UsageError(f"No checkpoint (*.safetensors, *.bin, *.pth, *.pt) in folder {folder}")


def _resolve_file(model: str, path: str) -> WeightsSpec:
    """A local checkpoint. open_clip alone would apply the architecture's default preprocessing;
    when an open_clip_config.json sits beside the file (as `clipprobe pretrain` and the Hugging Face
    hub layout write it), its preprocessing and QuickGELU setting are applied too."""
    check_checkpoint(Path(path))
    overrides, quick_gelu = {}, False
    sidecar = Path(path).with_name(OPEN_CLIP_CONFIG)
    if sidecar.is_file():
        config = json.loads(sidecar.read_text())
        overrides = dict(config.get("preprocess_cfg", {}))
        quick_gelu = bool(config.get("model_cfg", {}).get("quick_gelu", False))
    identity = {
        "kind": "file",
        "sha256": cached_file_sha256(Path(path)),
        "preprocess": overrides,
        "quick_gelu": quick_gelu,
    }
    return WeightsSpec(model, str(path), str(path), identity, overrides, quick_gelu)


def _resolve_tag(model: str, tag: str) -> WeightsSpec:
    """An open_clip tag: its registry entry (source, preprocessing, QuickGELU) is part of its identity, so a new
    open_clip that changes any of them gives new cache keys."""
    cfg = open_clip.get_pretrained_cfg(model, tag)
    source = cfg.get("hf_hub") or cfg.get("url")
    settings = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode", "quick_gelu") if k in cfg}
    identity = {"kind": "open_clip-tag", "tag": tag, "source": source, "settings": _jsonable(settings)}
    return WeightsSpec(model, tag, tag, identity)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def model_config(model: str) -> dict[str, Any] | None:
    """The architecture's config as open_clip resolves it (None for hf-hub: and local-dir:, whose config comes
    with the weights and is in their identity)."""
    if model.startswith(("hf-hub:", "local-dir:")):
        return None
    return _jsonable(open_clip.get_model_config(model))


def _resolve_hf_hub(model: str) -> WeightsSpec:
    return WeightsSpec(model, None, None, {"kind": "hf-hub", "repo": model[len("hf-hub:") :]})


def _local_dir_checkpoint(model: str) -> Path:
    folder = Path(model[len("local-dir:") :]).expanduser()
    if not (folder / OPEN_CLIP_CONFIG).is_file():
        raise UsageError(f"local-dir: folder {folder} has no {OPEN_CLIP_CONFIG}")
    # The file open_clip's local-dir: loads, chosen by open_clip's own rule, so that the identity hashes what is
    # loaded (open_clip reads *.safetensors, *.bin and *.pth there, not *.pt, and prefers its own names).
    from open_clip.factory import _find_checkpoint_in_dir

    found = _find_checkpoint_in_dir(folder)
    if found is None:
        raise UsageError(
            f"No checkpoint open_clip reads (*.safetensors, *.bin, *.pth) in local-dir: folder {folder}; "
            "a *.pt file loads with --model MODEL --pretrained FILE"
        )
    checkpoint = Path(found)
    check_checkpoint(checkpoint)
    return checkpoint


def _resolve_local_dir(model: str) -> WeightsSpec:
    folder = Path(model[len("local-dir:") :]).expanduser()
    checkpoint = _local_dir_checkpoint(model)
    identity = {
        "kind": "local-dir",
        "config": stable_hash(json.loads((folder / OPEN_CLIP_CONFIG).read_text())),
        "sha256": cached_file_sha256(checkpoint),
    }
    return WeightsSpec(model, None, None, identity)


# How checkpoint files begin: a zip archive (torch.save since 1.6), a pickle (older torch.save), or safetensors
# (an 8-byte little-endian header length, then the JSON header).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def check_checkpoint(path: Path) -> None:
    """A UsageError, before any model is built, for a file that cannot be a checkpoint (empty, text, other)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise UsageError(f"Cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise UsageError(f"Checkpoint {path} is empty (0 bytes): the download or copy did not finish; fetch it again")
    safetensors = len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size
    if not (safetensors or head.startswith(_CHECKPOINT_MAGIC)):
        raise UsageError(
            f"{path} is not a checkpoint: expected a file written by torch.save (.pt, .pth, .bin) or safetensors "
            f"(.safetensors), got one starting with {head[:8]!r}"
        )


def cached_file_sha256(path: Path) -> str:
    """Content hash of a (possibly large) weights file. The memo skips re-hashing only when the path, size,
    modification time, inode and inode-change time all match: a file replaced in place by another of the same
    size and modification time (as `cp -p`, `rsync -t` or `tar` leave it) has a new inode or ctime, so it is
    hashed again."""
    stat = path.stat()
    index_path = paths.home() / "file-hashes.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}:{stat.st_ctime_ns}"
    if key not in index:
        index[key] = file_sha256(path)
        write_json(index_path, index)
    return index[key]


# Weights whose every value comes from one checkpoint, loaded by open_clip with strict=True (a checkpoint that
# lacks a weight is an error, not a random one); a local-dir: folder is resolved only when it holds a checkpoint
# open_clip loads. hf-hub: is not among them: when its weights fail to download, open_clip builds a random model
# with a warning.
CHECKPOINT_KINDS = ("file", "builtin", "open_clip-tag", "local-dir")
# torch's random initialisers (torch.nn.init), which nn.Linear, nn.MultiheadAttention, open_clip's towers and
# transformers' models call while a model is built.
_RANDOM_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "orthogonal_",
    "sparse_",
)


@contextmanager
def initialisers_skipped(skip: bool = True):
    """While a model is built whose weights a checkpoint then replaces, torch's random initialisers fill zeros
    instead of drawing random numbers: ViT-B-32's 151 million draws take about a second on one core, for values
    the load overwrites (transformers' `no_init_weights` does the same). Zeros, not uninitialised memory, so a
    value that some loader did not replace would still be the same on every run."""
    if not skip:
        yield
        return
    import torch
    from torch.nn import init

    def zeros(tensor, *args, **kwargs):
        with torch.no_grad():
            return tensor.zero_()

    saved = {name: getattr(init, name) for name in _RANDOM_INITIALISERS if hasattr(init, name)}
    for name in saved:
        setattr(init, name, zeros)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


def create_model(
    spec: WeightsSpec, device: str = "cpu", precision: str = "fp32", seed: int = 0, resize_mode: str | None = None
):
    """Build the open_clip model and its inference transform through open_clip's own loader; `resize_mode`
    (open_clip's name: shortest, squash, longest) replaces the weights' own."""
    import torch

    kwargs = dict(
        precision=precision,
        device=device,
        force_quick_gelu=spec.force_quick_gelu,
        image_mean=spec.preprocess_overrides.get("mean"),
        image_std=spec.preprocess_overrides.get("std"),
        image_interpolation=spec.preprocess_overrides.get("interpolation"),
        image_resize_mode=resize_mode or spec.preprocess_overrides.get("resize_mode"),
    )
    needs_download = spec.identity["kind"] in ("open_clip-tag", "hf-hub")
    online = needs_download and hub_reachable()
    # Random weights must be the same on every run: seed the initialisation.
    torch.manual_seed(seed)
    # Weights that a checkpoint replaces need no random numbers first (open_clip loads every one, strictly).
    replaced = spec.identity["kind"] in CHECKPOINT_KINDS
    try:
        with hub_offline() if needs_download and not online else nullcontext(), initialisers_skipped(replaced):
            model, _, preprocess = open_clip.create_model_and_transforms(spec.model, pretrained=spec.load_arg, **kwargs)
    except Exception as exc:
        if spec.identity["kind"] in ("file", "local-dir", "builtin"):  # torch and open_clip raise EOFError, KeyError,
            first = (str(exc).strip().splitlines() or [""])[0][:200]  # AssertionError... for foreign weights
            raise UsageError(
                f"Weights {spec.pretrained or spec.model} do not load into {spec.model} ({type(exc).__name__}: {first}):"
                " check that --model names the architecture they were trained as (see `clipprobe models`)"
            ) from exc
        if not isinstance(exc, (RuntimeError, FileNotFoundError, OSError)):
            raise
        if needs_download and not online:
            what = spec.model if spec.identity["kind"] == "hf-hub" else f"{spec.model} '{spec.pretrained}'"
            raise RunError(
                f"Cannot download the weights for {what}: the Hugging Face hub is unreachable and they are not in "
                f"the local cache. Download them where there is network and pass --pretrained /path/to/checkpoint "
                f"(or --model local-dir:/path/to/folder)"
            ) from exc
        raise RunError(f"Cannot load model {spec.model} with weights {spec.label}: {exc}") from exc
    model.eval()
    return model, preprocess
