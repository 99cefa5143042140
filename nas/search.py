"""Bilevel DARTS search (eq. 3): theta on D^theta, alpha on D^alpha, alternating per batch.

The epoch loop is here (for the per-epoch resumable checkpoint); each epoch's batches go through the project's
`training.train_one_epoch`, with `BilevelHooks.train_step` doing one architecture step on a D^alpha batch and
then one weight step on the D^theta batch, as DARTS' `train()` does. First order: grad_alpha L_alpha(theta,
alpha). Second order (DARTS eq. 7-8): grad_alpha L_alpha(theta', alpha) - xi * finite-difference Hessian-vector
product, theta' = theta - xi grad_theta L_theta. The two defenses that act during search live here as knobs:
an L2 penalty on the architecture (LR of §5) and Gaussian noise on the architecture gradient (DP_SGD of §5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from core.errors import UserError
from core.storage import atomic_torch_save, load_checkpoint, log
from core.training import StepStats, TrainConfig, TrainHooks, batch_stats, evaluate, train_one_epoch
from nas.supernet import SuperNet

ARCH_NAMES = ("alpha", "beta")


@dataclass(frozen=True)
class SearchConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"       # theta's optimiser; DARTS: SGD momentum 0.9, lr 0.025, wd 3e-4
    lr: float = 0.025
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4        # DARTS: Adam(3e-4, betas (0.5, 0.999), wd 1e-3)
    arch_weight_decay: float = 1e-3
    order: str = "first"         # first | second
    arch_l2: float = 0.0         # defense LR: lambda * sum(alpha^2 + beta^2) added to L_alpha
    arch_grad_noise: float = 0.0  # defense: std of Gaussian noise added to each architecture gradient


def arch_gradient(model: SuperNet, x: torch.Tensor, y: torch.Tensor, *, create_graph: bool = False,
                  soft: bool = False) -> torch.Tensor:
    """d L_alpha / d(alpha, beta), flattened; `soft` takes y as a probability vector (ADRA's dummy labels).

    create_graph keeps the graph so ADRA can differentiate the gradient again (second derivatives, eq. 5).
    """
    logits = model(x)
    loss = -(y * F.log_softmax(logits, 1)).sum(1).mean() if soft else F.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, model.arch_parameters(), create_graph=create_graph)
    return torch.cat([g.reshape(-1) for g in grads])


def _weight_items(model: SuperNet) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if n not in ARCH_NAMES]


def unrolled_arch_grads(model: SuperNet, xt: torch.Tensor, yt: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor,
                        xi: float) -> list[torch.Tensor]:
    """DARTS' second-order architecture gradient (its Architect._backward_step_unrolled, without momentum)."""
    names, w = zip(*_weight_items(model))
    arch = model.arch_parameters()
    gw = torch.autograd.grad(F.cross_entropy(model(xt), yt), w)
    w1 = [(p - xi * g).detach().requires_grad_(True) for p, g in zip(w, gw)]
    call = lambda ws, x: functional_call(model, dict(zip(names, ws)) | dict(zip(ARCH_NAMES, arch)), (x,))
    grads = torch.autograd.grad(F.cross_entropy(call(w1, xa), ya), [*arch, *w1])
    d_arch, d_w = grads[:len(arch)], grads[len(arch):]
    eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12)
    side = [torch.autograd.grad(F.cross_entropy(call([p + s * eps * d for p, d in zip(w, d_w)], xt), yt), arch)
            for s in (1.0, -1.0)]
    return [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_arch, *side)]


class BilevelHooks(TrainHooks):
    """One architecture step on a D^alpha batch, then the usual weight step on the D^theta batch."""

    name = "darts"

    def __init__(self, alpha_x: torch.Tensor, alpha_y: torch.Tensor, cfg: SearchConfig, seed: int) -> None:
        self.alpha_x, self.alpha_y, self.cfg = alpha_x, alpha_y, cfg
        self.alpha_gen = torch.Generator().manual_seed(seed + 1)
        self.noise_gen = torch.Generator().manual_seed(seed + 2)
        self.arch_opt: torch.optim.Optimizer | None = None

    def make_optimizer(self, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        assert isinstance(model, SuperNet)
        self.arch_opt = torch.optim.Adam(model.arch_parameters(), lr=self.cfg.arch_lr, betas=(0.5, 0.999),
                                         weight_decay=self.cfg.arch_weight_decay)
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(model.weights(), lr=self.cfg.lr, momentum=0.9, weight_decay=self.cfg.weight_decay)
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam(model.weights(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        raise UserError(f"unknown search optimizer '{self.cfg.optimizer}'", "use sgd or adam")

    def _arch_step(self, model: SuperNet, x: torch.Tensor, y: torch.Tensor) -> None:
        idx = torch.randint(len(self.alpha_y), (len(y),), generator=self.alpha_gen).to(self.alpha_x.device)
        xa, ya = self.alpha_x[idx], self.alpha_y[idx]
        arch = model.arch_parameters()
        if self.cfg.order == "second":
            grads = unrolled_arch_grads(model, x, y, xa, ya, self.cfg.lr)
        else:
            grads = list(torch.autograd.grad(F.cross_entropy(model(xa), ya), arch))
        for a, g in zip(arch, grads):
            g = g + 2 * self.cfg.arch_l2 * a.detach()
            if self.cfg.arch_grad_noise > 0:
                g = g + self.cfg.arch_grad_noise * torch.randn(g.shape, generator=self.noise_gen).to(g.device)
            a.grad = g
        assert self.arch_opt is not None
        self.arch_opt.step()

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        assert isinstance(model, SuperNet)
        self._arch_step(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        for a in model.arch_parameters():
            a.grad = None  # the weight step must not leave a stale gradient on alpha
        optimizer.step()
        return batch_stats(loss, logits, y)


def _state(model: SuperNet, opt: torch.optim.Optimizer, hooks: BilevelHooks, gen: torch.Generator, epoch: int,
           fingerprint: str) -> dict[str, Any]:
    assert hooks.arch_opt is not None
    return {"epoch": epoch, "fingerprint": fingerprint, "model": model.state_dict(), "opt": opt.state_dict(),
            "arch_opt": hooks.arch_opt.state_dict(), "gen": gen.get_state(), "alpha_gen": hooks.alpha_gen.get_state(),
            "noise_gen": hooks.noise_gen.get_state()}


def _restore(ckpt: dict[str, Any], model: SuperNet, opt: torch.optim.Optimizer, hooks: BilevelHooks,
             gen: torch.Generator) -> int:
    assert hooks.arch_opt is not None
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    hooks.arch_opt.load_state_dict(ckpt["arch_opt"])
    gen.set_state(ckpt["gen"])
    hooks.alpha_gen.set_state(ckpt["alpha_gen"])
    hooks.noise_gen.set_state(ckpt["noise_gen"])
    return int(ckpt["epoch"])


def search(model: SuperNet, theta: tuple[torch.Tensor, torch.Tensor], alpha: tuple[torch.Tensor, torch.Tensor],
           cfg: SearchConfig, *, seed: int, ckpt_path: Path, fingerprint: str,
           progress: bool = False) -> list[dict[str, float]]:
    """Run (or resume) the search to `cfg.epochs`; the checkpoint is rewritten atomically after every epoch.

    A checkpoint whose fingerprint (the settings that shape the search) differs is refused, not silently reused.
    Returns one row per epoch run now: train accuracy / loss on D^theta and accuracy on D^alpha.
    """
    hooks = BilevelHooks(alpha[0], alpha[1], cfg, seed)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, progress=progress)
    opt = hooks.make_optimizer(model, tcfg)
    gen = torch.Generator().manual_seed(seed)
    start = 0
    if ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, "delete it and rerun search")
        if ckpt.get("fingerprint") != fingerprint:
            raise UserError(f"search checkpoint {ckpt_path} was made by another config",
                            "rerun search with --overwrite, or delete the file")
        start = _restore(ckpt, model, opt, hooks, gen)
        log.info(f"Resuming search at epoch {start} of {cfg.epochs}")
    rows = []
    for epoch in range(start, cfg.epochs):
        train = train_one_epoch(model, opt, theta[0], theta[1], hooks=hooks, cfg=tcfg, generator=gen, epoch=epoch)
        alpha_acc, alpha_loss = evaluate(model, alpha[0], alpha[1])
        log.info(f"Epoch {epoch} Search: Accuracy {train['acc']:.3f}, Loss {train['loss']:.3f}, "
                 f"Alpha Accuracy {alpha_acc:.3f}, Alpha Loss {alpha_loss:.3f}")
        atomic_torch_save(_state(model, opt, hooks, gen, epoch + 1, fingerprint), ckpt_path)
        rows.append({"epoch": epoch, "train_acc": train["acc"], "train_loss": train["loss"], "alpha_acc": alpha_acc})
    return rows
