"""Differentially private fine-tuning, two ways (paper §6.3.1 "DP"; README differences 14-15).

Both take their optimiser from the DP options, not from the config: SGD with `--dp_lr` (default: dp 0.005,
dpsgd 0.05), `--dp_momentum` (0.9; momentum is post-processing of the noisy gradients, so it costs no
privacy) and `--dp_steps_per_epoch` noisy steps per epoch (0: N // B, one expected pass), weight decay from
the config (data-independent). The artifact's setting (lr 1e-3 without momentum) leaves the pruned model
where pruning left it: measured on synthetic_purchase_columnfc, l1unstructure 0.6, dev 62.67 -> 62.67 for
both. The noise per coordinate of one step is sigma*C*64/B for dp (0.05 at its default sigma 0.1) and
sigma*C/B for dpsgd (0.0078 at sigma 1): dp's is 6.4x larger, hence its 10x smaller default step. With these
defaults (picked from a sweep of lr 0.001-2 with and without momentum) the victim there recovers 2.07 (dp) and
1.93 (dpsgd, epsilon 6.80 RDP / 6.03 PRV over 80 steps) of the 2.37 test points that pruning cost.

`dp` (MicrobatchDP) is the artifact's bundled pyvacy DPSGD:
  Poisson-sampled minibatches with expected size B = batch_size (rate q = B/N), microbatches of min(64, B)
  (drop_last), each microbatch's mean-CE gradient clipped AS A WHOLE to norm C (global norm over all
  trainable parameters, scale min(1, C / (||g|| + 1e-6))), the clipped gradients summed, N(0, (C*sigma)^2)
  added per element, the result multiplied by microbatch / B (64/128 = 0.5 in the artifact), one SGD step.
  sigma = --defend_arg. Fixed artifact bugs: the model stays in train mode (the artifact left it in eval mode
  after the first evaluation), and one epoch is one expected pass over the data (N // B steps), not `epochs`
  passes. `--defense_mode artifact` runs it as the artifact did: the config's lr without momentum, (N // B) x
  the config's `epochs` Poisson draws per fine-tuning epoch (empty draws skipped, as pyvacy's sampler did),
  microbatches of B // 2, and every epoch after the first in eval mode.
  No epsilon is reported: clipping a microbatch bounds the influence of 64 examples together, not of one,
  so the usual per-example (epsilon, delta) accounting does not apply.

`dpsgd` (DPSGD) is per-example DP-SGD (Abadi et al., CCS'16) with an RDP or PRV accountant:
  Poisson sampling with rate q = B/N from the run's generator, per-sample gradients (torch.func:
  functional_call + vmap + grad, in chunks to bound memory), each clipped to norm C = dp_clip, summed,
  N(0, (sigma*C)^2) added per element, divided by the EXPECTED batch size q*N, one SGD step. sigma =
  --defend_arg (noise multiplier).
  BatchNorm layers run in eval mode during private training: with batch statistics one sample's output
  depends on the whole batch, so per-sample gradients (and the per-example sensitivity) are undefined.
  Running statistics stay frozen at their pretrained values; the affine weight and bias still train.
  Other layers (dropout) stay in train mode. Parameters pruned through torch.nn.utils.prune are trained
  through `weight_orig`; masked positions get an exactly zero per-sample gradient (the mask multiplies
  them out in the forward pass), so clipping sees only the unmasked weights. The noise also lands on
  masked positions of `weight_orig`, which the mask keeps out of the model.
  Epsilon at delta = dp_delta (default 1e-5) comes from opacus' RDPAccountant (or PRVAccountant with
  `--dp_accountant prv`) over the history of (sigma, q, steps). The released epsilon counts EVERY step run,
  not only those up to the best-dev epoch: which checkpoint is released depends on all of them (70 steps at
  sigma 1, q 128/1350: 6.42 RDP / 5.67 PRV, where the best epoch's 10 steps gave 3.31). sigma = 0 means no
  privacy (epsilon = inf). Empty Poisson batches still take a (noise-only) step, which the accountant counts.
  Caveat (PRIVACY_NOTE, recorded with the epsilon): the guarantee covers the private fine-tuning only. The
  pruned model starts from weights pretrained WITHOUT DP on the same training split (as in the paper), and
  the dev split, which is not protected, drives early stopping.

Both draw the noise from a device-side generator seeded from the run's generator, so runs are
reproducible; this is not a cryptographically secure source (as in pyvacy and opacus' default mode).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

if TYPE_CHECKING:
    from opacus.accountants import IAccountant

from core.errors import UserError
from core.training import SplitTensors, StepStats, TrainConfig
from defenses.base import ArgSpec, Defense, DefenseOptions

MICROBATCH = 64  # pyvacy's microbatch size in the artifact (capped at the batch size)
MAX_CHUNK = 32  # samples per vmap call in DP-SGD ...
CHUNK_BYTES = 2 ** 29  # ... fewer when one chunk's per-sample gradients would exceed 512 MiB
PRIVACY_NOTE = ("fine-tuning only: the pretrained weights saw the same members without DP; the dev split (not "
                "private) drives early stopping")
NO_EPSILON_NOTE = ("no per-example epsilon (a microbatch is clipped as a whole); the pretrained weights saw the "
                   "same members without DP; the dev split drives early stopping")
DEFAULTS = DefenseOptions()


# ---------------------------------------------------------------- shared pieces

def sample_rate(n: int, batch_size: int) -> float:
    return min(1.0, batch_size / max(n, 1))


def poisson_batches(n: int, batch_size: int, generator: torch.Generator, steps: int = 0,
                    skip_empty: bool = False) -> Iterator[torch.Tensor]:
    """`steps` batches (0: N // B, one expected pass), each taking every index independently with probability
    B/N; `skip_empty` drops empty draws instead of yielding them (pyvacy's sampler, the artifact)."""
    q = sample_rate(n, batch_size)
    for _ in range(steps or max(1, n // batch_size)):
        keep = torch.rand(n, generator=generator, device=generator.device) < q
        if skip_empty and not keep.any():
            continue
        yield keep.nonzero().squeeze(1)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


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
    """What both DP variants share: SGD with the DP options' lr / momentum, Poisson batches, a seeded noise
    generator, and a count of the noisy steps taken (over all epochs and rounds)."""

    default_lr: ClassVar[float]
    uses = {"clip": "dp_clip", "lr": "dp_lr", "momentum": "dp_momentum", "steps_per_epoch": "dp_steps_per_epoch"}

    def __init__(self, sigma: float, clip: float = 1.0, lr: float | None = None, momentum: float = 0.9,
                 steps_per_epoch: int = 0) -> None:
        self.sigma = sigma
        self.clip = clip
        self.lr = self.default_lr if lr is None else lr
        self.momentum = momentum
        self.steps_per_epoch = steps_per_epoch
        self.steps = 0

    @classmethod
    def folder_options(cls, options: DefenseOptions) -> tuple[tuple[str, float | str], ...]:
        """The optimiser settings that differ from this defense's defaults, then the mode when not fixed."""
        out: tuple[tuple[str, float | str], ...] = ()
        if options.dp_lr is not None and options.dp_lr != cls.default_lr:
            out += (("dp_lr", options.dp_lr),)
        for name in ("dp_momentum", "dp_steps_per_epoch"):
            if getattr(options, name) != getattr(DEFAULTS, name):
                out += ((name, getattr(options, name)),)
        return out + super().folder_options(options)

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        self.noise_generator = device_generator(generator, data.train_x.device)
        self.q = sample_rate(len(data.train_y), cfg.batch_size)
        self.expected_batch = self.q * len(data.train_y)
        self.epoch_steps = self.steps_in_epoch(len(data.train_y), cfg.batch_size)

    def steps_in_epoch(self, n: int, batch_size: int) -> int:
        """Noisy steps (Poisson draws) per epoch: --dp_steps_per_epoch, or N // B (one expected pass)."""
        return self.steps_per_epoch or max(1, n // batch_size)

    def make_optimizer(self, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        return torch.optim.SGD(trainable(model), lr=self.lr, momentum=self.momentum, weight_decay=cfg.weight_decay)

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        yield from poisson_batches(n, batch_size, generator, self.steps_in_epoch(n, batch_size))

    def summary(self) -> dict[str, Any]:
        """The private fine-tuning as run: its optimiser, steps and noise (checkpoint extras, results record)."""
        return super().summary() | {"dp_lr": self.lr, "dp_momentum": self.momentum,
                                    "dp_steps_per_epoch": self.epoch_steps, "dp_steps": self.steps,
                                    "noise_multiplier": self.sigma, "sample_rate": self.q}


# ---------------------------------------------------------------- the artifact's microbatch DPSGD

def global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum(g.pow(2).sum() for g in grads))


class MicrobatchDP(_NoisySGD):
    """The artifact's pyvacy DPSGD (per-microbatch clipping), with its two bugs fixed unless mode is
    "artifact"; sigma = --defend_arg."""

    name = "dp"
    log_suffix = " With DP"
    arg = ArgSpec("sigma, noise multiplier of the artifact's microbatch DPSGD (paper sweeps 0.01..100)", 0.1)
    modes = ("fixed", "artifact")
    default_lr = 0.005
    uses = _NoisySGD.uses | {"mode": "defense_mode", "config_epochs": "config_epochs"}

    def __init__(self, sigma: float, clip: float = 1.0, lr: float | None = None, momentum: float = 0.9,
                 steps_per_epoch: int = 0, mode: str = "fixed", config_epochs: int = 0) -> None:
        self.artifact = mode == "artifact"
        if self.artifact:  # the artifact's optimiser is the config's; a flag for ours would be ignored silently
            for flag, given, default in (("dp_lr", lr, None), ("dp_momentum", momentum, DEFAULTS.dp_momentum),
                                         ("dp_steps_per_epoch", steps_per_epoch, DEFAULTS.dp_steps_per_epoch)):
                if given != default:
                    raise UserError(f"--{flag} does not apply to dp's artifact mode, which runs the config's lr "
                                    "without momentum and (N // batch_size) x epochs steps per epoch",
                                    "drop the flag, or use --defense_mode fixed")
            lr, momentum = None, 0.0
        super().__init__(sigma, clip, lr, momentum, steps_per_epoch)
        self.mode = mode
        self.config_epochs = config_epochs

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        super().setup(model, data, cfg, generator)
        if self.artifact:
            self.microbatch = max(1, cfg.batch_size // 2)  # prune_dp.py: microbatch_size = batch_size // 2
        else:
            # 64 as in the artifact; a configured batch size below 64 would otherwise leave no microbatch at all.
            self.microbatch = min(MICROBATCH, cfg.batch_size)

    def steps_in_epoch(self, n: int, batch_size: int) -> int:
        """The artifact's prune_dp.py: iterations = len(train) // batch_size * epochs (the config's) Poisson
        draws in EVERY fine-tuning epoch."""
        if not self.artifact:
            return super().steps_in_epoch(n, batch_size)
        if self.config_epochs < 1:
            raise ValueError("dp's artifact mode needs DefenseOptions.config_epochs (the config's epochs)")
        return max(1, n // batch_size) * self.config_epochs

    def make_optimizer(self, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        if self.artifact:
            self.lr = cfg.lr  # the artifact's DPSGD took the config's lr (1e-3), momentum 0
        return super().make_optimizer(model, cfg)

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        yield from poisson_batches(n, batch_size, generator, self.steps_in_epoch(n, batch_size),
                                   skip_empty=self.artifact)

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        if self.artifact and epoch > 0:
            model.eval()  # the artifact called train() once, so evaluation left every later epoch in eval mode
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
        self.steps += 1
        return stats

    def summary(self) -> dict[str, Any]:
        return super().summary() | {"privacy_note": NO_EPSILON_NOTE}


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


def make_accountant(name: str) -> IAccountant:
    """Opacus' accountant by name (ACCOUNTANTS). Opacus (and the scipy it pulls in) is imported only when
    DP-SGD runs: 1.8 s off every other start."""
    from opacus.accountants import PRVAccountant, RDPAccountant
    return {"rdp": RDPAccountant, "prv": PRVAccountant}[name]()


def accountant_epsilon(accountant: IAccountant, sigma: float, delta: float) -> float:
    """Epsilon at `delta` over the accountant's history: inf without noise, 0 before any step."""
    if sigma <= 0:
        return math.inf
    if not accountant.history:
        return 0.0
    return float(accountant.get_epsilon(delta))


class DPSGD(_NoisySGD):
    """Per-example DP-SGD; sigma = --defend_arg, C = dp_clip, delta = dp_delta, accountant = dp_accountant."""

    name = "dpsgd"
    log_suffix = " With DP-SGD"
    arg = ArgSpec("sigma, noise multiplier of per-example DP-SGD; epsilon is reported (0 = no noise)", 1.0)
    default_lr = 0.05
    uses = _NoisySGD.uses | {"delta": "dp_delta", "accountant": "dp_accountant"}

    def __init__(self, sigma: float, clip: float = 1.0, lr: float | None = None, momentum: float = 0.9,
                 steps_per_epoch: int = 0, delta: float = 1e-5, accountant: str = "rdp") -> None:
        super().__init__(sigma, clip, lr, momentum, steps_per_epoch)
        self.delta = delta
        self.accountant_name = accountant
        self.accountant = make_accountant(accountant)

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
        self.steps += 1
        return stats

    def epsilon(self) -> float:
        """Epsilon over every step taken so far."""
        return accountant_epsilon(self.accountant, self.sigma, self.delta)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"epsilon": self.epsilon(), "delta": self.delta}

    def summary(self) -> dict[str, Any]:
        """Epsilon over ALL steps run (the released checkpoint was chosen after all of them), its accountant."""
        return super().summary() | {"epsilon": self.epsilon(), "delta": self.delta,
                                    "accountant": self.accountant_name, "privacy_note": PRIVACY_NOTE}
