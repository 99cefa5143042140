"""The population loss attack, the reference-free baseline of LiRA / RMIA (ML Privacy Meter's "population"
attack; Yeom et al. CSF '18 loss threshold).

score(x) = -loss(theta, x) = log p_y(x), from the saved phi as -log(1 + e^-phi) (stable for any phi).
The threshold is fitted on population points z the victim never saw: member iff score >= the (1 - alpha)
quantile of the population's scores, so the false-positive rate on population-like non-members is about
alpha (Privacy Meter picks its thresholds the same way, one per FPR tolerance). The ROC metrics use the
scores and do not depend on alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attackers.base import Attack, AttackInput, AttackResult
from attackers.metrics import paper_accuracy
from attackers.refstats import check_alpha, lira_statistic
from core.errors import UserError


def log_prob_from_stat(stat: np.ndarray) -> np.ndarray:
    """log p_y = log sigmoid(phi) = -log(1 + e^-phi)."""
    return -np.logaddexp(0.0, -np.asarray(stat, np.float64))


def population_threshold(pop_scores: np.ndarray, alpha: float) -> float:
    """The (1 - alpha) quantile of the population's scores (linear interpolation, numpy's default)."""
    return float(np.quantile(pop_scores, 1.0 - alpha))


@dataclass
class LossConfig:
    alpha: float = 0.05  # the false-positive rate aimed at on population points

    def __post_init__(self) -> None:
        check_alpha(self.alpha)


class LossAttack(Attack):
    """Loss threshold calibrated on population data (no reference models)."""

    name = "loss"
    config_cls = LossConfig
    reference_set = "offline"  # reads only the population fields, which every reference set carries
    reads = ("population_stat",)

    def run(self, data: AttackInput) -> list[AttackResult]:
        if data.population_stat is None or np.size(data.population_stat) == 0:
            raise UserError("the loss attack needs the victim's statistics on population points (population_stat)",
                            "give points the victim never saw")
        if data.target_stat is not None:
            stat = np.asarray(data.target_stat, np.float64)
        else:
            stat = lira_statistic(np.asarray(data.target_labels), probs=np.asarray(data.target_probs))
        scores = log_prob_from_stat(stat)
        threshold = population_threshold(log_prob_from_stat(data.population_stat), self.config.alpha)
        decisions = (scores >= threshold).astype(np.int64)
        return [AttackResult(name="loss", scores=scores, decisions=decisions,
                             paper_acc=paper_accuracy(data.target_member, decisions, balanced=True),
                             extra={"threshold": threshold, "alpha": self.config.alpha,
                                    "n_population": int(np.size(data.population_stat))})]
