"""The layout's layers, read from the source (every import statement, function-level ones included):

    step scripts (the root's *.py with a main)  ->  experiment/ (and launch/, the report's and bench's packages)
    ->  the science (models, datasets, pruner, attackers/, defenses/, nas/)  ->  core/

No import runs up a layer, and a step script imports no other step script (docs/design.md, "Layers").
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"pretrain", "prune", "mia", "refs", "memscore", "nas_privacy", "report", "grid", "bench"}
ARTIFACT_MODULES = {"models", "datasets", "pruner"}  # the artifact's own module names, kept at the root
SCIENCE = ARTIFACT_MODULES | {"attackers", "defenses", "nas", "compression"}
CORE = {"core"}
EXPERIMENT = {"experiment"}
# Packages that serve one step each (grid.py's launchers, report.py's tables and figures, bench.py's sections)
STEP_PACKAGES = {"launch", "reporting", "benchmarks"}
FIRST_PARTY = STEPS | SCIENCE | CORE | EXPERIMENT | STEP_PACKAGES


def top_level(name: str) -> str:
    return name.split(".")[0]


def imports_of(path: Path) -> set[str]:
    """First-party top-level names a module imports (absolute imports; `from . import` stays in its package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {top_level(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(top_level(node.module))
    return found & FIRST_PARTY


def layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    head = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    if head in STEPS:
        return "step"
    if head in STEP_PACKAGES or head in EXPERIMENT:
        return "experiment"
    if head in SCIENCE:
        return "science"
    if head in CORE:
        return "core"
    raise AssertionError(f"{rel}: a module outside every layer (add it to a package)")


# What each layer may import (its own and the layers below it).
ALLOWED = {"core": CORE, "science": CORE | SCIENCE, "experiment": CORE | SCIENCE | EXPERIMENT | STEP_PACKAGES,
           "step": FIRST_PARTY - STEPS}
SOURCES = sorted(p for p in ROOT.rglob("*.py") if not p.relative_to(ROOT).parts[0].startswith((".", "tests")))


def test_the_root_holds_only_steps_and_the_artifacts_modules():
    assert {p.stem for p in ROOT.glob("*.py")} == STEPS | ARTIFACT_MODULES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_up_a_layer(path: Path):
    layer = layer_of(path)
    upward = imports_of(path) - ALLOWED[layer]
    if layer == "step":
        upward |= imports_of(path) & (STEPS - {path.stem})
    assert not upward, f"{path.relative_to(ROOT)} ({layer}) imports {sorted(upward)}"


def test_the_checker_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The rule catches what it is for: a core module importing the experiment layer, a step importing a step."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "bad.py").write_text("def f():\n    from experiment import open_experiment\n")
    (tmp_path / "mia.py").write_text("import memscore\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert imports_of(tmp_path / "core" / "bad.py") - ALLOWED[layer_of(tmp_path / "core" / "bad.py")] == {"experiment"}
    assert imports_of(tmp_path / "mia.py") & (STEPS - {"mia"}) == {"memscore"}
