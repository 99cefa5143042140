"""Section "cuda": cifar10_resnet18-shaped work on random tensors on a device (a GPU; `--device cpu` exercises
the code path): victim + shadows one at a time and at once, fit vs the vmapped ensemble, prune, fine-tune,
features, every attack, and the projections of one paper setting and of the paper grid."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from attackers import ATTACKS
from benchmarks.common import ROOT, Bench, Section, fmt_s, now, table
from core import training
from core.config_schema import load_config
from core.training import TrainConfig, TrainHooks, make_optimizer, train_one_epoch


@dataclass(frozen=True)
class DeviceBench:
    """What the device section measured (seconds unless named otherwise)."""

    rows: int
    models: int
    epoch_one: float        # one model's training epoch
    epoch_seq: float        # all models, one after another
    epoch_once: float       # all models at once (one CUDA stream each)
    fit_seq: float          # training.fit, 1 epoch (train + dev/test evaluation), models one after another
    fit_ens: float          # ensemble.fit_ensemble, 1 epoch, all models as one vmapped stack
    finetune_epoch: float   # one pruned model's fine-tune epoch (l1unstructure 0.7)
    prune: float            # computing + attaching the masks
    features: float         # confidence + sensitivity of one model's train + test rows
    attacks: dict[str, float]
    util: float | None      # mean GPU utilisation (%) while the models trained at once
    peak_mib: float | None  # memory high-water mark


def _streams(device: torch.device, n: int) -> list[Any]:
    """One CUDA stream per model; on the CPU a null context each (the models then run in turn)."""
    if device.type == "cuda":
        return [torch.cuda.stream(torch.cuda.Stream(device)) for _ in range(n)]
    return [contextlib.nullcontext() for _ in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _utilisation_sampler(device: torch.device) -> tuple[Any, Any]:
    """Start sampling GPU utilisation every 0.1 s (pynvml via torch.cuda.utilization); returns a stop()."""
    import threading
    samples: list[float] = []
    stop = threading.Event()
    if device.type != "cuda":
        return (lambda: None), samples
    try:
        torch.cuda.utilization(device)
    except Exception:  # no pynvml / NVML: utilisation stays unknown
        return (lambda: None), samples

    def loop() -> None:
        while not stop.is_set():
            samples.append(float(torch.cuda.utilization(device)))
            stop.wait(0.1)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return (lambda: (stop.set(), thread.join())), samples


def run_device_bench(device: torch.device, rows: int, models: int = 6, attack_epochs: int = 100) -> DeviceBench:
    """cifar10_resnet18-shaped work on random tensors: 3x32x32 inputs, 10 classes, `rows` train rows."""
    from attackers import create_attack
    from attackers.base import AttackInput
    from attackers.features import predict_proba, sensitivity
    from models import build_model
    from pruner import prune_model
    cfg_json = load_config(ROOT / "config" / "cifar10_resnet18.json")
    amp = device.type == "cuda"
    cfg = TrainConfig(epochs=1, batch_size=cfg_json.batch_size, optimizer=cfg_json.optimizer, lr=cfg_json.lr,
                      weight_decay=cfg_json.weight_decay, amp=amp, progress=False)
    gen = torch.Generator().manual_seed(0)
    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = torch.randn(rows, 3, 32, 32, generator=gen).to(device).contiguous(memory_format=memory)
    y = torch.randint(0, 10, (rows,), generator=gen).to(device)
    nets = [build_model("resnet18", 10, 3).to(device, memory_format=memory) for _ in range(models)]
    opts = [make_optimizer(m, cfg) for m in nets]
    gens = [torch.Generator().manual_seed(i) for i in range(models)]
    hooks = TrainHooks()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def epoch(i: int) -> None:
        train_one_epoch(nets[i], opts[i], x, y, hooks=hooks, cfg=cfg, generator=gens[i], epoch=0)

    epoch(0)  # warm-up (cuDNN autotuning, allocator)
    _sync(device)
    t0 = now()
    epoch(0)
    _sync(device)
    epoch_one = now() - t0
    t0 = now()
    for i in range(models):
        epoch(i)
    _sync(device)
    epoch_seq = now() - t0
    stop, samples = _utilisation_sampler(device)
    t0 = now()
    batches = [list(hooks.batches(rows, cfg.batch_size, g)) for g in gens]
    for j in range(len(batches[0])):
        for i, ctx in enumerate(_streams(device, models)):
            with ctx, training.autocast(device, amp):
                nets[i].train()
                idx = batches[i][j].to(device)
                hooks.train_step(nets[i], opts[i], x[idx], y[idx], 0)
    _sync(device)
    epoch_once = now() - t0
    stop()
    fit_seq, fit_ens = _fit_epochs(device, nets, x, y, cfg, memory)
    t0 = now()
    prune_model(nets[0], "l1unstructure", 0.7, model_name="resnet18")
    _sync(device)
    prune_s = now() - t0
    opt = make_optimizer(nets[0], cfg)
    t0 = now()
    train_one_epoch(nets[0], opt, x, y, hooks=hooks, cfg=cfg, generator=gens[0], epoch=0)
    _sync(device)
    finetune = now() - t0
    t0 = now()
    probs = predict_proba(nets[0], x)
    sens = sensitivity(nets[0], x, generator=torch.Generator().manual_seed(0))
    features = now() - t0
    n = len(probs)
    member = (np.arange(n) < n // 2).astype(np.int64)
    labels = y.cpu().numpy()
    data = AttackInput(probs, sens, labels, member, probs, sens, labels, member, 10, reference_probs=probs)
    attacks = {}
    for name in (a.name for a in ATTACKS if a.reference_set is None):  # reference attacks: refs.py's section
        attack = create_attack(name, epochs=attack_epochs, device=str(device), seed=0)
        t0 = now()
        attack.run(data)
        _sync(device)
        attacks[name] = now() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    return DeviceBench(rows, models, epoch_one, epoch_seq, epoch_once, fit_seq, fit_ens, finetune, prune_s, features,
                       attacks,
                       sum(samples) / len(samples) if samples else None, peak)


def _fit_epochs(device: torch.device, nets: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                cfg: TrainConfig, memory: torch.memory_format) -> tuple[float, float]:
    """One epoch of training.fit per model (one after another) vs one epoch of ensemble.fit_ensemble for all;
    both evaluate dev (2/9 of the train rows) and test (as many as train) as fit does every epoch."""
    from experiment.ensemble import fit_ensemble
    from models import build_model
    n = len(y)
    data = training.SplitTensors(x, y, x[: max(n * 2 // 9, 1)], y[: max(n * 2 // 9, 1)], x, y)
    fresh = [build_model("resnet18", 10, 3).to(device, memory_format=memory) for _ in nets]
    t0 = now()
    for i, m in enumerate(fresh):
        training.fit(m, data, cfg, generator=torch.Generator().manual_seed(i))
    _sync(device)
    fit_seq = now() - t0
    fresh = [build_model("resnet18", 10, 3).to(device, memory_format=memory) for _ in nets]
    t0 = now()
    fit_ensemble(fresh, [data] * len(fresh), cfg, [torch.Generator().manual_seed(i) for i in range(len(fresh))],
                 [torch.Generator().manual_seed(100 + i) for i in range(len(fresh))])
    _sync(device)
    return fit_seq, now() - t0


def paper_grid_counts() -> dict[str, int]:
    """Commands of the paper profile (launch/profiles.py) per step script (pretrain, prune, mia, refs, memscore,
    nas_privacy); the projection below covers the artifact's three steps and states the rest as counts."""
    import collections

    from launch import profiles
    return dict(collections.Counter(cmd.split()[1].removesuffix(".py") for exp in profiles.PAPER
                                    for cmd in exp.commands()))


def device_report(b: DeviceBench, device: torch.device, counts: dict[str, int]) -> str:
    """The cuda section's tables: per-step times and the projections of one setting and the paper grid."""
    shadows = b.models - 1
    attack_total = sum(b.attacks.values())
    pretrain = 100 * min(b.epoch_once, b.fit_ens)  # victim + shadows at once (the faster way), 100 epochs
    finetune = 50 * b.models * b.finetune_epoch  # pruned victim + shadows one at a time, 50 epochs
    mia = b.models * b.features + attack_total
    setting = pretrain + b.models * b.prune + finetune + mia
    grid_s = counts["pretrain"] * pretrain + counts["prune"] * (b.models * b.prune + finetune) + counts["mia"] * mia
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows = [["pretrain epoch, 1 model", fmt_s(b.epoch_one), ""],
            [f"pretrain epoch, victim + {shadows} shadows one at a time", fmt_s(b.epoch_seq),
             f"{b.models * 3600 / b.epoch_seq:,.0f} model-epochs/h"],
            [f"pretrain epoch, victim + {shadows} shadows at once ({b.models} CUDA streams)", fmt_s(b.epoch_once),
             f"{b.models * 3600 / b.epoch_once:,.0f} model-epochs/h, {b.epoch_seq / b.epoch_once:.2f}x"],
            [f"fit epoch (train + dev/test eval), {b.models} models one at a time (training.fit)",
             fmt_s(b.fit_seq), f"{b.models * 3600 / b.fit_seq:,.0f} model-epochs/h"],
            [f"fit epoch, {b.models} models as one vmapped ensemble (ensemble.fit_ensemble)", fmt_s(b.fit_ens),
             f"{b.models * 3600 / b.fit_ens:,.0f} model-epochs/h, {b.fit_seq / b.fit_ens:.2f}x"],
            ["prune (l1unstructure 0.7, 1 model)", fmt_s(b.prune), ""],
            ["fine-tune epoch, 1 pruned model", fmt_s(b.finetune_epoch), ""],
            ["features (confidence + sensitivity n=10), 1 model's rows", fmt_s(b.features), f"{b.rows:,} rows"]]
    rows += [[f"attack {k}", fmt_s(v), ""] for k, v in b.attacks.items()]
    rows += [["**one paper setting** (100 pretrain + 50 fine-tune epochs, "
              f"{b.models} models, all attacks)", fmt_s(setting),
              f"{7200 / setting:.1f}x the artifact's 2 h"],
             [f"**paper grid** ({counts['pretrain']} pretrain, {counts['prune']} prune, {counts['mia']} mia commands,"
              " all cifar10_resnet18-shaped)", f"{grid_s / 3600:,.1f} h",
              "not projected: " + ", ".join(f"{v} {k}" for k, v in counts.items()
                                            if k not in ("pretrain", "prune", "mia"))],
             ["GPU utilisation while training at once", "n/a" if b.util is None else f"{b.util:.0f} %", ""],
             ["memory high-water mark", "n/a" if b.peak_mib is None else f"{b.peak_mib:,.0f} MiB", ""]]
    head = (f"Device section: {name}, cifar10_resnet18-shaped random tensors ({b.rows:,} x 3x32x32, "
            f"10 classes{', channels_last + bf16 autocast' if device.type == 'cuda' else ''})\n")
    return head + "\n" + table(["what", "wall time", "note"], rows)


def unavailable(bench: Bench | None) -> str | None:
    if (bench is None or bench.device.type == "cuda") and not torch.cuda.is_available():
        return "it needs a CUDA device and none is visible here (use --device cpu to exercise it on the CPU)"
    return None


def run(bench: Bench) -> str:
    b = run_device_bench(bench.device, bench.bench_rows, bench.bench_models,
                         attack_epochs=bench.bench_attack_epochs)
    return device_report(b, bench.device, paper_grid_counts())


SECTION = Section("cuda", "the paper-scale projection on a GPU (--device, --bench_rows, --bench_models, "
                          "--bench_attack_epochs)", run, unavailable=unavailable)
