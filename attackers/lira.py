"""LiRA, the likelihood-ratio attack with reference ("shadow") models (Carlini et al., S&P '22).

Per target point x, the statistic phi (attackers/refstats.py) of the reference models that trained on x
(IN) and of those that did not (OUT) is modelled as two Gaussians:

  online   score = log N(phi_obs; mu_in, s_in^2) - log N(phi_obs; mu_out, s_out^2)   (log-likelihood ratio)
  offline  score = -log(1 - Phi((phi_obs - mu_out) / s_out)) = -log P[Z > phi_obs], Z ~ N(mu_out, s_out^2)

Offline is the paper's one-sided test (Alg. 1 offline: "1 - Pr[Z > conf_obs]"); we report -log of the
p-value, a monotone transform that keeps resolution in the far tail where the low-FPR region lives
(1 - CDF rounds to 0 beyond 8 sigma, its log does not). The released code (plot.py,
generate_ours_offline) scores with the two-sided log-density instead; we follow the paper.

Choices where the paper leaves room, taken from the released code (tensorflow/privacy mi_lira_2021):
- mu is the MEDIAN of the reference statistics (robust to a diverged reference), s the population std
  (ddof 0), floored at 1e-30 as the code's `+ 1e-30`.
- fixed_variance: one global s for all targets, the pooled WITHIN-target std: squared deviations of each
  target's IN (and OUT) statistics from that target's own mean, summed over targets, over their count
  (online pools both sides, offline the OUT side). The released code takes np.std(dat_in) over the whole
  array instead, which adds the spread BETWEEN targets' means. Any global s is one common scale, so the
  ROC (hence AUC and every TPR at FPR) is identical under both (the tests check it); only offline's
  level-alpha decision depends on s, and with the code's inflated s it calls almost nothing a member.
- One query per point (no augmentations), so no averaging over queries.
Decisions: online, member iff LLR >= 0 (likelihood ratio >= 1, equal priors); offline, member iff the
p-value <= alpha (score >= -log alpha), i.e. a level-alpha test of "x is a non-member" (default 0.05).

Minimum references: a per-target variance needs 2 values, so online needs >= 2 IN and >= 2 OUT references
for every target (offline >= 2 OUT); with fixed_variance 1 of each suffices (the variance is global).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy.special import log_ndtr

from attackers.base import Attack, AttackInput, AttackResult
from attackers.metrics import paper_accuracy
from attackers.refstats import RefInputs, check_alpha, reference_inputs, variants_of
from core.errors import UserError

SIGMA_FLOOR = 1e-30  # the released code's `std + 1e-30`: a zero spread must not divide by zero
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _norm_logpdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray | float) -> np.ndarray:
    z = (x - mu) / sigma
    return -0.5 * z * z - np.log(sigma) - _LOG_SQRT_2PI


def check_counts(in_mask: np.ndarray, variant: str, fixed_variance: bool) -> None:
    """UserError (one line) unless every target has enough IN / OUT references for `variant`."""
    need = 1 if fixed_variance else 2
    n_in = in_mask.sum(axis=1)
    n_out = in_mask.shape[1] - n_in
    short = (n_out < need) | ((n_in < need) if variant == "online" else False)
    if short.any():
        sides = f"{need} IN and {need} OUT" if variant == "online" else f"{need} OUT"
        raise UserError(f"{variant} LiRA needs at least {sides} reference models per target point; "
                        f"{int(short.sum())} of {short.size} targets have fewer (fewest IN {int(n_in.min())}, "
                        f"fewest OUT {int(n_out.min())}, of {in_mask.shape[1]} references)",
                        "train more references" + ("" if fixed_variance else ", or use fixed_variance"))


def gaussian_fit(ref_stats: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-target (median, std) of the statistics where mask is True (std with ddof 0, floored)."""
    picked = np.where(mask, ref_stats, np.nan)
    return np.nanmedian(picked, axis=1), np.maximum(np.nanstd(picked, axis=1), SIGMA_FLOOR)


def pooled_sigma(ref_stats: np.ndarray, *masks: np.ndarray) -> float:
    """sqrt(sum of squared deviations from each target's own mean, per mask, / number of values)."""
    ss, count = 0.0, 0
    for mask in masks:
        picked = np.where(mask, ref_stats, np.nan)
        ss += float(np.nansum((picked - np.nanmean(picked, axis=1, keepdims=True)) ** 2))
        count += int(mask.sum())
    return max(np.sqrt(ss / count), SIGMA_FLOOR)


def lira_online(target_stat: np.ndarray, ref_stats: np.ndarray, in_mask: np.ndarray, *,
                fixed_variance: bool = False) -> np.ndarray:
    """(n,) log N(phi; IN) - log N(phi; OUT): larger = member. Shapes (n,), (n, R), (n, R) bool."""
    in_mask = np.asarray(in_mask, bool)
    check_counts(in_mask, "online", fixed_variance)
    mu_in, s_in = gaussian_fit(ref_stats, in_mask)
    mu_out, s_out = gaussian_fit(ref_stats, ~in_mask)
    if fixed_variance:
        s_in = s_out = pooled_sigma(ref_stats, in_mask, ~in_mask)
    return _norm_logpdf(target_stat, mu_in, s_in) - _norm_logpdf(target_stat, mu_out, s_out)


def lira_offline(target_stat: np.ndarray, ref_stats: np.ndarray, in_mask: np.ndarray | None = None, *,
                 fixed_variance: bool = False) -> np.ndarray:
    """(n,) -log P[Z > phi], Z ~ N(mu_out, s_out^2) from the OUT references only: larger = member."""
    out_mask = np.ones(ref_stats.shape, bool) if in_mask is None else ~np.asarray(in_mask, bool)
    check_counts(~out_mask, "offline", fixed_variance)
    mu_out, s_out = gaussian_fit(ref_stats, out_mask)
    if fixed_variance:
        s_out = pooled_sigma(ref_stats, out_mask)
    return -log_ndtr((mu_out - target_stat) / s_out)  # P[Z > x] = Phi((mu - x) / s)


@dataclass
class LiraConfig:
    """variant: online | offline | both; fixed_variance: one global std; alpha: offline decision level."""

    variant: str = "online"
    fixed_variance: bool = False
    alpha: float = 0.05

    def __post_init__(self) -> None:
        variants_of(self.variant, "LiRA")
        check_alpha(self.alpha)


class LiraAttack(Attack):
    """LiRA online / offline (optionally fixed-variance) from the references' statistics in AttackInput."""

    name = "lira"
    family = "lira"
    config_cls = LiraConfig

    def run(self, data: AttackInput) -> list[AttackResult]:
        ref = reference_inputs(data, "LiRA")
        return [self._one(variant, ref, data) for variant in variants_of(self.config.variant, "LiRA")]

    def _one(self, variant: str, ref: RefInputs, data: AttackInput) -> AttackResult:
        cfg = self.config
        if variant == "online":
            scores = lira_online(ref.target_stat, ref.ref_stats, ref.ref_in, fixed_variance=cfg.fixed_variance)
            threshold, rule = 0.0, "log-likelihood ratio >= 0"
        else:
            scores = lira_offline(ref.target_stat, ref.ref_stats, ref.ref_in, fixed_variance=cfg.fixed_variance)
            threshold, rule = float(-np.log(cfg.alpha)), f"one-sided p-value <= alpha = {cfg.alpha}"
        decisions = (scores >= threshold).astype(np.int64)
        n_in = ref.ref_in.sum(axis=1)
        return AttackResult(
            name=f"lira_{variant}" + ("_fixed_variance" if cfg.fixed_variance else ""), scores=scores,
            decisions=decisions, paper_acc=paper_accuracy(data.target_member, decisions, balanced=True),
            extra={"variant": variant, "fixed_variance": cfg.fixed_variance, "n_references": ref.ref_stats.shape[1],
                   "min_in": int(n_in.min()), "min_out": int((ref.ref_stats.shape[1] - n_in).min()),
                   "threshold": threshold, "decision": rule})


class LiraOnlineAttack(LiraAttack):
    """lira_online: the registry's name for the online variant, on references that saw half the targets."""

    name = "lira_online"
    reference_set = "online"
    min_references = 4  # >= 2 IN and >= 2 OUT per target; the balanced pairs give N/2 of each
    reads = ("reference_stats", "reference_in")
    variant: ClassVar[str] = "online"

    def __init__(self, config: LiraConfig | None = None) -> None:
        super().__init__(replace(config or LiraConfig(), variant=self.variant))


class LiraOfflineAttack(LiraOnlineAttack):
    """lira_offline: the offline variant on models that never saw the victim's data (the shadows)."""

    name = "lira_offline"
    reference_set = "offline"
    min_references = 2  # >= 2 OUT per target for a per-target variance
    reads = ("reference_stats",)  # reference_in None: no reference saw a target
    variant = "offline"
