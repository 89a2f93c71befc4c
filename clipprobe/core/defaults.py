"""Defaults that the command line and the library share, in one light module (no heavy imports: the CLI reads it).

A default named here is never restated elsewhere; both the library's functions and the CLI's options take it
from this module."""

from __future__ import annotations

from pathlib import Path

# Where result records go (one folder per task), and where reports are written.
RESULTS_DIR = Path("results")
REPORTS_DIR = Path("reports")
# Where sensitivity scores go: apart from results/, whose task folders hold only result records.
SENSITIVITY_DIR = Path("results-sensitivity")
# Experiment records (headline tables across tasks) live in this folder under the results folder.
EXPERIMENTS_FOLDER = "experiments"
# The precision the library's ExtractorConfig uses unless told otherwise: float32, the same on every machine.
PRECISION = "fp32"
# The image geometry of every row that has no --resize and no preprocessing of its own (pixels, the trained
# baselines): the crop that open_clip's weights usually declare, so that a default run compares rows that saw the
# same pixels (clipprobe.features.geometry).
GEOMETRY = "crop"
# The layer of every token of an image tower, position by position: what the attentive probe reads
# (clipprobe.features.layers, clipprobe.probes.attentive).
ALL_TOKENS = "all-tokens"
# Every precision an image tower can run in (clipprobe.features.precision.PRECISIONS says what each is); a row name
# never carries one, a result's identity and the report's Precision column do.
PRECISION_NAMES = ("fp32", "bf16", "fp16", "amp", "amp_bf16")
# `auto`: bf16 where the device computes it natively and bf16 has been checked against fp32 for the model;
# fp32 elsewhere (clipprobe.jobs.precision). Resolved once, in the run plan, before anything is keyed or named.
AUTO = "auto"
# What the command line offers by default.
CLI_PRECISION = AUTO
