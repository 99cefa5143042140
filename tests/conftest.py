"""Shared test setup: every test runs in its own folder so result/ and log/ never leak between tests.
Imports resolve from the repository root through pyproject.toml's `pythonpath`."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Before torch is imported anywhere: sleeping (not spinning) OpenMP threads, as the step scripts set.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a fresh folder holding a copy of config/ (the scripts resolve result/ and log/ from cwd)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    for f in (ROOT / "config").glob("*.json"):
        (tmp_path / "config" / f.name).write_text(f.read_text())
    return tmp_path


def run_script(script: str, *args: str, cwd: Path, timeout: int = 600):
    """Run a step script as a user would; returns the CompletedProcess."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# Two lanes (pyproject.toml's markers): `pytest -m "not e2e"` runs the unit tests, the full suite adds the tests
# marked e2e, which start processes (step scripts, git, Ray, Slurm, worker pools). The rule is enforced: a test
# without the mark that starts a process fails, so the fast lane stays fast and the marks stay true.
@pytest.fixture(scope="session", autouse=True)
def _this_code() -> None:
    """This checkout's version and commit, asked of git once, before any unit test runs (records carry it)."""
    from core.version import code_version
    code_version()


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("e2e") is not None:
        return
    import multiprocessing.process
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it (or its file) pytest.mark.e2e")
    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
