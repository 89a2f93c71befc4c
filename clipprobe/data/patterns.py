"""The visual patterns CLIP-style encoders are known to be blind to, as a task declares the one it tests.

The nine patterns are those of the MMVP benchmark ("Eyes Wide Shut? Exploring the Visual Shortcomings of Multimodal
LLMs", Tong et al., CVPR 2024), which sorts pairs of photos that CLIP embeds alike though they differ visibly. There
the pairs are mined from photos; the dashcam world renders each pattern as an attribute it controls
(clipprobe.dashcam.tasks), so that whether the captions cause the blindness can be tested."""

from __future__ import annotations

# Name -> what differs between two images of the pattern, in MMVP's order.
PATTERNS: dict[str, str] = {
    "orientation and direction": "which way a thing faces or moves",
    "presence of specific features": "whether a thing is there at all",
    "state and condition": "the state a thing is in (a lamp lit, a signal's colour)",
    "quantity and count": "how many there are",
    "positional and relational context": "where a thing is, alone or relative to another",
    "colour and appearance": "a thing's colour",
    "structural and physical characteristics": "a thing's shape or make-up",
    "text": "what written characters say",
    "viewpoint and perspective": "where the camera stands relative to a thing (its distance, its angle)",
}
