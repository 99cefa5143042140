"""The one input dataclass every attack reads, the result it returns, and the attack interface.

Convention used everywhere in attackers/: a larger score means "more likely a member".
Shadow rows are the pooled shadow models' train (member=1) and test (member=0) samples;
target rows are the victim's train (member=1) and test (member=0) samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class AttackInput:
    """Features of the shadow models (to fit the attack) and of the victim (to attack).

    probs: (n, C) softmax confidences; sens: (n, C) prediction sensitivity (paper eq. 2);
    labels: (n,) int ground-truth classes; member: (n,) 0/1 membership.
    reference_probs: softmax outputs of the *victim* on generated non-members (BlindMI), or None.

    Reference-model attacks (lira, rmia, loss) read the logit-scaled true-class confidence
    phi = log(p_y / (1 - p_y)) (`attackers.lira.lira_statistic`; RMIA's p_y is sigmoid(phi)):
    target_stat: (n,) the victim's phi on the target rows (None: computed from target_probs);
    reference_stats: (n, R) reference model r's phi on target row i; reference_in: (n, R) bool, whether
    reference r trained on target row i (None: no reference saw any target row, the offline setting);
    population_stat: (m,) the victim's phi on population points z that the victim never saw;
    population_ref_stats / population_ref_in: (m, R) the same for the references (in None: all out).
    """

    shadow_probs: np.ndarray
    shadow_sens: np.ndarray
    shadow_labels: np.ndarray
    shadow_member: np.ndarray
    target_probs: np.ndarray
    target_sens: np.ndarray
    target_labels: np.ndarray
    target_member: np.ndarray
    num_cls: int
    reference_probs: np.ndarray | None = None
    target_stat: np.ndarray | None = None
    reference_stats: np.ndarray | None = None
    reference_in: np.ndarray | None = None
    population_stat: np.ndarray | None = None
    population_ref_stats: np.ndarray | None = None
    population_ref_in: np.ndarray | None = None


@dataclass
class AttackResult:
    """One attack's verdict on the victim: one score per target row, and hard decisions.

    paper_acc: the accuracy (%) the artifact printed for this attack (balanced accuracy for the
    threshold family, plain accuracy of the last epoch for the learned attacks).
    """

    name: str
    scores: np.ndarray
    decisions: np.ndarray
    paper_acc: float
    extra: dict[str, Any] = field(default_factory=dict)


class Attack:
    """An attack is a small class with a config and `run` (LeakPro style); see attackers/__init__.py."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type | None] = None  # the settings dataclass its __init__ takes, if any

    def run(self, data: AttackInput) -> list[AttackResult]:
        raise NotImplementedError
