"""Step 1: split the data, then train the victim and `shadow_num` shadow models (the originals).

    python pretrain.py [DEVICE] CONFIG [--shadow_num 5 --seed 7 --batch_size 128 --early_stop 5 --workers 1]
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time

import torch

from core.setting import ModelSetting
from core.storage import RECORD_KEY, atomic_torch_save, log
from core.training import evaluate, fit
from experiment import Experiment, for_each_index, model_seed, models_to_make, open_experiment, role_label
from experiment.cli import add_workers_flag, base_parser, parse, run_main

ORIGINAL = ModelSetting.original()


def train_original(exp: Experiment, shadow: int | None) -> None:
    """Train one original model (main decided it is missing, stale or to be overwritten); each model has its
    own seed, so a rerun that skips finished models trains the rest exactly as an uninterrupted run would."""
    folder = exp.model_dir(ORIGINAL, shadow)
    seed = model_seed(exp.cfg, shadow, "pretrain")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = exp.fresh_model()
    data = exp.tensors(shadow)
    start = time.perf_counter()
    result = fit(model, data, exp.train_config(exp.cfg.epochs), generator=generator,
                 label="" if shadow is None else "Shadow ", desc=folder.name)
    train_acc, _ = evaluate(model, data.train_x, data.train_y)
    ckpt = result.checkpoint() | {"train_acc": train_acc, RECORD_KEY: exp.new_model_record(ORIGINAL, shadow, None)}
    atomic_torch_save(ckpt, folder / "best.pth")
    log.info(f"{folder.name} ({role_label(shadow)}): train {train_acc:.2f} / dev {result.dev_acc:.2f} / "
             f"test {result.test_acc:.2f} % accuracy, {result.epochs_run} epochs (best {result.best_epoch}), "
             f"{time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = base_parser("Step 1: train the victim and the shadow models (originals).")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download CIFAR/SVHN into data_root when missing")
    add_workers_flag(parser)
    _, opts, cfg = parse(parser)
    exp = open_experiment(opts, cfg, "pretrain.log", make_split=True)
    for_each_index(exp, train_original, models_to_make(exp, ORIGINAL, None), "pretrain.log")


if __name__ == "__main__":
    run_main(main)
