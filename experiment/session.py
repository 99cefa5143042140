"""One `Experiment` per step run: the config, the run options, the device, the split and the data pool on the
device (loaded when first used), with the layout and checkpoint I/O mixed in. `open_experiment` seeds,
starts the log, reads (pretrain.py: makes) the split and picks the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import datasets
import pruner
from core.config_schema import Config
from core.errors import UserError
from core.setting import ModelSetting
from core.storage import log, remove_stale_tmp, setup_logging
from core.training import SplitTensors, TrainConfig
from defenses import DefenseOptions, create_defense
from experiment.checkpoints import Checkpoints
from experiment.layout import log_dir, result_dir, split_file, step_command
from experiment.runtime import RunOptions, channels_last, configure_backends, resolve_device, seed_everything
from models import build_model


@dataclass
class Experiment(Checkpoints):
    """One step run's config, options, device, split and data (the layout and checkpoint I/O are mixed in)."""

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
