"""Few-shot samples, seeds, and the MLP probe: from sampling through result files to the report and the command line."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.core.errors import UsageError
from clipprobe.features.config import ExtractorConfig
from clipprobe.probes.linear import fit_probe
from clipprobe.probes.metrics import score
from clipprobe.probes.mlp import fit_mlp_probe
from clipprobe.probes.registry import get_probe, list_probes, parse_probes
from clipprobe.probes.shots import parse_shots, sample_per_class, shortfall
from clipprobe.report.build import build_report
from clipprobe.report.gate import check_floors, regressions
from clipprobe.runner import compare, probe

runner = CliRunner()
SHOTS_ERROR = "--shots expects positive integers and/or 'all' separated by commas, e.g. 1,2,4,8,16,all; got '{}'"


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "250"})


def test_parse_shots_sorts_and_checks():
    assert parse_shots("1,2,4,8,16,all") == (1, 2, 4, 8, 16, "all")
    assert parse_shots("all, 8,2,2") == (2, 8, "all")
    assert parse_shots([4, "all", 1]) == (1, 4, "all")
    for bad in ("0", "two", "", "1.5", "-1", "1,,2"):
        with pytest.raises(UsageError) as error:
            parse_shots(bad)
        assert str(error.value) == SHOTS_ERROR.format(bad)


def test_samples_are_stratified_seeded_and_nested():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 7)
    for k in (1, 2, 5):
        chosen = sample_per_class(labels, 3, k, seed=0)
        assert np.bincount(labels[chosen], minlength=3).tolist() == [k, k, k]
        assert len(set(chosen.tolist())) == 3 * k
    assert np.array_equal(sample_per_class(labels, 3, 2, seed=0), sample_per_class(labels, 3, 2, seed=0))
    assert not np.array_equal(sample_per_class(labels, 3, 2, seed=0), sample_per_class(labels, 3, 2, seed=1))
    # For one seed, the 1-shot sample lies inside the 2-shot one, which lies inside the 4-shot one.
    one, two, four = (set(sample_per_class(labels, 3, k, seed=3).tolist()) for k in (1, 2, 4))
    assert one < two < four
    assert sample_per_class(labels, 3, "all", seed=0).tolist() == list(range(len(labels)))


def test_shortfall_names_every_class_that_cannot_fill_k():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 7)
    assert shortfall(labels, ("red", "amber", "green"), 5) is None
    assert shortfall(labels, ("red", "amber", "green"), "all") is None
    assert shortfall(labels, ("red", "amber", "green"), 8) == (
        "8 per class needs 8 training examples of every class; 'amber' has 5, 'green' has 7"
    )
    assert "'blue' has 0" in shortfall(labels, ("red", "amber", "green", "blue"), 1)


def xor(n, seed):
    """Two informative coordinates whose product's sign is the class: nothing a linear probe can read."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1] > 0).astype(int)


def test_mlp_probe_reads_what_a_linear_probe_cannot():
    (tx, ty), (vx, vy), (sx, sy) = xor(600, 1), xor(200, 2), xor(400, 3)
    linear = score(fit_probe(tx, ty, vx, vy).model, sx, sy, ("a", "b")).balanced_accuracy
    mlp_fit = fit_mlp_probe(tx, ty, vx, vy)
    mlp = score(mlp_fit.model, sx, sy, ("a", "b")).balanced_accuracy
    assert linear < 0.6 < 0.85 < mlp
    assert mlp_fit.parameter == "alpha" and [p["alpha"] for p in mlp_fit.curve] == sorted(
        (p["alpha"] for p in mlp_fit.curve), reverse=True
    )  # strongest penalty first


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_probe_is_class_balanced_by_sample_weights():
    """The MLP's chosen model is MLPClassifier fitted with scikit-learn's balanced sample weights (the rule of every
    trained row), which MLPClassifier takes as `sample_weight` (it has no class_weight)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    (tx, ty), (vx, vy) = xor(300, 1), xor(100, 2)
    keep = np.flatnonzero((ty == 0) | (np.arange(len(ty)) % 4 == 0))  # class 1 kept one time in four
    tx, ty = tx[keep], ty[keep]
    fit = fit_mlp_probe(tx, ty, vx, vy, alpha_grid=(1.0,), hidden=16, max_iter=50)
    scaler, model = fit.model[0], fit.model[-1]
    z = scaler.transform(tx).astype(np.float32)
    settings = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=50, random_state=0, alpha=1.0)
    balanced = MLPClassifier(**settings).fit(z, ty, sample_weight=compute_sample_weight("balanced", ty))
    for ours, theirs in zip(model.coefs_, balanced.coefs_):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    unweighted = MLPClassifier(**settings).fit(z, ty)
    assert not np.allclose(model.coefs_[-1], unweighted.coefs_[-1], rtol=1e-3)


def test_probe_registry_lists_and_rejects():
    assert list_probes() == ["attentive", "knn", "linear", "mlp", "linear-pca:K"]
    assert get_probe("mlp").method == "mlp-probe"
    assert [p.name for p in parse_probes("mlp, linear,mlp")] == ["mlp", "linear"]
    with pytest.raises(
        UsageError, match=r"^Unknown probe 'svm'\. Available: attentive, knn, linear, mlp, linear-pca:K$"
    ):
        parse_probes("linear,svm")
    # A family member: its name and method hold its argument; two spellings of one are one probe.
    pca = get_probe("linear-pca:128")
    assert (pca.name, pca.method, pca.parameter) == ("linear-pca:128", "linear-probe-pca128", "C")
    assert [p.name for p in parse_probes("linear-pca:128,linear,linear-pca:0128")] == ["linear-pca:128", "linear"]
    for bad in ("linear-pca", "linear-pca:", "linear-pca:0", "linear-pca:half"):
        with pytest.raises(UsageError, match=r"^Probe 'linear-pca:K' needs a number of principal components K"):
            get_probe(bad)
    with pytest.raises(UsageError, match=r"^Probe 'linear' takes no argument, got 'linear:3'$"):
        get_probe("linear:3")


def test_few_shot_probe_uses_k_per_class(tiny_model, tiny_tasks, tmp_path):
    task = tiny_tasks["tiny-pedestrian"]
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    record, path = probe(task, config, results_dir=tmp_path, shots=4)
    assert path.name == "tiny-clip-random__linear-probe__4-shot__seed0.json"
    assert record.shots == 4 and record.sample.train_rows == 8 and record.data.sizes["train"] == 8
    assert record.selection.split == "validation"
    full, full_path = probe(task, config, results_dir=tmp_path)
    assert full.shots is None and full.data.sizes["train"] == 60
    assert full_path.name == "tiny-clip-random__linear-probe__seed0.json"
    assert full.key != record.key
    # Another seed draws another sample (and is its own file).
    other, other_path = probe(
        task, ExtractorConfig(model=tiny_model, pretrained="random", seed=1), results_dir=tmp_path, shots=4
    )
    assert other_path != path


def test_few_shot_selection_never_sees_test_labels(tiny_model, tiny_tasks, monkeypatch, tmp_path):
    task = tiny_tasks["tiny-pedestrian"]
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    honest, _ = probe(task, config, results_dir=tmp_path / "a", shots=2, kind="mlp")
    real_labels = type(task).labels

    def scrambled(self, split):
        y = real_labels(self, split)
        return np.random.default_rng(0).permutation(y) if split.split == "test" else y

    monkeypatch.setattr(type(task), "labels", scrambled)
    cheated, _ = probe(task, config, results_dir=tmp_path / "b", shots=2, kind="mlp")
    assert cheated.selection == honest.selection and cheated.sample == honest.sample


def test_a_k_that_a_class_cannot_fill_is_skipped_with_its_reason(tiny_model, tiny_tasks, tmp_path):
    task = tiny_tasks["tiny-light"]
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    record, path = probe(task, config, results_dir=tmp_path, shots=500)
    assert record.metrics is None and path.is_file()
    assert re.fullmatch(
        r"500 per class needs 500 training examples of every class; 'red' has \d+, 'amber' has \d+, "
        r"'green' has \d+",
        record.skipped,
    )
    assert json.loads(path.read_text())["skipped"] == record.skipped


@pytest.fixture
def seeded(tiny_model, tiny_tasks):
    """tiny-light with two seeds, the linear and MLP probes, 1-, 2-shot, 500-shot (skipped) and all; and the linear
    probe on pixels with two seeds (the MLP on 3,072 pixels would cost most of this file's time)."""
    config = ExtractorConfig(model=tiny_model, pretrained="random")
    outcomes = compare(
        "tiny-light", config, "none", results_dir=Path("results"), probes="linear,mlp", shots="1,2,500,all", seeds=2
    )
    return outcomes + compare(
        "tiny-light", ExtractorConfig(extractor="pixels"), "none", results_dir=Path("results"), shots="1,2", seeds=2
    )


@pytest.mark.slow
def test_seeds_and_shots_make_one_file_per_run_and_the_report_aggregates_them(seeded):
    names = sorted(path.name for _, path in seeded)
    # 2 seeds x 2 probes x 5 (full + 4 shots), and 2 seeds x 3 (full + 2 shots) on pixels
    assert len(names) == len(set(names)) == 20 + 6
    assert "tiny-clip-random__mlp-probe__500-shot__seed1.json" in names
    assert "pixels-32px__linear-probe__2-shot__seed1.json" in names
    assert sum(record.skipped is not None for record, _ in seeded) == 4
    # Another task with one seed: it gets no across-seeds table.
    probe("tiny-pedestrian", ExtractorConfig(extractor="pixels"), results_dir=Path("results"))

    report = build_report(Path("results"), Path("reports"))
    by_group = {
        (e["representation"], e["method"], e["shots"]): e for e in report.aggregates if e["task"] == "tiny-light"
    }
    # A linear probe on all of the same pixels is deterministic: its spread is exactly 0. The samples are not.
    assert by_group["pixels/32px", "linear-probe", None]["balanced_accuracy"]["std"] == 0.0
    assert by_group["pixels/32px", "linear-probe", None]["seeds"] == [0, 1]
    stds = [by_group["pixels/32px", "linear-probe", k]["balanced_accuracy"]["std"] for k in (1, 2)]
    assert any(std > 0 for std in stds)
    rows = [
        r
        for r in report.entries
        if (r["representation"], r["method"], r["shots"]) == ("tiny-clip/random", "mlp-probe", 2)
    ]
    values = [r["balanced_accuracy"] for r in rows]
    entry = by_group["tiny-clip/random", "mlp-probe", 2]["balanced_accuracy"]
    assert entry["mean"] == pytest.approx(np.mean(values)) and entry["std"] == pytest.approx(np.std(values, ddof=1))
    assert len(report.skipped) == 4 and {s["shots"] for s in report.skipped} == {500}

    markdown = Path("reports/report.md").read_text()
    assert "#### tiny-light: few-shot balanced accuracy" in markdown
    assert "| Representation | Method | 1-shot | 2-shot | 500-shot | all-shot |" in markdown
    line = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| tiny-clip/random | mlp-probe | ") and "skipped" in line
    )
    assert f"{entry['mean']:.3f} ± {entry['std']:.3f}" in line
    assert re.search(
        r"^- Skipped tiny-clip/random · linear-probe · 500-shot \(seed 0, 1\): 500 per class needs", markdown, re.M
    )
    assert "#### tiny-light: across seeds" in markdown and "#### tiny-pedestrian: across seeds" not in markdown
    # The main table keeps the full-data rows only, with a Seed column since there are two seeds.
    main = markdown.split("### tiny-light")[1].split("####")[0]
    assert "| Representation | Method | Seed |" in main and "shot" not in main
    assert sum(line.startswith("| ") for line in main.splitlines()) == 2 + 6

    page = Path("reports/report.html").read_text()
    assert 'alt="Few-shot curves, tiny-light"' in page and "<h3>Across seeds</h3>" in page
    assert "500-shot (seed 0, 1): 500 per class needs" in page
    saved = json.loads(Path("reports/results.json").read_text())
    assert len(saved["skipped"]) == 4 and len(saved["aggregates"]) == len(report.aggregates)


@pytest.mark.slow
def test_gates_treat_few_shot_rows_apart(seeded):
    report = build_report(Path("results"), Path("reports"))
    # A floor is for the full-data rows: a 1-shot run far below it does not trip it.
    full = [r for r in report.entries if r["shots"] is None]
    floor = min(r["balanced_accuracy"] for r in full)
    assert check_floors(report.entries, [f"tiny-light:*:balanced_accuracy={floor}"]) == []
    # Rows are matched with their shots: lowering only the 1-shot rows regresses exactly those.
    before = [dict(r) for r in report.entries]
    for row in before:
        if row["shots"] == 1:
            row["balanced_accuracy"] += 0.5
    comparison = regressions(report.entries, before, max_drop=0.02)
    assert comparison.matched == len(report.entries)
    assert {r["entry"]["shots"] for r in comparison.regressed} == {1}
    assert all(" | 1-shot | seed " in failure for failure in comparison.failures())


def test_same_seed_gives_identical_few_shot_files(tiny_model, tiny_tasks, tmp_path):
    config = ExtractorConfig(model=tiny_model, pretrained="random", seed=2)
    texts = []
    for folder in ("a", "b"):
        outcomes = compare(
            "tiny-pedestrian", config, "none", results_dir=tmp_path / folder, probes="linear,mlp", shots="1,4"
        )
        texts.append([{k: v for k, v in json.loads(path.read_text()).items() if k != "run"} for _, path in outcomes])
    assert texts[0] == texts[1]


def test_cli_probes_with_the_pca_matched_probe(tiny_model, tiny_tasks):
    args = ("probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random", "--baselines", "none")
    result = invoke(*args, "--probe", "linear,linear-pca:8")
    assert result.exit_code == 0, result.output
    assert "tiny-light | tiny-clip/random | linear-probe-pca8 | balanced accuracy" in result.output
    assert sorted(path.name for path in Path("results/tiny-light").glob("*.json")) == [
        "tiny-clip-random__linear-probe-pca8__seed0.json",
        "tiny-clip-random__linear-probe__seed0.json",
    ]
    listing = invoke("probes")
    assert listing.exit_code == 0 and "\nlinear-pca:K: The linear probe on the first K principal" in listing.output


def test_cli_checks_probe_shots_and_seeds_before_any_work(tiny_model, tiny_tasks):
    args = ("probe", "--task", "tiny-light", "--model", tiny_model, "--pretrained", "random", "--baselines", "none")
    for extra, message in [
        (("--shots", "1,x"), "Error: " + SHOTS_ERROR.format("1,x")),
        (("--probe", "svm"), "Error: Unknown probe 'svm'. Available: attentive, knn, linear, mlp, linear-pca:K"),
        (
            ("--probe", "linear-pca:x"),
            "Error: Probe 'linear-pca:K' needs a number of principal components K, a whole number of at least 1 "
            "(e.g. linear-pca:128); got 'linear-pca:x'",
        ),
        (("--seeds", "0"), "Error: --seeds must be at least 1, got 0"),
    ]:
        result = invoke(*args, *extra)
        assert result.exit_code == 2, result.output
        assert [line for line in result.output.splitlines() if line.strip()] == [message]
    assert not Path("results").exists()


def test_cli_runs_few_shot_seeds_and_reports_them(tiny_model, tiny_tasks):
    args = (
        "probe",
        "--task",
        "tiny-light",
        "--model",
        tiny_model,
        "--pretrained",
        "random",
        "--baselines",
        "none",
        "--probe",
        "linear,mlp",
        "--shots",
        "2,500",
        "--seeds",
        "2",
    )
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.search(
        r"^tiny-light \| tiny-clip/random \| mlp-probe \| 2-shot \| seed 1 \| balanced accuracy \d\.\d{3} "
        r"\[\d\.\d{3}, \d\.\d{3}\] \| accuracy \d\.\d{3} \| alpha \S+ -> results/",
        result.output,
        re.M,
    )
    assert sum(line.startswith("Skipped: tiny-light | tiny-clip/random | ") for line in lines) == 4
    assert len(list(Path("results/tiny-light").glob("*.json"))) == 12
    report = invoke("report")
    assert report.exit_code == 0, report.output
    assert "tiny-light: few-shot balanced accuracy" in report.output and "tiny-light: across seeds" in report.output
    listing = invoke("probes")
    assert listing.exit_code == 0 and listing.output.startswith("linear (default): Logistic regression")
