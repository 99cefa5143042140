"""RelaxLoss (Chen et al., ICLR'22, Algorithm 1) as the public RelaxLoss code and WeMem run it
(docs/wemem.md).

alpha = --defend_arg is the target training loss; upper = 1. With CE the batch's mean cross-entropy and the
epoch counted from 0 inside this fine-tuning run:

- even epochs: loss = |CE - alpha| (descent above alpha, ascent below it);
- odd epochs, CE > alpha: loss = CE (plain descent);
- odd epochs, CE <= alpha: posterior flattening. Soft targets keep the model's own true-class probability
  p_y = softmax(z)_y clamped to [0, upper] (NOT detached, as in the original code) and give each of the
  other C-1 classes (1 - p_y) / (C - 1). The per-sample loss is (1 - correct) * CE_soft - CE, where
  correct = [argmax z == y] and CE_soft = -sum_c t_c log softmax(z)_c, averaged over the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defenses.base import ArgSpec, Defense

UPPER = 1.0  # the clamp on p_y in the soft targets (RelaxLoss's `upper`, 1 in every published script)


def flattening_loss(logits: torch.Tensor, y: torch.Tensor, upper: float = UPPER) -> torch.Tensor:
    """The posterior-flattening branch: mean of (1 - correct) * CE(z, soft targets) - CE(z, y)."""
    log_p = F.log_softmax(logits, dim=1)
    p_true = log_p.exp().gather(1, y[:, None]).clamp(0.0, upper)  # (B, 1), gradient flows through it
    onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    soft = onehot * p_true + (1 - onehot) * (1 - p_true) / (logits.shape[1] - 1)
    wrong = (logits.argmax(1) != y).to(logits.dtype)
    ce_soft = -(soft * log_p).sum(1)
    ce_hard = -log_p.gather(1, y[:, None]).squeeze(1)
    return (wrong * ce_soft - ce_hard).mean()


def relax_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float, epoch: int,
               upper: float = UPPER) -> tuple[torch.Tensor, torch.Tensor]:
    """(RelaxLoss objective, mean CE) for one batch at `epoch` (0-based)."""
    ce = F.cross_entropy(logits, y)
    if epoch % 2 == 0:
        return (ce - alpha).abs(), ce
    # torch.where instead of `if ce > alpha` keeps the choice on the device (no GPU sync per batch); the
    # unselected branch receives an exactly zero gradient.
    return torch.where(ce > alpha, ce, flattening_loss(logits, y, upper)), ce


class RelaxLoss(Defense):
    """Fine-tuning with RelaxLoss; alpha = --defend_arg. Logs the batch-mean cross-entropy as `CE`."""

    name = "relaxloss"
    log_suffix = " With RelaxLoss"
    arg = ArgSpec("alpha, target training loss of RelaxLoss (its scripts use 1)", 1.0, strict=True)

    def __init__(self, alpha: float, upper: float = UPPER) -> None:
        self.alpha = alpha
        self.upper = upper

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(x)
        total, ce = relax_loss(logits, y, self.alpha, epoch, self.upper)
        return total, logits, {"CE": ce}
