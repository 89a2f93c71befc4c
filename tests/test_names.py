"""Machine-independent names: a row's name never carries its precision, so that `--precision auto` (bf16 on a CPU
with native bf16, fp32 elsewhere) prints the same names on every machine; the precision is part of the result's
identity (its own file), a column of the report, and a gate matches rows by name whatever their precision."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.results import Identity


def invoke(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args], env={"COLUMNS": "250"})


# --- the identity: its file and its key ------------------------------------------------------------------------


def test_an_identity_without_a_precision_keys_and_names_its_file_as_before():
    """Trained baselines (no features) and fp32 probes: the key and path of clipprobe before Identity had a precision
    (these hashes were computed by that version), so stored results keep answering."""
    trained = Identity("traffic-light", "cnn/from-scratch", "supervised-cnn", 3)
    assert trained.key({"code": 1}) == "33b0da7918df5e5e"
    probe = Identity("traffic-light", "mini-clip/random", "linear-probe", 0, 4, precision="fp32")
    assert probe.precision is None  # fp32 is the default: nothing sets it apart
    assert probe.key({"features": "x"}) == "a8a5380029dead76"
    assert probe.path() == Path("results/traffic-light/mini-clip-random__linear-probe__4-shot__seed0.json")


def test_another_precision_is_another_file_and_key_under_the_same_name():
    fp32 = Identity("traffic-light", "mini-clip/random", "linear-probe", 0)
    bf16 = Identity("traffic-light", "mini-clip/random", "linear-probe", 0, precision="bf16")
    assert bf16.path() == Path("results/traffic-light/mini-clip-random__linear-probe__bf16__seed0.json")
    assert (
        Identity("t", "r", "linear-probe", 1, 8, "amp_bf16").path().name
        == "r__linear-probe__8-shot__amp_bf16__seed1.json"
    )
    assert bf16.key({}) != fp32.key({}) and bf16.path() != fp32.path()


# --- acceptance: the same command on two machines --------------------------------------------------------------


@pytest.fixture
def bf16_machine():
    """Switches this test's CPU to one with AVX512-BF16 (conftest pins every test to a CPU without)."""
    import clipprobe.core.machine as machine

    with pytest.MonkeyPatch.context() as patch:

        def switch():
            patch.setattr(machine, "native_bf16", lambda: True)
            patch.setattr(machine, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))

        yield switch


def _probe(model: str, results: str):
    # --precision auto is the command line's default.
    args = ["probe", "--task", "tiny-light", "--model", model, "--pretrained", "random", "--baselines", "none"]
    result = invoke(*args, "--results", results)
    assert result.exit_code == 0, result.output
    return result


def _records(results: str) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(Path(results).glob("*/*.json"))}


def test_the_same_command_with_and_without_native_bf16_writes_the_same_names(tiny_model, tiny_tasks, bf16_machine):
    plain = _probe(tiny_model, "plain")
    bf16_machine()
    native = _probe(tiny_model, "native")
    fp32, bf16 = _records("plain"), _records("native")
    names = {record["representation"] for record in fp32.values()}
    assert names == {record["representation"] for record in bf16.values()} == {f"{tiny_model}/random"}
    # The precision is in the record (and, where it is not fp32, in the identity and the file name).
    assert list(bf16) == [f"{tiny_model}-random__linear-probe__bf16__seed0.json"]
    assert list(fp32) == [f"{tiny_model}-random__linear-probe__seed0.json"]
    (record,) = bf16.values()
    assert record["precision"] == record["features"]["precision"] == "bf16"
    (record,) = fp32.values()
    assert record["features"]["precision"] == "fp32" and "precision" not in record  # fp32: as records were before
    # The lines each run prints name the row alike; the bf16 one says its precision beside the name.
    assert f"tiny-light | {tiny_model}/random | linear-probe | bf16 | balanced accuracy" in native.output
    assert f"tiny-light | {tiny_model}/random | linear-probe | balanced accuracy" in plain.output
    # One floor, by name, gates the model's row on both machines.
    floor = f"tiny-light:{tiny_model}/random:balanced_accuracy=0"
    for results in ("plain", "native"):
        assert (
            invoke("report", "--results", results, "--out", f"{results}-report", "--fail-under", floor).exit_code == 0
        )
    table = Path("native-report/report.md").read_text()
    assert (
        "| Representation | Precision | Method |" in table and f"| {tiny_model}/random | bf16 | linear-probe |" in table
    )
    assert "Precision" not in Path("plain-report/report.md").read_text()  # all fp32: no column
    # A floor can pin a precision: the fp32 run has no bf16 row, and says which rows it has.
    pinned = invoke("report", "--results", "plain", "--fail-under", f"tiny-light:{tiny_model}/random (bf16):accuracy=0")
    assert pinned.exit_code == 2
    assert f"matches no entry. Available: tiny-light: {tiny_model}/random" in " ".join(pinned.output.split())


def test_a_reference_from_one_precision_matches_a_run_in_another_by_name(tiny_model, tiny_tasks, bf16_machine):
    """A reference made on a machine with native bf16, the gate run on one without: the model's row is matched by
    its name and compared (a regression would fail), with a note that the precision differs; it is never counted
    as one row removed and one added, and the gate never passes with it unseen."""
    _probe(tiny_model, "plain")
    bf16_machine()
    _probe(tiny_model, "native")
    assert invoke("report", "--results", "native", "--out", "reference").exit_code == 0
    result = invoke("report", "--results", "plain", "--compare", "reference/results.json")
    comparison = json.loads(Path("reports/results.json").read_text())["gate"]["comparison"]
    assert (comparison["matched"], comparison["other_precision"]) == (1, 1)
    assert (comparison["added"], comparison["removed"]) == (0, 0)
    assert "Missing" not in result.output and "Added" not in result.output
    assert (
        f"Precision differs: tiny-light | {tiny_model}/random | linear-probe | seed 0: bf16 in the reference, fp32 in "
        "this run; compared by name" in " ".join(result.output.split())
    )
    # Passed only if fp32 stays within the bf16 reference's reach; a regression of the row fails the gate.
    regressed = comparison["regressed"]
    assert result.exit_code == (1 if regressed else 0), result.output
    entries = json.loads(Path("reference/results.json").read_text())
    for entry in entries["entries"]:
        entry["balanced_accuracy"] = 1.5  # out of any run's reach
    Path("reference/results.json").write_text(json.dumps(entries))
    worse = invoke("report", "--results", "plain", "--compare", "reference/results.json")
    assert worse.exit_code == 1
    assert f"Regression: tiny-light | {tiny_model}/random | linear-probe | seed 0" in worse.stderr


def test_sensitivity_scores_in_two_precisions_are_two_files():
    from types import SimpleNamespace

    from clipprobe.dashcam.sensitivity import sensitivity_path
    from clipprobe.dashcam.world import WorldConfig

    def scored(precision):
        features = SimpleNamespace(precision=precision)
        return SimpleNamespace(representation="mini-clip/random", attributes=["weather"], seed=0, features=features)

    folder = Path("results-sensitivity")
    assert sensitivity_path(folder, scored("fp32"), WorldConfig()) == folder / "mini-clip-random__weather__seed0.json"
    assert sensitivity_path(folder, scored("bf16"), WorldConfig()).name == "mini-clip-random__weather__bf16__seed0.json"
