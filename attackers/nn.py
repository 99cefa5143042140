"""Learned attacks (paper §5.1.4-5.1.5): the artifact's one attack trainer and the mia_fc attacks.

  nn       features p                 (Shokri et al.)
  nn_top3  the 3 largest p, sorted    (Salem et al.'s Top3-NN)
  nn_cls   [p, one-hot(y)]            (Nasr et al.'s NNCls)

The attack model is trained on the pooled shadow rows (in = 1, out = 0) and applied to the victim rows
with the artifact's schedule: SGD (momentum 0.9, weight decay 5e-4), lr 1e-3 (the code's value; the
paper says 1e-2) divided by 10 at 1/2 and 3/4 of the epochs, CE on 2 logits, batches of 128
reshuffled each epoch. The artifact evaluated every epoch and kept the LAST epoch's accuracy (no model
selection), so evaluating once after the last epoch gives the same number. Scores are the final model's
softmax member probability. Feature tensors live on the device and batches are index slices.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from attackers.base import Attack, AttackInput, AttackResult
from attackers.features import one_hot, top_k_sorted
from attackers.metrics import paper_accuracy
from core.training import split_batches
from models import init_weights


@dataclass
class TrainConfig:
    """Settings of a learned attack (the artifact's values are the defaults)."""

    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 128
    device: str = "cpu"
    seed: int = 7


class TrainOutput(NamedTuple):
    paper_acc: float  # last epoch's plain accuracy (%) on the victim rows
    scores: np.ndarray  # softmax member probability of each victim row
    decisions: np.ndarray  # argmax of the 2 logits (1 = member)


def mia_fc(in_dim: int) -> nn.Module:
    """The artifact's attack MLP: in-512-256-128-2 with ReLU and Dropout 0.2 after the first two layers."""
    return nn.Sequential(
        nn.Linear(in_dim, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 2))


@contextmanager
def seeded(seed: int, device: torch.device | str) -> Iterator[None]:
    """Seed torch's RNGs (init, dropout) for the block and restore the caller's RNG state afterwards."""
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def _batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one row joins the previous batch because BatchNorm
    (SAMIA's input layer) cannot train on a single row."""
    return split_batches(torch.randperm(n, generator=generator).to(device), batch_size)


def _to_tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def train_attack_model(model: nn.Module, x_shadow: np.ndarray, y_shadow: np.ndarray, x_target: np.ndarray,
                       y_target: np.ndarray, *, epochs: int, lr: float, batch_size: int = 128,
                       device: torch.device | str = "cpu", seed: int = 7, desc: str = "attack") -> TrainOutput:
    """Train `model` on (x_shadow, y_shadow) with the artifact's schedule; evaluate on the victim rows."""
    device = torch.device(device)
    model = model.to(device)
    xs, ys = _to_tensor(x_shadow, torch.float32, device), _to_tensor(y_shadow, torch.long, device)
    xt = _to_tensor(x_target, torch.float32, device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(epochs * 0.5), int(epochs * 0.75)],
                                                 gamma=0.1)
    shuffle = torch.Generator().manual_seed(seed)
    with seeded(seed, device):  # dropout noise
        for _ in tqdm(range(epochs), desc=desc, leave=False, disable=None):
            model.train()
            for idx in _batches(xs.shape[0], batch_size, shuffle, device):
                loss = F.cross_entropy(model(xs[idx]), ys[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    logits = _predict(model, xt, max(batch_size, 4096))
    decisions = logits.argmax(dim=1).cpu().numpy()
    scores = torch.softmax(logits.to(torch.float64), dim=1)[:, 1].cpu().numpy()
    return TrainOutput(paper_accuracy(y_target, decisions, balanced=False), scores, decisions)


class LearnedAttack(Attack):
    """Shared run(): features -> fresh seeded model -> `train_attack_model` -> one AttackResult."""

    config_cls = TrainConfig

    def features(self, probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
        raise NotImplementedError

    def build(self, in_dim: int, num_cls: int) -> nn.Module:
        return mia_fc(in_dim)

    def run(self, data: AttackInput) -> list[AttackResult]:
        cfg = self.config
        x_s = self.features(data.shadow_probs, data.shadow_sens, data.shadow_labels, data.num_cls)
        x_t = self.features(data.target_probs, data.target_sens, data.target_labels, data.num_cls)
        with seeded(cfg.seed, cfg.device):  # the model's initial weights
            model = init_weights(self.build(x_s.shape[1], data.num_cls))
        out = train_attack_model(model, x_s, data.shadow_member, x_t, data.target_member, epochs=cfg.epochs,
                                 lr=cfg.lr, batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed,
                                 desc=self.name)
        return [AttackResult(name=self.name, scores=out.scores, decisions=out.decisions,
                             paper_acc=out.paper_acc, extra={"epochs": cfg.epochs, "lr": cfg.lr})]


class NNAttack(LearnedAttack):
    """Shokri et al.'s NN attack on the confidence vector p."""

    name = "nn"
    artifact_lines = {"nn": "NN attack accuracy {:.3f}"}

    def features(self, probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
        return probs


class NNTop3Attack(LearnedAttack):
    """Salem et al.'s Top3-NN: the three largest confidences, sorted."""

    name = "nn_top3"
    artifact_lines = {"nn_top3": "Top3-NN Attack Accuracy {}"}

    def features(self, probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
        return top_k_sorted(probs, 3)


class NNClsAttack(LearnedAttack):
    """Nasr et al.'s NNCls: confidences and the one-hot ground-truth label."""

    name = "nn_cls"
    artifact_lines = {"nn_cls": "NNCls Attack Accuracy {}"}

    def features(self, probs: np.ndarray, sens: np.ndarray, labels: np.ndarray, num_cls: int) -> np.ndarray:
        return np.concatenate([probs, one_hot(labels, num_cls)], axis=1)
