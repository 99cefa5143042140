"""What the three step scripts share about one experiment: its data on the device, its splits, and where
each model lives on disk (DESIGN §9 names, as in the artifact)."""
from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import datasets
import pruner
from errors import UserError
from experiment import (Config, configure_backends, load_checkpoint, log, log_dir, resolve_device, result_dir,
                        seed_everything, setup_logging)
from models import build_model
from training import SplitTensors, TrainConfig


@dataclass
class Experiment:
    cfg: Config
    args: argparse.Namespace
    device: torch.device
    pool: datasets.Pool
    splits: datasets.Splits

    @property
    def root(self) -> Path:
        return result_dir(self.cfg)

    def tensors(self, shadow: int | None) -> SplitTensors:
        """The victim's (shadow=None) or shadow i's train/dev/test tensors, sliced from the on-device pool."""
        parts = (self.splits.victim_train, self.splits.victim_dev, self.splits.victim_test) if shadow is None \
            else self.splits.shadows[shadow]
        x, y = self.pool.x, self.pool.y
        pieces = []
        for idx in parts:
            t = torch.as_tensor(idx, dtype=torch.long, device=x.device)
            pieces += [x[t], y[t]]
        return SplitTensors(*pieces)


def open_experiment(args: argparse.Namespace, cfg: Config, log_name: str, *, remake_split: bool = False) -> Experiment:
    """Seed, start the log, load the pool and the split (made once, then reused), pick the device.

    Data come before the device so a machine without the data says so first (the usual first mistake).
    Only step 1 may remake a split that disagrees with the config (--overwrite); later steps must use
    the members their originals were trained on.
    """
    setup_logging(log_dir(cfg) / log_name)
    seed_everything(cfg.seed)
    configure_backends(getattr(args, "fast", False), getattr(args, "threads", None))
    log.info(f"Arguments: {' '.join(_arg_words(args))}")
    log.info(f"Save Folder: {result_dir(cfg)}")
    log.info(f"Build Dataset {cfg.dataset_name}")
    pool = datasets.load_pool(cfg.dataset_name, Path(cfg.data_root), input_dim=cfg.input_dim,
                              num_cls=cfg.num_cls, download=getattr(args, "download", False))
    splits = datasets.splits_for(len(pool.y), result_dir(cfg) / "data_index.json", seed=cfg.seed,
                                 shadow_num=cfg.shadow_num, overwrite=remake_split, **cfg.split)
    device = resolve_device(args.device)
    log.info(f"Total Data Size: {len(pool.y)}, Victim Train Size: {len(splits.victim_train)}, "
             f"Victim Dev Size: {len(splits.victim_dev)}, Victim Test Size: {len(splits.victim_test)}")
    log.info(f"Device: {device}")
    x = pool.x.to(device, memory_format=torch.channels_last) if channels_last(device, pool.x) else pool.x.to(device)
    pool = datasets.Pool(x=x, y=pool.y.to(device), name=pool.name)
    return Experiment(cfg, args, device, pool, splits)


def channels_last(device: torch.device, x: torch.Tensor) -> bool:
    """NHWC on CUDA for image batches: cuDNN's fast convolution kernels (tensor cores) want it; on the CPU
    the default NCHW is as fast, so CPU runs keep it."""
    return device.type == "cuda" and x.dim() == 4


def place(model: nn.Module, exp: "Experiment") -> nn.Module:
    """Move a model to the experiment's device, in the data's memory format."""
    if channels_last(exp.device, exp.pool.x):
        return model.to(exp.device, memory_format=torch.channels_last)
    return model.to(exp.device)


def _arg_words(args: argparse.Namespace) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(vars(args).items()) if v not in (None, False)]


def train_config(exp: Experiment, epochs: int) -> TrainConfig:
    cfg = exp.cfg
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, early_stop=cfg.early_stop,
                       optimizer=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       amp=getattr(exp.args, "amp", False), progress=not getattr(exp.args, "quiet", False))


def fmt_number(v: float) -> str:
    """Folder names keep the artifact's float spelling: 0.7, 4.0, 0.1."""
    return repr(float(v))


def prune_prefix(pruner_name: str, sparsity: float, defend: str = "", defend_arg: float | None = None) -> str:
    """`<pruner>_<sparsity>[_<defend>_<arg>]`, the artifact's folder prefix."""
    prefix = f"{pruner_name}_{fmt_number(sparsity)}"
    if defend:
        prefix += f"_{defend}_{fmt_number(defend_arg if defend_arg is not None else 0.0)}"
    return prefix


def model_dir(root: Path, prefix: str | None, shadow: int | None) -> Path:
    """victim_model/, shadow_model_<i>/, <prefix>_model/, shadow_<prefix>_model_<i>/ (artifact names)."""
    if prefix is None:
        return root / ("victim_model" if shadow is None else f"shadow_model_{shadow}")
    return root / (f"{prefix}_model" if shadow is None else f"shadow_{prefix}_model_{shadow}")


def model_label(shadow: int | None) -> str:
    return "victim" if shadow is None else f"shadow {shadow}"


def roles(cfg: Config) -> list[int | None]:
    """The victim first, then every shadow, the order in which the artifact trains them."""
    return [None, *range(cfg.shadow_num)]


ModelWork = Callable[[Experiment, "int | None"], None]


def for_each_model(exp: Experiment, work: ModelWork, log_name: str) -> None:
    """Run `work(exp, shadow)` for the victim and every shadow.

    With `--workers N` (N > 1) the models are spread round-robin over N spawned processes sharing the
    cores, each with (threads // N) torch threads: small models use 2+ threads poorly, so N one-thread
    processes finish the same models sooner (bench.py section 5 measures it). Each model has its own seed,
    so the models are the same as in one process up to float reduction order (thread count).
    """
    workers = getattr(exp.args, "workers", 1)
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    todo = roles(exp.cfg)
    if workers == 1 or len(todo) == 1:
        for shadow in todo:
            work(exp, shadow)
        return
    workers = min(workers, len(todo))
    threads = max(1, (exp.args.threads or torch.get_num_threads()) // workers)
    log.info(f"Training {len(todo)} models in {workers} processes with {threads} torch thread(s) each")
    # spawn, not fork: a forked child of a process that already ran OpenMP/oneDNN code can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_model_worker, exp.args, exp.cfg, log_name, work, todo[k::workers], threads)
                for k in range(workers)]
        for job in jobs:
            job.result()  # re-raises a worker's UserError here, after the other workers finished


def _model_worker(args: argparse.Namespace, cfg: Config, log_name: str, work: ModelWork,
                  shadows: list[int | None], threads: int) -> None:
    args = argparse.Namespace(**vars(args) | {"threads": threads, "workers": 1})
    exp = open_experiment(args, cfg, log_name)
    for shadow in shadows:
        work(exp, shadow)


def fresh_model(exp: Experiment) -> nn.Module:
    return place(build_model(exp.cfg.model_name, exp.cfg.num_cls, exp.cfg.input_dim), exp)


def load_model(exp: Experiment, folder: Path, make_hint: str) -> tuple[nn.Module, dict[str, Any]]:
    """A model from `folder/best.pth`; a pruned one gets its masks re-attached so zeros stay zeros."""
    ckpt = load_checkpoint(folder / "best.pth", make_hint)
    model = build_model(exp.cfg.model_name, exp.cfg.num_cls, exp.cfg.input_dim)
    try:
        if ckpt.get("masks"):
            pruner.load_pruned(model, ckpt["state"], ckpt["masks"])
        else:
            model.load_state_dict(ckpt["state"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {folder / 'best.pth'} does not fit model {exp.cfg.model_name} "
                        f"({str(e).splitlines()[0][:120]})", f"delete it and rerun: {make_hint}") from None
    return place(model, exp), ckpt


def step_command(script: str, exp: Experiment, extra: str = "") -> str:
    """The shell command that makes a missing checkpoint, for error hints."""
    device = exp.args.device or "auto"
    return f"python {script} --device {device} {exp.args.config}{(' ' + extra) if extra else ''}"


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "python": platform.python_version()}


def seconds_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)
