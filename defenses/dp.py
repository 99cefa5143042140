"""Differentially private fine-tuning, two ways (paper §6.3.1 "DP"; facts §6 "dp").

`dp` (MicrobatchDP) is the artifact's bundled pyvacy DPSGD, kept for comparison with the paper's numbers:
  plain SGD (no momentum; lr and weight decay from the config, 1e-3 / 5e-4 in the artifact), Poisson-sampled
  minibatches with expected size B = batch_size (rate q = B/N), microbatches of min(64, B) (drop_last), each
  microbatch's mean-CE gradient clipped AS A WHOLE to norm C (global norm over all trainable parameters,
  scale min(1, C / (||g|| + 1e-6))), the clipped gradients summed, N(0, (C*sigma)^2) added per element,
  the result multiplied by microbatch / B (64/128 = 0.5 in the artifact), one SGD step. sigma = --defend_arg.
  Fixed artifact bugs: the model stays in train mode (the artifact left it in eval mode after the first
  evaluation), and one epoch is one expected pass over the data (N // B steps), not `epochs` passes.
  No epsilon is reported: clipping a microbatch bounds the influence of 64 examples together, not of one,
  so the usual per-example (epsilon, delta) accounting does not apply.

`dpsgd` (DPSGD) is per-example DP-SGD (Abadi et al., CCS'16) with an RDP accountant:
  Poisson sampling with rate q = B/N from the run's generator, per-sample gradients (torch.func:
  functional_call + vmap + grad, in chunks to bound memory), each clipped to norm C = dp_clip, summed,
  N(0, (sigma*C)^2) added per element, divided by the EXPECTED batch size q*N, one SGD step. sigma =
  --defend_arg (noise multiplier). Plain SGD without momentum, as in `dp`, so the two differ only in
  the clipping unit and the accounting (momentum would be allowed: it is post-processing).
  BatchNorm layers run in eval mode during private training: with batch statistics one sample's output
  depends on the whole batch, so per-sample gradients (and the per-example sensitivity) are undefined.
  Running statistics stay frozen at their pretrained values; the affine weight and bias still train.
  Other layers (dropout) stay in train mode. Parameters pruned through torch.nn.utils.prune are trained
  through `weight_orig`; masked positions get an exactly zero per-sample gradient (the mask multiplies
  them out in the forward pass), so clipping sees only the unmasked weights. The noise also lands on
  masked positions of `weight_orig`, which the mask keeps out of the model.
  After each epoch, epsilon at delta = dp_delta (default 1e-5) comes from opacus' RDPAccountant over the
  history of (sigma, q, steps). sigma = 0 means no privacy (epsilon = inf). Empty Poisson batches still
  take a (noise-only) step, which the accountant counts.
  Caveat: epsilon covers the private fine-tuning only. The pruned model starts from weights pretrained
  WITHOUT DP on the same training split (as in the paper), so it is not an end-to-end guarantee for those
  members; it is the guarantee the fine-tuning mechanism adds on top of a fixed starting point.

Both draw the noise from a device-side generator seeded from the run's generator, so runs are
reproducible; this is not a cryptographically secure source (as in pyvacy and opacus' default mode).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

if TYPE_CHECKING:
    from opacus.accountants import RDPAccountant

from defenses.base import ArgSpec, Defense
from training import SplitTensors, StepStats, TrainConfig

MICROBATCH = 64  # pyvacy's microbatch size in the artifact (capped at the batch size)
MAX_CHUNK = 32  # samples per vmap call in DP-SGD ...
CHUNK_BYTES = 2 ** 29  # ... fewer when one chunk's per-sample gradients would exceed 512 MiB


# ---------------------------------------------------------------- shared pieces

def sample_rate(n: int, batch_size: int) -> float:
    return min(1.0, batch_size / max(n, 1))


def poisson_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """N // B batches (one expected pass), each taking every index independently with probability B/N."""
    q = sample_rate(n, batch_size)
    for _ in range(max(1, n // batch_size)):
        keep = torch.rand(n, generator=generator, device=generator.device) < q
        yield keep.nonzero().squeeze(1)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def plain_sgd(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """pyvacy's DPSGD is torch SGD underneath: no momentum; weight decay is data-independent, so allowed."""
    return torch.optim.SGD(trainable(model), lr=cfg.lr, momentum=0.0, weight_decay=cfg.weight_decay)


def device_generator(seed_source: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on the parameters' device, seeded from the run's generator (noise without host copies)."""
    seed = int(torch.randint(2 ** 62, (1,), generator=seed_source, device=seed_source.device))
    return torch.Generator(device=device).manual_seed(seed)


def noisy_step(optimizer: torch.optim.Optimizer, params: list[nn.Parameter], sums: list[torch.Tensor],
               std: float, scale: float, generator: torch.Generator) -> None:
    """grad = (sum of clipped gradients + N(0, std^2)) * scale, then one optimiser step."""
    for p, s in zip(params, sums):
        if std > 0:
            s = s + std * torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        p.grad = s * scale
    optimizer.step()


def empty_stats(device: torch.device) -> StepStats:
    return StepStats(torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device), 0)


class _NoisySGD(Defense):
    """What both DP modes share: SGD without momentum, Poisson batches, a seeded noise generator."""

    def __init__(self, sigma: float, clip: float = 1.0) -> None:
        self.sigma = sigma
        self.clip = clip

    uses = {"clip": "dp_clip"}

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        self.noise_generator = device_generator(generator, data.train_x.device)
        self.q = sample_rate(len(data.train_y), cfg.batch_size)
        self.expected_batch = self.q * len(data.train_y)

    def make_optimizer(self, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        return plain_sgd(model, cfg)

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        yield from poisson_batches(n, batch_size, generator)


# ---------------------------------------------------------------- the artifact's microbatch DPSGD

def global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum(g.pow(2).sum() for g in grads))


class MicrobatchDP(_NoisySGD):
    """The artifact's pyvacy DPSGD (per-microbatch clipping), with its two bugs fixed; sigma = --defend_arg."""

    name = "dp"
    log_suffix = " With DP"
    arg = ArgSpec("sigma, noise multiplier of the artifact's microbatch DPSGD (paper sweeps 0.01..100)", 0.1)

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        super().setup(model, data, cfg, generator)
        # 64 as in the artifact; a configured batch size below 64 would otherwise leave no microbatch at all.
        self.microbatch = min(MICROBATCH, cfg.batch_size)

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        params = trainable(model)
        sums = [torch.zeros_like(p) for p in params]
        stats = empty_stats(x.device)
        mb = self.microbatch
        for start in range(0, len(y) - mb + 1, mb):  # drop_last, as pyvacy's microbatch loader
            xm, ym = x[start:start + mb], y[start:start + mb]
            logits = model(xm)
            loss = F.cross_entropy(logits, ym)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
            coef = (self.clip / (global_norm(grads) + 1e-6)).clamp(max=1.0)
            for s, g in zip(sums, grads):
                s.add_(g * coef)
            stats.loss_sum += loss.detach() * len(ym)
            stats.correct += (logits.detach().argmax(1) == ym).sum()
            stats.count += len(ym)
        # pyvacy scales by microbatch / minibatch size (64 / 128 = 0.5 in the artifact).
        noisy_step(optimizer, params, sums, self.clip * self.sigma, mb / self.expected_batch, self.noise_generator)
        return stats


# ---------------------------------------------------------------- per-example DP-SGD

def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm in eval mode: per-sample outputs must not depend on the rest of the batch."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def chunk_size(params: list[nn.Parameter]) -> int:
    per_sample = sum(p.numel() * p.element_size() for p in params)
    return max(1, min(MAX_CHUNK, CHUNK_BYTES // max(per_sample, 1)))


def clipped_grad_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float,
                     chunk: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Sum over the batch of per-sample gradients each clipped to norm `clip`, plus the per-sample
    losses and logits (detached). Gradients are taken w.r.t. the trainable parameters, in
    `model.parameters()` order; everything else (buffers, frozen parameters, prune masks) is held fixed.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def sample_loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor):
        logits = functional_call(model, (p, fixed), (xi.unsqueeze(0),))
        loss = F.cross_entropy(logits, yi.unsqueeze(0))
        return loss, (loss.detach(), logits.squeeze(0).detach())

    per_sample = vmap(grad(sample_loss, has_aux=True), in_dims=(None, 0, 0), randomness="different")
    sums = {n: torch.zeros_like(params[n]) for n in names}
    losses, logits = [], []
    for start in range(0, len(y), chunk):
        grads, (loss, out) = per_sample(params, x[start:start + chunk], y[start:start + chunk])
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
        coef = (clip / (norms + 1e-6)).clamp(max=1.0)
        for n in names:
            sums[n] += torch.einsum("b,b...->...", coef, grads[n])
        losses.append(loss)
        logits.append(out)
    return [sums[n] for n in names], torch.cat(losses), torch.cat(logits)


def _accountant() -> RDPAccountant:
    """Opacus (and the scipy it pulls in) is imported only when DP-SGD runs: 1.8 s off every other start."""
    from opacus.accountants import RDPAccountant
    return RDPAccountant()


def rdp_epsilon(accountant: RDPAccountant, sigma: float, delta: float) -> float:
    if sigma <= 0:
        return math.inf
    if not accountant.history:
        return 0.0
    return float(accountant.get_epsilon(delta))


class DPSGD(_NoisySGD):
    """Per-example DP-SGD with RDP accounting; sigma = --defend_arg, C = dp_clip, delta = dp_delta."""

    name = "dpsgd"
    log_suffix = " With DP-SGD"
    arg = ArgSpec("sigma, noise multiplier of per-example DP-SGD; epsilon is reported (0 = no noise)", 1.0)
    uses = {"clip": "dp_clip", "delta": "dp_delta"}

    def __init__(self, sigma: float, clip: float = 1.0, delta: float = 1e-5) -> None:
        super().__init__(sigma, clip)
        self.delta = delta
        self.accountant = _accountant()

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        super().setup(model, data, cfg, generator)
        self.chunk = chunk_size(trainable(model))
        # No new ledger here: one DPSGD object is one model's private fine-tuning (prune.py makes one per model),
        # and iterative pruning calls setup once per round, whose steps must all add up in one epsilon.

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        freeze_batchnorm(model)
        params = trainable(model)
        if len(y) == 0:
            sums, stats = [torch.zeros_like(p) for p in params], empty_stats(x.device)
        else:
            sums, losses, logits = clipped_grad_sum(model, x, y, self.clip, self.chunk)
            stats = StepStats(losses.sum(), (logits.argmax(1) == y).sum(), len(y))
        noisy_step(optimizer, params, sums, self.sigma * self.clip, 1.0 / self.expected_batch,
                   self.noise_generator)
        self.accountant.step(noise_multiplier=self.sigma, sample_rate=self.q)
        return stats

    def epsilon(self) -> float:
        return rdp_epsilon(self.accountant, self.sigma, self.delta)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"epsilon": self.epsilon(), "delta": self.delta}
