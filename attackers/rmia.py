"""RMIA, the relative membership inference attack (Zarifzadeh, Liu, Shokri, ICML '24).

With p(x | theta) the victim's true-class probability on x (sigmoid of the saved phi) and
Pr(x) = the same probability averaged over reference models:

  ratio(x)  = p(x | theta) / Pr(x)
  LR(x, z)  = ratio(x) / ratio(z)                 for population points z the victim never saw
  score(x)  = fraction of z with LR(x, z) >= gamma  (in [0, 1], larger = member)

Pr(x):  online   mean over ALL references (each point is IN for about half of them, so this is
                 about (Pr_in(x) + Pr_out(x)) / 2, as in the paper);
        offline  only OUT references, with the paper's linear approximation of the missing IN half:
                 Pr(x) = 0.5 * ((1 + a) * Pr_out(x) + (1 - a)).
The same formula gives Pr(z) for every population point z from its own IN / OUT references (none IN when
population_ref_in is None).

Choices: p(x | theta) is the plain softmax probability of the true class (the paper also tries a
temperature; not here); gamma and a are configurable (defaults 1 and 0.3; the paper tunes a on reference
models per dataset); the count over z uses sorting, ratio(z) <= ratio(x) / gamma, which equals
ratio(x) / ratio(z) >= gamma up to one rounding of the division (exact for gamma = 1).
Decision: member iff score >= 1 - alpha. Under the null (x a non-member drawn like the z's, gamma = 1)
score(x) is uniform on [0, 1], so this is a level-alpha test, the same reading as LiRA offline and loss.
Minimum references: online needs >= 1 IN and >= 1 OUT reference per target; offline >= 1 OUT per target
and per z (RMIA's point is that it works with very few references).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from attackers.base import Attack, AttackInput, AttackResult
from attackers.metrics import paper_accuracy
from attackers.refstats import check_alpha, reference_inputs, true_class_prob, variants_of
from core.errors import UserError


def check_counts(in_mask: np.ndarray, variant: str, what: str) -> None:
    n_in = in_mask.sum(axis=1)
    n_out = in_mask.shape[1] - n_in
    short = (n_out < 1) | ((n_in < 1) if variant == "online" else False)
    if short.any():
        sides = "1 IN and 1 OUT" if variant == "online" else "1 OUT"
        raise UserError(f"{variant} RMIA needs at least {sides} reference model per {what}; {int(short.sum())} "
                        f"of {short.size} have fewer (fewest IN {int(n_in.min())}, fewest OUT {int(n_out.min())})",
                        "train more references" + (", or use the offline variant" if variant == "online" else ""))


def pr_x(ref_probs: np.ndarray, in_mask: np.ndarray, variant: str, a: float) -> np.ndarray:
    """(n,) Pr(x) from the references' true-class probabilities (n, R) and who trained on what."""
    if variant == "online":
        return ref_probs.mean(axis=1)
    out = ~in_mask
    pr_out = np.where(out, ref_probs, 0.0).sum(axis=1) / out.sum(axis=1)
    return 0.5 * ((1.0 + a) * pr_out + (1.0 - a))


def rmia_scores(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """(n,) fraction of z with ratio_x / ratio_z >= gamma: one sort of z, one binary search per x."""
    sorted_z = np.sort(ratio_z)
    return np.searchsorted(sorted_z, ratio_x / gamma, side="right") / sorted_z.size


def rmia(target_prob: np.ndarray, ref_probs: np.ndarray, in_mask: np.ndarray,
         pop_target_prob: np.ndarray, pop_ref_probs: np.ndarray, pop_in_mask: np.ndarray | None, *,
         variant: str, a: float = 0.3, gamma: float = 1.0) -> np.ndarray:
    """RMIA scores (n,) for targets x against population points z; shapes (n,), (n, R), (n, R), (m,), (m, R)."""
    in_mask = np.asarray(in_mask, bool)
    pop_in_mask = np.zeros(pop_ref_probs.shape, bool) if pop_in_mask is None else np.asarray(pop_in_mask, bool)
    check_counts(in_mask, variant, "target point")
    if variant == "offline":
        check_counts(pop_in_mask, variant, "population point z")
    ratio_x = target_prob / pr_x(ref_probs, in_mask, variant, a)
    ratio_z = pop_target_prob / pr_x(pop_ref_probs, pop_in_mask, variant, a)
    return rmia_scores(ratio_x, ratio_z, gamma)


@dataclass
class RmiaConfig:
    """variant: online | offline | both; a: offline approximation; gamma: LR threshold; alpha: decision level."""

    variant: str = "online"
    a: float = 0.3
    gamma: float = 1.0
    alpha: float = 0.05

    def __post_init__(self) -> None:
        variants_of(self.variant, "RMIA")
        check_alpha(self.alpha)
        if not 0.0 <= self.a <= 1.0:
            raise UserError(f"RMIA's a must be in [0, 1], got {self.a}")
        if not self.gamma > 0.0:
            raise UserError(f"RMIA's gamma must be > 0, got {self.gamma}")


class RmiaAttack(Attack):
    """RMIA online / offline from the references' statistics on the targets and on population points."""

    name = "rmia"
    family = "rmia"
    config_cls = RmiaConfig

    def run(self, data: AttackInput) -> list[AttackResult]:
        ref = reference_inputs(data, "RMIA", population=True)
        cfg, results = self.config, []
        for variant in variants_of(cfg.variant, "RMIA"):
            scores = rmia(true_class_prob(ref.target_stat), true_class_prob(ref.ref_stats), ref.ref_in,
                          true_class_prob(ref.pop_stat), true_class_prob(ref.pop_ref_stats), ref.pop_ref_in,
                          variant=variant, a=cfg.a, gamma=cfg.gamma)
            decisions = (scores >= 1.0 - cfg.alpha).astype(np.int64)
            results.append(AttackResult(
                name=f"rmia_{variant}", scores=scores, decisions=decisions,
                paper_acc=paper_accuracy(data.target_member, decisions, balanced=True),
                extra={"variant": variant, "a": cfg.a if variant == "offline" else None, "gamma": cfg.gamma,
                       "n_references": ref.ref_stats.shape[1], "n_population": int(ref.pop_stat.size),
                       "decision": f"score >= 1 - alpha = {1.0 - cfg.alpha:g}"}))
        return results


class RmiaOnlineAttack(RmiaAttack):
    """rmia_online: the registry's name for the online variant (references that saw half the targets)."""

    name = "rmia_online"
    reference_set = "online"
    min_references = 2  # >= 1 IN and >= 1 OUT per target
    reads = ("reference_stats", "reference_in", "population_stat", "population_ref_stats")
    variant: ClassVar[str] = "online"

    def __init__(self, config: RmiaConfig | None = None) -> None:
        super().__init__(replace(config or RmiaConfig(), variant=self.variant))


class RmiaOfflineAttack(RmiaOnlineAttack):
    """rmia_offline: OUT references only (the shadows), with the paper's `a` approximation."""

    name = "rmia_offline"
    reference_set = "offline"
    min_references = 1
    reads = ("reference_stats", "population_stat", "population_ref_stats")
    variant = "offline"
