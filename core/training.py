"""The one train / evaluate / early-stop loop (docs/design.md §6). Pretraining, fine-tuning and every defense use it.

Data arrive as tensors already normalised (and already on the device); a batch is an index slice, so the
loop does no per-sample Python work. Defenses plug in through `TrainHooks` (loss, optimiser step, batch
sampling, per-epoch work) instead of copying the loop, which is what the artifact did.
"""
from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from core.errors import UserError
from core.storage import log


@dataclass
class SplitTensors:
    """One model's train / dev / test data as (x, y) tensor pairs on the training device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    dev_x: torch.Tensor
    dev_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int = 128
    early_stop: int = 5
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    amp: bool = False  # bf16 autocast, CUDA only
    progress: bool = True


@dataclass
class FitResult:
    """What training produced: the best (dev-accuracy) weights and the accuracies at that epoch."""

    state: dict[str, torch.Tensor]
    best_epoch: int
    epochs_run: int
    train_acc: float
    dev_acc: float
    test_acc: float
    test_loss: float
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)
    # Wall seconds by phase: "train" (train_one_epoch), "evaluate" (dev + test each epoch), "copy" (snapshots
    # of the best weights); bench.py reads them, and the rest of `seconds` is logging and bookkeeping.
    phases: dict[str, float] = field(default_factory=dict)
    copies: int = 0

    def checkpoint(self) -> dict[str, Any]:
        """The artifact's checkpoint dict ({epoch, acc, loss, state}) plus dev accuracy and extras."""
        return {"epoch": self.best_epoch, "acc": self.test_acc, "loss": self.test_loss, "dev_acc": self.dev_acc,
                "train_acc": self.train_acc, "epochs_run": self.epochs_run, "seconds": self.seconds,
                "state": self.state, "extras": self.extras}


@dataclass
class StepStats:
    """Sums over one batch, kept as tensors so the loop never waits on the GPU inside an epoch."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    count: int
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainHooks:
    """Plain training (the paper's "basic": early stopping + L2). Defenses subclass and override pieces.

    - `setup` once before the first epoch (e.g. build an adversary, an accountant);
    - `begin_epoch` before each epoch's batches (WeMem's sliding window picks the epoch's indices there);
    - `batches` yields index tensors for one epoch (DP-SGD replaces it with Poisson sampling);
    - `loss` maps a batch to (mean loss, logits, extra scalars to log) (PPB, RelaxLoss override it);
    - `train_step` does one optimiser step (ADV and DP override it);
    - `end_epoch` returns extra numbers for the log and the checkpoint (DP-SGD's epsilon).
    """

    name = "basic"
    log_suffix = ""  # the artifact's " With PPB" etc.

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        pass

    def make_optimizer(self, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        return make_optimizer(model, cfg)

    def begin_epoch(self, epoch: int) -> None:
        pass

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        yield from split_batches(torch.randperm(n, generator=generator), batch_size)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(x)
        return F.cross_entropy(logits, y), logits, {}

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        optimizer.zero_grad(set_to_none=True)
        loss, logits, extras = self.loss(model, x, y, epoch)
        loss.backward()
        optimizer.step()
        return batch_stats(loss, logits, y, extras)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}


def split_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """`order` cut into batches of `batch_size`; a trailing batch of one row joins the previous batch, because
    BatchNorm cannot train on a single row (a train set of k * batch + 1 rows crashed it). Merging keeps every
    row in exactly one batch per epoch, which dropping the row would not."""
    parts = list(order.split(batch_size))
    if len(parts) > 1 and parts[-1].numel() == 1:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


def should_stop(stale: int, early_stop: int) -> bool:
    """The artifact's rule: stop once more than `early_stop` epochs in a row brought no dev gain; early_stop 0
    turns early stopping off (its `elif args.early_stop > 0`), so every epoch runs."""
    return early_stop > 0 and stale > early_stop


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's parameters and buffers holding NaN or infinity (one device sync for all)."""
    tensors = {k: t for k, t in model.state_dict().items() if t.is_floating_point()}
    if not tensors:
        return []
    finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).cpu()
    return [k for k, ok in zip(tensors, finite.tolist()) if not ok]


def require_finite(model: nn.Module, what: str, hint: str) -> None:
    """UserError `what` naming the first non-finite tensors: a diverged model must never be saved or attacked
    as if it were finished (its argmax over NaN logits is class 0, a dev accuracy that looks like a result)."""
    bad = nonfinite_tensors(model)
    if bad:
        raise UserError(f"{what}: non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}", hint)


def batch_stats(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                extras: dict[str, torch.Tensor] | None = None) -> StepStats:
    n = len(y)
    return StepStats(loss.detach() * n, (logits.detach().argmax(1) == y).sum(), n,
                     {k: v.detach() * n for k, v in (extras or {}).items()})


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise UserError(f"unknown optimizer '{cfg.optimizer}'", "use adam or sgd")


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; the CPU path always runs in float32 (exact and reproducible)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                    hooks: TrainHooks, cfg: TrainConfig, generator: torch.Generator,
                    epoch: int) -> dict[str, float]:
    """One pass of `hooks.batches`; returns accuracy (%), mean loss and the hooks' extra means."""
    model.train()
    hooks.begin_epoch(epoch)
    total: StepStats | None = None
    with autocast(x.device, cfg.amp):
        for idx in hooks.batches(len(y), cfg.batch_size, generator):
            idx = idx.to(x.device, non_blocking=True)
            s = hooks.train_step(model, optimizer, x[idx], y[idx], epoch)
            total = s if total is None else StepStats(
                total.loss_sum + s.loss_sum, total.correct + s.correct, total.count + s.count,
                {k: total.extras.get(k, 0) + v for k, v in s.extras.items()})
    if total is None or total.count == 0:
        return {"acc": 0.0, "loss": float("nan")}
    out = {"acc": 100.0 * total.correct.item() / total.count, "loss": total.loss_sum.item() / total.count}
    out.update({k: float(v) / total.count for k, v in total.extras.items()})
    return out


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024,
             amp: bool = False) -> tuple[float, float]:
    """Accuracy (%) and mean cross-entropy in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    with autocast(x.device, amp):
        for start in range(0, len(y), batch_size):
            logits = model(x[start:start + batch_size]).float()
            yb = y[start:start + batch_size]
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
    n = max(len(y), 1)
    return 100.0 * correct.item() / n, loss_sum.item() / n


def format_line(prefix: str, acc: float, loss: float, extras: dict[str, float] | None = None) -> str:
    """The artifact's per-epoch line: `<prefix>: Accuracy 93.123, Loss 0.215[, Loss1 x, Loss2 y]`."""
    tail = "".join(f", {k} {v:.3f}" for k, v in (extras or {}).items())
    return f"{prefix}: Accuracy {acc:.3f}, Loss {loss:.3f}{tail}"


def fit(model: nn.Module, data: SplitTensors, cfg: TrainConfig, *, hooks: TrainHooks | None = None,
        generator: torch.Generator, label: str = "", desc: str = "train",
        optimizer: torch.optim.Optimizer | None = None, restore_best: bool = True) -> FitResult:
    """Train with the artifact's early stopping: keep the weights of the best dev accuracy (strictly
    improving, starting from 0); stop once more than `early_stop` epochs in a row bring no gain (never when
    `early_stop` is 0, as in the artifact).

    `optimizer`: continue with this one (and its state) instead of `hooks.make_optimizer`'s fresh one; the
    iterative pruner passes one Adam through all its rounds, as WeMem does. `restore_best=False` leaves the
    model at its LAST epoch's weights (the next iterative round starts there); the result still describes
    and holds the best epoch.

    `label` is the artifact's log-line prefix after `Epoch e ` (e.g. "", "Shadow ", "Prune ").
    The best weights stay in memory; the caller writes them once, atomically, when training is over.
    """
    hooks = hooks or TrainHooks()
    hooks.setup(model, data, cfg, generator)
    if optimizer is None:
        optimizer = hooks.make_optimizer(model, cfg)
    start = time.perf_counter()
    clock = _PhaseClock()
    with clock("copy"):
        best: dict[str, Any] = {"dev_acc": 0.0, "epoch": 0, "state": copy.deepcopy(model.state_dict()),
                                "train_acc": 0.0, "test_acc": 0.0, "test_loss": float("nan"), "extras": {}}
    stale, epochs_run = 0, 0
    bar = tqdm(range(cfg.epochs), desc=desc, leave=False, disable=not cfg.progress, unit="epoch")
    for epoch in bar:
        with clock("train"):
            train = train_one_epoch(model, optimizer, data.train_x, data.train_y, hooks=hooks, cfg=cfg,
                                    generator=generator, epoch=epoch)
        with clock("evaluate"):
            dev_acc, dev_loss = evaluate(model, data.dev_x, data.dev_y, amp=cfg.amp)
            test_acc, test_loss = evaluate(model, data.test_x, data.test_y, amp=cfg.amp)
        extras = hooks.end_epoch(epoch)
        epochs_run = epoch + 1
        require_finite(model, f"training of {desc} diverged at epoch {epoch}",
                       f"nothing was saved; lower the learning rate (lr {cfg.lr:g}) or the defense's strength")
        extra_train = {k: v for k, v in train.items() if k not in ("acc", "loss")}
        log.info(format_line(f"Epoch {epoch} {label}Train{hooks.log_suffix}", train["acc"], train["loss"],
                             extra_train | extras))
        log.info(format_line(f"Epoch {epoch} {label}Dev", dev_acc, dev_loss))
        log.info(format_line(f"Epoch {epoch} {label}Test", test_acc, test_loss))
        bar.set_postfix(dev=f"{dev_acc:.1f}", test=f"{test_acc:.1f}")
        if dev_acc > best["dev_acc"]:
            with clock("copy"):
                state = copy.deepcopy(model.state_dict())
            best = {"dev_acc": dev_acc, "epoch": epochs_run, "state": state,
                    "train_acc": train["acc"], "test_acc": test_acc, "test_loss": test_loss, "extras": extras}
            stale = 0
        else:
            stale += 1
            if should_stop(stale, cfg.early_stop):
                log.info(f"Early Stop at Epoch {epoch}")
                break
    bar.close()
    if restore_best:
        model.load_state_dict(best["state"])
    return FitResult(state=best["state"], best_epoch=best["epoch"], epochs_run=epochs_run,
                     train_acc=best["train_acc"], dev_acc=best["dev_acc"], test_acc=best["test_acc"],
                     test_loss=best["test_loss"], seconds=time.perf_counter() - start,
                     extras=best["extras"] | {"last_epoch": extras} if extras else best["extras"],
                     phases=dict(clock.seconds), copies=clock.calls.get("copy", 0))


class _PhaseClock:
    """Adds the wall time of each `with clock(name):` block to seconds[name] (and counts the blocks)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.calls[name] = self.calls.get(name, 0) + 1
