"""Where the time goes: the training loop vs a bare optimiser step, sensitivity features, threshold fitting,
the wall time of every step of one full setting run through the real scripts, and the victim + shadows
trained in one process vs `--workers` processes.

    python bench.py [--quick] [--threads N] [--configs digits_resnet18,synthetic_purchase_columnfc]
                    [--sections train,sens,threshold,pipeline,workers,memscore,refs,samia,ensemble,cuda]
                    [--device cuda|cpu --bench_rows N]   # the cuda section (see bench_cuda.py)

Prints Markdown tables (paste them into the README); writes nothing in the repository (sections 4-5 run in
temporary folders). Every comparison is measured in the same run, with the two sides interleaved and the
best of several repeats kept, so a noisy, shared machine biases both sides alike; the load average at the
start and end is printed so a reader can judge the noise. --quick takes about 3-5 minutes on 2 CPU cores,
the full run about 13 (measured).
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning, as in the step scripts (spinning made small models 10x
# slower on 2 loaded cores). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import datasets  # noqa: E402
from attackers import ATTACKS  # noqa: E402
from attackers.base import AttackInput  # noqa: E402
from attackers.features import _inference, _softmax64, sensitivity  # noqa: E402
from attackers.threshold import ThresholdAttack, fit_threshold, fit_threshold_exhaustive  # noqa: E402
from core import training  # noqa: E402
from core.config_schema import Config, load_config  # noqa: E402
from core.training import TrainConfig, TrainHooks, make_optimizer, train_one_epoch  # noqa: E402
from experiment import Experiment, RunOptions, channels_last  # noqa: E402
from models import count_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parent

CONFIGS = ("digits_resnet18", "synthetic_purchase_columnfc")
SECTIONS = ("train", "sens", "threshold", "pipeline", "workers", "memscore", "refs", "samia", "ensemble", "cuda")
THRESHOLD_FAMILY = ThresholdAttack.results()
ATTACK_ORDER = ATTACKS.names()


# ------------------------------------------------------------------------------------------------ helpers

@dataclass
class Profile:
    """How hard each section works; --quick trades repeats and pipeline length for time."""

    repeats: int          # best-of repeats of every timed comparison
    min_seconds: float    # each timed sample runs at least this long (whole epochs / steps)
    fit_epochs: int       # epochs of the instrumented fit() run
    exhaustive_rows: int  # subsample for the O(n^2) threshold search
    pipeline: dict[str, list[str]]  # per config: extra flags for the three step scripts
    workers: dict[str, list[str]]   # per config: pretrain.py flags of the one-process vs N-process race
    refs: dict[str, list[str]]      # per config: refs.py flags (references of the original, then pruned 0.6)


PROFILES = {
    # resnet18 on CPU costs ~100x more per row than columnfc, so its quick setting is shorter still.
    "quick": Profile(repeats=2, min_seconds=0.5, fit_epochs=2, exhaustive_rows=3000,
                     pipeline={"digits_resnet18": ["--shadow_num", "2", "--epochs", "3", "--prune_epochs", "2",
                                                   "--attack_epochs", "5"],
                               "synthetic_purchase_columnfc": ["--shadow_num", "2", "--epochs", "5",
                                                               "--prune_epochs", "3", "--attack_epochs", "5"]},
                     workers={"digits_resnet18": ["--shadow_num", "3", "--epochs", "2", "--early_stop", "2"],
                              "synthetic_purchase_columnfc": ["--shadow_num", "3", "--epochs", "10"]},
                     # columnfc with its configured epochs (a reference costs what the grid's does); resnet18 short
                     refs={"digits_resnet18": ["--ref_models", "2", "--epochs", "2", "--prune_epochs", "1"],
                           "synthetic_purchase_columnfc": ["--ref_models", "4"]}),
    # Full: columnfc as configured (5 shadows, 50 + 25 epochs) except the attack epochs (SAMIA at 100 epochs
    # on 5 shadows alone takes ~15 min on 2 cores); resnet18 with 3 shadows and short epochs.
    "full": Profile(repeats=4, min_seconds=1.0, fit_epochs=4, exhaustive_rows=5000,
                    pipeline={"digits_resnet18": ["--shadow_num", "3", "--epochs", "6", "--prune_epochs", "3",
                                                  "--attack_epochs", "20"],
                              "synthetic_purchase_columnfc": ["--attack_epochs", "20"]},
                    workers={"digits_resnet18": ["--shadow_num", "3", "--epochs", "4", "--early_stop", "4"],
                             "synthetic_purchase_columnfc": ["--shadow_num", "5"]},
                    refs={"digits_resnet18": ["--ref_models", "4", "--epochs", "6", "--prune_epochs", "3"],
                          "synthetic_purchase_columnfc": ["--ref_models", "16"]}),
}


def now() -> float:
    return time.perf_counter()


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_s(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f} s"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.1f} ms"
    return f"{v * 1e6:.0f} µs"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def say(msg: str) -> None:
    """Progress goes to stderr so stdout is only the Markdown to paste."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def data_root(cfg: Config) -> Path:
    """The config's data folder; a relative one is read from the repository, as the steps run there."""
    root = Path(cfg.data_root)
    return root if root.is_absolute() else ROOT / root


def load_experiment(stem: str) -> Experiment:
    """The experiment the step scripts would open, built in memory: bench.py writes no split file or log."""
    path = ROOT / "config" / f"{stem}.json"
    cfg = load_config(path)
    pool = datasets.load_pool(cfg.dataset_name, data_root(cfg), input_dim=cfg.input_dim, num_cls=cfg.num_cls)
    splits = datasets.make_splits(len(pool.y), seed=cfg.seed, shadow_num=cfg.shadow_num, **cfg.split)
    return Experiment(cfg, RunOptions(str(path), device="cpu", quiet=True), torch.device("cpu"), pool, splits)


def train_config(exp: Experiment, epochs: int = 1) -> TrainConfig:
    """The steps' training settings, with early stopping out of the way so every epoch runs."""
    return dataclasses.replace(exp.train_config(epochs), early_stop=epochs)


def fresh(exp: Experiment, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return exp.fresh_model()


# ------------------------------------------------------------------------------------ 1. training loop

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


# ------------------------------------------------------------------------------------ 2. sensitivity

def sensitivity_loop(model: nn.Module, x: torch.Tensor, *, n: int, eps: float, batch_size: int = 512,
                     generator: torch.Generator | None = None) -> np.ndarray:
    """The plain alternative: one forward for the clean chunk and one per noisy copy, with the noise of
    attackers.features.sensitivity (same draw order), so both give the same numbers."""
    out: list[torch.Tensor] = []
    with _inference(model):
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start:start + batch_size]
            noise = torch.randn((n, *chunk.shape), generator=generator, dtype=chunk.dtype)
            clean = _softmax64(model(chunk))
            acc = torch.zeros_like(clean)
            for i in range(n):
                acc += (_softmax64(model(chunk + eps * noise[i])) - clean).abs()
            out.append(acc / n / eps)
    return torch.cat(out).numpy()


def bench_sensitivity(stem: str, prof: Profile) -> list[str]:
    exp = load_experiment(stem)
    data = exp.tensors(None)
    x = torch.cat([data.train_x, data.test_x])
    n, eps = int(exp.cfg.sensitivity["n"]), float(exp.cfg.sensitivity["eps"])
    model = fresh(exp)
    # A briefly trained model, so the softmax is not uniform (as for a real victim).
    tc = train_config(exp)
    opt = make_optimizer(model, tc)
    train_one_epoch(model, opt, data.train_x, data.train_y, hooks=TrainHooks(), cfg=tc,
                    generator=torch.Generator().manual_seed(0), epoch=0)
    sensitivity(model, x[:64], n=n, eps=eps)  # warm-up
    times_b, times_l, diff = [], [], 0.0
    for _ in range(prof.repeats):
        t0 = now()
        batched = sensitivity(model, x, n=n, eps=eps, generator=torch.Generator().manual_seed(3))
        times_b.append(now() - t0)
        t0 = now()
        looped = sensitivity_loop(model, x, n=n, eps=eps, generator=torch.Generator().manual_seed(3))
        times_l.append(now() - t0)
        diff = max(diff, float(np.max(np.abs(batched - looped)) / max(np.max(np.abs(looped)), 1e-300)))
    rows = len(x)
    b, lp = rows / min(times_b), rows / min(times_l)
    return [stem, f"{rows} x (1 + {n})", fmt_rate(lp), fmt_rate(b), f"{b / lp:.2f}x", f"{diff:.1e}"]


# ------------------------------------------------------------------------------------ 3. threshold fit

def bench_threshold(prof: Profile) -> list[list[str]]:
    rng = np.random.default_rng(0)
    half = 135_000
    # Confidence-like values rounded to 4 decimals: ~10k distinct values, so most values are tied.
    in_vals = np.round(rng.beta(5, 2, half), 4)
    out_vals = np.round(rng.beta(2, 2, half), 4)
    rows: list[list[str]] = []

    fast = []
    for _ in range(prof.repeats):
        t0 = now()
        t_fast = fit_threshold(in_vals, out_vals)
        fast.append(now() - t0)
    sub = prof.exhaustive_rows // 2
    idx = rng.choice(half, sub, replace=False)
    sin, sout = in_vals[idx], out_vals[idx]
    t0 = now()
    t_exh = fit_threshold_exhaustive(sin, sout)
    exh = now() - t0
    agree = t_exh == fit_threshold(sin, sout)
    small = []
    for _ in range(prof.repeats):
        t0 = now()
        fit_threshold(sin, sout)
        small.append(now() - t0)
    scale = (2 * half / (2 * sub)) ** 2
    rows.append([f"fit_threshold_exhaustive (artifact, O(n²)), {2 * sub:,} rows", fmt_s(exh), "measured"])
    rows.append([f"fit_threshold, {2 * sub:,} rows (same threshold: {'yes' if agree else 'NO'})",
                 fmt_s(min(small)), f"{exh / min(small):,.0f}x faster"])
    rows.append([f"fit_threshold_exhaustive, {2 * half:,} rows", f"≈ {fmt_s(exh * scale)}",
                 f"extrapolated ×{scale:,.0f} (quadratic)"])
    rows.append([f"fit_threshold, {2 * half:,} rows (threshold {t_fast:.4f})", fmt_s(min(fast)),
                 f"≈ {exh * scale / min(fast):,.0f}x faster"])

    # The real use: ThresholdAttack.run = 6 scores x (1 global + per-class) fits on 270k shadow rows.
    num_cls = 100
    probs = rng.dirichlet(np.full(num_cls, 0.1), 2 * half)
    labels = rng.integers(0, num_cls, 2 * half)
    member = np.r_[np.ones(half, np.int64), np.zeros(half, np.int64)]
    target = slice(0, 20_000)
    data = AttackInput(shadow_probs=probs, shadow_sens=probs, shadow_labels=labels, shadow_member=member,
                       target_probs=probs[target], target_sens=probs[target], target_labels=labels[target],
                       target_member=member[target], num_cls=num_cls)
    t0 = now()
    ThresholdAttack().run(data)
    rows.append([f"ThresholdAttack.run: 6 scores, {num_cls} per-class thresholds, {2 * half:,} shadow rows",
                 fmt_s(now() - t0), "whole attack"])
    return rows


# ------------------------------------------------------------------------------------ 4. pipeline

def run_step(name: str, cmd: list[str], cwd: Path, logs: Path) -> tuple[float, bool]:
    say(f"  {name}: {' '.join(cmd[1:])}")
    t0 = now()
    with open(logs / f"{name}.out", "w") as out:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              env=os.environ | {"OMP_WAIT_POLICY": "PASSIVE"})
    wall = now() - t0
    if proc.returncode != 0:
        tail = (logs / f"{name}.out").read_text().splitlines()[-15:]
        say(f"  {name} FAILED (exit {proc.returncode}):\n    " + "\n    ".join(tail))
    return wall, proc.returncode == 0


def import_seconds() -> float:
    """A step script's fixed cost: starting Python and importing torch + the project."""
    t0 = now()
    subprocess.run([sys.executable, "-c", "import mia"], cwd=ROOT, check=True,
                   env=os.environ | {"OMP_WAIT_POLICY": "PASSIVE"})
    return now() - t0


def bench_pipeline(stem: str, prof: Profile, threads: int | None) -> tuple[list[list[str]], str]:
    flags = prof.pipeline[stem]
    cfg = load_config(ROOT / "config" / f"{stem}.json")
    common = ["cpu", f"config/{stem}.json", "--quiet", "--data_root", str(data_root(cfg))]
    if threads is not None:
        common += ["--threads", str(threads)]

    def only(*keys: str) -> list[str]:  # the subset of `flags` a script accepts
        out = []
        for k, v in zip(flags[::2], flags[1::2]):
            if k in keys:
                out += [k, v]
        return out
    shared = only("--shadow_num")
    prune = ["--pruner_name", "l1unstructure", "--prune_sparsity", "0.7"]
    steps = [("pretrain", ["pretrain.py", *common, *shared, *only("--epochs")]),
             ("prune", ["prune.py", *common, *shared, *prune, *only("--prune_epochs")]),
             ("mia", ["mia.py", *common, *shared, *prune, "--attacks", "all",  # all: skips LiRA/RMIA online
                      *only("--attack_epochs")])]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="prune_mia_bench_") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "config", work / "config")
        logs = work / "bench_logs"
        logs.mkdir()
        walls: dict[str, float] = {}
        for name, (script, *args) in steps:
            wall, ok = run_step(name, [sys.executable, str(ROOT / script), *args], work, logs)
            walls[name] = wall
            if not ok:
                rows.append([stem, name, "FAILED", "see stderr"])
                return rows, " ".join(flags) or "(config as is)"
        records = [json.loads(line) for line in (work / "log" / stem / "results.jsonl").read_text().splitlines()]
    per_attack: dict[str, float] = {}
    for r in records:
        family = "threshold" if r["attack"] in THRESHOLD_FAMILY else r["attack"]
        per_attack[family] = per_attack.get(family, 0.0) + float(r["attack_seconds"])
    feature_s = float(records[0]["feature_seconds"]) if records else float("nan")
    attacks = [(a, per_attack[a]) for a in ATTACK_ORDER if a in per_attack]
    rest = walls["mia"] - feature_s - sum(s for _, s in attacks)
    top_step = max(("pretrain", "prune", "mia"), key=lambda k: walls[k])
    top_part = max([("features", feature_s), *attacks], key=lambda i: i[1])[0]
    star = lambda hit, what: f" **← most expensive {what}**" if hit else ""  # noqa: E731
    rows.append([stem, "pretrain.py", fmt_s(walls["pretrain"]) + star(top_step == "pretrain", "step"),
                 "victim + shadows, whole process"])
    rows.append([stem, "prune.py", fmt_s(walls["prune"]) + star(top_step == "prune", "step"),
                 "l1unstructure 0.7 + fine-tune victim + shadows, whole process"])
    rows.append([stem, "mia.py", fmt_s(walls["mia"]) + star(top_step == "mia", "step"),
                 "whole process"])
    rows.append([stem, "↳ features", fmt_s(feature_s) + star(top_part == "features", "part of mia.py"),
                 "confidences + sensitivity of victim and shadows (+ BlindMI probes)"])
    for a, sec in attacks:
        rows.append([stem, f"↳ {a}", fmt_s(sec) + star(top_part == a, "part of mia.py"), "attack only"])
    rows.append([stem, "↳ rest", fmt_s(rest), "Python start + imports, data, checkpoints, writing results"])
    return rows, " ".join(flags) or "(config as is)"


# ------------------------------------------------------------------------------------ 5. workers

def bench_workers(stem: str, prof: Profile) -> list[str]:
    """pretrain.py on the victim + shadows: one process with every core vs --workers = cores, one thread
    each; the same models either way (tests/test_pretrain.py checks they are bit-identical)."""
    cores = max(1, os.cpu_count() or 1)
    flags = prof.workers[stem]
    walls: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="prune_mia_bench_") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "config", work / "config")
        logs = work / "bench_logs"
        logs.mkdir()
        cfg = load_config(ROOT / "config" / f"{stem}.json")
        base = [sys.executable, str(ROOT / "pretrain.py"), "cpu", f"config/{stem}.json", "--quiet",
                "--data_root", str(data_root(cfg)), "--threads", str(cores), *flags]
        # Alternate the two sides so drifts in the machine's load hit both alike.
        for rep in range(prof.repeats):
            for workers in (1, cores):
                wall, ok = run_step(f"workers{workers}_{rep}", base + ["--workers", str(workers), "--overwrite"],
                                    work, logs)
                if not ok:
                    return [stem, " ".join(flags), "FAILED", "", "", ""]
                walls[workers] = min(walls.get(workers, math.inf), wall)
    models = 1 + int(flags[flags.index("--shadow_num") + 1])
    return [stem, f"{models} models ({' '.join(flags)})", fmt_s(walls[1]), fmt_s(walls[cores]),
            str(cores), f"**{walls[1] / walls[cores]:.2f}x**"]


# ------------------------------------------------------------------------------------ 6. references

def made_rate(log_text: str) -> tuple[int, float]:
    """(references, seconds) from refs.py's `Made N references in S s` line (training only, no start-up)."""
    line = [ln for ln in log_text.splitlines() if ln.startswith("Made ")][-1].split()
    return int(line[1]), float(line[4])


def bench_refs(stem: str, prof: Profile, threads: int | None) -> list[list[str]]:
    """refs.py as the grid runs it: the original references, then the same references pruned (l1unstructure
    0.6) and fine-tuned; references per hour from refs.py's own timing, and the whole process's wall time."""
    flags = prof.refs[stem]
    cfg = load_config(ROOT / "config" / f"{stem}.json")
    common = ["cpu", f"config/{stem}.json", "--quiet", "--data_root", str(data_root(cfg)), *flags]
    if threads is not None:
        common += ["--threads", str(threads)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="prune_mia_bench_") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "config", work / "config")
        logs = work / "bench_logs"
        logs.mkdir()
        for name, extra in (("original", ["--original"]), ("l1unstructure 0.6", ["--prune_sparsity", "0.6"])):
            tag = name.split()[0]
            wall, ok = run_step(f"refs_{tag}", [sys.executable, str(ROOT / "refs.py"), *common, *extra], work, logs)
            if not ok:
                return [[stem, name, " ".join(flags), "FAILED", "", ""]]
            n, seconds = made_rate((logs / f"refs_{tag}.out").read_text())
            rows.append([stem, name, " ".join(flags), f"{n} in {fmt_s(seconds)}", f"**{3600 * n / seconds:.0f}**",
                         fmt_s(wall)])
    return rows


# ------------------------------------------------------------------------------------ mem-scores

def bench_memscore(stem: str, prof: Profile, models: int = 2) -> list[str]:
    """Mem-score subset models (memscore.compute_scores, the config's epochs, fraction 0.7) per hour: the
    unit of memscore.py's cost, so K models of a config take K / rate hours on this machine."""
    from defenses import memscores
    exp = load_experiment(stem)
    cfg = exp.cfg
    epochs = int(cfg.memscore["epochs"]) or cfg.epochs
    train = dataclasses.replace(exp.train_config(epochs), early_stop=epochs, progress=False)
    x, y = exp.pool.x, exp.pool.y
    t0 = now()
    memscores.compute_scores(exp.fresh_model, x, y, models=models, fraction=float(cfg.memscore["fraction"]),
                            cfg=train, seed=cfg.seed, progress=False)
    per_model = (now() - t0) / models
    return [stem, f"{len(y):,} rows, {epochs} epochs", fmt_s(per_model), f"**{3600 / per_model:,.0f}**",
            f"{fmt_s(int(cfg.memscore['models']) * per_model)} for K = {int(cfg.memscore['models'])}"]


# ------------------------------------------------------------------------------------ 7. SAMIA epoch

def samia_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                shuffle: torch.Generator) -> None:
    """One epoch of attackers.nn.train_attack_model's inner loop (same batches, loss and optimiser step)."""
    from attackers.nn import _batches
    model.train()
    for idx in _batches(x.shape[0], 128, shuffle, x.device):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bench_samia(prof: Profile, rows: int = 5400) -> list[list[str]]:
    """One SAMIA training epoch, nn.TransformerEncoder (before) vs our encoder layer (now), interleaved.

    5,400 rows is synthetic_purchase_columnfc's pooled shadow rows; the features are random (the time of an
    epoch does not depend on the values). Both models start from the same weights.
    """
    from attackers.samia import SamiaTransformer
    from attackers.samia_reference import ReferenceSamiaTransformer
    from models import init_weights
    out = []
    for num_cls in (20, 10):
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(rows, 3 * num_cls, generator=gen)
        y = torch.randint(0, 2, (rows,), generator=gen)
        sides = {}
        for name, cls in (("before", ReferenceSamiaTransformer), ("now", SamiaTransformer)):
            torch.manual_seed(1)
            model = init_weights(cls(num_cls))
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
            sides[name] = (model, opt, torch.Generator().manual_seed(2))
        best = {name: math.inf for name in sides}
        for _ in range(prof.repeats + 1):  # +1: the first round also warms up allocator and kernels
            for name, (model, opt, shuffle) in sides.items():
                t0 = now()
                samia_epoch(model, opt, x, y, shuffle)
                best[name] = min(best[name], now() - t0)
        share = gemm_share(functools.partial(samia_epoch, *sides["now"][:2], x, y, sides["now"][2]))
        floor = share * best["now"]
        out.append([f"{rows:,} x {num_cls}", fmt_s(best["before"]), fmt_s(best["now"]),
                    f"**{best['before'] / best['now']:.2f}x**", f"{100 * share:.0f} %",
                    f"{best['before'] / floor:.1f}x"])
    return out


def gemm_share(fn: Any) -> float:
    """Share of the matrix products (mm, addmm, bmm, baddbmm) in the CPU self time of one call of fn."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm",
                                                                  "aten::baddbmm"))
    return gemm / total


# ------------------------------------------------------------------------------------ 8. ensemble

def bench_ensemble(prof: Profile, k: int = 6, rows: int = 4950, epochs: int = 1) -> list[list[str]]:
    """K columnfc models on synthetic_purchase-shaped random data: one at a time (training.fit) vs at once
    (ensemble.fit_ensemble), interleaved, best of prof.repeats; models per hour both ways."""
    from core.training import SplitTensors, fit
    from experiment.ensemble import fit_ensemble
    from models import build_model
    gen = torch.Generator().manual_seed(0)

    def split() -> SplitTensors:
        parts = []
        for n in (rows, rows * 2 // 9, rows):  # the 45/10/45 split of a half
            parts += [torch.randint(0, 2, (n, 600), generator=gen).float(), torch.randint(0, 100, (n,), generator=gen)]
        return SplitTensors(*parts)
    datas = [split() for _ in range(k)]
    cfg = TrainConfig(epochs=epochs, batch_size=128, early_stop=epochs, optimizer="adam", lr=1e-3, progress=False)

    def one_at_a_time() -> None:
        for i, d in enumerate(datas):
            torch.manual_seed(i)
            fit(build_model("columnfc", 100, 600), d, cfg, generator=torch.Generator().manual_seed(i))

    def at_once() -> None:
        models, drop = [], []
        for i in range(k):
            torch.manual_seed(i)
            models.append(build_model("columnfc", 100, 600))
            drop.append(torch.Generator().manual_seed(100 + i))
        fit_ensemble(models, datas, cfg, [torch.Generator().manual_seed(i) for i in range(k)], drop)

    best = {"alone": math.inf, "ensemble": math.inf}
    for _ in range(prof.repeats):
        for name, fn in (("alone", one_at_a_time), ("ensemble", at_once)):
            t0 = now()
            fn()
            best[name] = min(best[name], now() - t0)
    per_hour = {n: k * 3600 / t for n, t in best.items()}
    return [[f"{k} x columnfc, {rows:,} x 600 -> 100, {epochs} epoch(s) each", fmt_s(best["alone"]),
             fmt_s(best["ensemble"]), f"{per_hour['alone']:,.0f}", f"{per_hour['ensemble']:,.0f}",
             f"{best['alone'] / best['ensemble']:.2f}x"]]


# ------------------------------------------------------------------------------------ 8. device (cuda)

@dataclass
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
    from attackers.features import predict_proba
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
    head = (f"### 8. Device section: {name}, cifar10_resnet18-shaped random tensors ({b.rows:,} x 3x32x32, "
            f"10 classes{', channels_last + bf16 autocast' if device.type == 'cuda' else ''})\n")
    return head + "\n" + table(["what", "wall time", "note"], rows)


# ------------------------------------------------------------------------------------ main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats and a short pipeline (~3-5 min)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads here and in the step scripts (default: torch's choice)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma list of config stems")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of: " + ", ".join(SECTIONS))
    p.add_argument("--device", default="cuda", help="device of the cuda section (cpu: exercise it without a GPU)")
    p.add_argument("--bench_rows", type=int, default=13_500, help="train rows of the cuda section (13,500 = CIFAR-10)")
    p.add_argument("--bench_models", type=int, default=6, help="models trained at once there (victim + shadows)")
    p.add_argument("--bench_attack_epochs", type=int, default=100, help="epochs of the learned attacks there")
    args = p.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r}; valid: {', '.join(SECTIONS)}")
    for c in configs:
        if not (ROOT / "config" / f"{c}.json").is_file():
            p.error(f"no config/{c}.json")
    device = torch.device(args.device)
    if "cuda" in sections and device.type == "cuda" and not torch.cuda.is_available():
        print("error: --sections cuda needs a CUDA device and none is visible here (use --device cpu to "
              "exercise the section on the CPU)", file=sys.stderr)
        sys.exit(2)
    if args.bench_rows < 16 or args.bench_models < 1:
        p.error("--bench_rows must be >= 16 and --bench_models >= 1")
    prof = PROFILES["quick" if args.quick else "full"]
    start, load0 = now(), os.getloadavg()
    import logging
    logging.getLogger("prune_mia").setLevel(logging.WARNING)  # fit() logs every epoch at INFO

    out: list[str] = []
    threads = torch.get_num_threads()
    out.append(f"## bench.py {'--quick' if args.quick else '(full)'}\n")
    out.append(f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
               f"**{threads} torch thread{'s' if threads != 1 else ''}**"
               f"{'' if args.threads else ' (torch default)'}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
               f"load average at start {load0[0]:.2f}. Rates are the best of {prof.repeats} interleaved repeats.\n")
    print(out[-2] + "\n" + out[-1], flush=True)

    if "train" in sections:
        say("1. training loop vs floor")
        rows, fit_rows = [], []
        for c in configs:
            r, f = bench_training(c, prof)
            rows.append(r)
            fit_rows.append(f)
        print("### 1. Training loop vs the floor (batch 128, CPU)\n")
        print("Floor: forward + backward + optimiser step on fixed in-memory batches, nothing else. Ours: "
              "`training.train_one_epoch` with `TrainHooks()` over the victim train split (shuffled index "
              "slices, last partial batch, per-batch stats).\n")
        print(table(["config", "params, layout, optimizer", "victim train rows", "floor rows/s (batch 128)",
                     "floor rows/s (epoch's batch sizes)", "ours rows/s", "ours / floor",
                     "ours / floor with the epoch's batches"], rows))
        print("\nThe second floor runs the epoch's own batch sizes (the last batch is partial) on pre-sliced "
              "data, so the last column is the cost of the loop itself (shuffle, index gather, per-batch stats): "
              "1.00 = none. The gap between the two floors is the partial last batch.")
        print("\n`fit()` per epoch (one instrumented run from a fresh model, every epoch run): what it adds "
              "to `train_one_epoch`.\n")
        print(table(["config", "epochs", "fit / epoch", "train_one_epoch", "overhead (share of fit)",
                     "evaluate dev + test", "state_dict deepcopy", "other (logging, tqdm)"], fit_rows))
        print(flush=True)

    if "sens" in sections:
        say("2. sensitivity")
        rows = [bench_sensitivity(c, prof) for c in configs]
        print("### 2. Sensitivity features (victim train + test rows, same noise)\n")
        print(table(["config", "forwards", "plain loop rows/s", "batched rows/s", "speedup",
                     "max rel. diff"], rows))
        print(flush=True)

    if "threshold" in sections:
        say("3. threshold fitting")
        rows = bench_threshold(prof)
        print("### 3. Threshold fitting (135k in + 135k out shadow rows, values rounded to 4 decimals: ties)\n")
        print(table(["what", "time", "note"], rows))
        print(flush=True)

    if "pipeline" in sections:
        say("4. pipeline")
        imp = import_seconds()
        rows, used = [], []
        for c in configs:
            say(f" {c}")
            r, flags = bench_pipeline(c, prof, args.threads)
            rows += r
            used.append(f"`{c}`: {flags}")
        print("### 4. One full setting through the step scripts (l1unstructure 0.7, all attacks)\n")
        print("Flags: " + "; ".join(used) + f". Every step also pays ~{fmt_s(imp)} to start Python and import "
              "torch + the project.\n")
        print(table(["config", "step", "wall time", "what"], rows))
        print(flush=True)

    if "workers" in sections:
        say("5. concurrent models")
        rows = [bench_workers(c, prof) for c in configs]
        print("### 5. Victim + shadows: one process vs one process per core (`pretrain.py --workers`)\n")
        print("Whole `pretrain.py` runs (Python start, imports and data loading included), best of "
              f"{prof.repeats}, alternating.\n")
        print(table(["config", "what", f"1 process, {os.cpu_count()} threads", "N processes, 1 thread each",
                     "N", "speedup"], rows))
        print(flush=True)

    if "memscore" in sections:
        say("mem-scores")
        rows = [bench_memscore(c, prof) for c in configs]
        print("### Mem-score models (`memscore.py`, Feldman & Zhang subsets; one process)\n")
        print(table(["config", "data, epochs per model", "per model", "models per hour", "the config's K"], rows))
        print(flush=True)

    if "refs" in sections:
        say("6. reference models")
        rows = [r for c in configs for r in bench_refs(c, prof, args.threads)]
        print("### 6. Reference models for LiRA / RMIA online (`refs.py`, one process)\n")
        print("Pruned references start from the original ones, so their rate is prune + fine-tune only; a "
              "pruned setting made from scratch costs both rows.\n")
        print(table(["config", "references", "flags", "made", "references per hour", "refs.py wall"], rows))
        print(flush=True)

    if "samia" in sections:
        say("7. SAMIA epoch")
        rows = bench_samia(prof)
        print("### 7. SAMIA: one training epoch, before (nn.TransformerEncoder) vs now (own encoder layer)\n")
        print(f"Batch 128, SGD, random features; best of {prof.repeats} interleaved epochs after one warm-up.\n")
        print(table(["rows x classes", "before", "now", "speedup", "matrix products' share of now",
                     "speedup if everything else were free"], rows))
        print("\nThe last column bounds what any rewrite of the same architecture can reach on this CPU: "
              "the matrix products (profiled, one epoch of `now`) already run near the core's fp32 peak (86 GFLOP/s "
              "measured for the 2560x64x192 product on an idle moment of the 2-core AVX2 EPYC this was written on).")
        print(flush=True)

    if "ensemble" in sections:
        say("8. ensemble")
        rows = bench_ensemble(prof)
        print("### 8. Many models at once: `training.fit` one at a time vs `ensemble.fit_ensemble`\n")
        print(table(["work", "one at a time", "at once", "models/h one at a time", "models/h at once",
                     "speedup"], rows))
        print(flush=True)

    if "cuda" in sections:
        say(f"9. device section on {device}")
        b = run_device_bench(device, args.bench_rows, args.bench_models, attack_epochs=args.bench_attack_epochs)
        print(device_report(b, device, paper_grid_counts()))
        print(flush=True)

    load1 = os.getloadavg()
    print(f"\nWhole bench: {fmt_s(now() - start)}; load average at end {load1[0]:.2f}.")


if __name__ == "__main__":
    main()
