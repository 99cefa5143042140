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
    # row 3: in every model, row 4: in none: no estimate               -> NaN (before: 0, "not memorised")
    got = memscores.memscore_estimate(in_mask, correct)
    assert got[:3].tolist() == [0.5, 0.0, 1.0] and np.isnan(got[3:]).all()
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
    assert np.nanmean(score[bad]) > 0.7 and np.nanmean(score[~bad]) < 0.4  # NaN: in all 8 subsets or none
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


def _memscore(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of `python memscore.py cpu CONFIG ARGV` in this process."""
    import sys

    from experiment.cli import run_main
    monkeypatch.setattr(sys, "argv", ["memscore.py", "cpu", "config/synthetic_purchase_columnfc.json", "--quiet",
                                      "--threads", "1", *argv])
    try:
        run_main(memscore.main)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("flags,needle", [
    (("--models", "100000000"), "bad value for 'memscore.models' (allowed: an integer > 1 and <= 100000)"),
    (("--models", "1"), "bad value for 'memscore.models'"),
    (("--fraction", "1.5"), "bad value for 'memscore.fraction'"),
    (("--fraction", "nan"), "bad value for 'memscore.fraction'"),
    (("--memscore_epochs", "-1"), "bad value for 'memscore.epochs'"),
    (("--fraction", "0.0001"), "memscore.fraction 0.0001 of the 6000 candidate rows gives subsets of 1 rows"),
    (("--threads", "-1"), "argument --threads: must be an integer between 1 and 4,096, got -1"),
])
def test_bad_settings_are_one_error_line_before_work(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture, flags, needle) -> None:
    # Before: --models 1e8 (the key is bounded, the flag was not) and --fraction 0.0001 (0-row subsets) ran.
    code, err = _memscore(capsys, monkeypatch, *flags)
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not (in_tmp / "result/synthetic_purchase_columnfc/memscore").exists()


def test_an_import_never_replaces_computed_scores_without_overwrite(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    import datasets
    folder = in_tmp / "result/synthetic_purchase_columnfc/memscore"
    assert _memscore(capsys, monkeypatch, "--models", "2", "--memscore_epochs", "1")[0] == 0
    computed = (folder / "scores.npz").read_bytes()
    csv = in_tmp / "wemem.csv"
    memscores.write_wemem_csv(csv, np.linspace(0, 1, datasets.SYNTH_N))
    # Before: the import silently replaced the computed scores (and every WeMem model was then remade).
    code, err = _memscore(capsys, monkeypatch, "--memscore_csv", str(csv))
    assert code == 2 and len(err) == 1 and "holds mem-scores computed from K=2 models" in err[0], err
    assert "--overwrite" in err[0] and (folder / "scores.npz").read_bytes() == computed
    assert _memscore(capsys, monkeypatch, "--memscore_csv", str(csv), "--overwrite")[0] == 0
    imported = (folder / "scores.npz").read_bytes()
    assert imported != computed
    assert _memscore(capsys, monkeypatch, "--memscore_csv", str(csv))[0] == 0       # the same file: up to date
    assert (folder / "scores.npz").read_bytes() == imported
    code, err = _memscore(capsys, monkeypatch, "--models", "2", "--memscore_epochs", "1")
    assert code == 2 and "holds mem-scores imported from a CSV" in err[0], err
    assert (folder / "scores.npz").read_bytes() == imported


def test_rows_without_an_estimate_stay_marked_through_the_table_and_the_csv(tmp_path: Path) -> None:
    raw = np.array([0.5, np.nan, -0.5, 0.0, np.nan])
    record = {"version": 1, "kind": "memscore", "settings": {}, "split": None, "model_id": "x", "parents": {}}
    score = memscores.save_scores(tmp_path, np.array([3, 4, 0, 1, 2]), raw, 6, record)
    np.testing.assert_array_equal(score, [1.0, np.nan, 0.0, 0.5, np.nan])
    assert (tmp_path / "memscore.csv").read_text().splitlines()[2] == "1,"    # WeMem's CSV: an empty field
    np.testing.assert_array_equal(memscores.read_wemem_csv(tmp_path / "memscore.csv", 5), score)
    np.testing.assert_array_equal(memscores.load_scores(tmp_path, np.array([4, 3, 0])), [np.nan, 1.0, 0.0])


@pytest.mark.parametrize("arrays,needle", [
    (dict(index=np.arange(4), score=np.full(4, 0.5), per_pool=np.full(5, 0.5)), "made for a pool of 5 rows"),
    (dict(index=np.arange(6), score=np.full(5, 0.5), per_pool=np.full(6, 0.5)), "not one float per indexed row"),
    (dict(index=np.arange(6), score=np.full(6, 3.0), per_pool=np.full(6, 0.5)), "scores outside [0, 1]"),
    (dict(index=np.arange(6), score=np.array(["a"] * 6), per_pool=np.full(6, 0.5)), "not one float per"),
    (dict(index=np.array([0, 0, 1, 2, 3, 9]), score=np.full(6, 0.5), per_pool=np.full(6, 0.5)), "repeats rows"),
    (dict(index=np.full(6, 0.5), score=np.full(6, 0.5), per_pool=np.full(6, 0.5)), "no list of integer rows"),
])
def test_a_score_table_of_the_wrong_length_type_or_range_is_one_line(tmp_path: Path, arrays, needle) -> None:
    # Before: a table for another pool raised IndexError; a score of 3 or text went into the windows.
    np.savez(tmp_path / "scores.npz", **arrays)
    with pytest.raises(UserError, match="mem-scores .* are malformed") as e:
        memscores.load_scores(tmp_path, np.array([0, 1, 2]), n_pool=6)
    assert needle in str(e.value)


@pytest.mark.parametrize("text,what", [(",0\n0,0.5\n1,1.5\n", "outside [0, 1]"), (",0\n0,0.5\n1,inf\n", "outside"),
                                       (",0,1\n0,0.5,1\n1,0.5,1\n", "3 columns"),
                                       (",0\n0.5,0.5\n1.5,0.5\n", "numbered 0..1"), (",0\n0,\n1,\n", "no score")])
def test_a_csv_out_of_range_or_of_another_shape_is_refused(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match="mem-score CSV") as e:
        memscores.read_wemem_csv(path, 2)
    assert what in str(e.value)
