"""The paper's defenses (§5, Table 6; Appendix D), one function each, plus the name registry.

  arch_grad_noise  ADRA: Gaussian noise (std = arg, paper N(0, 0.01) -> 0.1) on the architecture update; in a
                   search it is added to every architecture gradient (nas.search.SearchConfig.arch_grad_noise)
  arch_l2          AMIA "LR": arg * sum(alpha^2) added to the architecture loss during search
  sample_noise     AMIA "DP": Gaussian noise (std = arg) added once to every training sample (D^theta, D^alpha)
  distill          AMIA "MD", DMP-style: the target labels the unlabelled reference set with soft labels, the
                   lowest-entropy share `arg` of it is kept, and a student of the same searched architecture is
                   trained on it alone; the student is what answers queries
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from core.training import FitResult, SplitTensors, TrainConfig, TrainHooks, fit

DEFENSES = ("none", "arch_grad_noise", "arch_l2", "sample_noise", "distill")
DEFAULT_ARG = {"none": 0.0, "arch_grad_noise": 0.1, "arch_l2": 1e-3, "sample_noise": 0.1, "distill": 0.5}
# Defenses that change what the search sees; the others (distill) act after it, so nas_privacy.py reuses the
# undefended search for them instead of repeating it (~15 s of a quick run each).
SEARCH_DEFENSES = ("arch_grad_noise", "arch_l2", "sample_noise")


def check_defense(name: str, arg: float) -> None:
    if name not in DEFENSES:
        raise UserError(f"unknown defense '{name}'", "valid: " + ", ".join(DEFENSES))
    if arg < 0 or (name == "distill" and not 0 < arg <= 1):
        raise UserError(f"defense {name}: bad argument {arg}", "noise / lambda >= 0; distill keeps a share in (0, 1]")


def noisy(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, std^2), one seeded draw (the same sample always gets the same noise)."""
    return x + std * torch.randn(x.shape, generator=generator).to(x.device) if std > 0 else x


class SoftLabelHooks(TrainHooks):
    """Cross-entropy against the teacher's soft labels; `batches` remembers the indices so `loss` can look them up."""

    name = "distill"

    def __init__(self, soft: torch.Tensor) -> None:
        self.soft = soft
        self._idx: torch.Tensor | None = None

    def batches(self, n: int, batch_size: int, generator: torch.Generator):  # type: ignore[override]
        for idx in super().batches(n, batch_size, generator):
            self._idx = idx
            yield idx

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int):  # type: ignore[override]
        assert self._idx is not None
        logits = model(x)
        return -(self.soft[self._idx.to(self.soft.device)] * F.log_softmax(logits, 1)).sum(1).mean(), logits, {}


@torch.no_grad()
def dmp_reference(teacher: nn.Module, ref_x: torch.Tensor, keep: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DMP's selection: the teacher's soft labels on the reference set, keeping the `keep` lowest-entropy share."""
    teacher.eval()
    probs = F.softmax(teacher(ref_x), 1)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(1)
    chosen = entropy.argsort()[:max(1, int(keep * len(ref_x)))]
    return ref_x[chosen], probs[chosen]


def distill(teacher: nn.Module, student: nn.Module, ref_x: torch.Tensor, keep: float, test: tuple[torch.Tensor,
            torch.Tensor], cfg: TrainConfig, generator: torch.Generator) -> FitResult:
    """Train `student` on the selected reference set with the teacher's soft labels, by the project's loop."""
    x, soft = dmp_reference(teacher, ref_x, keep)
    hard = soft.argmax(1)
    data = SplitTensors(x, hard, x, hard, test[0], test[1])
    return fit(student, data, cfg, hooks=SoftLabelHooks(soft), generator=generator, label="Distill ")
