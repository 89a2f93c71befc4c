"""clipprobe: does a frozen image-text embedding keep the information your task needs?

The pipeline, one package per stage: clipprobe.data (tasks and datasets) -> clipprobe.features (frozen features,
cached) -> clipprobe.probes and clipprobe.baselines (computations on arrays and images) -> clipprobe.jobs (one
typed job per row, declaring its kind) -> clipprobe.results (one typed record per result) -> clipprobe.report.
clipprobe.runner runs the jobs of a plan; clipprobe.dashcam is the application built on it (the procedural world
and the curation experiment); clipprobe.catalog registers everything by name.

The names below are imported on first use (PEP 562), so that `clipprobe --help` does not load torch; using any of
them loads clipprobe.catalog first, so every built-in task, model and baseline is there."""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "ClipProbeError": "core.errors",
    "RunError": "core.errors",
    "UsageError": "core.errors",
    "ExtractorConfig": "features.config",
    "FeatureCache": "features.cache",
    "extract_features": "features.extract",
    "list_extractors": "features.extractors",
    "list_models": "features.weights",
    "resolve_weights": "features.weights",
    "RunPlan": "runner",
    "run": "runner",
    "extract": "runner",
    "compare": "runner",
    "probe": "runner",
    "list_probes": "probes.registry",
    "get_probe": "probes.registry",
    "list_baselines": "baselines.registry",
    "get_baseline": "baselines.registry",
    "run_baseline": "runner",
    "zero_shot": "runner",
    "Result": "results",
    "read_results": "results",
    "build_report": "report.build",
    "Task": "data.task",
    "get_task": "data.task",
    "list_tasks": "data.task",
    "register_task": "data.task",
    "CurationExperiment": "dashcam.experiment",
    "run_curation": "dashcam.experiment",
    "PretrainConfig": "dashcam.pretrain",
    "pretrain": "dashcam.pretrain",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import_module(".catalog", __name__)
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'clipprobe' has no attribute {name!r}")
