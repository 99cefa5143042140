"""Adversarial regularisation (Nasr, Shokri, Houmansadr, CCS'18, Algorithm 1); alpha = --defend_arg.

Nasr et al. solve min_f max_h  L_D(f) + alpha * G(f, h), where the inference model h sees (f(x), y) and
G = E_member[log h] + E_reference[log(1 - h)] is its gain. Algorithm 1 alternates k steps of h (maximise G
on a member batch and a reference batch) with one step of f on a member batch, minimising
CE + alpha * log h(f(x), y). The artifact writes the classifier loss as CE - alpha * CE(h(f(x), y), member);
with a 2-way softmax h, CE(h, member) = -log h, so the two forms are the same. This module uses the
artifact's form.

Settings (artifact values unless marked):
- h = mia_fc (2C -> 512 -> 256 -> 128 -> 2, dropout 0.2, from attackers.nn) on [softmax(f(x)), one-hot(y)],
  Adam lr 1e-3, weight decay 5e-4.
- Reference non-members = the dev split, as in the artifact. Dev also drives early stopping, so dev accuracy
  is measured on data the defense has looked at (through h only; f never trains on dev labels).
- CHANGED: the artifact ran 7 steps of h and then ONE step of f per epoch (at most 25-50 classifier steps in
  all). Here every training batch gets `steps` (default k = 1, Nasr's Algorithm 1 setting) steps of h and
  then one step of f, through the whole epoch.
- Each step of h draws a fresh random member batch from the training split and a reference batch from dev
  (same size, at most the dev size) with the run's generator; f is in eval mode with no grad while h trains,
  and back in train mode for its own step.
- CHANGED: the artifact multiplied h's loss by alpha, which only rescales Adam's gradient against its weight
  decay and stops h from learning at all when alpha = 0; h here minimises its plain cross-entropy.
- During f's step h is in eval mode (no dropout) so the penalty is h's actual prediction; h's parameters
  are not in f's optimiser, and their gradients are cleared before each step of h.

`--defense_mode artifact` runs base_model.train_defend_adv as the artifact did, for comparison with the paper's
Figs 16-19: per epoch 7 steps of h, each on the next member batch of a freshly shuffled training loader and the
next batch of the UNSHUFFLED dev loader (so always dev's first rows; both loaders restart when exhausted), h
minimising alpha * CE; then ONE step of f on the first batch of another fresh shuffle; h initialised as the
artifact's BaseModel did (Xavier-normal weights, zero biases; PyTorch's default init otherwise).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attackers.nn import mia_fc
from core.training import SplitTensors, StepStats, TrainConfig
from defenses.base import ArgSpec, Defense
from models import init_weights

ADV_LR = 1e-3
ADV_WEIGHT_DECAY = 5e-4
ARTIFACT_ADVERSARY_STEPS = 7  # the artifact's infer_iterations, per epoch


def attack_features(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """h's input: [softmax(f(x)), one-hot(y)] (2C columns)."""
    return torch.cat([F.softmax(logits, dim=1), F.one_hot(y, logits.shape[1]).to(logits.dtype)], dim=1)


def loader_batches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool) -> Iterator[torch.Tensor]:
    """A DataLoader's index batches read past its end as the artifact did (StopIteration -> a new iterator):
    passes of `batch_size` batches (the last one smaller), a new permutation per pass when `shuffle`."""
    while True:
        order = torch.randperm(n, generator=generator, device=generator.device) if shuffle else torch.arange(n)
        yield from order.split(batch_size)


class AdvReg(Defense):
    """Nasr et al.'s min-max fine-tuning; counts its steps in `adversary_steps` / `classifier_steps`."""

    name = "adv"
    log_suffix = " With ADV"
    arg = ArgSpec("alpha, weight of the inference model's gain (paper sweeps 0.5,1,2,4,8,16)", 4.0)
    uses = {"steps": "adv_steps", "mode": "defense_mode"}
    modes = ("fixed", "artifact")

    def __init__(self, alpha: float, steps: int = 1, mode: str = "fixed") -> None:
        self.alpha = alpha
        self.mode = mode
        self.artifact = mode == "artifact"
        self.steps = ARTIFACT_ADVERSARY_STEPS if self.artifact else steps
        self.adversary_steps = 0
        self.classifier_steps = 0

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        self.train_x, self.train_y = data.train_x, data.train_y
        self.ref_x, self.ref_y = data.dev_x, data.dev_y
        self.generator = generator
        self.batch_size = cfg.batch_size  # the step counts add up over iterative pruning's rounds
        num_cls = self._num_classes(model, data.train_x[:1])
        adversary = mia_fc(2 * num_cls)
        self.adversary = (init_weights(adversary) if self.artifact else adversary).to(data.train_x.device)
        self.adv_optimizer = torch.optim.Adam(self.adversary.parameters(), lr=ADV_LR, weight_decay=ADV_WEIGHT_DECAY)
        self.last_attack_acc = torch.zeros((), device=data.train_x.device)

    @staticmethod
    @torch.no_grad()
    def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
        was_training = model.training
        model.eval()
        num_cls = model(x).shape[1]
        model.train(was_training)
        return num_cls

    def _draw(self, n: int, size: int) -> torch.Tensor:
        """`size` distinct random indices below n, from the run's generator."""
        return torch.randperm(n, generator=self.generator, device=self.generator.device)[:size]

    def adversary_step(self, model: nn.Module, size: int) -> None:
        """One Adam step of h on `size` random members (label 1) and `size` dev non-members (label 0)."""
        size = min(size, len(self.ref_y))
        self.adversary_update(model, self._draw(len(self.train_y), size), self._draw(len(self.ref_y), size))

    def adversary_update(self, model: nn.Module, mem: torch.Tensor, ref: torch.Tensor, scale: float = 1.0) -> None:
        """One Adam step of h on the members `mem` (label 1) and the dev rows `ref` (label 0), minimising
        scale * CE (the artifact's scale is alpha)."""
        device = self.train_x.device
        mem, ref = mem.to(device), ref.to(device)
        x = torch.cat([self.train_x[mem], self.ref_x[ref]])
        y = torch.cat([self.train_y[mem], self.ref_y[ref]])
        member = torch.cat([torch.ones(len(mem), dtype=torch.long), torch.zeros(len(ref), dtype=torch.long)]).to(device)
        model.eval()
        with torch.no_grad():
            features = attack_features(model(x).float(), y)
        model.train()
        self.adversary.train()
        self.adv_optimizer.zero_grad(set_to_none=True)
        out = self.adversary(features)
        (scale * F.cross_entropy(out, member)).backward()
        self.adv_optimizer.step()
        self.last_attack_acc = (out.detach().argmax(1) == member).float().mean()
        self.adversary_steps += 1

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """CE - alpha * CE(h([softmax, onehot]), member) = CE + alpha * log h (Nasr et al. Alg. 1)."""
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        self.adversary.eval()
        out = self.adversary(attack_features(logits.float(), y))
        attack_ce = F.cross_entropy(out, torch.ones_like(y))
        return ce - self.alpha * attack_ce, logits, {"Loss1": ce, "Loss2": attack_ce,
                                                     "AttackAcc": 100.0 * self.last_attack_acc}

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        if not self.artifact:
            yield from super().batches(n, batch_size, generator)
            return
        # the artifact: one classifier step per epoch, on the first batch of a fresh shuffle
        yield torch.randperm(n, generator=generator)[:batch_size]

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        if self.artifact:
            members = loader_batches(len(self.train_y), self.batch_size, self.generator, shuffle=True)
            references = loader_batches(len(self.ref_y), self.batch_size, self.generator, shuffle=False)
            for _ in range(self.steps):
                self.adversary_update(model, next(members), next(references), scale=self.alpha)
        else:
            for _ in range(self.steps):
                self.adversary_step(model, len(y))
        self.classifier_steps += 1
        return super().train_step(model, optimizer, x, y, epoch)

    def summary(self) -> dict[str, Any]:
        return super().summary() | {"adversary_steps": self.adversary_steps,
                                    "classifier_steps": self.classifier_steps}
