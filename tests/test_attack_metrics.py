"""attackers/metrics.py: hand-computed cases and scikit-learn as the oracle (all metrics in percent)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from attackers import metrics
from attackers.metrics import (
    Auc,
    TprAtFpr,
    accuracy,
    attack_metrics,
    balanced_accuracy,
    bootstrap_ci,
    bootstrap_values,
    paper_accuracy,
    resolvable,
    roc_auc,
    tpr_at_fpr,
)


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
def test_roc_auc_and_tpr_match_an_independent_count(seed: int) -> None:
    """AUC = P(member score > non-member score) + P(tie) / 2, counted over all pairs (Mann-Whitney), and
    TPR at FPR <= bound = the best threshold found by trying every score as a cut: neither uses an ROC curve."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    member = rng.integers(0, 2, n)
    member[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + member * rng.random(), int(rng.integers(0, 3)))  # many ties
    s_in, s_out = scores[member == 1], scores[member == 0]
    pairs = (s_in[:, None] > s_out[None, :]).mean() + 0.5 * (s_in[:, None] == s_out[None, :]).mean()
    assert roc_auc(member, scores) == pytest.approx(100 * pairs, abs=1e-9)
    for bound in (0.0, 0.01, 0.1, 0.37):
        best = 0.0
        for t in np.unique(scores):
            if (s_out >= t).mean() <= bound:
                best = max(best, (s_in >= t).mean())
        assert tpr_at_fpr(member, scores, bound) == pytest.approx(100 * best, abs=1e-9)


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
    assert set(out) == {"acc", "balanced_acc", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "tpr_at_0.01pct_fpr",
                        "n_members", "n_nonmembers"}
    assert out["acc"] == pytest.approx(60.0)  # correct: .9, .1, .0
    assert out["balanced_acc"] == pytest.approx(50 * (1 / 2 + 2 / 3))
    assert out["auc"] == pytest.approx(100 * 5 / 6)  # .9 beats all 3; .2 beats .1 and .0
    assert out["tpr_at_1pct_fpr"] == pytest.approx(50.0)
    assert (out["n_members"], out["n_nonmembers"]) == (2, 3)
    # 3 non-members: the top non-member (.4) alone is FPR 1/3, so every bound below 1/3 gives TPR 50 (.9 only)
    assert out["tpr_at_0.01pct_fpr"] == pytest.approx(50.0)
    assert "auc_ci_low" not in out  # no bootstrap unless asked


def test_resolvable_needs_more_than_one_over_fpr_nonmembers() -> None:
    assert not resolvable(10_000, 0.0001) and resolvable(10_001, 0.0001)
    assert not resolvable(1000, 0.001) and resolvable(1001, 0.001)  # 1/0.001 is 1000.0000000000001 in floats
    assert not resolvable(100, 0.01) and resolvable(101, 0.01)
    with pytest.raises(ValueError):
        resolvable(10, 0.0)


@pytest.mark.parametrize("metric", [Auc(), TprAtFpr(0.001), TprAtFpr(0.05), TprAtFpr(0.3)])
def test_bootstrap_batched_equals_per_resample_loop(metric) -> None:
    """The vectorised count form against calling the plain metric on each resample's drawn rows."""
    rng = np.random.default_rng(5)
    member = rng.integers(0, 2, 300).astype(bool)
    scores = np.round(rng.normal(size=300) + member, 1)  # ties across classes
    fast = bootstrap_values(member, scores, metric, 50, seed=9)
    slow = bootstrap_values(member, scores, lambda m, s: metric(m, s), 50, seed=9)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert np.ptp(fast) > 0  # the resamples really differ


def test_bootstrap_resamples_keep_class_sizes() -> None:
    member = np.r_[np.ones(3, bool), np.zeros(7, bool)]
    scores = np.arange(10.0)
    sizes = bootstrap_values(member, scores, lambda m, s: float(m.sum() * 100 + (~m).sum()), 20, seed=1)
    assert set(sizes) == {307.0}


def test_bootstrap_ci_covers_binormal_auc() -> None:
    """Scores N(d, 1) for members, N(0, 1) for non-members: AUC = Phi(d / sqrt 2). A 95 % interval should
    cover it in about 95 of 100 seeds; below 90 means the interval is too narrow (or biased)."""
    d, n, true_auc = 1.0, 150, 100 * norm.cdf(1.0 / np.sqrt(2))
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        scores = rng.normal(size=2 * n) + d * member
        low, high = bootstrap_ci(member, scores, Auc(), n_resamples=200, seed=seed)
        assert low <= roc_auc(member, scores) <= high
        covered += low <= true_auc <= high
    assert covered >= 90, covered


def test_attack_metrics_bootstrap_keys_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    member = rng.integers(0, 2, 400)
    scores = rng.normal(size=400) + 2 * member
    out = attack_metrics(member, scores, scores > 1, n_bootstrap=100, seed=3)
    assert out["auc_ci_low"] < out["auc"] < out["auc_ci_high"]
    assert out["tpr_at_0.1pct_fpr_ci_low"] <= out["tpr_at_0.1pct_fpr_ci_high"]
    again = attack_metrics(member, scores, scores > 1, n_bootstrap=100, seed=3)
    assert again == out
    assert (out["auc_ci_low"], out["auc_ci_high"]) == bootstrap_ci(member, scores, Auc(), 100, 3)


@pytest.mark.parametrize("where", ["all", "one"])
def test_nan_scores_are_refused_never_a_tpr_of_100(where: str) -> None:
    # The former Mann-Whitney route read all-NaN scores as AUC 50 % and TPR at 1 % FPR 100 %.
    member = np.r_[np.ones(50), np.zeros(50)]
    scores = np.linspace(0, 1, 100)
    if where == "all":
        scores[:] = np.nan
    else:
        scores[7] = np.nan
    for call in (lambda: metrics.attack_metrics(member, scores, member), lambda: metrics.roc_auc(member, scores),
                 lambda: metrics.tpr_at_fpr(member, scores, 0.01)):
        with pytest.raises(metrics.NonFiniteScores, match="NaN and 0 infinite scores among 100"):
            call()
    with pytest.raises(metrics.NonFiniteScores, match="0 NaN and 1 infinite"):
        metrics.attack_metrics(member, np.r_[np.inf, np.linspace(0, 1, 99)], member)

