"""Attack metrics (DESIGN §9): the paper's accuracy plus the metrics the field now expects.

Units: every metric here is a PERCENTAGE in [0, 100] (accuracy, balanced accuracy, ROC AUC, TPR at a
fixed FPR); the FPR bound passed to `tpr_at_fpr` is a fraction (0.01 = 1 %).
Conventions: `member` is 0/1 ground truth, `scores` are "larger = more likely a member", `decisions`
are hard 0/1 verdicts. Everything is plain numpy, O(n log n) at most.
"""
from __future__ import annotations

import numpy as np


def _as_bool(member: np.ndarray) -> np.ndarray:
    return np.asarray(member).astype(bool).ravel()


def accuracy(member: np.ndarray, decisions: np.ndarray) -> float:
    """Plain accuracy (%) of hard decisions: what the artifact printed for its learned attacks."""
    m, d = _as_bool(member), _as_bool(decisions)
    return float(np.mean(m == d) * 100.0) if m.size else float("nan")


def balanced_accuracy(member: np.ndarray, decisions: np.ndarray) -> float:
    """0.5 * (TPR + TNR) * 100 = 0.5 * (TP/|in| + TN/|out|) * 100."""
    m, d = _as_bool(member), _as_bool(decisions)
    if m.all() or not m.any():
        return float("nan")
    tpr = np.mean(d[m])
    tnr = np.mean(~d[~m])
    return float(0.5 * (tpr + tnr) * 100.0)


def paper_accuracy(member: np.ndarray, decisions: np.ndarray, *, balanced: bool) -> float:
    """The "attack accuracy" (%) the artifact printed; its definition depends on the attack family.

    Threshold family (Song & Mittal's code): balanced, 0.5 * (TP/|in| + TN/|out|) * 100 (balanced=True).
    Learned attacks (nn, nn_top3, nn_cls, samia) and BlindMI: plain accuracy over all victim rows
    (balanced=False). The victim's in/out sets are equal-sized (45/45 split), so the two nearly agree.
    """
    return balanced_accuracy(member, decisions) if balanced else accuracy(member, decisions)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span (midranks)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last element of each tie group
    mid = ends - (counts - 1) / 2.0
    return mid[inverse.ravel()]


def roc_auc(member: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (%) via the Mann-Whitney U statistic; tied scores count one half (= trapezoidal ROC)."""
    m = _as_bool(member)
    n1, n0 = int(m.sum()), int((~m).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64).ravel())
    u = ranks[m].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n1 * n0) * 100.0)


def roc_points(member: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) fractions for "member iff score >= t" at every distinct t, from (0, 0) up to (1, 1).

    The same sweep as sklearn.metrics.roc_curve(drop_intermediate=False).
    """
    m = _as_bool(member)
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s_sorted, m_sorted = s[order], m[order]
    # the last position of each run of equal scores is where a threshold can cut
    cut = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1] if s.size else np.array([], int)
    tp = np.cumsum(m_sorted)[cut]
    fp = (cut + 1) - tp
    n1, n0 = max(int(m.sum()), 1), max(int((~m).sum()), 1)
    return np.r_[0.0, fp / n0], np.r_[0.0, tp / n1]


def tpr_at_fpr(member: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Max TPR (%) over the thresholds whose FPR <= `fpr` (a fraction), as in LiRA / Privacy Meter.

    Needs about 1/fpr non-members to mean anything; `attack_metrics` reports the counts beside it.
    """
    m = _as_bool(member)
    if m.all() or not m.any():
        return float("nan")
    fprs, tprs = roc_points(m, scores)
    return float(tprs[fprs <= fpr].max() * 100.0)  # (0, 0) always qualifies


def attack_metrics(member: np.ndarray, scores: np.ndarray, decisions: np.ndarray) -> dict[str, float | int]:
    """Every per-attack metric of DESIGN §9; acc, balanced_acc, auc and tpr_* are percentages."""
    m = _as_bool(member)
    return {
        "acc": accuracy(m, decisions),
        "balanced_acc": balanced_accuracy(m, decisions),
        "auc": roc_auc(m, scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(m, scores, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(m, scores, 0.001),
        "n_members": int(m.sum()),
        "n_nonmembers": int((~m).sum()),
    }
