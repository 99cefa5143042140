"""bench.py compares like with like: its plain sensitivity loop gives our numbers, and a section runs; its
sections are one registry with one numbering, its defaults are what the machine can run, and every bad flag is
one error line before any measurement."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from attackers.features import sensitivity
from conftest import ROOT
from core.errors import UserError


def bench_run(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, str(ROOT / "bench.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_plain_sensitivity_loop_draws_the_same_noise_as_the_batched_path() -> None:
    from benchmarks.sensitivity import sensitivity_loop

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(37, 5, dtype=torch.float64)
    model = model.double()
    # Chunks of 16 rows: the last chunk is partial, so the draw order must match across chunks too.
    batched = sensitivity(model, x, n=4, eps=1e-2, batch_size=16, generator=torch.Generator().manual_seed(3))
    looped = sensitivity_loop(model, x, n=4, eps=1e-2, batch_size=16, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(looped, batched, rtol=1e-10, atol=0)
    assert looped.shape == (37, 3) and looped.min() > 0


@pytest.mark.e2e
def test_threshold_section_prints_its_table_under_its_registry_number() -> None:
    from benchmarks import SECTIONS

    out = bench_run("--quick", "--sections", "threshold")
    assert out.returncode == 0, out.stderr
    assert "same threshold: yes" in out.stdout and "270,000 rows" in out.stdout
    number = SECTIONS.names().index("threshold") + 1
    assert re.findall(r"^### (\d+)\. ", out.stdout, re.M) == [str(number)] and number == 3


def test_sections_are_numbered_once_in_registry_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench
    from benchmarks import SECTIONS, plan

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    _, sections = plan(bench.parser().parse_args(["--sections", "cuda,threshold,train"]))
    get = SECTIONS.get
    assert sections == [(1, get("train")), (3, get("threshold")), (len(SECTIONS), get("cuda"))]
    assert len({s.name for s in SECTIONS}) == len(SECTIONS) == 11


@pytest.mark.parametrize("cuda", [False, True])
def test_the_default_sections_are_what_the_machine_can_run(cuda: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench
    from benchmarks import SECTIONS, plan

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    _, sections = plan(bench.parser().parse_args([]))
    names = [s.name for _, s in sections]
    assert names == [n for n in SECTIONS.names() if cuda or n != "cuda"]


@pytest.mark.parametrize("argv, says", [
    (["--sections", "cuda"], "--sections cuda: it needs a CUDA device and none is visible here"),
    (["--sections", "nope"], "unknown bench section 'nope'"),
    (["--sections", ","], "--sections names nothing"),
    (["--sections", "threshold,threshold"], "--sections names threshold twice"),
    (["--configs", "../../etc/passwd", "--sections", "train"], "no config/../../etc/passwd.json"),
    (["--configs", "digits_columnfc", "--sections", "pipeline"], "--sections pipeline has step flags for"),
    (["--configs", "digits_columnfc", "--sections", "threshold"], "--configs without a section that reads it"),
    (["--bench_rows", "100", "--sections", "threshold"], "--bench_rows without --sections cuda"),
    (["--sections", "cuda", "--device", "tpu"], "--device tpu: not a device"),
    (["--sections", "cuda", "--device", "cuda:7"], "--device cuda:7: this machine has"),
    (["--threads", "0"], "--threads: must be an integer between 1 and 4,096"),
    (["--bench_rows", "1e9"], "--bench_rows: invalid int value"),
    (["--bench_models", "nan"], "--bench_models: invalid int value"),
    (["--quick", "--quick"], "--quick given twice"),
    (["--sections", "train", "--sections", "cuda"], "--sections given twice"),
])
def test_every_bad_flag_is_refused_before_any_measurement(argv: list[str], says: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import bench
    from benchmarks import plan

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(UserError) as e:
        plan(bench.parser().parse_args(argv))
    assert says in e.value.line() and "\n" not in e.value.line()


@pytest.mark.e2e
def test_device_section_without_cuda_is_one_clear_error() -> None:
    """On every machine: CUDA_VISIBLE_DEVICES="" hides any GPU, as on a machine without one."""
    out = bench_run("--sections", "cuda", env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and out.stderr.startswith("error: --sections cuda")


@pytest.mark.e2e
def test_device_section_runs_on_the_cpu_with_tiny_shapes() -> None:
    """The cuda section's code path (victim + shadows one at a time and at once, prune, fine-tune, features,
    every attack, projections) on 16 CPU rows and 2 models. The grid counts are read off the paper profile's
    command lines here, independently of bench.py's counter (18 + 522 + 1044 = 1,584 before WeMem's grid)."""
    out = bench_run("--quick", "--threads", "1", "--sections", "cuda", "--device", "cpu", "--bench_rows", "16",
                    "--bench_models", "2", "--bench_attack_epochs", "1")
    assert out.returncode == 0, out.stderr
    for what in ("victim + 1 shadows at once", "vmapped ensemble", "fine-tune epoch", "attack samia", "attack blindmi",
                 grid_counts(), "memory high-water mark | n/a", "### 11. Device section: CPU"):
        assert what in out.stdout, what


def test_bench_names_only_files_that_exist() -> None:
    """Every `name.py` bench.py and its sections mention (docstrings, comments, help) is in the repository."""
    texts = [ROOT / "bench.py", *sorted((ROOT / "benchmarks").glob("*.py"))]
    named = {m for p in texts for m in re.findall(r"[\w/]+\.py\b", p.read_text())}
    assert "memscore.py" in named and "refs.py" in named  # the check reads what it should
    missing = [n for n in sorted(named) if not (ROOT / n).exists() and not list(ROOT.glob(f"*/{n}"))]
    assert missing == []


def grid_counts() -> str:
    from launch import profiles
    lines = [c for e in profiles.PAPER for c in e.commands()]
    n = {s: sum(f" {s}.py " in f" {c} " for c in lines) for s in ("pretrain", "prune", "mia")}
    return f"{n['pretrain']} pretrain, {n['prune']} prune, {n['mia']} mia commands"
