"""AMIA (§4): membership inference against a searched network through its prediction vectors.

The target is the searched architecture retrained from scratch on D^theta (DARTS' evaluation protocol), so
D^alpha reaches it only through the architecture; its members are D^alpha, its non-members the unseen split.
The same target is also attacked for membership in D^theta (the weights' training set) as the comparison.
A shadow is trained on the attacker's data (D^s_train members, D^s_test non-members), with a fixed registry
architecture or, for the improved AMIA (§4.3), with an architecture the attacker searched on its own data.
Attack models: the 3-layer feed-forward net of Appendix C (SGD) on the sorted prediction vector, and the
project's threshold family. Metrics: the paper's eq. 11 (2P - 1) and eq. 12 (F1) beside attack_metrics.
Member and non-member sets are cut to equal size, so P (the accuracy) has 0.5 as chance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from torch import nn

from attackers.base import AttackInput, AttackResult
from attackers.metrics import attack_metrics, paper_accuracy
from attackers.threshold import ThresholdAttack
from core.config_schema import key
from core.training import FitResult, SplitTensors, TrainConfig, fit
from models import MODELS


@dataclass(frozen=True)
class AmiaConfig:
    """The config's `amia` object."""

    shadow_model: str = key("columnfc", help="the fixed shadow's architecture (models.py)", kind=str,
                            choices=tuple(MODELS))
    searched_shadow: bool = key(True, help="also attack with a shadow whose architecture the attacker searched "
                                "(§4.3)", kind=bool)
    attack_epochs: int = key(100, help="epochs of the FFN attack model", kind=int, minimum=1, maximum=100_000)
    attack_lr: float = key(0.05, help="SGD learning rate of the FFN attack model", kind=float, minimum=0,
                           maximum=10, strict=True)
    attack_hidden: int = key(64, help="hidden units of the FFN attack model", kind=int, minimum=1,
                             maximum=100_000)
    eta: float = key(1.0, help="Table 5: share of the attacker's data from the target's distribution", kind=float,
                     minimum=0, maximum=1, strict=True)


def train_on(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
             cfg: TrainConfig, generator: torch.Generator, label: str) -> FitResult:
    """Train on `train` alone: no held-out data is spent on model selection (dev = train), test is only logged."""
    data = SplitTensors(train[0], train[1], train[0], train[1], test[0], test[1])
    return fit(model, data, cfg, generator=generator, label=label)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.cat([F.softmax(model(x[i:i + 1024]), 1) for i in range(0, len(x), 1024)]).cpu().numpy()


def balanced(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, membership) with the first min(|in|, |out|) of each side."""
    k = min(len(members), len(nonmembers))
    return np.concatenate([members[:k], nonmembers[:k]]), np.r_[np.ones(k, np.int64), np.zeros(k, np.int64)]


def eta_mix(x: torch.Tensor, eta: float, generator: torch.Generator) -> torch.Tensor:
    """Table 5: replace a (1 - eta) share of the attacker's samples by samples of another distribution.

    No second dataset ships with the quick profile, so "another distribution" is the same images with one
    fixed random permutation of pixel positions (same pixel statistics, no digit structure); labels are kept.
    """
    if eta >= 1.0:
        return x
    n = len(x)
    swap = torch.randperm(n, generator=generator)[:int(round((1 - eta) * n))]
    perm = torch.randperm(x[0].numel(), generator=generator)
    out = x.clone()
    out[swap] = x[swap].flatten(1)[:, perm].view_as(x[swap])
    return out


def ffn(num_cls: int, hidden: int) -> nn.Module:
    """Appendix C's 3-layer feed-forward attack model: sorted prediction vector -> hidden -> hidden -> 2."""
    return nn.Sequential(nn.Linear(num_cls, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 2))


def ffn_attack(data: AttackInput, cfg: AmiaConfig, generator: torch.Generator) -> AttackResult:
    """Fit the FFN on the shadow's (member, non-member) prediction vectors by the project's loop, with SGD."""
    feats = lambda p: torch.from_numpy(-np.sort(-p, axis=1)).float()
    xs, ys = feats(data.shadow_probs), torch.from_numpy(data.shadow_member).long()
    xt, yt = feats(data.target_probs), torch.from_numpy(data.target_member).long()
    model = ffn(data.num_cls, cfg.attack_hidden)
    tcfg = TrainConfig(epochs=cfg.attack_epochs, batch_size=64, early_stop=cfg.attack_epochs, optimizer="sgd",
                       lr=cfg.attack_lr, weight_decay=0.0, progress=False)
    fit(model, SplitTensors(xs, ys, xs, ys, xt, yt), tcfg, generator=generator, label="Attack ")
    score = predict(model, xt)[:, 1]
    decisions = (score >= 0.5).astype(np.int64)
    return AttackResult("ffn", score, decisions, paper_accuracy(data.target_member, decisions, balanced=False))


def paper_metrics(member: np.ndarray, decisions: np.ndarray) -> dict[str, float]:
    """Eq. 11: attack acc = 2 P[V = eps] - 1; eq. 12: F1 of the member class (both as fractions, as the paper)."""
    m, d = np.asarray(member).astype(bool), np.asarray(decisions).astype(bool)
    p = float((m == d).mean())
    tp = float((m & d).sum())
    precision = tp / d.sum() if d.any() else 0.0
    recall = tp / m.sum() if m.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"attack_acc_2p1": 2 * p - 1, "f1": f1}


def run_attacks(data: AttackInput, cfg: AmiaConfig, generator: torch.Generator) -> list[tuple[AttackResult, dict]]:
    """Every attack on one (shadow, target) pair: its result (per-sample scores and decisions) and one dict
    with both metric families."""
    results = [ffn_attack(data, cfg, generator), *ThresholdAttack().run(data)]
    return [(r, {"attack": r.name, "paper_acc": r.paper_acc,
                 **attack_metrics(data.target_member, r.scores, r.decisions),
                 **paper_metrics(data.target_member, r.decisions)}) for r in results]


def binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def accuracy_cap(bits: float, pairs: int) -> float:
    """The largest average accuracy (a fraction) any attack can reach in telling `pairs` members from as many
    non-members when what it observes depends on the members only through `bits` bits, as the retrained
    target depends on D^alpha only through its genotype (SpaceConfig.genotype_bits).

    Pair each member with a non-member and let a fair coin say which of the two was the member, independently
    per pair: n = `pairs` independent bits b_i. Each decision about pair i is an estimate of b_i, so by Fano's
    inequality its accuracy p_i obeys 1 - h(p_i) <= I(b_i; T) (T what the attacker sees, h the binary entropy),
    and sum_i I(b_i; T) <= I(b; T) <= H(genotype) <= bits. h is concave, so the mean accuracy p obeys
    1 - h(p) <= bits / n: p is at most the root of h(p) = 1 - bits / n above 1/2 (1 once bits >= n).
    """
    if pairs <= 0 or bits >= pairs:
        return 1.0
    return float(brentq(lambda p: binary_entropy(p) - (1 - bits / pairs), 0.5, 1.0))


def attack_input(shadow: tuple[np.ndarray, np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray, np.ndarray],
                 num_cls: int) -> AttackInput:
    """(probs, labels, member) of shadow and target; sensitivities are not used by these attacks (zeros)."""
    (sp, sl, sm), (tp, tl, tm) = shadow, target
    return AttackInput(sp, np.zeros_like(sp), sl, sm, tp, np.zeros_like(tp), tl, tm, num_cls)
