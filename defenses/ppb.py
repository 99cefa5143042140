"""PPB, pair-based posterior balancing (paper §6.2, eq. 6), as the artifact implements it (README difference 16).

loss = CE(z, y) + lambda * KL, where the batch of logits z (size B) is sorted per row in descending order
(the softmax of sorted logits is the sorted posterior R(f_p(x)) of eq. 6), B' = 2*floor(B/2) rows are kept,
row i is paired with row i + B'/2, and

    KL = kl_div(log_softmax(sorted first half), softmax(sorted second half), reduction='batchmean')
       = mean over the B'/2 pairs of KL(P_second || P_first).

Nothing is detached, so both members of a pair are pulled towards each other. The batch is a random
permutation of the training set, so the halves form random pairs without replacement, as §6.2 says. The
paper's eq. 6 sums CE over the B rows and KL over the B/2 pairs; the artifact (and this code) averages both,
so B * loss = eq. 6 with lambda_paper = 2 * lambda: this lambda is the paper's / 2, up to the scale 1/B.
KL = 0 when B' = 0 (a batch of one).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defenses.base import ArgSpec, Defense


def ppb_loss(logits: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(CE + lam * KL, CE, KL) for one batch of logits: the artifact's pairs are the two halves of the batch."""
    ce = F.cross_entropy(logits, y)
    half = logits.shape[0] // 2
    if half == 0:
        kl = logits.new_zeros(())
    else:
        ranked = logits.sort(dim=1, descending=True).values
        kl = F.kl_div(F.log_softmax(ranked[:half], dim=1), F.softmax(ranked[half:2 * half], dim=1),
                      reduction="batchmean")
    return ce + lam * kl, ce, kl


class PPB(Defense):
    """Fine-tuning with the PPB regulariser; lambda = --defend_arg. Logs the artifact's Loss1 (CE), Loss2 (KL)."""

    name = "ppb"
    log_suffix = " With PPB"
    arg = ArgSpec("lambda, weight of the sorted-posterior KL term (paper sweeps 1,2,4,8,16)", 4.0)

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(x)
        total, ce, kl = ppb_loss(logits, y, self.lam)
        return total, logits, {"Loss1": ce, "Loss2": kl}
