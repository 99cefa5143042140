"""The experiment layer (DESIGN §1): one `Experiment` per step run, holding the config, the run options,
the device, the data pool on the device and the split; it knows where every model lives, how each model is
seeded, how it is placed on the device and how its checkpoint is read.

Step scripts build one with `open_experiment(options, config, log_name)`; the science modules below
(training, pruner, defenses, attackers) never see it.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
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

import config
import datasets
import provenance
import pruner
from config import Config
from defenses import DefenseOptions, create_defense, needs_mem_scores
from errors import UserError
from models import build_model
from setting import ModelSetting
from storage import checkpoint_record, load_checkpoint, log, npz_record, remove_stale_tmp, setup_logging
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
    data: datasets.Pool | None   # the pool on the device; None until first used (`pool`), so a step that finds
    #                              everything up to date decides so without loading any data
    splits: datasets.Splits

    @property
    def pool(self) -> datasets.Pool:
        if self.data is None:
            # first used between a model's seeding and its training: loading must not move any random stream
            state = np.random.get_state()
            with torch.random.fork_rng(devices=[]):
                self.data = load_pool(self.cfg, self.opts, self.device, self.splits)
            np.random.set_state(state)
        return self.data

    @property
    def pool_size(self) -> int:
        """Rows in the pool: recorded with the split, so a step can work out populations without the data."""
        return self.splits.n if self.splits.n is not None else len(self.pool.y)

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
        """The shell command of a step on this experiment, for hints."""
        return step_command(self.opts, script, extra)

    def make_command(self, setting: ModelSetting) -> str:
        """The command that makes the models of `setting` (pretrain.py or prune.py with its flags)."""
        return self.command(setting.make_script(), setting.flags())

    def checkpoint_path(self, setting: ModelSetting, shadow: int | None) -> Path:
        return self.model_dir(setting, shadow) / "best.pth"

    def require_models(self, setting: ModelSetting, shadows: bool = True) -> None:
        """UserError naming the first missing checkpoint of `setting` and the command that makes it."""
        for shadow in (self.roles() if shadows else [None]):
            self.require_model(setting, shadow)

    def require_model(self, setting: ModelSetting, shadow: int | None) -> None:
        path = self.checkpoint_path(setting, shadow)
        if not path.is_file():
            what = "original model" if setting.is_original else f"{role_label(shadow)} checkpoint"
            raise UserError(f"{what} {path} not found", f"make it with: {self.make_command(setting)}")

    def load_model(self, setting: ModelSetting, shadow: int | None, options: DefenseOptions | None = None
                   ) -> tuple[nn.Module, dict[str, Any]]:
        """A model from its best.pth, verified first (model_id); a pruned one gets its masks re-attached so zeros
        stay zeros. `options`: the defense options the run names the model with (defended models)."""
        self.model_id(setting, shadow, options)
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

    # ------------------------------------------------------------------ provenance (provenance.py)
    def settings(self, kind: str, **extra: Any) -> dict[str, Any]:
        """The effective settings of an output of `kind` made by this run."""
        return provenance.effective_settings(dataclasses.asdict(self.cfg), vars(self.opts), kind, **extra)

    def split_of(self, parts: tuple[np.ndarray, ...]) -> dict[str, Any]:
        return provenance.split_fingerprint(self.cfg.seed, self.cfg.split_scheme, self.cfg.split, parts)

    def role_split(self, shadow: int | None) -> dict[str, Any]:
        """The split fingerprint of the victim's (None) or shadow i's rows."""
        s = self.splits
        return self.split_of((s.victim_train, s.victim_dev, s.victim_test) if shadow is None else s.shadows[shadow])

    def model_settings(self, setting: ModelSetting, options: DefenseOptions | None) -> dict[str, Any]:
        """An original's or a pruned model's settings: the config's, the model's name and, when defended, every
        DefenseOptions field (default-include: options added later are covered)."""
        if setting.is_original:
            return self.settings("original")
        extra: dict[str, Any] = {"model": {"pruner_name": setting.pruner_name, "prune_sparsity": setting.sparsity,
                                           "defend": setting.defend, "defend_arg": setting.defend_arg}}
        if setting.defended:
            extra["defense_options"] = defense_values(options or DefenseOptions())
        return self.settings("pruned", **extra)

    def model_parents(self, setting: ModelSetting, shadow: int | None) -> dict[str, str | None]:
        """The current model_ids of what a model derives from: a pruned model's original (same role) and the
        mem-scores its defense reads; None for one that is gone."""
        if setting.is_original:
            return {}
        original = self.checkpoint_path(ModelSetting.original(), shadow)
        parents = {"original": record_id(checkpoint_record(original, self.command("pretrain.py"))
                                         if original.is_file() else None)}
        if needs_mem_scores(setting.defend):
            scores = memscore_file(self.cfg)
            parents["mem-score table"] = record_id(npz_record(scores) if scores.is_file() else None)
        return parents

    def expected_model(self, setting: ModelSetting, shadow: int | None,
                       options: DefenseOptions | None) -> provenance.Expected:
        return provenance.Expected(self.model_settings(setting, options), self.role_split(shadow),
                                   self.model_parents(setting, shadow), settings_defaults(), model_kind(setting))

    def new_model_record(self, setting: ModelSetting, shadow: int | None,
                         options: DefenseOptions | None) -> dict[str, Any]:
        """The record a model being written now carries (a fresh model_id)."""
        expected = self.expected_model(setting, shadow, options)
        return provenance.new_record(model_kind(setting), expected.settings, expected.split,
                                     {k: v for k, v in expected.parents.items() if v is not None})

    def model_status(self, setting: ModelSetting, shadow: int | None, options: DefenseOptions | None) -> str | None:
        """For the step that makes the model: None = its checkpoint is up to date (skip it); a sentence = it is
        stale (redo it); UserError = a setting or the split differs, or it predates records (refuse)."""
        path = self.checkpoint_path(setting, shadow)
        record = checkpoint_record(path, self.make_command(setting))
        return provenance.verify(str(path), record, self.expected_model(setting, shadow, options),
                                 "rerun with --overwrite to replace it", made="trained")

    def model_id(self, setting: ModelSetting, shadow: int | None, options: DefenseOptions | None = None) -> str:
        """The model_id of a model another output derives from, after checking it: a setting or the split
        differs, or it is stale (its original was retrained since) -> UserError naming the step that fixes it."""
        self.require_model(setting, shadow)
        return self.checked_id(self.checkpoint_path(setting, shadow), self.expected_model(setting, shadow, options),
                               self.make_command(setting))

    def checked_id(self, path: Path, expected: provenance.Expected, command: str) -> str:
        """The model_id of the checkpoint at `path` if it may be used as `expected`, else UserError; `command`
        makes it (named in the hint)."""
        record = checkpoint_record(path, command)
        reason = provenance.verify(str(path), record, expected, f"rerun {command} --overwrite to replace it, or use "
                                   "the settings it was trained with", made="trained")
        if reason is not None:
            raise UserError(f"{path} is out of date: {reason}", f"rerun {command} (it redoes out-of-date models)")
        return str(record["model_id"])  # type: ignore[index]

    def reference_path(self, setting: ModelSetting, index: int) -> Path:
        """refs.py's reference model `index` of `setting` (the victim's kind)."""
        return setting.refs_folder(self.root) / f"reference_model_{index}" / "best.pth"

    def expected_reference(self, setting: ModelSetting, index: int, options: DefenseOptions | None,
                           split: dict[str, Any] | None) -> provenance.Expected:
        """What reference `index` of `setting` must be: the victim's settings of that kind, derived (pruned
        ones) from the current original reference `index`; `split`: its rows' fingerprint, None to skip that."""
        parents: dict[str, str | None] = {}
        if not setting.is_original:
            original = self.reference_path(ModelSetting.original(), index)
            parents["original"] = record_id(checkpoint_record(original, self.command("refs.py", "--original"))
                                            if original.is_file() else None)
        return provenance.Expected(self.model_settings(setting, options), split, parents, settings_defaults(),
                                   model_kind(setting))


def models_to_make(exp: Experiment, setting: ModelSetting, options: DefenseOptions | None,
                   roles: list[int | None] | None = None) -> list[int | None]:
    """The roles whose model of `setting` the step must (re)make: missing, stale (a parent was remade since;
    logged with the reason) or all under --overwrite. Every refusal (a setting or the split differs, a
    checkpoint predates records) is raised here, before any work; when nothing is left to make, one line says
    so."""
    roles = exp.roles() if roles is None else roles
    if exp.opts.overwrite:
        return list(roles)
    todo = []
    for shadow in roles:
        if not exp.checkpoint_path(setting, shadow).is_file():
            todo.append(shadow)
            continue
        reason = exp.model_status(setting, shadow, options)
        if reason is not None:
            log.info(f"{exp.model_dir(setting, shadow).name}: {reason}, so it is made again")
            todo.append(shadow)
    name = setting.prefix or "original"
    if not todo:
        log.info(f"{name}: all {len(roles)} models up to date (same settings, split and parents), nothing to do "
                 "(use --overwrite to redo)")
    elif len(todo) < len(roles):
        log.info(f"{name}: {len(roles) - len(todo)} of {len(roles)} models up to date, {len(todo)} to make")
    return todo


def model_kind(setting: ModelSetting) -> str:
    """The provenance kind of a model: an original or a pruned (maybe defended) one."""
    return "original" if setting.is_original else "pruned"


def step_command(opts: RunOptions, script: str, extra: str = "") -> str:
    """The shell command of a step on the run's config, for hints: a user can paste it, so the device and the
    config path are shell-quoted (a path with a space or a quote stays one argument)."""
    device, config = shlex.quote(opts.device or "auto"), shlex.quote(opts.config_path)
    return f"python {script} --device {device} {config}{(' ' + extra) if extra else ''}"


def record_id(record: dict[str, Any] | None) -> str | None:
    """The model_id of a record (None: no file, or no record)."""
    return str(record["model_id"]) if isinstance(record, dict) and "model_id" in record else None


def defense_values(options: DefenseOptions) -> dict[str, Any]:
    """Every DefenseOptions field a user sets (mem_scores, supplied by the experiment, is not a setting)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.compare}


@functools.cache
def settings_defaults() -> dict[str, Any]:
    """Each setting's default, for records made before the setting existed (provenance.first_difference)."""
    defaults = {name: config.default_of(name) for name in config.FIELDS if name not in config.REQUIRED}
    defaults |= vars(RunOptions(config_path=""))
    defaults["defense_options"] = defense_values(DefenseOptions())
    return provenance.canonical(defaults)


def memscore_file(cfg: Config) -> Path:
    """memscore.py's scores of one config (read by the defenses with needs_mem_scores)."""
    return result_dir(cfg) / "memscore" / "scores.npz"


def split_file(cfg: Config) -> Path:
    return result_dir(cfg) / "data_index.json"


def open_experiment(opts: RunOptions, cfg: Config, log_name: str, *, make_split: bool = False) -> Experiment:
    """Seed, start the log, read the split, pick the device; the data are loaded when first used.

    Only pretrain.py (`make_split`) makes a split: when there is none, when it must grow to more shadows, or
    under --overwrite (a new split, and every later step then refuses the models of the old one: their split
    fingerprints differ). The other steps read pretrain.py's split and say so when it is missing.
    """
    setup_logging(log_dir(cfg) / log_name)
    for tmp in remove_stale_tmp(result_dir(cfg), recursive=True):
        log.info(f"Removed {tmp}, left by a killed write")
    seed_everything(cfg.seed)
    configure_backends(opts.fast, opts.threads)
    log.info(f"Arguments: {' '.join(opts.words())}")
    log.info(f"Save Folder: {result_dir(cfg)}")
    path = split_file(cfg)
    if make_split and needs_new_split(cfg, opts.overwrite):
        pool = read_pool(cfg, opts)  # before the device: a machine without the data says so first
        device = resolve_device(opts.device)
        splits = datasets.splits_for(len(pool.y), path, seed=cfg.seed, shadow_num=cfg.shadow_num,
                                     overwrite=opts.overwrite, scheme=cfg.split_scheme, n_train=pool.n_train,
                                     **cfg.split)
        return Experiment(cfg, opts, device, to_device(pool, splits, device), splits)
    if not path.is_file():
        raise UserError(f"split file {path} not found: only pretrain.py makes the split",
                        f"make it with: {step_command(opts, 'pretrain.py')}")
    splits = datasets.read_split(path, shadow_num=cfg.shadow_num, seed=cfg.seed, scheme=cfg.split_scheme, **cfg.split)
    return Experiment(cfg, opts, resolve_device(opts.device), None, splits)


def needs_new_split(cfg: Config, overwrite: bool) -> bool:
    """pretrain.py makes (or extends) the split when asked to, when there is none, or when the saved one does
    not serve this config (datasets.splits_for then says what disagrees)."""
    if overwrite or not split_file(cfg).is_file():
        return True
    try:
        datasets.read_split(split_file(cfg), shadow_num=cfg.shadow_num, seed=cfg.seed, scheme=cfg.split_scheme,
                            **cfg.split)
    except UserError:
        return True
    return False


def read_pool(cfg: Config, opts: RunOptions) -> datasets.Pool:
    log.info(f"Build Dataset {cfg.dataset_name}")
    pool = datasets.load_pool(cfg.dataset_name, Path(cfg.data_root), input_dim=cfg.input_dim,
                              num_cls=cfg.num_cls, download=opts.download)
    check_model_fits(cfg, pool.x[:2])
    return pool


def load_pool(cfg: Config, opts: RunOptions, device: torch.device, splits: datasets.Splits) -> datasets.Pool:
    """The pool on the device, after checking the saved split is the one the config makes of it."""
    pool = read_pool(cfg, opts)
    expected = datasets.expected_splits(len(pool.y), scheme=cfg.split_scheme, n_train=pool.n_train, seed=cfg.seed,
                                        shadow_num=len(splits.shadows), **cfg.split)
    datasets.check_split(splits, expected, split_file(cfg))
    return to_device(pool, splits, device)


def to_device(pool: datasets.Pool, splits: datasets.Splits, device: torch.device) -> datasets.Pool:
    log.info(f"Total Data Size: {len(pool.y)}, Victim Train Size: {len(splits.victim_train)}, "
             f"Victim Dev Size: {len(splits.victim_dev)}, Victim Test Size: {len(splits.victim_test)}")
    log.info(f"Device: {device}")
    x = pool.x.to(device, memory_format=torch.channels_last) if channels_last(device, pool.x) else pool.x.to(device)
    return datasets.Pool(x=x, y=pool.y.to(device), name=pool.name, n_train=pool.n_train)


def check_model_fits(cfg: Config, sample: torch.Tensor) -> None:
    """UserError when the config's model cannot take the data (an input_dim that the dataset accepts but the
    architecture does not, e.g. columnfc with input_dim 1 on 8x8 images), before anything is trained."""
    with torch.random.fork_rng(devices=[]):  # the data load is lazy, so it may come between a model's seeding
        model = build_model(cfg.model_name, cfg.num_cls, cfg.input_dim).eval()  # and its training: no RNG use
    try:
        with torch.no_grad():
            out = model(sample)
    except RuntimeError as e:
        raise UserError(f"model {cfg.model_name} with input_dim {cfg.input_dim} cannot take {cfg.dataset_name} "
                        f"samples of shape {tuple(sample.shape[1:])} ({str(e).splitlines()[0][:100]})",
                        "fix \"input_dim\" in the config") from None
    if out.shape[-1] != cfg.num_cls:
        raise UserError(f"model {cfg.model_name} gives {out.shape[-1]} outputs but num_cls is {cfg.num_cls}")


def for_each_index(exp: Experiment, work: Callable[[Experiment, Any], None], todo: list[Any], log_name: str) -> None:
    """Run `work(exp, item)` for every item (roles: None = the victim, i = shadow i; refs.py: reference indices).

    With `--workers N` (N > 1) the items are spread round-robin over N spawned processes sharing the
    cores, each with (threads // N) torch threads: small models use 2+ threads poorly, so N one-thread
    processes finish the same models sooner (bench.py measures it). Each model has its own seed, so the
    models are the same as in one process up to float reduction order (thread count).
    """
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
