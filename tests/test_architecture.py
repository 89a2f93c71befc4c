"""The package's shape, checked from the source: no import cycles (imports inside functions count), layers that
import only downwards, the library apart from the dashcam application, a CLI reference that matches --help, and
module paths named in prose (docstrings, comments, docs) that exist."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "clipprobe"
# The library's layers, bottom up: a module may import its own layer and those below, never one above.
LAYERS = [
    ("clipprobe.core",),
    ("clipprobe.stats",),
    ("clipprobe.data",),
    ("clipprobe.features",),
    ("clipprobe.results",),
    ("clipprobe.probes",),
    ("clipprobe.baselines",),
    ("clipprobe.jobs",),
    ("clipprobe.runner", "clipprobe.report"),
    ("clipprobe.dashcam",),
    ("clipprobe.catalog",),
    ("clipprobe.cli", "clipprobe.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every clipprobe module `name` imports, at module level or inside functions; `from pkg import mod` counts as an
    import of pkg.mod when that is a module. The top-level package's lazy exports (`_EXPORTS`) count too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("clipprobe")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("clipprobe"):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            found |= {f"clipprobe.{value}" for value in ast.literal_eval(node.value).values()}
    return {module for module in found if module != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_the_graph_sees_imports_inside_functions(graph):
    """A guard on the checker itself: the CLI imports the runner only inside its commands."""
    assert "clipprobe.runner" in graph["clipprobe.cli.tool"]
    assert "clipprobe.catalog" in graph["clipprobe.cli.app"]


def test_no_import_cycles(graph):
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def layer_of(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if m != "clipprobe" and layer_of(m) is None] == []


def test_layers_import_only_downwards(graph):
    """core imports nothing above it, the library never imports the dashcam application, the catalog or the CLI."""
    upward = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module != "clipprobe"
        for target in targets
        if target != "clipprobe" and layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_core_imports_nothing_of_clipprobe_above_it(graph):
    assert {
        t for m, ts in graph.items() if m.startswith("clipprobe.core") for t in ts if not t.startswith("clipprobe.core")
    } == set()


def _imports_from(graph, module_prefix: str, target_prefixes: tuple[str, ...]) -> set[str]:
    return {
        f"{m} -> {t}"
        for m, ts in graph.items()
        if m == module_prefix or m.startswith(module_prefix + ".")
        for t in ts
        if any(t == p or t.startswith(p + ".") for p in target_prefixes)
    }


def test_computations_do_no_extraction_and_records_know_no_data(graph):
    """Probes are computations on arrays: they import nothing from features (no extraction, no cache); result records
    know no data source (the jobs describe the data); the report reads records, never features or baselines."""
    assert _imports_from(graph, "clipprobe.probes", ("clipprobe.features",)) == set()
    assert _imports_from(graph, "clipprobe.results", ("clipprobe.data",)) == set()
    assert _imports_from(graph, "clipprobe.report", ("clipprobe.features", "clipprobe.baselines")) == set()


def test_only_the_runner_claims_results():
    """A result file's lock is taken in one place, the runner's run_job: resolve -> key -> claim -> compute -> record.
    (The feature cache and the pretrained weights lock their own entries: clipprobe.features.extract and
    clipprobe.dashcam.pretrain.)"""
    users = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            called = isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
            imported = isinstance(node, ast.ImportFrom) and any(alias.name == "claim" for alias in node.names)
            if called == "claim" or imported:
                users.append(name)
    assert sorted(set(users)) == ["clipprobe.runner"]


def test_no_guessing_a_baseline_or_a_source_by_probing_its_attributes():
    """A registered thing declares what it is: nothing reaches for a baseline's or a data source's members with
    getattr/hasattr."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr") and node.args:
                target = ast.unparse(node.args[0])
                if target.split(".")[-1] in ("baseline", "source", "task.source"):
                    found.append(f"{name}: {ast.unparse(node)}")
    assert found == []


def test_help_does_not_load_the_library():
    """`clipprobe --help` and each command's help import neither torch nor open_clip nor datasets."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom clipprobe.cli import app\n"
        "for args in (['--help'], ['probe', '--help'], ['extract', '--help'], ['report', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'datasets', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_tasks_answers_from_metadata(tmp_path):
    """`clipprobe tasks` on a cold cache renders nothing and loads no torch: it answers in a moment."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom clipprobe.cli import app\n"
        "result = CliRunner().invoke(app, ['tasks'])\nassert result.exit_code == 0, result.output\n"
        "assert '≤ 1000' in result.output and 'rendered on first use' in result.output, result.output\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'matplotlib') if m in sys.modules))"
    )
    env = {**os.environ, "CLIPPROBE_HOME": str(tmp_path), "COLUMNS": "200"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    assert not (tmp_path / "worlds").exists()


def test_the_cli_reference_matches_the_help():
    """docs/cli.md is generated from --help (`make docs`); it must not drift from the code."""
    generated = subprocess.run(
        [sys.executable, "scripts/cli_reference.py"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert (ROOT / "docs" / "cli.md").read_text() == generated, "docs/cli.md is out of date: run `make docs`"


def test_every_command_is_in_the_readme_or_the_docs():
    import typer

    from clipprobe.cli import app

    text = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"
    )
    command = typer.main.get_command(app)
    names = [
        " ".join(("clipprobe", group, name)).replace("  ", " ")
        for group, sub in [
            ("", command),
            *((g, c) for g, c in command.commands.items() if getattr(c, "commands", None)),
        ]
        for name, c in sub.commands.items()
        if not getattr(c, "commands", None)
    ]
    assert [name for name in names if name not in text] == []


def test_readme_is_a_users_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 210


def test_the_results_pages_are_generated_from_the_last_experiment():
    """README's excerpts, docs/results.md and docs/curation.md's primary contrasts and simulation table are rendered
    from docs/results.json (and clipprobe.stats.simulate), which `make experiment` writes."""
    result = subprocess.run(
        [sys.executable, "scripts/results_page.py", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_the_bench_table_in_the_docs_is_written_by_the_summary(tmp_path, monkeypatch):
    """docs/performance.md holds the block that `make bench` rewrites, and the summary writes this run's ratios
    (each with its target and verdict, the rounds of an extraction) into it, leaving the rest of the page."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import summary

    page = (ROOT / "docs" / "performance.md").read_text()
    assert page.count(summary.DOCS_START) == 1 and page.count(summary.DOCS_END) == 1
    results = tmp_path / "results"
    results.mkdir()
    record = {
        "model": "ViT-B-32",
        "precision": "bf16",
        "precision_requested": "auto",
        "batch_size": 64,
        "rounds": [0.91, 0.87, 0.93],
        "ceiling_ratio": 0.91,
        "anchor_ratio": 2.05,
        "targets": {"ceiling": 0.9, "anchor": 1.4},
    }
    (results / "extract_speed.json").write_text(json.dumps(record))
    (results / "probe_scale.json").write_text(
        json.dumps({"shape": "100000x768x100", "seconds": 130.0, "target_s": 120, "within_target": False})
    )
    copy = tmp_path / "performance.md"
    copy.write_text("before\n" + summary.DOCS_START + "\nold\n" + summary.DOCS_END + "\nafter\n")
    summary.write_docs(copy, results)
    text = copy.read_text()
    assert text.startswith("before\n" + summary.DOCS_START) and text.endswith(summary.DOCS_END + "\nafter\n")
    assert "old" not in text
    assert (
        "| ViT-B-32 extraction (bf16 (auto) batch 64) / ceiling (median of rounds 0.91, 0.87, 0.93) | 0.91 | >= 0.9 | ok |"
        in text
    )
    assert "| probe sweep 100000x768x100, seconds | 130.0 s | < 120 s | **below** |" in text


def test_the_token_storage_rule_and_its_block_in_the_docs(tmp_path, monkeypatch):
    """The rule declared for caching every token in float16 (benchmarks/token_storage.py) fails on an overflow or
    when float16 moves the attentive probe's predictions more than a seed does; its block is rewritten in place."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import token_storage

    assert token_storage.rule(7.5, [0.9, 0.8], [0.7, 0.8]) == {"overflow_ok": True, "agreement_ok": True}
    assert token_storage.rule(7.5, [0.70, 0.71], [0.73, 0.72])["agreement_ok"] is False
    assert token_storage.rule(70000.0, [1.0], [0.5])["overflow_ok"] is False
    page = (ROOT / "docs" / "performance.md").read_text()
    assert page.count(token_storage.DOCS_START) == 1 and page.count(token_storage.DOCS_END) == 1
    case = {
        "task": "traffic-light",
        "weights": "mini-clip/dashcam-salient",
        "largest_abs": 7.48,
        "zero_share": 0.5,
        "relative_error": {"median": 1.7e-4, "p99": 4.1e-4},
        "agreement_same_seed": [0.70, 0.71],
        "agreement_across_seeds": [0.73, 0.72],
        **token_storage.rule(7.48, [0.70, 0.71], [0.73, 0.72]),
    }
    size = {
        "model": "ViT-B-32",
        "positions": 49,
        "width": 768,
        "bytes_per_image": {"float32": 150528, "float16": 75264},
    }
    record = {"machine": "2 cores", "sizes": [size], "cases": [case], "adopt_float16": False}
    copy = tmp_path / "performance.md"
    copy.write_text("before\n" + token_storage.DOCS_START + "\nold\n" + token_storage.DOCS_END + "\nafter\n")
    token_storage.write_docs(copy, record)
    text = copy.read_text()
    assert text.startswith("before\n" + token_storage.DOCS_START) and text.endswith("\nafter\n") and "old" not in text
    assert "| ViT-B-32 | 49 x 768 | 150.5 kB | 15.1 GB | 7.5 GB |" in text
    assert "| 0.705 | 0.725 | fails |" in text and "**float32 (a case fails the rule)**" in text


# A dotted clipprobe path as prose names one (`clipprobe.features.chunks`, `clipprobe.dashcam.pairs.COUNTERFACTUALS`);
# a path that ends a line with a dot may continue on the next (`clipprobe.features.extractors.` / `resolve_precision`)
# or end a sentence there: either reading may resolve.
MODULE_PATH = re.compile(r"(?<![\w./-])clipprobe(?:\.[A-Za-z_]\w*)+(?:\.\n[\s#`]*[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?")


def _defined_names(body: list[ast.stmt]) -> dict[str, list[ast.stmt] | None]:
    """The names a module or class body defines -> a class's body (to look further in), or None."""
    names: dict[str, list[ast.stmt] | None] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = None
        elif isinstance(node, ast.ClassDef):
            names[node.name] = node.body
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id: None for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if any(getattr(t, "id", None) == "_EXPORTS" for t in targets):  # the package's lazy exports (PEP 562)
                names |= dict.fromkeys(ast.literal_eval(node.value))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0]: None for alias in node.names}
        elif isinstance(node, (ast.If, ast.Try)):
            names |= _defined_names(node.body)
    return names


def _resolves(dotted: str, found: dict[str, Path]) -> bool:
    """Whether `dotted` is a clipprobe module, or a name defined in one (a class's attributes included)."""
    parts = dotted.split(".")
    module = next(cut for cut in range(len(parts), 0, -1) if ".".join(parts[:cut]) in found)
    body: list[ast.stmt] | None = ast.parse(found[".".join(parts[:module])].read_text()).body
    for name in parts[module:]:
        defined = _defined_names(body or [])
        if name not in defined:
            return False
        body = defined[name]
    return True


def test_every_clipprobe_path_named_in_the_source_and_the_docs_exists():
    """A module path in a docstring, a comment, README.md or docs/*.md (`clipprobe.features.chunks`) names a module
    or a name defined in one: a moved module leaves no stale path behind."""
    found = modules()
    pages = [*sorted(PACKAGE.rglob("*.py")), *sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    stale = []
    for page in pages:
        text = page.read_text()
        for match in MODULE_PATH.finditer(text):
            dotted = re.sub(r"\.\n[\s#`]*", ".", match.group(0))
            if not _resolves(dotted, found) and not _resolves(match.group(0).partition(".\n")[0], found):
                stale.append(f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {dotted}")
    assert stale == []
