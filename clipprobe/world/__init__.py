"""The procedural dashcam world: scenes with known attributes and curated captions."""

from .captions import CAPTION_POLICIES, caption_for, descriptive_fraction, get_caption_policy, list_caption_policies
from .dataset import WorldConfig, load_world, world_path
from .scene import ATTRIBUTES, render_scene, sample_scene

__all__ = [
    "ATTRIBUTES",
    "CAPTION_POLICIES",
    "WorldConfig",
    "caption_for",
    "descriptive_fraction",
    "get_caption_policy",
    "list_caption_policies",
    "load_world",
    "render_scene",
    "sample_scene",
    "world_path",
]
