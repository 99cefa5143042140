"""BlindMI-Diff-w (Hui et al., NDSS '21), the "BlindMI" of paper §5.1.4, without shadow models.

The paper ran hyhmia/BlindMI `BlindMI_Diff_W.py`; the artifact has no BlindMI at all (README difference 11). That
script, which we follow:
  1. Probes the victim on the target rows and on a few (20) generated non-members (the reference set R).
  2. Shuffles the target rows into batches of 20. Per batch, all rows start as candidate members M and a
     pass is repeated until nothing moves: for every candidate i still in M, compare the kernel MMD
     between R + {i} and M - {i} with the MMD between R and M (both at the start of the pass); if the
     distance grows, i is a non-member and leaves M at the end of the pass. R never grows: moved rows are
     only dropped from M, exactly as in the script.
  3. MMD is the biased two-sample estimate E k(r, r') + E k(m, m') - 2 E k(r, m) with a sum of Gaussian
     kernels k(a, b) = sum_s exp(-|a - b|^2 / (2 s)) over the script's 19 widths s in 1e-6 .. 1e6.

Our choices:
  * Features: the 3 largest victim confidences, sorted (label-free, so the generated references need no
    label). The script used [p_y, top-1, top-2]; both are "top-3 style" probes.
  * Generated non-members: `generate_nonmembers` permutes, per sample, the positions of randomly drawn
    target inputs (pixel positions jointly over channels for images, features for tabular rows). BlindMI's
    default generator is a Sobel edge filter, which only exists for uint8 images; a position shuffle works
    for every dataset here, keeps each input's value histogram (the same normalised range, binary records
    stay binary with the same number of ones) and destroys the structure the victim learned, so the victim
    has never seen anything like it. Pure N(0, 1) noise would make binary records non-binary.
  * Vectorised: every batch's (b x b) kernel matrix and every row's kernel sum against R are precomputed
    once; each pass evaluates every candidate's MMD after the move in closed form from row sums of those
    (no re-evaluation per candidate), for all batches at once (padded to one size with a validity mask).
    Memory: n_target * batch_size floats, plus blocks of at most 4M kernel entries.
  * Batches come from np.array_split, so sizes differ by at most one and no batch is a lone row.
  * The script clamps the MMD at 1e-4 before comparing; we compare unclamped values (the clamp only
    matters for MMD^2 < 1e-4, where it would turn every comparison into a tie and destroy the ranking).
  * Score (larger = member) = -(MMD change) of the move evaluated in the pass that decided the row:
    the pass that moved it out (change > 0, score < 0), or the final pass for rows left in M
    (change <= 0, score >= 0). So decision == (score >= 0). Rows of a batch whose M has shrunk to one
    row keep the score of the last pass in which they could move.
paper_acc: plain accuracy (%) of the hard decisions (the script's `evaluate_attack`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attackers.base import Attack, AttackInput, AttackResult, TargetAccess
from attackers.features import top_k_sorted
from attackers.metrics import paper_accuracy

SIGMAS = np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 5, 10, 15, 20, 25, 30, 35, 100, 1e3, 1e4, 1e5, 1e6])
K_SELF = float(len(SIGMAS))  # k(a, a): every kernel width contributes exp(0) = 1


@dataclass
class BlindMIConfig:
    """batch_size: target rows per differential comparison (the script's 20).
    n_reference: generated non-members used as R (the script's 20); the caller should generate this many
    with `generate_nonmembers`; if it passes more, only the first n_reference rows are used (None = all).
    seed: the shuffle of the target rows into batches."""

    batch_size: int = 20
    n_reference: int | None = 20
    seed: int = 7


def generate_nonmembers(x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n generated non-members: random rows of x with their positions shuffled per sample.

    Images (N, C, H, W) have their H*W pixel positions permuted jointly over channels (pixels keep their
    colour); tabular rows (N, D) have their D features permuted. Randomness comes from `generator` (CPU).
    """
    src = x[torch.randint(0, x.shape[0], (n,), generator=generator).to(x.device)]
    flat = src.reshape(n, src.shape[1] if src.dim() > 2 else 1, -1)
    perm = torch.rand(n, flat.shape[2], generator=generator).argsort(dim=1).to(x.device)
    return flat.gather(2, perm[:, None, :].expand_as(flat)).reshape(src.shape)


def kernel_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_s exp(-|a_i - b_j|^2 / (2 s)) for the last two axes (..., na, d) x (..., nb, d)."""
    d2 = np.sum((a[..., :, None, :] - b[..., None, :, :]) ** 2, axis=-1)
    out = np.zeros_like(d2)
    for s in SIGMAS:  # a loop over widths keeps memory at one (..., na, nb) array
        out += np.exp(-d2 / (2.0 * s))
    return out


def kernel_row_sums(a: np.ndarray, b: np.ndarray, rows_per_block: int = 4096) -> np.ndarray:
    """sum_j k(a_i, b_j) for every row of a, in blocks so a large b never needs an (na, nb, d) array."""
    step = max(1, min(rows_per_block, (1 << 22) // max(1, b.shape[0])))
    return np.concatenate([kernel_sum(a[i:i + step], b).sum(axis=1) for i in range(0, a.shape[0], step)])


def _within_batch_kernels(x: np.ndarray) -> np.ndarray:
    """kernel_sum(x[i], x[i]) for every batch i of x (nb, b, d), a block of batches at a time."""
    step = max(1, (1 << 22) // (x.shape[1] ** 2))
    return np.concatenate([kernel_sum(x[i:i + step], x[i:i + step]) for i in range(0, x.shape[0], step)])


def _pad_batches(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices per batch, padded to (n_batches, b_max) with -1, and the validity mask."""
    groups = np.array_split(order, max(1, -(-order.size // batch_size)))
    width = max(g.size for g in groups)
    idx = np.full((len(groups), width), -1, dtype=np.int64)
    for i, g in enumerate(groups):
        idx[i, :g.size] = g
    return idx, idx >= 0


def differential_comparison(target: np.ndarray, reference: np.ndarray, *, batch_size: int = 20,
                            seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """BlindMI-Diff-w on feature rows: (decisions 0/1, scores) per target row, in the input order."""
    order = np.random.default_rng(seed).permutation(target.shape[0])
    idx, valid = _pad_batches(order, batch_size)
    rows = np.where(valid, idx, 0)  # padded slots point at row 0 and are masked out below
    k_bb = _within_batch_kernels(target[rows])  # (nb, b, b): n * b floats, the only large array
    k_br = kernel_row_sums(target, reference)[rows]  # kR_i = sum_{r in R} k(i, r)
    r = float(reference.shape[0])
    s_rr = float(kernel_row_sums(reference, reference).sum())
    active = valid.copy()
    delta = np.zeros(valid.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            w = active.astype(np.float64)
            m = w.sum(axis=1, keepdims=True)
            k_bm = np.einsum("nij,nj->ni", k_bb, w)  # kM_i = sum_{j in M} k(i, j), includes k(i, i) if i in M
            s_mm = (k_bm * w).sum(axis=1, keepdims=True)
            s_rm = (k_br * w).sum(axis=1, keepdims=True)
            before = s_rr / r ** 2 + s_mm / m ** 2 - 2.0 * s_rm / (r * m)
            # i moves from M to R: S_RR' = S_RR + 2 kR_i + k_ii, S_MM' = S_MM - 2 kM_i + k_ii,
            # S_RM' = S_RM - kR_i + kM_i - k_ii, with |R'| = r + 1 and |M'| = m - 1
            after = ((s_rr + 2.0 * k_br + K_SELF) / (r + 1) ** 2 + (s_mm - 2.0 * k_bm + K_SELF) / (m - 1) ** 2
                     - 2.0 * (s_rm - k_br + k_bm - K_SELF) / ((r + 1) * (m - 1)))
            can = active & (m > 1)
            delta[can] = (after - before)[can]
            move = can & (delta > 0)
            if not move.any():
                break
            active &= ~move
    decisions, scores = np.zeros(target.shape[0], np.int64), np.zeros(target.shape[0])
    decisions[idx[valid]] = active[valid]
    scores[idx[valid]] = -delta[valid]
    return decisions, scores


class BlindMIAttack(Attack):
    """BlindMI-Diff-w with generated non-members; uses no shadow data."""

    name = "blindmi"
    config_cls = BlindMIConfig
    headline = ("blindmi",)
    reads = ("reference_probs",)  # no shadow data; `prepare` makes them by querying the victim

    def __init__(self, config: object | None = None) -> None:
        # A learned attack's settings (e.g. nn.TrainConfig) may be handed to every attack alike; only its
        # seed carries over, since its batch_size means an SGD batch, not a comparison batch.
        if isinstance(config, BlindMIConfig):
            self.config = config
        else:
            self.config = BlindMIConfig(seed=getattr(config, "seed", BlindMIConfig.seed))

    def prepare(self, target: TargetAccess) -> dict[str, Any]:
        """The victim's outputs on generated non-members (BlindMI's reference set R)."""
        gen = torch.Generator().manual_seed(self.config.seed)
        fake = generate_nonmembers(target.inputs, self.config.n_reference or len(target.inputs), gen)
        return {"reference_probs": target.query(fake.to(target.inputs.device))}

    def run(self, data: AttackInput) -> list[AttackResult]:
        if data.reference_probs is None:
            raise ValueError("blindmi needs AttackInput.reference_probs (victim outputs on generated non-members)")
        target = top_k_sorted(np.asarray(data.target_probs, np.float64), 3)
        reference = top_k_sorted(np.asarray(data.reference_probs, np.float64)[:self.config.n_reference], 3)
        decisions, scores = differential_comparison(target, reference, batch_size=self.config.batch_size,
                                                    seed=self.config.seed)
        return [AttackResult(name=self.name, scores=scores, decisions=decisions,
                             paper_acc=paper_accuracy(data.target_member, decisions, balanced=False),
                             extra={"batch_size": self.config.batch_size, "n_reference": reference.shape[0]})]
