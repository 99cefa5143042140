"""attackers/rmia.py: hand-computed scores on a small table (online and offline with `a`), the pairwise
definition as a second route, the leaky/null bar against the loss baseline, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logit

from attackers.metrics import roc_auc, tpr_at_fpr
from attackers.population_loss import LossAttack
from attackers.rmia import RmiaAttack, RmiaConfig, pr_x, rmia, rmia_scores
from core.errors import UserError
from synthetic_refs import reference_input

# Two targets x and three population points z; two references (one pair).
P_X = np.array([0.9, 0.5])                     # victim's p_y on x
REF_X = np.array([[0.6, 0.8], [0.5, 0.3]])     # references' p_y on x
IN_X = np.array([[1, 0], [0, 1]], bool)        # x0 trained by ref 0, x1 by ref 1
P_Z = np.array([0.6, 0.4, 0.8])
REF_Z = np.array([[0.5, 0.7], [0.5, 0.5], [0.9, 0.7]])


def test_online_by_hand() -> None:
    # Pr(x) = mean over both refs: .7, .4 -> ratio_x = .9/.7 = 1.2857, .5/.4 = 1.25
    # Pr(z) = .6, .5, .8 -> ratio_z = 1, .8, 1
    # gamma 1.27: x0 / z = 1.2857, 1.607, 1.2857 all >= 1.27 -> 3/3; x1: 1.25, 1.5625, 1.25 -> 1/3
    scores = rmia(P_X, REF_X, IN_X, P_Z, REF_Z, None, variant="online", gamma=1.27)
    np.testing.assert_allclose(scores, [1.0, 1 / 3])
    np.testing.assert_allclose(pr_x(REF_X, IN_X, "online", 0.3), [0.7, 0.4])


def test_offline_by_hand() -> None:
    # a = .5: Pr(x) = .5 (1.5 Pr_out + .5); OUT refs: x0 -> ref 1 (.8), x1 -> ref 0 (.5)
    # Pr(x0) = .5 (1.2 + .5) = .85, Pr(x1) = .5 (.75 + .5) = .625 -> ratio_x = 1.0588, .8
    # z: no reference saw z, Pr_out(z) = .6, .5, .8 -> Pr(z) = .7, .625, .85 -> ratio_z = .857, .64, .941
    # gamma 1: x0 beats all three -> 1; x1 = .8 only beats .64 -> 1/3
    np.testing.assert_allclose(pr_x(REF_X, IN_X, "offline", 0.5), [0.85, 0.625])
    scores = rmia(P_X, REF_X, IN_X, P_Z, REF_Z, None, variant="offline", a=0.5, gamma=1.0)
    np.testing.assert_allclose(scores, [1.0, 1 / 3])
    # a = 1 is Pr(x) = Pr_out(x): no correction for the missing IN half
    np.testing.assert_allclose(pr_x(REF_X, IN_X, "offline", 1.0), [0.8, 0.5])


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.3, 2.0])
def test_sorted_count_equals_pairwise_definition(gamma: float) -> None:
    rng = np.random.default_rng(int(gamma * 10))
    ratio_x, ratio_z = rng.lognormal(size=200), rng.lognormal(size=300)
    pairwise = np.mean(ratio_x[:, None] / ratio_z[None, :] >= gamma, axis=1)
    np.testing.assert_allclose(rmia_scores(ratio_x, ratio_z, gamma), pairwise)


def test_attack_class_reads_stats_and_matches_the_function() -> None:
    data = reference_input(True, n_targets=40, n_pop=30, n_refs=4)
    online, offline = RmiaAttack(RmiaConfig(variant="both", gamma=1.1, a=0.4)).run(data)
    sig = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
    expected = rmia(sig(data.target_stat), sig(data.reference_stats), data.reference_in, sig(data.population_stat),
                    sig(data.population_ref_stats), data.population_ref_in, variant="offline", a=0.4, gamma=1.1)
    np.testing.assert_allclose(offline.scores, expected, rtol=1e-12)
    assert (online.name, offline.name) == ("rmia_online", "rmia_offline")
    np.testing.assert_array_equal(online.decisions, online.scores >= 0.95)
    # statistics made from the table's probabilities reproduce the hand numbers through the class
    table = reference_input(True, n_targets=2, n_pop=3, n_refs=2)
    table.target_stat, table.reference_stats, table.reference_in = logit(P_X), logit(REF_X), IN_X
    table.population_stat, table.population_ref_stats, table.population_ref_in = logit(P_Z), logit(REF_Z), None
    np.testing.assert_allclose(RmiaAttack(RmiaConfig(gamma=1.27)).run(table)[0].scores, [1.0, 1 / 3])


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_rmia_beats_loss_when_leaky_and_is_chance_when_not(variant: str) -> None:
    offline = variant == "offline"
    leaky = reference_input(True, offline=offline)
    rmia_result = RmiaAttack(RmiaConfig(variant=variant)).run(leaky)[0]
    loss = LossAttack().run(leaky)[0]
    tpr_rmia = tpr_at_fpr(leaky.target_member, rmia_result.scores, 0.01)
    tpr_loss = tpr_at_fpr(leaky.target_member, loss.scores, 0.01)
    assert tpr_rmia > 3 * tpr_loss and tpr_rmia > 20, (tpr_rmia, tpr_loss)
    assert roc_auc(leaky.target_member, rmia_result.scores) > 80
    null = reference_input(False, offline=offline)
    result = RmiaAttack(RmiaConfig(variant=variant)).run(null)[0]
    assert 44 <= roc_auc(null.target_member, result.scores) <= 56
    assert tpr_at_fpr(null.target_member, result.scores, 0.01) <= 5
    # level-alpha reading of the decision: about 5 % of the null's non-members are called members
    assert result.decisions[null.target_member == 0].mean() < 0.1


def test_bad_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown RMIA variant"):
        RmiaConfig(variant="offlne")
    with pytest.raises(UserError, match="a must be in"):
        RmiaConfig(a=1.5)
    with pytest.raises(UserError, match="gamma"):
        RmiaConfig(gamma=0.0)
    offline_refs = reference_input(True, offline=True, n_targets=20, n_pop=10, n_refs=1)
    with pytest.raises(UserError, match="online RMIA needs at least 1 IN and 1 OUT"):
        RmiaAttack(RmiaConfig(variant="online")).run(offline_refs)
    assert RmiaAttack(RmiaConfig(variant="offline")).run(offline_refs)[0].scores.shape == (20,)  # one is enough
    no_pop = reference_input(True, n_targets=20, n_pop=10)
    no_pop.population_ref_stats = None
    with pytest.raises(UserError, match="population points z"):
        RmiaAttack().run(no_pop)
    all_in = reference_input(True, offline=True, n_targets=20, n_pop=10, n_refs=2)
    all_in.population_ref_in = np.ones((10, 2), bool)
    with pytest.raises(UserError, match="per population point z"):
        RmiaAttack(RmiaConfig(variant="offline")).run(all_in)
