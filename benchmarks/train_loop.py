"""Section "train": the training loop (`training.train_one_epoch`) against the floor of a bare forward + backward +
optimiser step, and what `fit()` adds per epoch (evaluation, best-weights copy)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import Bench, Profile, Section, fmt_rate, fmt_s, fresh, load_experiment, now, table, train_config
from core import training
from core.training import TrainHooks, make_optimizer, train_one_epoch
from experiment import channels_last
from models import count_parameters


def floor_steps(model: nn.Module, optimizer: torch.optim.Optimizer,
                batches: list[tuple[torch.Tensor, torch.Tensor]], repeat: int) -> None:
    """The floor: forward + backward + optimiser step on fixed in-memory batches, nothing else."""
    model.train()
    for _ in range(repeat):
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()


def bench_training(stem: str, prof: Profile) -> tuple[list[str], list[str]]:
    """One row of the loop-vs-floor table and one row of the fit() overhead table."""
    exp = load_experiment(stem)
    data = exp.tensors(None)
    n, bs = len(data.train_y), exp.cfg.batch_size
    tc = train_config(exp)
    model = fresh(exp)
    optimizer = make_optimizer(model, tc)
    full = [(data.train_x[:bs].clone(), data.train_y[:bs].clone())]
    # The epoch's own batch sizes (ceil(n / bs) steps, the last one partial), pre-sliced and contiguous:
    # what is left between this and train_one_epoch is the loop itself (shuffle, gather, stats).
    same = [(x.clone(), y.clone()) for x, y in zip(data.train_x.split(bs), data.train_y.split(bs))]
    gen = torch.Generator().manual_seed(0)

    # Warm up both paths, then size each sample to at least min_seconds of whole epochs.
    floor_steps(model, optimizer, same, 1)
    t0 = now()
    train_one_epoch(model, optimizer, data.train_x, data.train_y, hooks=TrainHooks(), cfg=tc, generator=gen,
                    epoch=0)
    epochs = max(1, math.ceil(prof.min_seconds / max(now() - t0, 1e-6)))
    steps = max(1, round(epochs * n / bs))  # the same number of rows as `epochs` epochs
    ours, floor, floor_same = [], [], []
    per_epoch_steps = len(same)
    for _ in range(prof.repeats):
        t0 = now()
        floor_steps(model, optimizer, full, steps)
        floor.append(steps * bs / (now() - t0))
        t0 = now()
        floor_steps(model, optimizer, same, epochs)
        floor_same.append(epochs * n / (now() - t0))
        t0 = now()
        for e in range(epochs):
            train_one_epoch(model, optimizer, data.train_x, data.train_y, hooks=TrainHooks(), cfg=tc,
                            generator=gen, epoch=e)
        ours.append(epochs * n / (now() - t0))
    best_floor, best_same, best_ours = max(floor), max(floor_same), max(ours)
    layout = "channels_last" if channels_last(exp.device, data.train_x) else \
        ("NCHW" if data.train_x.dim() == 4 else "2-D")
    opt_name = type(optimizer).__name__ + (" fused" if optimizer.defaults.get("fused") else "")
    row = [stem, f"{count_parameters(model) / 1e6:.2f} M, {layout}, {opt_name}",
           f"{n} ({per_epoch_steps} batches, last {len(same[-1][1])})",
           fmt_rate(best_floor), fmt_rate(best_same), fmt_rate(best_ours), f"**{best_ours / best_floor:.2f}**",
           f"{best_ours / best_same:.2f}"]

    # fit(): one run from a fresh model, timed by fit's own phase clock; early_stop = epochs so every epoch runs.
    model = fresh(exp, seed=1)
    t0 = now()
    result = training.fit(model, data, train_config(exp, prof.fit_epochs), generator=torch.Generator().manual_seed(1))
    total = now() - t0
    e = result.epochs_run
    train_s, eval_s, copy_s = (result.phases.get(k, 0.0) for k in ("train", "evaluate", "copy"))
    other = total - train_s - eval_s - copy_s
    overhead = total - train_s
    fit_row = [stem, str(e), fmt_s(total / e), fmt_s(train_s / e),
               f"{fmt_s(overhead / e)} ({100 * overhead / total:.0f}%)",
               f"{fmt_s(eval_s / e)} ({len(data.dev_y)}+{len(data.test_y)} rows)",
               f"{fmt_s(copy_s / e)} ({result.copies} copies)",
               fmt_s(other / e)]
    return row, fit_row


def run(bench: Bench) -> str:
    rows, fit_rows = [], []
    for c in bench.configs:
        r, f = bench_training(c, bench.prof)
        rows.append(r)
        fit_rows.append(f)
    return "\n".join([
        "Training loop vs the floor (batch 128, CPU)\n",
        "Floor: forward + backward + optimiser step on fixed in-memory batches, nothing else. Ours: "
        "`training.train_one_epoch` with `TrainHooks()` over the victim train split (shuffled index "
        "slices, last partial batch, per-batch stats).\n",
        table(["config", "params, layout, optimizer", "victim train rows", "floor rows/s (batch 128)",
               "floor rows/s (epoch's batch sizes)", "ours rows/s", "ours / floor",
               "ours / floor with the epoch's batches"], rows),
        "\nThe second floor runs the epoch's own batch sizes (the last batch is partial) on pre-sliced "
        "data, so the last column is the cost of the loop itself (shuffle, index gather, per-batch stats): "
        "1.00 = none. The gap between the two floors is the partial last batch.",
        "\n`fit()` per epoch (one instrumented run from a fresh model, every epoch run): what it adds "
        "to `train_one_epoch`.\n",
        table(["config", "epochs", "fit / epoch", "train_one_epoch", "overhead (share of fit)",
               "evaluate dev + test", "state_dict deepcopy", "other (logging, tqdm)"], fit_rows)])


SECTION = Section("train", "training loop vs a bare optimiser step; fit()'s overhead per epoch",
                  run, uses_configs=True)
