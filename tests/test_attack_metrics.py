"""attackers/metrics.py: hand-computed cases and scikit-learn as the oracle (all metrics in percent)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from attackers.metrics import (accuracy, attack_metrics, balanced_accuracy, paper_accuracy, roc_auc,
                               tpr_at_fpr)


def test_accuracies_hand_computed() -> None:
    member, decisions = np.array([1, 1, 1, 0]), np.array([1, 0, 1, 0])
    assert accuracy(member, decisions) == pytest.approx(75.0)
    assert balanced_accuracy(member, decisions) == pytest.approx(50 * (2 / 3 + 1))
    assert paper_accuracy(member, decisions, balanced=True) == pytest.approx(50 * (2 / 3 + 1))
    assert paper_accuracy(member, decisions, balanced=False) == pytest.approx(75.0)


def test_roc_auc_hand_computed_with_ties() -> None:
    # pairs (member, non-member): (.9,.6) win, (.9,.1) win, (.4,.6) loss, (.4,.1) win -> 3/4
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1])) == pytest.approx(75.0)
    # (.5 vs .5) counts one half, (.2 vs .5) loses -> 0.5 / 2
    assert roc_auc(np.array([1, 1, 0]), np.array([0.5, 0.2, 0.5])) == pytest.approx(25.0)
    assert roc_auc(np.array([1, 0]), np.array([3.0, 3.0])) == pytest.approx(50.0)
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))


@pytest.mark.parametrize("seed", range(20))
def test_roc_auc_and_tpr_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    member = rng.integers(0, 2, n)
    member[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + member * rng.random(), int(rng.integers(0, 3)))  # many ties
    assert roc_auc(member, scores) == pytest.approx(100 * roc_auc_score(member, scores), abs=1e-9)
    fpr, tpr, _ = roc_curve(member, scores, drop_intermediate=False)
    for bound in (0.0, 0.01, 0.1, 0.37):
        expected = 100 * tpr[fpr <= bound].max()
        assert tpr_at_fpr(member, scores, bound) == pytest.approx(expected, abs=1e-9)


def test_tpr_at_fpr_hand_computed() -> None:
    member = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.85, 0.2, 0.1, 0.05])
    # descending: .9 (TP) | .85 (FP, fpr .25) | .8 (TP) | .3 (TP) | ...
    assert tpr_at_fpr(member, scores, 0.0) == pytest.approx(100 / 3)
    assert tpr_at_fpr(member, scores, 0.2) == pytest.approx(100 / 3)
    assert tpr_at_fpr(member, scores, 0.25) == pytest.approx(100.0)


def test_tpr_at_fpr_tied_block_is_taken_whole() -> None:
    # a member and a non-member share the top score: no threshold separates them
    member, scores = np.array([1, 0, 1, 0]), np.array([1.0, 1.0, 0.5, 0.1])
    assert tpr_at_fpr(member, scores, 0.4) == pytest.approx(0.0)
    assert tpr_at_fpr(member, scores, 0.5) == pytest.approx(100.0)


def test_attack_metrics_dict() -> None:
    member = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.2, 0.4, 0.1, 0.0])
    out = attack_metrics(member, scores, (scores >= 0.3).astype(int))
    assert set(out) == {"acc", "balanced_acc", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "n_members",
                        "n_nonmembers"}
    assert out["acc"] == pytest.approx(60.0)  # correct: .9, .1, .0
    assert out["balanced_acc"] == pytest.approx(50 * (1 / 2 + 2 / 3))
    assert out["auc"] == pytest.approx(100 * 5 / 6)  # .9 beats all 3; .2 beats .1 and .0
    assert out["tpr_at_1pct_fpr"] == pytest.approx(50.0)
    assert (out["n_members"], out["n_nonmembers"]) == (2, 3)
