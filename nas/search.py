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

from core.config_schema import key
from core.errors import UserError
from core.storage import atomic_torch_save, load_checkpoint, log
from core.training import (
    StepStats,
    TrainConfig,
    TrainHooks,
    batch_stats,
    evaluate,
    require_finite,
    train_one_epoch,
)
from nas.supernet import SuperNet

ARCH_NAMES = ("alpha", "beta")


@dataclass(frozen=True)
class SearchConfig:
    """The config's `search` object (its keys: the fields made with `key`), plus the two search-time defenses,
    which nas_privacy.py sets from the config's `defense`. Defaults are DARTS' (its train_search.py): theta by
    SGD (momentum 0.9) at lr 0.025 with weight decay 3e-4; alpha by Adam(3e-4, betas (0.5, 0.999), wd 1e-3)."""

    epochs: int = key(10, help="search epochs", kind=int, minimum=1, maximum=100_000)
    batch_size: int = key(64, help="search batch size", kind=int, minimum=1, maximum=1_000_000)
    optimizer: str = key("sgd", help="theta's optimiser (sgd: momentum 0.9)", kind=str, choices=("sgd", "adam"))
    lr: float = key(0.025, help="theta's learning rate", kind=float, minimum=0, maximum=10, strict=True)
    weight_decay: float = key(3e-4, help="theta's weight decay", kind=float, minimum=0, maximum=1)
    arch_lr: float = key(3e-4, help="alpha's Adam learning rate (DARTS' arch_learning_rate)", kind=float, minimum=0,
                         maximum=10, strict=True)
    arch_weight_decay: float = key(1e-3, help="alpha's Adam weight decay", kind=float, minimum=0, maximum=1)
    order: str = key("first", help="DARTS' first- or second-order architecture gradient", kind=str,
                     choices=("first", "second"))
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
                        xi: float, weight_decay: float = 0.0,
                        optimizer: torch.optim.Optimizer | None = None) -> list[torch.Tensor]:
    """DARTS' second-order architecture gradient (its Architect._backward_step_unrolled): the virtual step
    theta' = theta - xi (mu * momentum_buffer + grad + weight_decay * theta), as its _compute_unrolled_model
    takes it (the momentum term from an SGD `optimizer`'s buffers, zero for Adam or before the first step, as
    DARTS' try / except gives), then the central finite-difference Hessian-vector product."""
    names, w = zip(*_weight_items(model))
    arch = model.arch_parameters()
    gw = torch.autograd.grad(F.cross_entropy(model(xt), yt), w)
    momentum = _momentum_terms(optimizer, w)
    w1 = [(p - xi * (m + g + weight_decay * p)).detach().requires_grad_(True) for p, g, m in zip(w, gw, momentum)]
    call = lambda ws, x: functional_call(model, dict(zip(names, ws)) | dict(zip(ARCH_NAMES, arch)), (x,))
    grads = torch.autograd.grad(F.cross_entropy(call(w1, xa), ya), [*arch, *w1])
    d_arch, d_w = grads[:len(arch)], grads[len(arch):]
    eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12)
    side = [torch.autograd.grad(F.cross_entropy(call([p + s * eps * d for p, d in zip(w, d_w)], xt), yt), arch)
            for s in (1.0, -1.0)]
    return [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_arch, *side)]


def _momentum_terms(optimizer: torch.optim.Optimizer | None, weights: tuple[nn.Parameter, ...]) -> list:
    """mu * momentum_buffer per weight of an SGD optimiser that has one for every weight, else zeros."""
    group = optimizer.param_groups[0] if optimizer is not None else {}
    buffers = [optimizer.state.get(p, {}).get("momentum_buffer") if optimizer is not None else None for p in weights]
    if any(b is None for b in buffers) or not group.get("momentum"):
        return [torch.zeros_like(p) for p in weights]
    return [group["momentum"] * b for b in buffers]


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

    def _arch_step(self, model: SuperNet, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        idx = torch.randint(len(self.alpha_y), (len(y),), generator=self.alpha_gen).to(self.alpha_x.device)
        xa, ya = self.alpha_x[idx], self.alpha_y[idx]
        arch = model.arch_parameters()
        if self.cfg.order == "second":
            grads = unrolled_arch_grads(model, x, y, xa, ya, self.cfg.lr, self.cfg.weight_decay, optimizer)
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
        self._arch_step(model, x, y, optimizer)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        for a in model.arch_parameters():
            a.grad = None  # the weight step must not leave a stale gradient on alpha
        optimizer.step()
        return batch_stats(loss, logits, y)


def _state(model: SuperNet, opt: torch.optim.Optimizer, hooks: BilevelHooks, gen: torch.Generator, epoch: int,
           fingerprint: str, history: list[dict[str, float]]) -> dict[str, Any]:
    assert hooks.arch_opt is not None
    return {"epoch": epoch, "fingerprint": fingerprint, "model": model.state_dict(), "opt": opt.state_dict(),
            "arch_opt": hooks.arch_opt.state_dict(), "gen": gen.get_state(), "alpha_gen": hooks.alpha_gen.get_state(),
            "noise_gen": hooks.noise_gen.get_state(), "history": history}


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
           cfg: SearchConfig, *, seed: int, ckpt_path: Path, fingerprint: str, remedy: str,
           progress: bool = False) -> list[dict[str, float]]:
    """Run (or resume) the search to `cfg.epochs`; the checkpoint is rewritten atomically after every epoch.

    A checkpoint whose fingerprint (the settings and rows that shape the search) differs is refused (`remedy`
    is the hint), not silently reused. Returns the history of every epoch of the search, the ones a killed run
    made before this one resumed included (the checkpoint keeps them): train accuracy / loss on D^theta and
    accuracy on D^alpha. A search whose weights or architecture turn non-finite (a learning rate too large)
    is refused before its checkpoint is written, so it is never taken for a finished search.
    """
    hooks = BilevelHooks(alpha[0], alpha[1], cfg, seed)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, progress=progress)
    opt = hooks.make_optimizer(model, tcfg)
    gen = torch.Generator().manual_seed(seed)
    start, rows = 0, []
    if ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, remedy)
        if ckpt.get("fingerprint") != fingerprint:
            raise UserError(f"search checkpoint {ckpt_path} was made with other settings or rows", remedy)
        start = _restore(ckpt, model, opt, hooks, gen)
        rows = list(ckpt.get("history", []))
        if start < cfg.epochs:
            log.info(f"Resuming search at epoch {start} of {cfg.epochs}")
    for epoch in range(start, cfg.epochs):
        train = train_one_epoch(model, opt, theta[0], theta[1], hooks=hooks, cfg=tcfg, generator=gen, epoch=epoch)
        require_finite(model, f"the search diverged at epoch {epoch}",
                       f"nothing was saved; lower search.lr ({cfg.lr:g}) or search.arch_lr ({cfg.arch_lr:g})")
        alpha_acc, alpha_loss = evaluate(model, alpha[0], alpha[1])
        log.info(f"Epoch {epoch} Search: Accuracy {train['acc']:.3f}, Loss {train['loss']:.3f}, "
                 f"Alpha Accuracy {alpha_acc:.3f}, Alpha Loss {alpha_loss:.3f}")
        rows.append({"epoch": epoch, "train_acc": train["acc"], "train_loss": train["loss"], "alpha_acc": alpha_acc})
        atomic_torch_save(_state(model, opt, hooks, gen, epoch + 1, fingerprint, rows), ckpt_path)
    return rows
