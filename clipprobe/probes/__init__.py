"""Probes on frozen features: linear and MLP probes with their hyperparameter chosen on validation only, few-shot
sampling, the metrics every row is scored with and their bootstrap intervals, and `run_probe`: one probe on arrays
(clipprobe.runner.probe runs one on a task)."""
