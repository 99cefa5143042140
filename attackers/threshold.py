"""The threshold family (paper §5.1.4; Song & Mittal's inspire-group code as the artifact used it).

One `ThresholdAttack` yields six results; each score is "larger = member":

  conf       p_y                                     per-class thresholds (paper: Conf, zeta_y)
  xent       log p_y, the negative true-class cross-entropy loss (the paper's Xent). Within one class
             log is monotone, so its per-class decisions equal conf's; kept because the paper lists it
             and because its scores differ (and AUC over all classes can differ slightly).
  entr       -H(p), prediction entropy with logs clamped at 1e-30: what the artifact labelled "Xent"
  mentr      -Mentr(p, y) = -[(1-p_y)(-log p_y) + sum_{t!=y} p_t(-log(1-p_t))], logs clamped at 1e-30
  top1_conf  max_c p_c (the paper's Top1-Conf, Salem et al.)     per-class thresholds (zeta_y)
  hconf      p_y with ONE class-agnostic threshold: what the artifact printed as "Top1-conf"

Thresholds are fitted on the pooled shadow rows (shadow train = in, shadow test = out) by maximising the
balanced accuracy 0.5 * (frac in >= t + frac out < t) over every shadow value t; `fit_threshold` does in
O(n log n) exactly what the artifact's O(n^2) search (`fit_threshold_exhaustive`) does, tie-breaking
included. A class with no shadow member or no shadow non-member falls back to the global threshold
(fitted on all shadow rows of that score), since the balanced accuracy is undefined there.

Reported per victim row: score = value - threshold of its class, so "member" is exactly score >= 0 and
the scores give an ROC; paper_acc = 0.5 * (TP/|in| + TN/|out|) * 100 over all victim rows.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attackers.base import Attack, AttackInput, AttackResult
from attackers.features import true_class
from attackers.metrics import paper_accuracy

LOG_FLOOR = 1e-30  # Song & Mittal's clamp inside -log(.)


def _neg_log(p: np.ndarray) -> np.ndarray:
    return -np.log(np.maximum(p, LOG_FLOOR))


def conf_score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return true_class(probs, labels)


def xent_score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return -_neg_log(true_class(probs, labels))


def entr_score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    del labels  # the entropy ignores the label, as in the artifact
    return -np.sum(probs * _neg_log(probs), axis=1)


def mentr_score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rows = np.arange(labels.size)
    weights = probs.copy()
    weights[rows, labels] = 1.0 - probs[rows, labels]
    logs = _neg_log(1.0 - probs)
    logs[rows, labels] = _neg_log(probs[rows, labels])
    return -np.sum(weights * logs, axis=1)


def top1_score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    del labels
    return probs.max(axis=1)


# name -> (score function, per-class thresholds?)
SCORES: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], bool]] = {
    "conf": (conf_score, True),
    "xent": (xent_score, True),
    "entr": (entr_score, True),
    "mentr": (mentr_score, True),
    "top1_conf": (top1_score, True),
    "hconf": (conf_score, False),
}


def _balanced(n_in_ge: np.ndarray | int, n_in: int, n_out_lt: np.ndarray | int, n_out: int) -> np.ndarray:
    # Written exactly as the artifact's loop body so both fits produce bit-identical accuracies.
    return 0.5 * (np.asarray(n_in_ge) / (n_in + 0.0) + np.asarray(n_out_lt) / (n_out + 0.0))


def fit_threshold_exhaustive(in_vals: np.ndarray, out_vals: np.ndarray) -> float:
    """The artifact's O(n^2) search (reference for tests and bench.py): first strict maximum wins."""
    thre, max_acc = 0.0, 0.0
    for value in np.concatenate((in_vals, out_vals)):
        acc = _balanced(np.sum(in_vals >= value), len(in_vals), np.sum(out_vals < value), len(out_vals))
        if acc > max_acc:
            thre, max_acc = float(value), acc
    return thre


def fit_threshold(in_vals: np.ndarray, out_vals: np.ndarray) -> float:
    """The threshold `fit_threshold_exhaustive` returns, in O(n log n).

    Every candidate value t is scored with the same float expression from counts found by binary search
    in the sorted sides; among the candidates reaching the maximum, the one occurring first in
    concatenate((in_vals, out_vals)) wins, which is the exhaustive loop's first strict maximum.
    """
    in_vals, out_vals = np.asarray(in_vals, np.float64), np.asarray(out_vals, np.float64)
    if in_vals.size == 0 or out_vals.size == 0:
        raise ValueError("fit_threshold needs at least one in and one out value")
    values = np.concatenate((in_vals, out_vals))
    if np.isnan(values).any():
        raise ValueError("fit_threshold got NaN scores")
    cand, first_pos = np.unique(values, return_index=True)  # sorted distinct values, first occurrence
    n_in_ge = in_vals.size - np.searchsorted(np.sort(in_vals), cand, side="left")
    n_out_lt = np.searchsorted(np.sort(out_vals), cand, side="left")
    acc = _balanced(n_in_ge, in_vals.size, n_out_lt, out_vals.size)
    best = np.flatnonzero(acc == acc.max())
    return float(values[first_pos[best].min()])


def _has_both(member: np.ndarray) -> bool:
    return bool(member.any() and not member.all())


def fit_class_thresholds(values: np.ndarray, labels: np.ndarray, member: np.ndarray, num_cls: int,
                         per_class: bool) -> tuple[np.ndarray, float]:
    """Per-class thresholds zeta_c (or the global one everywhere) fitted on shadow rows; also the global."""
    member = member.astype(bool)
    global_t = fit_threshold(values[member], values[~member])
    thresholds = np.full(num_cls, global_t)
    if per_class:
        for c in range(num_cls):
            rows = labels == c
            if _has_both(member[rows]):
                thresholds[c] = fit_threshold(values[rows & member], values[rows & ~member])
    return thresholds, global_t


class ThresholdAttack(Attack):
    """conf, xent, entr, mentr, top1_conf, hconf: metric thresholds fitted on the shadow models."""

    name = "threshold"
    result_names = tuple(SCORES)
    artifact_lines = {
        "conf": "Ground-truth class confidence-based threshold attack (Conf) accuracy: {:.3f}",
        "entr": "Cross-entropy-based threshold attack (Xent) accuracy: {:.3f}",
        "mentr": "Modified-entropy-based threshold attack (Mentr) accuracy: {:.3f}",
        "hconf": "Top1 Confidence-based threshold attack (Top1-conf) accuracy: {:.3f}",
    }
    headline = ("conf", "mentr", "hconf")
    baseline = ("conf",)
    classic = ("mentr",)  # Song & Mittal's strongest threshold attack

    def run(self, data: AttackInput) -> list[AttackResult]:
        return [self._one(name, data) for name in SCORES]

    def _one(self, name: str, data: AttackInput) -> AttackResult:
        score_fn, per_class = SCORES[name]
        shadow_labels = np.asarray(data.shadow_labels, dtype=np.int64)
        target_labels = np.asarray(data.target_labels, dtype=np.int64)
        shadow = score_fn(data.shadow_probs, shadow_labels)
        target = score_fn(data.target_probs, target_labels)
        thresholds, global_t = fit_class_thresholds(shadow, shadow_labels, np.asarray(data.shadow_member),
                                                    data.num_cls, per_class)
        t = thresholds[target_labels]
        decisions = (target >= t).astype(np.int64)
        return AttackResult(
            name=name, scores=target - t, decisions=decisions,
            paper_acc=paper_accuracy(data.target_member, decisions, balanced=True),
            extra={"thresholds": thresholds.tolist(), "global_threshold": global_t, "per_class": per_class})
