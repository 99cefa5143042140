"""memscore.py: Feldman & Zhang's estimator against a hand computation, recovery of planted mislabelled points,
resume per model, WeMem's CSV format both ways, and the one-line errors of a bad CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import memscore
from core.errors import UserError
from core.training import TrainConfig
from defenses import memscores
from tests.conftest import run_script


def test_estimator_equals_hand_computation() -> None:
    in_mask = np.array([[1, 0, 1, 1, 0], [1, 1, 0, 1, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 0]], dtype=bool)
    correct = np.array([[1, 1, 1, 0, 1], [1, 0, 0, 1, 1], [0, 1, 1, 1, 0], [1, 0, 1, 1, 1]], dtype=bool)
    # row 0: in {0,1} -> 1, 1 = 1.0; out {2,3} -> 0, 1 = 0.5          -> 0.5
    # row 1: in {1,2} -> 0, 1 = 0.5; out {0,3} -> 1, 0 = 0.5          -> 0.0
    # row 2: in {0,2,3} -> 1, 1, 1 = 1.0; out {1} -> 0                -> 1.0
    # row 3: in every model, row 4: in none: no estimate               -> 0.0
    assert memscores.memscore_estimate(in_mask, correct).tolist() == [0.5, 0.0, 1.0, 0.0, 0.0]
    assert memscores.minmax(np.array([0.5, 0.0, 1.0, -0.5])).tolist() == [2 / 3, 1 / 3, 1.0, 0.0]
    assert memscores.minmax(np.array([0.3, 0.3])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        memscores.memscore_estimate(in_mask, correct[:, :3])


def test_subset_masks_fraction_and_seed() -> None:
    m = memscores.subset_masks(50, 6, 0.7, seed=1)
    assert m.shape == (6, 50) and set(m.sum(1)) == {35}
    assert np.array_equal(m, memscores.subset_masks(50, 6, 0.7, seed=1))
    assert not np.array_equal(m, memscores.subset_masks(50, 6, 0.7, seed=2))


def planted(n: int = 240, flipped: int = 16) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """4 well-separated Gaussian classes; `flipped` rows get another class's label (the memorised subset)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 4
    centers = 4 * torch.eye(4, 8)
    x = centers[y] + 0.7 * torch.randn(n, 8, generator=g)
    bad = torch.randperm(n, generator=g)[:flipped]
    y = y.clone()
    y[bad] = (y[bad] + 1 + torch.randint(0, 3, (flipped,), generator=g)) % 4
    mask = np.zeros(n, dtype=bool)
    mask[bad.numpy()] = True
    return x, y, mask


def test_recovers_planted_memorised_subset(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    x, y, bad = planted()
    cfg = TrainConfig(epochs=40, batch_size=32, early_stop=40, lr=1e-2, weight_decay=0.0, progress=False)

    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 4))
    masks, correct, raw = memscores.compute_scores(make, x, y, models=8, fraction=0.5, cfg=cfg, seed=0,
                                                  folder=tmp_path, progress=False)
    score = memscores.minmax(raw)
    assert score[bad].mean() > 0.7 and score[~bad].mean() < 0.4
    top = np.argsort(-score)[:bad.sum()]
    assert bad[top].mean() >= 0.75  # the highest scores are mostly the mislabelled rows
    # resume: every model's correctness was saved; a second call trains nothing and gives the same scores
    calls = []
    real = memscores.model_correctness
    memscores.model_correctness = lambda *a, **k: calls.append(1) or real(*a, **k)  # type: ignore[assignment]
    try:
        (tmp_path / "model_3.npz").unlink()
        again = memscores.compute_scores(make, x, y, models=8, fraction=0.5, cfg=cfg, seed=0, folder=tmp_path,
                                        progress=False)
    finally:
        memscores.model_correctness = real  # type: ignore[assignment]
    assert len(calls) == 1  # only the missing model was retrained
    assert np.array_equal(again[0], masks)
    assert np.array_equal(np.delete(again[1], 3, 0), np.delete(correct, 3, 0))


def test_wemem_csv_round_trip_and_format(tmp_path: Path) -> None:
    path = tmp_path / "memscore_cifar10_resnet18.csv"
    scores = np.array([0.25, 1.0, 0.0, 0.123456789])
    memscores.write_wemem_csv(path, scores)
    lines = path.read_text().splitlines()
    assert lines[0] == ",0" and lines[1] == "0,0.25" and lines[2] == "1,1.0" and len(lines) == 5
    assert np.array_equal(memscores.read_wemem_csv(path, 4), scores)
    # a file written by hand the way WeMem's pandas dump looks; WeMem reads np.array(pd.read_csv(f))[idx][1]
    path.write_text(",0\n0,0.5\n1,0.75\n2,0.0\n")
    assert memscores.read_wemem_csv(path, 3).tolist() == [0.5, 0.75, 0.0]
    import pandas as pd
    assert np.array(pd.read_csv(path))[1][1] == 0.75


@pytest.mark.parametrize("text,what", [(",0\n0,0.5\n1,0.75\n", "has 2 rows"), (",0\n0,0.5\n1,abc\n2,1\n", "malformed"),
                                       ("", "malformed"), (",0\n0,0.5\n5,0.7\n2,1\n", "malformed")])
def test_bad_csv_is_a_user_error(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=what):
        memscores.read_wemem_csv(path, 3)


@pytest.mark.e2e
def test_cli_imports_csv_and_bad_csv_is_one_error_line(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import datasets
    config = "config/synthetic_purchase_columnfc.json"
    n = datasets.SYNTH_N
    good = in_tmp / "good.csv"
    memscores.write_wemem_csv(good, np.linspace(0, 1, n))
    monkeypatch.setattr(sys, "argv", ["memscore.py", "cpu", config, "--memscore_csv", str(good), "--quiet"])
    memscore.main()  # in-process: one subprocess (below) is enough to check the exit path
    rows = np.arange(10, 20)
    assert np.allclose(memscores.load_scores(in_tmp / "result/synthetic_purchase_columnfc/memscore", rows),
                       np.linspace(0, 1, n)[rows])
    bad = in_tmp / "bad.csv"
    memscores.write_wemem_csv(bad, np.linspace(0, 1, n - 1))
    done = run_script("memscore.py", "cpu", config, "--memscore_csv", str(bad), cwd=in_tmp, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: mem-score CSV")
