"""The curation experiment's pre-registered primary contrasts: written before the run that tests them, versioned,
and the only comparisons a conclusion may rest on.

Each contrast is a difference in test balanced accuracy, row minus reference, on one task, with the seed as the
unit (clipprobe.stats.seeds): paired seed by seed when both rows come from the same pretraining seeds, Welch's
otherwise. The family's error is controlled with Holm across the contrasts below (alpha 5 %). A difference is
"resolved" when its Holm-adjusted p-value is under alpha; "equivalent" only when the two one-sided tests against
the declared margin reject (Holm across the family too); otherwise it is "not resolved", with its interval.
Every other comparison the experiment computes is exploratory: reported with Benjamini-Hochberg q-values and
labelled so.

Changing a contrast, the margin or alpha is a new version of the plan (PREREGISTRATION_VERSION), stated in
docs/curation.md with the reason, never chosen after looking at a result."""

from __future__ import annotations

from dataclasses import dataclass

# 1: the five contrasts below, margin 0.03, alpha 0.05 (2026-12-07, before the first `make experiment`).
# 2: a second family, LAYERS_FAMILY: the attentive probe over every token against the linear probe at the embedding
# and at the mean of the tokens (2026-12-07, written before the first run with the attentive probe).
# 3: a third family, PATTERNS_FAMILY: for each task of the blind-pattern suite, descriptive minus salient captions
# (2026-12-07, written with the suite and before the first run on the world that renders it, generator version 3;
# unchanged when the world was redrawn as version 4, docs/curation.md says why).
PREREGISTRATION_VERSION = 3
ALPHA = 0.05
# A difference in balanced accuracy smaller than 3 points is too small for any of the essay's claims to rest on:
# the margin of every equivalence test. Declared with the plan, from the claims, not from any result.
EQUIVALENCE_MARGIN = 0.03
# The tokens' probe for the layer contrast: PCA (fitted on the train split) to the embedding's width, 128 for
# mini-clip, so that the two layers are read by probes of the same capacity.
MATCHED_PROBE = "linear-pca:128"


@dataclass(frozen=True)
class Side:
    """One side of a contrast: a caption policy's model (`salient`) or a baseline (`cnn`, `random`), read at a
    layer by a probe (a trained baseline has neither)."""

    row: str
    layer: str | None = "embedding"
    probe: str | None = "linear"


@dataclass(frozen=True)
class Contrast:
    """A pre-registered difference: its name, the claim it tests, the task, the row and the reference."""

    name: str
    claim: str
    task: str
    row: Side
    against: Side
    margin: float = EQUIVALENCE_MARGIN


CNN = Side("cnn", None, None)

PRIMARY: tuple[Contrast, ...] = (
    Contrast(
        "light: descriptive - salient",
        "Captions that name the light keep its state in the embedding; captions that never name it do not.",
        "traffic-light",
        Side("descriptive"),
        Side("salient"),
    ),
    Contrast(
        "light: salient - random weights",
        "Contrastive pretraining on salient captions keeps less of the light than, or as much as, an untrained tower.",
        "traffic-light",
        Side("salient"),
        Side("random"),
    ),
    Contrast(
        "light: CNN - salient",
        "A network trained on the labels reads the light better than a probe of the salient embedding.",
        "traffic-light",
        CNN,
        Side("salient"),
    ),
    Contrast(
        "pedestrian: CNN - salient",
        "The same for the pedestrian, which no caption names.",
        "pedestrian",
        CNN,
        Side("salient"),
    ),
    Contrast(
        "light: salient tokens (PCA-128) - salient embedding",
        "The light is lost at the pooling and projection, not in the tower: the tokens, read at the embedding's "
        "width, keep more of it.",
        "traffic-light",
        Side("salient", "tokens", MATCHED_PROBE),
        Side("salient"),
    ),
)


# The probe that reads every token, and the layer it reads (clipprobe.probes.attentive).
ATTENTIVE = Side("", "all-tokens", "attentive")


def _layer_contrasts(policy: str, task: str, what: str) -> tuple[Contrast, ...]:
    every = Side(policy, ATTENTIVE.layer, ATTENTIVE.probe)
    return (
        Contrast(
            f"layers · {what}: {policy} attentive (all tokens) - {policy} embedding",
            f"If the {what} is lost only where the tower pools and projects, a probe that reads every token of the "
            f"{policy} model finds more of it than the linear probe of its embedding.",
            task,
            every,
            Side(policy),
        ),
        Contrast(
            f"layers · {what}: {policy} attentive (all tokens) - {policy} tokens (mean)",
            f"If the {what} lives in a few positions, attention over the tokens finds more of it than a linear probe "
            "of their mean.",
            task,
            every,
            Side(policy, "tokens", "linear"),
        ),
    )


# The layer question as a family of its own, Holm within it: for the salient and the descriptive model, on the
# light and on the pedestrian's side, every token read by attention against the embedding and the tokens' mean.
LAYERS_FAMILY: tuple[Contrast, ...] = tuple(
    contrast
    for policy in ("salient", "descriptive")
    for task, what in (("traffic-light", "light"), ("pedestrian-side", "pedestrian's side"))
    for contrast in _layer_contrasts(policy, task, what)
)
# The blind-pattern suite's question, one contrast per task of the suite (clipprobe.dashcam.tasks.SUITE_TASKS, one
# or more per visual pattern of clipprobe.data.patterns): does naming the attribute in the captions change what a
# linear probe of the embedding reads? Descriptive captions name every one; salient captions name only the car's
# colour, so for the colour the expected answer is no difference (equivalence within the margin), and for every
# other attribute a difference in favour of the descriptive model. Holm within the family.
PATTERN_TASKS: tuple[tuple[str, str], ...] = (
    ("car-facing", "the car's facing"),
    ("pedestrian", "the pedestrian"),
    ("traffic-light", "the light"),
    ("pedestrian-count", "the pedestrians' count"),
    ("pedestrian-side", "the pedestrian's side"),
    ("pedestrian-action", "the pedestrian's place (kerb or road)"),
    ("car-colour", "the car's colour"),
    ("lane-markings", "the lane markings"),
    ("speed-limit", "the speed limit"),
    ("car-distance", "the car's distance"),
)
PATTERNS_FAMILY: tuple[Contrast, ...] = tuple(
    Contrast(
        f"patterns · {task}: descriptive - salient",
        "Both policies name the car's colour: naming nothing more leaves it as it is (equivalent within the margin)."
        if task == "car-colour"
        else f"Captions that name {what} keep it in the embedding better than captions that never do.",
        task,
        Side("descriptive"),
        Side("salient"),
    )
    for task, what in PATTERN_TASKS
)
# Every pre-registered family by name: each is corrected for its own number of contrasts.
FAMILIES: dict[str, tuple[Contrast, ...]] = {"primary": PRIMARY, "layers": LAYERS_FAMILY, "patterns": PATTERNS_FAMILY}
