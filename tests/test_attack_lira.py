"""attackers/lira.py and attackers/refstats.py: hand-computed LiRA scores (scipy.stats.norm as the independent
route), the statistic against a direct formula, the leaky/null bar against the loss baseline, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from attackers.lira import LiraAttack, LiraConfig, lira_offline, lira_online
from attackers.metrics import roc_auc, tpr_at_fpr
from attackers.population_loss import LossAttack, LossConfig, log_prob_from_stat, population_threshold
from attackers.refstats import lira_statistic
from core.errors import UserError
from synthetic_refs import reference_input

# Two targets, six references. Target 0: IN refs 0-2, target 1: IN refs 1, 3, 4.
STATS = np.array([[1.0, 2.0, 4.0, -1.0, 0.0, 0.5],
                  [3.0, 3.5, 5.0, 6.0, 2.0, 2.5]])
IN = np.array([[1, 1, 1, 0, 0, 0],
               [0, 1, 0, 1, 1, 0]], bool)
PHI = np.array([1.5, 4.0])
# By hand (median; population variance = sum of squared deviations from the mean / count):
#  target 0  IN {1, 2, 4}:     median 2,   mean 7/3,  SS 14/3 -> var 14/9
#            OUT {-1, 0, .5}:  median 0,   mean -1/6, SS 7/6  -> var 7/18
#  target 1  IN {3.5, 6, 2}:   median 3.5, mean 23/6, SS 49/6 -> var 49/18
#            OUT {3, 5, 2.5}:  median 3,   mean 7/2,  SS 7/2  -> var 7/6
#  fixed variance (pooled within-target): SS 14/3 + 7/6 + 49/6 + 7/2 = 35/2 over 12 values -> var 35/24;
#            offline, OUT sides only: (7/6 + 7/2) / 6 = 7/9
#  the released code's flat std over all six IN values {1, 2, 4, 3.5, 6, 2}: sum 18.5, squares 73.25,
#            SS = 73.25 - 18.5^2 / 6 = 389/24 -> var 389/144; over the six OUT values -> var 149/36
MU_IN, VAR_IN = np.array([2.0, 3.5]), np.array([14 / 9, 49 / 18])
MU_OUT, VAR_OUT = np.array([0.0, 3.0]), np.array([7 / 18, 7 / 6])


def test_online_llr_by_hand() -> None:
    expected = norm.logpdf(PHI, MU_IN, np.sqrt(VAR_IN)) - norm.logpdf(PHI, MU_OUT, np.sqrt(VAR_OUT))
    np.testing.assert_allclose(lira_online(PHI, STATS, IN), expected, rtol=1e-12)
    # sanity of the hand numbers: target 0 (1.5) sits nearer the IN median relative to spreads -> positive
    assert expected[0] > 0


def test_online_fixed_variance_by_hand() -> None:
    sd = np.sqrt(35 / 24)
    expected = norm.logpdf(PHI, MU_IN, sd) - norm.logpdf(PHI, MU_OUT, sd)
    ours = lira_online(PHI, STATS, IN, fixed_variance=True)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    # the released code's flat std (389/144) only rescales the LLR, so every ROC metric is the same
    code = norm.logpdf(PHI, MU_IN, np.sqrt(389 / 144)) - norm.logpdf(PHI, MU_OUT, np.sqrt(389 / 144))
    np.testing.assert_allclose(ours * (35 / 24) / (389 / 144), code, rtol=1e-12)


def test_offline_one_sided_by_hand() -> None:
    expected = -np.log(1 - norm.cdf(PHI, MU_OUT, np.sqrt(VAR_OUT)))
    np.testing.assert_allclose(lira_offline(PHI, STATS, IN), expected, rtol=1e-12)
    expected_fixed = -np.log(norm.sf(PHI, MU_OUT, np.sqrt(7 / 9)))
    np.testing.assert_allclose(lira_offline(PHI, STATS, IN, fixed_variance=True), expected_fixed, rtol=1e-12)
    # no membership given (offline references saw no target): target 0's three OUT values alone, same score
    np.testing.assert_allclose(lira_offline(PHI[:1], STATS[:1, 3:]), expected[:1], rtol=1e-12)


def test_offline_keeps_resolution_in_the_far_tail() -> None:
    # 12 sigma above the OUT mean: 1 - CDF is 0 in float64, its log is not (norm.logsf as the oracle)
    stats = np.array([[-1.0, 1.0, 0.0]])
    sd = np.std([-1.0, 1.0, 0.0])
    phi = np.array([12 * sd])
    assert 1 - norm.cdf(phi[0], 0, sd) == 0.0
    np.testing.assert_allclose(lira_offline(phi, stats), -norm.logsf(phi, 0, sd), rtol=1e-10)


def test_statistic_from_logits_and_probs() -> None:
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 40.0, 1.0], [-3.0, 0.0, 3.0]])
    labels = np.array([0, 1, 0])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):  # the naive formula fails where p_y rounds to 1 (row 1)
        direct = np.log(p[np.arange(3), labels]) - np.log(1 - p[np.arange(3), labels])
    phi = lira_statistic(labels, logits=logits)
    np.testing.assert_allclose(phi[[0, 2]], direct[[0, 2]], rtol=1e-12)
    # row 1: p_y = 1 - 2e-17 rounds to 1, the naive formula is inf; exact: 40 - log(e^0 + e^1)
    assert np.isinf(direct[1]) or direct[1] > 1e15
    assert phi[1] == pytest.approx(40 - np.log(1 + np.e), rel=1e-14)
    np.testing.assert_allclose(lira_statistic(labels, probs=p), phi, rtol=1e-9)
    # leading axes broadcast: (n, R, C) logits with (n, 1) labels
    stacked = lira_statistic(labels[:, None], logits=np.stack([logits, logits], axis=1))
    np.testing.assert_allclose(stacked, np.stack([phi, phi], axis=1))


def _tpr1(data, result) -> float:
    return tpr_at_fpr(data.target_member, result.scores, 0.01)


@pytest.mark.parametrize("variant,fixed", [("online", False), ("online", True), ("offline", False),
                                           ("offline", True)])
def test_lira_beats_loss_when_leaky_and_is_chance_when_not(variant: str, fixed: bool) -> None:
    offline = variant == "offline"
    leaky = reference_input(True, offline=offline)
    lira = LiraAttack(LiraConfig(variant=variant, fixed_variance=fixed)).run(leaky)[0]
    loss = LossAttack().run(leaky)[0]
    assert lira.name == f"lira_{variant}" + ("_fixed_variance" if fixed else "")
    assert _tpr1(leaky, lira) > 3 * _tpr1(leaky, loss) and _tpr1(leaky, lira) > 20, (_tpr1(leaky, lira),
                                                                                     _tpr1(leaky, loss))
    assert roc_auc(leaky.target_member, lira.scores) > 85
    null = reference_input(False, offline=offline)
    result = LiraAttack(LiraConfig(variant=variant, fixed_variance=fixed)).run(null)[0]
    assert 44 <= roc_auc(null.target_member, result.scores) <= 56
    assert _tpr1(null, result) <= 5
    assert 40 <= result.paper_acc <= 60


def test_lira_decisions_follow_the_documented_rules() -> None:
    data = reference_input(True)
    online = LiraAttack(LiraConfig(variant="both", alpha=0.1)).run(data)
    assert [r.name for r in online] == ["lira_online", "lira_offline"]
    np.testing.assert_array_equal(online[0].decisions, online[0].scores >= 0)
    np.testing.assert_array_equal(online[1].decisions, online[1].scores >= -np.log(0.1))
    # offline at level alpha on the null: about alpha of the non-members are called members
    null = reference_input(False, offline=True)
    off = LiraAttack(LiraConfig(variant="offline", alpha=0.1)).run(null)[0]
    assert 0.05 < off.decisions[null.target_member == 0].mean() < 0.16


def test_loss_attack_scores_and_population_threshold() -> None:
    data = reference_input(True)
    result = LossAttack(LossConfig(alpha=0.2)).run(data)[0]
    np.testing.assert_allclose(result.scores, np.log(1 / (1 + np.exp(-data.target_stat))), rtol=1e-12)
    t = np.quantile(log_prob_from_stat(data.population_stat), 0.8)
    assert result.extra["threshold"] == pytest.approx(t)
    np.testing.assert_array_equal(result.decisions, result.scores >= t)
    assert population_threshold(np.arange(11.0), 0.3) == pytest.approx(7.0)  # 70 % quantile of 0..10
    # the non-members are drawn like the population: about alpha of them pass the threshold
    assert 0.15 < result.decisions[data.target_member == 0].mean() < 0.25


def test_too_few_references_is_a_user_error() -> None:
    data = reference_input(True, n_refs=2, n_targets=20, n_pop=10)  # 1 IN and 1 OUT per target
    with pytest.raises(UserError, match="online LiRA needs at least 2 IN and 2 OUT"):
        LiraAttack(LiraConfig(variant="online")).run(data)
    assert LiraAttack(LiraConfig(variant="online", fixed_variance=True)).run(data)[0].scores.shape == (20,)
    offline = reference_input(True, offline=True, n_refs=1, n_targets=20, n_pop=10)
    with pytest.raises(UserError, match="offline LiRA needs at least 2 OUT"):
        LiraAttack(LiraConfig(variant="offline")).run(offline)
    one_in = reference_input(True, n_refs=16, n_targets=20, n_pop=10)
    one_in.reference_in = np.ones_like(one_in.reference_in)  # every reference trained on every target
    with pytest.raises(UserError, match="fewest OUT 0"):
        LiraAttack(LiraConfig(variant="online")).run(one_in)


def test_bad_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown LiRA variant 'onlin'"):
        LiraConfig(variant="onlin")
    with pytest.raises(UserError, match="alpha"):
        LiraConfig(alpha=1.5)
    data = reference_input(True, n_targets=20, n_pop=10)
    data.reference_stats = None
    with pytest.raises(UserError, match="needs reference models' statistics"):
        LiraAttack().run(data)
    data = reference_input(True, n_targets=20, n_pop=10)
    data.reference_in = data.reference_in[:10]  # membership of another split
    with pytest.raises(UserError, match=r"reference_in has shape \(10, 16\), expected \(20, 16\)"):
        LiraAttack().run(data)
    data = reference_input(True, n_targets=20, n_pop=10)
    data.reference_stats[3, 2] = np.nan
    with pytest.raises(UserError, match="non-finite"):
        LiraAttack().run(data)
    data.population_stat = None
    with pytest.raises(UserError, match="population"):
        LossAttack().run(data)
