"""Attack metrics (docs/design.md §7.4): the paper's accuracy plus the metrics the field now expects.

Units: every metric here is a PERCENTAGE in [0, 100] (accuracy, balanced accuracy, ROC AUC, TPR at a
fixed FPR); the FPR bound passed to `tpr_at_fpr` is a fraction (0.01 = 1 %).
Uncertainty: `bootstrap_ci` gives percentile intervals over target points resampled with replacement,
stratified by membership; `resolvable` says whether a TPR at a given FPR can be told apart from TPR at 0.
Conventions: `member` is 0/1 ground truth, `scores` are "larger = more likely a member", `decisions`
are hard 0/1 verdicts. Scores must be finite (`NonFiniteScores` otherwise: no metric of NaN scores). ROC
and AUC come from scikit-learn; the rest is plain numpy, O(n log n) at most.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _as_bool(member: np.ndarray) -> np.ndarray:
    return np.asarray(member).astype(bool).ravel()


class NonFiniteScores(ValueError):
    """Scores holding NaN or infinity: no ROC exists for them. (Before this check, a Mann-Whitney AUC of
    NaN scores read 50 % while the TPR at 1 % FPR read 100 %.)"""


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """`scores` as a flat float64 array, or NonFiniteScores saying how many are NaN / infinite."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    bad = ~np.isfinite(s)
    if bad.any():
        raise NonFiniteScores(f"{int(np.isnan(s).sum())} NaN and {int(np.isinf(s).sum())} infinite scores "
                              f"among {s.size}")
    return s


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


def roc_auc(member: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (%) from scikit-learn's roc_auc_score (trapezoidal ROC: tied scores count one half)."""
    m = _as_bool(member)
    if m.all() or not m.any():
        return float("nan")
    return float(roc_auc_score(m, finite_scores(scores)) * 100.0)


def roc_points(member: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) fractions for "member iff score >= t" at every distinct t, from (0, 0) up to (1, 1).

    scikit-learn's roc_curve with drop_intermediate=False: the default would drop collinear points, and a
    dropped point can be the last one under an FPR bound, which would lower `tpr_at_fpr`.
    """
    fpr, tpr, _ = roc_curve(_as_bool(member), finite_scores(scores), drop_intermediate=False)
    return fpr, tpr


def tpr_at_fpr(member: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Max TPR (%) over the thresholds whose FPR <= `fpr` (a fraction): the project's rule on top of
    scikit-learn's ROC, as Privacy Meter reports it (LiRA's code takes FPR strictly below the bound; the two
    differ only when an ROC point sits exactly on the bound). No interpolation between ROC points.

    Needs about 1/fpr non-members to mean anything; `attack_metrics` reports the counts beside it.
    """
    m = _as_bool(member)
    if m.all() or not m.any():
        return float("nan")
    fprs, tprs = roc_points(m, scores)
    return float(tprs[fprs <= fpr].max() * 100.0)  # (0, 0) always qualifies


# ---------------------------------------------------------------------------------------------- bootstrap

def resolvable(n_nonmembers: int, fpr: float) -> bool:
    """Whether a TPR at FPR <= `fpr` (a fraction) can mean anything: more than 1/fpr non-members are needed.

    With n0 <= 1/fpr non-members the bound admits no false positive at all, so the figure is the TPR at
    FPR 0 whatever `fpr` says (at 0.01 % FPR: more than 10,000 non-members). 1/fpr is rounded to 1e-6 so
    that e.g. 1/0.001 does not become 1000.0000000000001 through binary fractions.
    """
    if not 0.0 < fpr <= 1.0:
        raise ValueError(f"fpr must be in (0, 1], got {fpr}")
    return int(n_nonmembers) > round(1.0 / fpr, 6)


class BatchedMetric(Protocol):
    """A metric that can also score many resamples at once (draws: (B, k) row indices, one row per resample)."""

    def __call__(self, member: np.ndarray, scores: np.ndarray) -> float: ...

    def batched(self, member: np.ndarray, scores: np.ndarray, draws: np.ndarray) -> np.ndarray: ...


def _group_counts(member: np.ndarray, scores: np.ndarray, draws: np.ndarray,
                  descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """(B, G) member and non-member counts per tie group of the scores, groups in sorted order, per resample.

    One weighted bincount per class over (resample, group) cells: O(B k) with no (B, n) reordering.
    """
    _, inverse = np.unique(-scores if descending else scores, return_inverse=True)
    n_groups, b = int(inverse.max()) + 1, draws.shape[0]
    cell = (inverse.ravel()[draws] + n_groups * np.arange(b)[:, None]).ravel()
    is_in = member[draws].ravel().astype(np.float64)
    counts_in = np.bincount(cell, weights=is_in, minlength=b * n_groups).reshape(b, n_groups)
    counts_out = np.bincount(cell, minlength=b * n_groups).reshape(b, n_groups) - counts_in
    return counts_in, counts_out


@dataclass(frozen=True)
class Auc:
    """`roc_auc` (%) with a vectorised form for the bootstrap."""

    def __call__(self, member: np.ndarray, scores: np.ndarray) -> float:
        return roc_auc(member, scores)

    def batched(self, member: np.ndarray, scores: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """Mann-Whitney per resample: sum over groups of in_g * (out below g + out_g / 2), over n1 * n0."""
        in_g, out_g = _group_counts(_as_bool(member), np.asarray(scores, np.float64).ravel(), draws, False)
        below = np.cumsum(out_g, axis=1) - 0.5 * out_g
        return (in_g * below).sum(axis=1) / (in_g.sum(axis=1) * out_g.sum(axis=1)) * 100.0


@dataclass(frozen=True)
class TprAtFpr:
    """`tpr_at_fpr` (%) at a fixed bound, with a vectorised form for the bootstrap."""

    fpr: float

    def __call__(self, member: np.ndarray, scores: np.ndarray) -> float:
        return tpr_at_fpr(member, scores, self.fpr)

    def batched(self, member: np.ndarray, scores: np.ndarray, draws: np.ndarray) -> np.ndarray:
        in_g, out_g = _group_counts(_as_bool(member), np.asarray(scores, np.float64).ravel(), draws, True)
        # cumulative TP / FP after each whole tie group, highest scores first (a threshold cannot split a tie)
        tp, fp = np.cumsum(in_g, axis=1), np.cumsum(out_g, axis=1)
        ok = fp / fp[:, -1:] <= self.fpr  # the same float test as tpr_at_fpr; TP grows, so max = last ok
        return np.max(np.where(ok, tp / tp[:, -1:], 0.0), axis=1) * 100.0


def _stratified_draws(member: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) row indices: each row draws |in| members and |out| non-members with replacement, so every
    resample keeps the original class sizes and both classes (AUC and TPR stay defined)."""
    rows_in, rows_out = np.flatnonzero(member), np.flatnonzero(~member)
    pick_in = rows_in[rng.integers(0, rows_in.size, (n_resamples, rows_in.size))]
    pick_out = rows_out[rng.integers(0, rows_out.size, (n_resamples, rows_out.size))]
    return np.concatenate([pick_in, pick_out], axis=1)


def bootstrap_values(member: np.ndarray, scores: np.ndarray,
                     metric_fn: Callable[[np.ndarray, np.ndarray], float] | BatchedMetric,
                     n_resamples: int, seed: int) -> np.ndarray:
    """The metric on `n_resamples` stratified resamples of the target points (same draws for any metric).

    A metric with a `batched` method (Auc, TprAtFpr) scores all resamples in one pass over (resample, tie
    group) counts; any other callable is called once per resample on the drawn rows.
    """
    m = _as_bool(member)
    s = finite_scores(scores)
    if m.all() or not m.any():
        raise ValueError("bootstrap needs at least one member and one non-member")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    draws = _stratified_draws(m, n_resamples, np.random.default_rng(seed))
    batched = getattr(metric_fn, "batched", None)
    if batched is not None:
        return np.asarray(batched(m, s, draws), np.float64)
    return np.array([metric_fn(m[d], s[d]) for d in draws])


def bootstrap_ci(member: np.ndarray, scores: np.ndarray,
                 metric_fn: Callable[[np.ndarray, np.ndarray], float] | BatchedMetric,
                 n_resamples: int, seed: int, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of metric_fn over target points resampled with replacement,
    stratified by membership (members and non-members are resampled separately, keeping their counts)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = bootstrap_values(member, scores, metric_fn, n_resamples, seed)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------- summary

def attack_metrics(member: np.ndarray, scores: np.ndarray, decisions: np.ndarray, *, n_bootstrap: int = 0,
                   seed: int = 0) -> dict[str, float | int]:
    """Every per-attack metric of docs/design.md §7.4; acc, balanced_acc, auc and tpr_* are percentages.

    n_bootstrap > 0 adds 95 % percentile-bootstrap intervals (stratified resampling of the target points,
    `bootstrap_ci`) for the AUC and the TPR at 0.1 % FPR, from the same resamples.
    """
    m = _as_bool(member)
    scores = finite_scores(scores)  # NonFiniteScores: no metric is reported for NaN scores
    out: dict[str, float | int] = {
        "acc": accuracy(m, decisions),
        "balanced_acc": balanced_accuracy(m, decisions),
        "auc": roc_auc(m, scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(m, scores, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(m, scores, 0.001),
        "tpr_at_0.01pct_fpr": tpr_at_fpr(m, scores, 0.0001),
        "n_members": int(m.sum()),
        "n_nonmembers": int((~m).sum()),
    }
    if n_bootstrap > 0 and m.any() and not m.all():
        for key, fn in (("auc", Auc()), ("tpr_at_0.1pct_fpr", TprAtFpr(0.001))):
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = bootstrap_ci(m, scores, fn, n_bootstrap, seed)
    return out
