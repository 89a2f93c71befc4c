"""clipprobe: does a frozen image-text embedding keep the information your task needs?"""

from importlib import import_module

__version__ = "0.1.0"

# Public names, imported on first use (PEP 562) so that `clipprobe --help` does not load torch.
_EXPORTS = {
    "ClipProbeError": "errors",
    "RunError": "errors",
    "UsageError": "errors",
    "ExtractorConfig": "features",
    "FeatureCache": "features",
    "extract_features": "features",
    "list_extractors": "features",
    "list_models": "models",
    "resolve_weights": "models",
    "extract": "pipeline",
    "probe": "pipeline",
    "compare": "pipeline",
    "list_probes": "probe",
    "get_probe": "probe",
    "list_baselines": "baselines",
    "get_baseline": "baselines",
    "run_baseline": "baselines",
    "CurationExperiment": "experiment",
    "run_curation": "experiment",
    "PretrainConfig": "pretrain",
    "pretrain": "pretrain",
    "build_report": "report",
    "Task": "tasks",
    "get_task": "tasks",
    "list_tasks": "tasks",
    "register_task": "tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'clipprobe' has no attribute {name!r}")
