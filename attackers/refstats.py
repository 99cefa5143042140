"""The reference-model signal and the checks on it, shared by lira, rmia and loss (docs/lira_rmia.md).

The one per-(model, point) number these attacks read is LiRA's logit-scaled true-class confidence
phi = log(p_y / (1 - p_y)) (Carlini et al. S&P '22, §IV-C): roughly Gaussian over models, unlike p_y.
RMIA's Pr(x | theta) = p_y is recovered exactly as sigmoid(phi), and the loss -log p_y as log(1 + e^-phi),
so one saved array serves all three attacks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from attackers.base import AttackInput
from core.errors import UserError

TINY = np.finfo(np.float64).tiny  # keeps log() finite when a softmax saturated to exactly 1 or 0


def lira_statistic(labels: np.ndarray, *, logits: np.ndarray | None = None,
                   probs: np.ndarray | None = None) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)) from logits or softmax probabilities, shape logits.shape[:-1].

    labels broadcast against the leading axes (e.g. logits (n, R, C) with labels (n, 1)).
    From logits: phi = z_y - logsumexp_{c != y} z_c, exact even where p_y rounds to 1 in float64.
    From probs: log p_y - log sum_{c != y} p_c; the sum of the other classes keeps its relative precision
    where 1 - p_y would cancel to 0 (p_y > 1 - 1e-16), both logs floored at the smallest float.
    """
    if (logits is None) == (probs is None):
        raise ValueError("give exactly one of logits or probs")
    values = np.asarray(logits if logits is not None else probs, dtype=np.float64)
    idx = np.broadcast_to(np.asarray(labels, np.int64), values.shape[:-1])[..., None]
    true = np.take_along_axis(values, idx, axis=-1)[..., 0]
    others = values.copy()
    if logits is not None:
        np.put_along_axis(others, idx, -np.inf, axis=-1)
        return true - logsumexp(others, axis=-1)
    np.put_along_axis(others, idx, 0.0, axis=-1)
    return np.log(np.maximum(true, TINY)) - np.log(np.maximum(others.sum(axis=-1), TINY))


def true_class_prob(stat: np.ndarray) -> np.ndarray:
    """p_y = sigmoid(phi) (RMIA's Pr(x | theta))."""
    return expit(np.asarray(stat, np.float64))


@dataclass
class RefInputs:
    """Checked float64 / bool arrays of the reference-model fields of AttackInput."""

    target_stat: np.ndarray  # (n,)
    ref_stats: np.ndarray  # (n, R)
    ref_in: np.ndarray  # (n, R) bool
    pop_stat: np.ndarray | None = None  # (m,)
    pop_ref_stats: np.ndarray | None = None  # (m, R)
    pop_ref_in: np.ndarray | None = None  # (m, R) bool


def _finite(name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.shape != shape:
        raise UserError(f"{name} has shape {a.shape}, expected {shape}",
                        "the references' saved statistics belong to another victim setting or split")
    if not np.isfinite(a).all():
        raise UserError(f"{name} holds {int((~np.isfinite(a)).sum())} non-finite values",
                        "recompute the statistics from logits (lira_statistic)")
    return a


def _mask(name: str, mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, bool)  # no reference trained on these points
    m = np.asarray(mask)
    if m.shape != shape:
        raise UserError(f"{name} has shape {m.shape}, expected {shape}",
                        "the membership matrix belongs to another reference set or split")
    return m.astype(bool)


def reference_inputs(data: AttackInput, attack: str, *, population: bool = False) -> RefInputs:
    """The reference fields of `data`, checked: present, consistent shapes, finite. UserError otherwise."""
    if data.reference_stats is None:
        raise UserError(f"{attack} needs reference models' statistics on the target points; none were given",
                        "train reference models first")
    n = np.asarray(data.target_member).shape[0]
    r = np.asarray(data.reference_stats).shape[1] if np.ndim(data.reference_stats) == 2 else -1
    if r < 1:
        raise UserError(f"{attack}: reference_stats must be (targets, references), got shape "
                        f"{np.shape(data.reference_stats)}")
    if data.target_stat is not None:
        target = _finite("target_stat", data.target_stat, (n,))
    else:
        target = lira_statistic(np.asarray(data.target_labels), probs=np.asarray(data.target_probs))
    out = RefInputs(target, _finite("reference_stats", data.reference_stats, (n, r)),
                    _mask("reference_in", data.reference_in, (n, r)))
    if population:
        if data.population_stat is None or data.population_ref_stats is None:
            raise UserError(f"{attack} needs the victim's and the references' statistics on population points z",
                            "give population_stat and population_ref_stats")
        m = np.asarray(data.population_stat).shape[0]
        out.pop_stat = _finite("population_stat", data.population_stat, (m,))
        out.pop_ref_stats = _finite("population_ref_stats", data.population_ref_stats, (m, r))
        out.pop_ref_in = _mask("population_ref_in", data.population_ref_in, (m, r))
    return out


def check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be strictly between 0 and 1, got {alpha}")


VARIANTS = ("online", "offline")


def variants_of(variant: str, attack: str) -> tuple[str, ...]:
    """'online' | 'offline' | 'both' -> the variants to run; anything else is a UserError."""
    if variant == "both":
        return VARIANTS
    if variant not in VARIANTS:
        raise UserError(f"unknown {attack} variant {variant!r}", "valid: online, offline, both")
    return (variant,)
