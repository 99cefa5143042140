"""The experiment layer (DESIGN §1): one `Experiment` per step run, holding the config, the run options,
the device, the data pool on the device and the split; it knows where every model lives, how each model is
seeded, how it is placed on the device and how its checkpoint is read.

Step scripts build one with `open_experiment(options, config, log_name)`; the science modules below
(training, pruner, defenses, attackers) never see it.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import platform
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import datasets
import pruner
from config import Config
from defenses import DefenseOptions, create_defense
from errors import UserError
from models import build_model
from setting import ModelSetting
from storage import load_checkpoint, log, remove_stale_tmp, setup_logging
from training import SplitTensors, TrainConfig, require_finite

# Seed offsets of the phases that draw random numbers for one model (init, data order, dropout, noise).
PHASE_SEED = {"pretrain": 0, "prune": 1}
MAX_SHADOWS = 1000  # config.shadow_num's maximum: reference seeds start above every shadow's


@dataclass(frozen=True)
class RunOptions:
    """How to run a step, apart from the config: what the command line says beyond the config keys."""

    config_path: str
    device: str | None = None     # None = auto
    overwrite: bool = False
    amp: bool = False
    fast: bool = False
    quiet: bool = False
    threads: int | None = None
    workers: int = 1
    download: bool = False

    def words(self) -> list[str]:
        """`key=value` for every option that is set (the artifact's `Arguments:` log line)."""
        return [f"{k}={v}" for k, v in sorted(vars(self).items()) if v not in (None, False)]


def model_seed(cfg: Config, shadow: int | None, phase: str) -> int:
    """Each model has its own seed (seed + 1000 * index, plus the phase's offset), so a resumed run trains
    the same models as an uninterrupted one."""
    index = 0 if shadow is None else shadow + 1
    return cfg.seed + 1000 * index + PHASE_SEED[phase]


def reference_seed(cfg: Config, index: int, phase: str) -> int:
    """Reference model i's seed, disjoint from the victim's and every shadow's (model_seed)."""
    return cfg.seed + 1000 * (MAX_SHADOWS + 1 + index) + PHASE_SEED[phase]


def feature_seed(cfg: Config, shadow: int | None) -> int:
    """The sensitivity noise of the victim (seed) and of shadow i (seed + i + 1)."""
    return cfg.seed + (0 if shadow is None else shadow + 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(spec: str | None) -> torch.device:
    """`0` -> cuda:0 (the artifact's GPU id), `cpu`, `cuda`, `cuda:N`, or auto (CUDA when present)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"device {spec} requested but PyTorch sees no CUDA GPU", "pass cpu or --device cpu")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device {spec} requested but only {torch.cuda.device_count()} GPU(s) are visible")
        return torch.device(spec)
    raise UserError(f"unknown device '{spec}'", "use a GPU id like 0, cpu, cuda, cuda:N or auto")


def configure_backends(fast: bool, threads: int | None = None) -> None:
    """Deterministic cuDNN by default (the artifact set benchmark=True); --fast trades that for speed."""
    if threads is not None:
        if not 1 <= threads <= 4096:
            raise UserError(f"--threads must be between 1 and 4096, got {threads}")
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = fast
    torch.backends.cudnn.deterministic = not fast
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast


def result_dir(cfg: Config) -> Path:
    return Path("result") / cfg.stem


def log_dir(cfg: Config) -> Path:
    return Path("log") / cfg.stem


def channels_last(device: torch.device, x: torch.Tensor) -> bool:
    """NHWC on CUDA for image batches: cuDNN's fast convolution kernels (tensor cores) want it; on the CPU
    the default NCHW is as fast, so CPU runs keep it."""
    return device.type == "cuda" and x.dim() == 4


def role_label(shadow: int | None) -> str:
    return "victim" if shadow is None else f"shadow {shadow}"


@dataclass
class Experiment:
    cfg: Config
    opts: RunOptions
    device: torch.device
    pool: datasets.Pool
    splits: datasets.Splits

    @property
    def root(self) -> Path:
        return result_dir(self.cfg)

    @property
    def logs(self) -> Path:
        return log_dir(self.cfg)

    def roles(self) -> list[int | None]:
        """The victim first, then every shadow, the order in which the artifact trains them."""
        return [None, *range(self.cfg.shadow_num)]

    def tensors(self, shadow: int | None) -> SplitTensors:
        """The victim's (shadow=None) or shadow i's train/dev/test tensors, sliced from the on-device pool."""
        parts = (self.splits.victim_train, self.splits.victim_dev, self.splits.victim_test) if shadow is None \
            else self.splits.shadows[shadow]
        return self.tensors_of(parts)

    def tensors_of(self, parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> SplitTensors:
        """Train/dev/test tensors of any three index arrays into the pool (reference models use it)."""
        x, y = self.pool.x, self.pool.y
        pieces = []
        for idx in parts:
            t = torch.as_tensor(idx, dtype=torch.long, device=x.device)
            pieces += [x[t], y[t]]
        return SplitTensors(*pieces)

    def train_rows(self, shadow: int | None) -> np.ndarray:
        """Pool indices of the victim's (None) or shadow i's training split, in split order (mem-score rows)."""
        return self.splits.victim_train if shadow is None else self.splits.shadows[shadow][0]

    def train_config(self, epochs: int) -> TrainConfig:
        cfg = self.cfg
        return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, early_stop=cfg.early_stop,
                           optimizer=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                           amp=self.opts.amp, progress=not self.opts.quiet)

    def place(self, model: nn.Module) -> nn.Module:
        """Move a model to the experiment's device, in the data's memory format."""
        if channels_last(self.device, self.pool.x):
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def fresh_model(self) -> nn.Module:
        return self.place(build_model(self.cfg.model_name, self.cfg.num_cls, self.cfg.input_dim))

    def model_dir(self, setting: ModelSetting, shadow: int | None) -> Path:
        return setting.folder(self.root, shadow)

    def command(self, script: str, extra: str = "") -> str:
        """The shell command of a step on this experiment, for hints: a user can paste it, so the device and
        the config path are shell-quoted (a path with a space or a quote stays one argument)."""
        device, config = shlex.quote(self.opts.device or "auto"), shlex.quote(self.opts.config_path)
        return f"python {script} --device {device} {config}{(' ' + extra) if extra else ''}"

    def make_command(self, setting: ModelSetting) -> str:
        """The command that makes the models of `setting` (pretrain.py or prune.py with its flags)."""
        return self.command(setting.make_script(), setting.flags())

    def checkpoint_path(self, setting: ModelSetting, shadow: int | None) -> Path:
        return self.model_dir(setting, shadow) / "best.pth"

    def require_models(self, setting: ModelSetting, shadows: bool = True) -> None:
        """UserError naming the first missing checkpoint of `setting` and the command that makes it."""
        for shadow in (self.roles() if shadows else [None]):
            path = self.checkpoint_path(setting, shadow)
            if not path.exists():
                what = "original model" if setting.is_original else f"{role_label(shadow)} checkpoint"
                raise UserError(f"{what} {path} not found", f"make it with: {self.make_command(setting)}")

    def load_model(self, setting: ModelSetting, shadow: int | None) -> tuple[nn.Module, dict[str, Any]]:
        """A model from its best.pth; a pruned one gets its masks re-attached so zeros stay zeros."""
        return self.load_model_at(self.checkpoint_path(setting, shadow), self.make_command(setting))

    def load_model_at(self, path: Path, hint: str) -> tuple[nn.Module, dict[str, Any]]:
        """`load_model` for a checkpoint anywhere (reference models); `hint` is the command that makes it."""
        ckpt = load_checkpoint(path, hint)
        model = build_model(self.cfg.model_name, self.cfg.num_cls, self.cfg.input_dim)
        try:
            if ckpt.get("masks"):
                pruner.load_pruned(model, ckpt["state"], ckpt["masks"])
            else:
                model.load_state_dict(ckpt["state"])
        except (RuntimeError, KeyError, AttributeError, TypeError) as e:
            raise UserError(f"checkpoint {path} does not fit model {self.cfg.model_name} "
                            f"({str(e).splitlines()[0][:120]})", f"delete it and rerun: {hint}") from None
        require_finite(model, f"checkpoint {path} holds a diverged model", f"delete it and rerun: {hint}")
        return self.place(model), ckpt


def open_experiment(opts: RunOptions, cfg: Config, log_name: str, *, remake_split: bool = False) -> Experiment:
    """Seed, start the log, load the pool and the split (made once, then reused), pick the device.

    Data come before the device so a machine without the data says so first (the usual first mistake).
    Only step 1 may remake a split that disagrees with the config (--overwrite); later steps must use
    the members their originals were trained on.
    """
    setup_logging(log_dir(cfg) / log_name)
    for tmp in remove_stale_tmp(result_dir(cfg), recursive=True):
        log.info(f"Removed {tmp}, left by a killed write")
    seed_everything(cfg.seed)
    configure_backends(opts.fast, opts.threads)
    log.info(f"Arguments: {' '.join(opts.words())}")
    log.info(f"Save Folder: {result_dir(cfg)}")
    log.info(f"Build Dataset {cfg.dataset_name}")
    pool = datasets.load_pool(cfg.dataset_name, Path(cfg.data_root), input_dim=cfg.input_dim,
                              num_cls=cfg.num_cls, download=opts.download)
    check_model_fits(cfg, pool.x[:2])
    splits = datasets.splits_for(len(pool.y), result_dir(cfg) / "data_index.json", seed=cfg.seed,
                                 shadow_num=cfg.shadow_num, overwrite=remake_split, scheme=cfg.split_scheme,
                                 n_train=pool.n_train, **cfg.split)
    device = resolve_device(opts.device)
    log.info(f"Total Data Size: {len(pool.y)}, Victim Train Size: {len(splits.victim_train)}, "
             f"Victim Dev Size: {len(splits.victim_dev)}, Victim Test Size: {len(splits.victim_test)}")
    log.info(f"Device: {device}")
    x = pool.x.to(device, memory_format=torch.channels_last) if channels_last(device, pool.x) else pool.x.to(device)
    pool = datasets.Pool(x=x, y=pool.y.to(device), name=pool.name, n_train=pool.n_train)
    return Experiment(cfg, opts, device, pool, splits)


def check_model_fits(cfg: Config, sample: torch.Tensor) -> None:
    """UserError when the config's model cannot take the data (an input_dim that the dataset accepts but the
    architecture does not, e.g. columnfc with input_dim 1 on 8x8 images), before anything is trained."""
    model = build_model(cfg.model_name, cfg.num_cls, cfg.input_dim).eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except RuntimeError as e:
        raise UserError(f"model {cfg.model_name} with input_dim {cfg.input_dim} cannot take {cfg.dataset_name} "
                        f"samples of shape {tuple(sample.shape[1:])} ({str(e).splitlines()[0][:100]})",
                        "fix \"input_dim\" in the config") from None
    if out.shape[-1] != cfg.num_cls:
        raise UserError(f"model {cfg.model_name} gives {out.shape[-1]} outputs but num_cls is {cfg.num_cls}")


ModelWork = Callable[[Experiment, "int | None"], None]


def for_each_model(exp: Experiment, work: ModelWork, log_name: str) -> None:
    """Run `work(exp, shadow)` for the victim and every shadow.

    With `--workers N` (N > 1) the models are spread round-robin over N spawned processes sharing the
    cores, each with (threads // N) torch threads: small models use 2+ threads poorly, so N one-thread
    processes finish the same models sooner (bench.py measures it). Each model has its own seed, so the
    models are the same as in one process up to float reduction order (thread count).
    """
    for_each_index(exp, work, exp.roles(), log_name)


def for_each_index(exp: Experiment, work: Callable[[Experiment, Any], None], todo: list[Any], log_name: str) -> None:
    """`for_each_model` over any picklable items (refs.py: reference indices), spread the same way."""
    workers = exp.opts.workers
    if workers == 1 or len(todo) <= 1:
        for item in todo:
            work(exp, item)
        return
    workers = min(workers, len(todo))
    threads = max(1, (exp.opts.threads or torch.get_num_threads()) // workers)
    log.info(f"Training {len(todo)} models in {workers} processes with {threads} torch thread(s) each")
    opts = replace(exp.opts, threads=threads, workers=1)
    # spawn, not fork: a forked child of a process that already ran OpenMP/oneDNN code can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        jobs = [pool.submit(_model_worker, opts, exp.cfg, log_name, work, todo[k::workers])
                for k in range(workers)]
        for job in jobs:
            job.result()  # re-raises a worker's UserError here, after the other workers finished


PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies


def die_with_parent(parent: int) -> None:
    """Worker initializer: a worker must not outlive its step. Without this, a SIGKILLed `--workers N` run left
    its workers training and writing checkpoints, then hanging at ~835 MB each. On Linux the kernel sends
    SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG); everywhere, a watchdog thread notices that the
    parent pid changed (the worker was re-parented) within a second and kills the worker."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGKILL)


def _model_worker(opts: RunOptions, cfg: Config, log_name: str, work: Callable[[Experiment, Any], None],
                  items: list[Any]) -> None:
    exp = open_experiment(opts, cfg, log_name)
    for item in items:
        work(exp, item)


def check_setting(cfg: Config, setting: ModelSetting, options: DefenseOptions) -> None:
    """Every problem with the flags naming a model surfaces before data are loaded or anything is trained:
    the pruner, the sparsity, that the model has layers the pruner targets, the defense and its arguments."""
    if setting.is_original:
        return
    pruner.validate_pruner_name(str(setting.pruner_name))
    pruner.validate_sparsity(setting.sparsity)
    with torch.device("meta"):  # layer types only: no memory (input_dim 10^7 made a 10 GB columnfc, 46 s)
        model = build_model(cfg.model_name, cfg.num_cls, cfg.input_dim)
    pruner.require_targets(model, str(setting.pruner_name), cfg.model_name)
    create_defense(setting.defend, setting.defend_arg, options)


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "python": platform.python_version()}


def seconds_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)
