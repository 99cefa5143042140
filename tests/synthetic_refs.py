"""A synthetic victim + reference models for the reference-model attacks (LiRA, RMIA, loss).

Each point has a difficulty d ~ N(0, 2^2) that every model shares; a model's statistic phi on a point is
d + shift * [the model trained on it] + N(0, 0.5^2). With shift > 0 training raises phi ("leaky"); with
shift = 0 members and non-members are drawn alike (null). The spread of d across points (2) is much wider
than the member shift, so a global loss threshold sees mostly difficulty, while per-point calibration
against references (LiRA, RMIA) sees the shift: the situation these attacks were made for.
"""
from __future__ import annotations

import numpy as np

from attackers.base import AttackInput

DIFFICULTY_SD, NOISE_SD = 2.0, 0.5


def _balanced_in(rng: np.random.Generator, n: int, n_refs: int) -> np.ndarray:
    """(n, n_refs) bool, each point IN for exactly half the references (LiRA's argsort scheme)."""
    return np.argsort(rng.random((n, n_refs)), axis=1) < n_refs // 2


def reference_input(leaky: bool, *, offline: bool = False, n_targets: int = 2000, n_pop: int = 1000,
                    n_refs: int = 16, shift: float = 1.5, seed: int = 0) -> AttackInput:
    """Targets: first half members of the victim, second half not. Online: each target and each z is IN
    for half the references; offline: no reference saw any target or z (reference_in None)."""
    rng = np.random.default_rng(seed)
    shift = shift if leaky else 0.0
    d_x, d_z = rng.normal(0, DIFFICULTY_SD, n_targets), rng.normal(0, DIFFICULTY_SD, n_pop)
    member = np.r_[np.ones(n_targets // 2, np.int64), np.zeros(n_targets - n_targets // 2, np.int64)]

    def stat(d: np.ndarray, trained: np.ndarray) -> np.ndarray:
        return d + shift * trained + rng.normal(0, NOISE_SD, trained.shape)

    in_x = np.zeros((n_targets, n_refs), bool) if offline else _balanced_in(rng, n_targets, n_refs)
    in_z = np.zeros((n_pop, n_refs), bool) if offline else _balanced_in(rng, n_pop, n_refs)
    empty = np.zeros((0, 2))
    return AttackInput(
        shadow_probs=empty, shadow_sens=empty, shadow_labels=np.zeros(0, np.int64), shadow_member=np.zeros(0),
        target_probs=np.full((n_targets, 2), 0.5), target_sens=np.zeros((n_targets, 2)),
        target_labels=np.zeros(n_targets, np.int64), target_member=member, num_cls=2,
        target_stat=stat(d_x, member.astype(bool)), reference_stats=stat(d_x[:, None], in_x),
        reference_in=None if offline else in_x, population_stat=stat(d_z, np.zeros(n_pop, bool)),
        population_ref_stats=stat(d_z[:, None], in_z), population_ref_in=None if offline else in_z)
