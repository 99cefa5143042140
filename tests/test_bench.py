"""bench.py compares like with like: its plain sensitivity loop gives our numbers, and a section runs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from attackers.features import sensitivity
from conftest import ROOT


def test_plain_sensitivity_loop_draws_the_same_noise_as_the_batched_path() -> None:
    import bench

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(37, 5, dtype=torch.float64)
    model = model.double()
    # Chunks of 16 rows: the last chunk is partial, so the draw order must match across chunks too.
    batched = sensitivity(model, x, n=4, eps=1e-2, batch_size=16, generator=torch.Generator().manual_seed(3))
    looped = bench.sensitivity_loop(model, x, n=4, eps=1e-2, batch_size=16,
                                    generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(looped, batched, rtol=1e-10, atol=0)
    assert looped.shape == (37, 3) and looped.min() > 0


@pytest.mark.e2e
def test_threshold_section_prints_its_table() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--quick", "--sections", "threshold"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "same threshold: yes" in out.stdout and "270,000 rows" in out.stdout


@pytest.mark.e2e
def test_device_section_runs_on_the_cpu_with_tiny_shapes() -> None:
    """The cuda section's code path (victim + shadows one at a time and at once, prune, fine-tune, features,
    every attack, projections) on 16 CPU rows and 2 models. The grid counts are read off the paper profile's
    command lines here, independently of bench.py's counter (18 + 522 + 1044 = 1,584 before WeMem's grid)."""
    out = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--quick", "--threads", "1", "--sections", "cuda",
                          "--device", "cpu", "--bench_rows", "16", "--bench_models", "2",
                          "--bench_attack_epochs", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for what in ("victim + 1 shadows at once", "vmapped ensemble", "fine-tune epoch", "attack samia", "attack blindmi",
                 grid_counts(), "memory high-water mark | n/a"):
        assert what in out.stdout, what


@pytest.mark.e2e
def test_device_section_without_cuda_is_one_clear_error() -> None:
    if torch.cuda.is_available():
        return
    out = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--sections", "cuda"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and out.stderr.startswith("error: ")


def grid_counts() -> str:
    from launch import profiles
    lines = [c for e in profiles.PAPER for c in e.commands()]
    n = {s: sum(f" {s}.py " in f" {c} " for c in lines) for s in ("pretrain", "prune", "mia")}
    return f"{n['pretrain']} pretrain, {n['prune']} prune, {n['mia']} mia commands"
