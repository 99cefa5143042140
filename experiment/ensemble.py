"""Many models at once: K models of one architecture trained as one vectorised ensemble (docs/speed.md §2).

`fit_ensemble` is `training.fit` with `TrainHooks()` (plain training: the victim, the shadows, reference
models) for K models at a time: their parameters are stacked (`torch.func.stack_module_state`) and one
`vmap` of `functional_call` runs all K forward and backward passes per step. Each model keeps what it has
alone:
  - its own data (same row count n; its own rows) and data order: `training.split_batches(torch.randperm(n,
    generator=g_k), batch_size)` from its own generator, so the last partial batch is its own too;
  - its own dropout noise: masks drawn from its own generator, in the order nn.Dropout draws them alone
    (`bernoulli_(1 - p)` then `div_(1 - p)`, module by module, step by step);
  - its own optimiser state: torch's own functional Adam / SGD (`torch.optim.adam.adam`,
    `torch.optim.sgd.sgd`) applied to the stacked tensors, which is elementwise, so each slice gets
    exactly the update torch.optim gives the model alone;
  - its own early stopping: dev accuracy by `training.evaluate` on the model itself (its weights are
    copied back after every epoch), best = strictly greater starting from 0, stop after more than
    `early_stop` stale epochs (never with early_stop 0); a stopped model leaves the stack and is no longer updated;
  - its own `training.FitResult` (best weights, accuracies at the best epoch, `.checkpoint()`).
On the CPU the result equals `training.fit` on each model alone bit for bit, float32 included
(tests/test_ensemble.py: columnfc with Adam / SGD and early stopping, a small CNN, a CNN with BatchNorm;
ResNet18 checked by hand for 2 epochs): Linear, Conv2d and BatchNorm2d run under vmap with the single
model's arithmetic (the custom ops below). On a GPU vmap's own batched kernels are kept (equal to float
tolerance). BatchNorm works: the running statistics are stacked like the parameters and each model's
slice is updated in place. Not supported (a ValueError says so): different row counts, models
of different architectures; defense hooks are not taken. The log gets `training.fit`'s lines per model,
prefixed by its label.
"""
from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.optim.adam import adam as functional_adam
from torch.optim.sgd import sgd as functional_sgd

from core.storage import log
from core.training import (
    FitResult,
    SplitTensors,
    TrainConfig,
    autocast,
    evaluate,
    format_line,
    should_stop,
    split_batches,
)

# ---- layers whose vmapped form rounds like the model alone (float32 bit for bit on the CPU) -------------
# vmap's own rules change the arithmetic: linear becomes a batched matmul plus a separate bias add (the
# model alone folds the bias into addmm's GEMM), conv2d one grouped convolution and batch_norm one call over
# K*C channels (other kernels, other reduction orders); measured, each differs in the last bit from the
# first step and the models drift apart over training. The custom ops below give vmap rules that keep the
# single model's arithmetic: `baddbmm` per linear (bitwise equal to addmm per slice, measured) with
# addmm's own backward products, and one conv2d / batch_norm call per model. Autograd records the ops the
# rules call, so each slice's backward is the single model's too.

@torch.library.custom_op("prune_mia_ensemble::linear", mutates_args=())
def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, weight, bias)


@_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _stacked(k: int, dims: tuple[int | None, ...], *args: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Each argument with its vmapped dimension first (expanded to k when it has none)."""
    return [a if a is None else a.movedim(d, 0) if d is not None else a.expand(k, *a.shape)
            for a, d in zip(args, dims)]


@torch.library.custom_op("prune_mia_ensemble::stacked_addmm", mutates_args=())
def _stacked_addmm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Per slice k: addmm(bias_k, x_k, W_k^T) (x (K, rows, in), weight (K, out, in), bias (K, out))."""
    w_t = weight.transpose(1, 2)
    return torch.bmm(x, w_t) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, w_t)


@_stacked_addmm.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((x.shape[0], x.shape[1], weight.shape[1]))


def _stacked_addmm_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _stacked_addmm_backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """addmm's own backward products in their operand order: grad W = g^T x (torch computes it so for the
    transposed W^T; bmm's default backward x^T g rounds differently, measured on ResNet18's fc),
    grad x = g W, grad bias = the sum of g over the rows."""
    x, weight = ctx.saved_tensors
    return torch.bmm(grad, weight), torch.bmm(grad.transpose(1, 2), x), grad.sum(1) if ctx.has_bias else None


_stacked_addmm.register_autograd(_stacked_addmm_backward, setup_context=_stacked_addmm_setup)


def _linear_vmap(info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    x, weight, bias = _stacked(info.batch_size, in_dims, x, weight, bias)
    rows = x.reshape(x.shape[0], -1, x.shape[-1])  # F.linear folds N-D inputs into rows the same way
    return _stacked_addmm(rows, weight, bias).view(*x.shape[:-1], weight.shape[1]), 0


_linear.register_vmap(_linear_vmap)


@torch.library.custom_op("prune_mia_ensemble::conv2d", mutates_args=())
def _conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
            padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


@_conv2d.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int], padding: list[int],
      dilation: list[int], groups: int) -> torch.Tensor:
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _conv2d_vmap(info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None, stride: list[int], padding: list[int], dilation: list[int],
                 groups: int) -> tuple[torch.Tensor, int]:
    x, weight, bias = _stacked(info.batch_size, in_dims[:3], x, weight, bias)
    return torch.stack([F.conv2d(x[k], weight[k], None if bias is None else bias[k], stride, padding, dilation,
                                 groups) for k in range(info.batch_size)]), 0


_conv2d.register_vmap(_conv2d_vmap)


@torch.library.custom_op("prune_mia_ensemble::batch_norm", mutates_args=("running_mean", "running_var"))
def _batch_norm(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor, weight: torch.Tensor | None,
                bias: torch.Tensor | None, momentum: float, eps: float) -> torch.Tensor:
    return F.batch_norm(x, running_mean, running_var, weight, bias, True, momentum, eps)


@_batch_norm.register_fake
def _(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor, weight: torch.Tensor | None,
      bias: torch.Tensor | None, momentum: float, eps: float) -> torch.Tensor:
    return torch.empty_like(x)


def _batch_norm_vmap(info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, running_mean: torch.Tensor,
                     running_var: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                     momentum: float, eps: float) -> tuple[torch.Tensor, int]:
    """One batch_norm per model; its running statistics are updated in place in their own slice."""
    x, mean, var, weight, bias = _stacked(info.batch_size, in_dims[:5], x, running_mean, running_var, weight, bias)
    return torch.stack([F.batch_norm(x[k], mean[k], var[k], None if weight is None else weight[k],
                                     None if bias is None else bias[k], True, momentum, eps)
                        for k in range(info.batch_size)]), 0


_batch_norm.register_vmap(_batch_norm_vmap)


class _ExactLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(x, self.weight, self.bias)


class _ExactConv2d(nn.Conv2d):
    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(x, weight, bias)  # vmap's own rule (float tolerance only)
        return _conv2d(x, weight, bias, list(self.stride), list(self.padding), list(self.dilation), self.groups)


class _ExactBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats and self.momentum is not None):
            return super().forward(x)  # vmap's own rule (float tolerance only)
        self.num_batches_tracked.add_(1)  # what nn.BatchNorm2d does in training with a fixed momentum
        return _batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.momentum, self.eps)


_EXACT = {nn.Linear: _ExactLinear, nn.Conv2d: _ExactConv2d, nn.BatchNorm2d: _ExactBatchNorm2d}


class _MaskedDropout(nn.Module):
    """Stands in for nn.Dropout inside the vmapped call: multiplies by the next mask handed in."""

    def __init__(self, p: float, feed: _MaskFeed) -> None:
        super().__init__()
        self.p, self.feed = p, feed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed.apply(self, x)


@dataclass
class _MaskFeed:
    """The masks of one step in module order; `shapes` mode only records the input shapes."""

    masks: list[torch.Tensor] | None = None
    shapes: list[tuple[tuple[int, ...], float]] | None = None  # (input shape, p) in forward-call order

    def apply(self, module: _MaskedDropout, x: torch.Tensor) -> torch.Tensor:
        if self.shapes is not None:
            if module.p > 0:
                self.shapes.append((tuple(x.shape), module.p))
            return x
        if self.masks is None or module.p == 0 or not module.training:
            return x
        return x * self.masks.pop(0)


def _template(model: nn.Module, feed: _MaskFeed, exact: bool) -> tuple[nn.Module, list[float]]:
    """A parameter-free copy of `model` whose nn.Dropout modules read masks from `feed`; `exact`: its
    Linear / Conv2d / BatchNorm2d keep the model alone's arithmetic under vmap (see _EXACT)."""
    template = copy.deepcopy(model).to("meta")
    probs: list[float] = []
    for module in template.modules():
        if exact and type(module) in _EXACT:  # same parameters and names, only forward differs
            module.__class__ = _EXACT[type(module)]
    for parent in template.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Dropout):
                setattr(parent, name, _MaskedDropout(child.p, feed))
                probs.append(child.p)
    return template, probs


def _check(models: list[nn.Module], datas: list[SplitTensors], generators: list[torch.Generator],
           dropout_generators: list[torch.Generator]) -> None:
    if not (len(models) == len(datas) == len(generators) == len(dropout_generators)) or not models:
        raise ValueError("fit_ensemble needs one data split, one shuffle and one dropout generator per model")
    if len({len(d.train_y) for d in datas}) != 1:
        raise ValueError("fit_ensemble needs the same number of training rows for every model")
    if len({tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models}) != 1:
        raise ValueError("fit_ensemble needs models of one architecture")


class _Stack:
    """The active models' stacked parameters and optimiser state; models leave it when they stop."""

    def __init__(self, models: list[nn.Module], cfg: TrainConfig) -> None:
        self.ids = list(range(len(models)))
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().requires_grad_() for k, v in params.items()}
        # BatchNorm running statistics: stacked too; vmap updates each model's slice in place
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.cfg = cfg
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    def step(self) -> None:
        """One optimiser step of every active model: torch's functional optimiser on the stacked tensors."""
        names = [k for k, p in self.params.items() if p.grad is not None]
        ps = [self.params[k] for k in names]
        grads = [p.grad for p in ps]
        cfg = self.cfg
        with torch.no_grad():
            if cfg.optimizer == "adam":
                st = [self.state.setdefault(k, {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p),
                                                "step": torch.tensor(0.0)}) for k, p in zip(names, ps)]
                functional_adam(ps, grads, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [],
                                [s["step"] for s in st], amsgrad=False, beta1=0.9, beta2=0.999, lr=cfg.lr,
                                weight_decay=cfg.weight_decay, eps=1e-8, maximize=False)
            elif cfg.optimizer == "sgd":
                bufs = [self.state.get(k, {}).get("momentum_buffer") for k in names]
                functional_sgd(ps, grads, bufs, weight_decay=cfg.weight_decay, momentum=0.9, lr=cfg.lr,
                               dampening=0.0, nesterov=False, maximize=False)
                for k, b in zip(names, bufs):
                    self.state[k] = {"momentum_buffer": b}
            else:
                raise ValueError(f"unknown optimizer '{cfg.optimizer}'")
        for p in ps:
            p.grad = None

    def keep(self, keep_ids: list[int]) -> None:
        """Drop the stopped models' slices (parameters and optimiser state)."""
        rows = torch.tensor([self.ids.index(i) for i in keep_ids], dtype=torch.long)
        with torch.no_grad():
            self.params = {k: v.index_select(0, rows.to(v.device)).requires_grad_() for k, v in self.params.items()}
            self.buffers = {k: v.index_select(0, rows.to(v.device)) for k, v in self.buffers.items()}
            self.state = {k: {n: (t.index_select(0, rows.to(t.device)) if t is not None and t.dim() > 0 else t)
                              for n, t in s.items()} for k, s in self.state.items()}
        self.ids = list(keep_ids)

    def copy_into(self, models: list[nn.Module]) -> None:
        with torch.no_grad():
            for row, i in enumerate(self.ids):
                for name, p in models[i].named_parameters():
                    p.copy_(self.params[name][row])
                for name, b in models[i].named_buffers():
                    b.copy_(self.buffers[name][row])


def _draw_masks(shapes: list[tuple[tuple[int, ...], float]], gens: list[torch.Generator],
                device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    """Per dropout call, the K stacked masks; model k's come from gens[k] in nn.Dropout's order."""
    per_model = []
    for g in gens:
        masks = []
        for shape, p in shapes:
            m = torch.empty(shape, dtype=dtype).bernoulli_(1 - p, generator=g).div_(1 - p)  # as at::dropout
            masks.append(m)
        per_model.append(masks)
    return [torch.stack([pm[j] for pm in per_model]).to(device) for j in range(len(shapes))]


@contextlib.contextmanager
def _feeding(feed: _MaskFeed, masks: list[torch.Tensor] | None) -> Iterator[None]:
    feed.masks = list(masks) if masks is not None else None
    try:
        yield
    finally:
        feed.masks = None


def fit_ensemble(models: list[nn.Module], datas: list[SplitTensors], cfg: TrainConfig,
                 generators: list[torch.Generator], dropout_generators: list[torch.Generator], *,
                 labels: list[str] | None = None) -> list[FitResult]:
    """`training.fit` (plain hooks) for K models at once; returns each model's FitResult, models hold
    their best weights afterwards. `generators[k]` shuffles model k's batches (as fit's `generator`);
    `dropout_generators[k]` is in the state torch's global RNG would be in when fit starts for model k
    (e.g. `torch.Generator().set_state(torch.get_rng_state())` right after seeding and building it).
    """
    _check(models, datas, generators, dropout_generators)
    labels = labels or [""] * len(models)
    device = next(models[0].parameters()).device
    feed = _MaskFeed()
    # bit for bit on the CPU (where the loop of per-model convolutions costs nothing: the CPU is busy either
    # way); on a GPU vmap's own batched/grouped kernels are what makes K models at once pay
    template, probs = _template(models[0], feed, exact=device.type == "cpu")
    stack = _Stack(models, cfg)
    start = time.perf_counter()
    best = [{"dev_acc": 0.0, "epoch": 0, "state": copy.deepcopy(m.state_dict()), "train_acc": 0.0,
             "test_acc": 0.0, "test_loss": float("nan")} for m in models]
    stale, epochs_run, seconds = [0] * len(models), [0] * len(models), [0.0] * len(models)
    shape_cache: dict[int, list[tuple[int, ...]]] = {}

    def dropout_shapes(x: torch.Tensor) -> list[tuple[tuple[int, ...], float]]:
        """(input shape, p) of each dropout call, in call order, for a batch like x (one pass per size)."""
        if x.shape[0] not in shape_cache:
            feed.shapes = []
            with torch.no_grad():
                functional_call(template, ({k: v[0] for k, v in stack.params.items()},
                                           {k: v[0].clone() for k, v in stack.buffers.items()}), (x,))
            shape_cache[x.shape[0]], feed.shapes = feed.shapes, None
        return shape_cache[x.shape[0]]

    def one_model(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor, masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with _feeding(feed, masks if probs else None):
            logits = functional_call(template, (params, buffers), (x,))
        return F.cross_entropy(logits, y), logits

    batched = vmap(one_model)
    for epoch in range(cfg.epochs):
        template.train()
        perms = [split_batches(torch.randperm(len(datas[i].train_y), generator=generators[i]), cfg.batch_size)
                 for i in stack.ids]
        loss_sum = torch.zeros(len(stack.ids), device=device)
        correct = torch.zeros(len(stack.ids), device=device, dtype=torch.long)
        count = 0
        with autocast(device, cfg.amp):
            for j in range(len(perms[0])):
                xs = torch.stack([datas[i].train_x[perms[r][j].to(device)] for r, i in enumerate(stack.ids)])
                ys = torch.stack([datas[i].train_y[perms[r][j].to(device)] for r, i in enumerate(stack.ids)])
                masks = _draw_masks(dropout_shapes(xs[0]), [dropout_generators[i] for i in stack.ids],
                                    device, xs.dtype) if probs else []
                losses, logits = batched(stack.params, stack.buffers, xs, ys, masks)
                losses.sum().backward()
                stack.step()
                n = ys.shape[1]
                loss_sum += losses.detach() * n
                correct += (logits.detach().argmax(-1) == ys).sum(-1)
                count += n
        stack.copy_into(models)
        stopped = _end_epoch(epoch, stack.ids, models, datas, cfg, labels, best, stale, epochs_run,
                             loss_sum, correct, count)
        now = time.perf_counter() - start
        for i in stack.ids:
            seconds[i] = now
        if stopped:
            stack.keep([i for i in stack.ids if i not in stopped])
        if not stack.ids:
            break
    results = []
    for i, model in enumerate(models):
        b = best[i]
        model.load_state_dict(b["state"])
        results.append(FitResult(state=b["state"], best_epoch=b["epoch"], epochs_run=epochs_run[i],
                                 train_acc=b["train_acc"], dev_acc=b["dev_acc"], test_acc=b["test_acc"],
                                 test_loss=b["test_loss"], seconds=seconds[i], extras={}))
    return results


def _end_epoch(epoch: int, ids: list[int], models: list[nn.Module], datas: list[SplitTensors],
               cfg: TrainConfig, labels: list[str], best: list[dict[str, Any]], stale: list[int],
               epochs_run: list[int], loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> list[int]:
    """fit()'s per-epoch bookkeeping for every active model; returns the ids that stop now."""
    stopped = []
    for row, i in enumerate(ids):
        train_acc = 100.0 * correct[row].item() / count
        train_loss = loss_sum[row].item() / count
        dev_acc, dev_loss = evaluate(models[i], datas[i].dev_x, datas[i].dev_y, amp=cfg.amp)
        test_acc, test_loss = evaluate(models[i], datas[i].test_x, datas[i].test_y, amp=cfg.amp)
        epochs_run[i] = epoch + 1
        log.info(format_line(f"Epoch {epoch} {labels[i]}Train", train_acc, train_loss))
        log.info(format_line(f"Epoch {epoch} {labels[i]}Dev", dev_acc, dev_loss))
        log.info(format_line(f"Epoch {epoch} {labels[i]}Test", test_acc, test_loss))
        if dev_acc > best[i]["dev_acc"]:
            best[i] = {"dev_acc": dev_acc, "epoch": epoch + 1, "state": copy.deepcopy(models[i].state_dict()),
                       "train_acc": train_acc, "test_acc": test_acc, "test_loss": test_loss}
            stale[i] = 0
        else:
            stale[i] += 1
            if should_stop(stale[i], cfg.early_stop):
                log.info(f"Early Stop at Epoch {epoch}")
                stopped.append(i)
    return stopped
