"""Step 2b: reference models for LiRA / RMIA online (docs/reference_models.md): models of the victim's kind,
each trained on its half of the attacker's population (the victim's members and non-members plus the shadow pool), then
pruned and fine-tuned exactly as the victim (same approach, sparsity and defense) unless --original.

    python refs.py [DEVICE] CONFIG [--pruner_name l1unstructure --prune_sparsity 0.6 [--defend ppb ...] | --original]
                   --ref_models 16 [--workers 2]

Outputs: result/<config>/refs/<prefix or original>/reference_model_<i>/best.pth and membership.npz (which
population points each reference trained on, reference_splits.py). Asking for more references trains only the
missing ones; a killed run resumes (every checkpoint is written atomically). A pruned setting's references
start from the original references (refs/original/), made here when missing, as the victim starts from its
original. The offline variants need no references from here: the shadows never saw the victim's data.
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools
import time
from pathlib import Path

import numpy as np
import torch

import pruner
from core import provenance, reference_splits
from core.setting import ModelSetting
from core.storage import RECORD_KEY, atomic_torch_save, checkpoint_record, log
from core.training import evaluate, fit
from defenses import DefenseOptions, create_defense
from experiment import Experiment, check_setting, for_each_index, open_experiment, reference_seed
from experiment.cli import (
    add_setting_flags,
    add_workers_flag,
    base_parser,
    defense_options,
    parse,
    run_main,
    setting_of,
)

ORIGINAL = ModelSetting.original()


def online_population(exp: Experiment) -> np.ndarray:
    s = exp.splits
    return reference_splits.victim_populations(exp.pool_size, s.victim_train, s.victim_dev, s.victim_test)[0]


def reference_parts(exp: Experiment, population: np.ndarray, row: np.ndarray, index: int) -> tuple[np.ndarray, ...]:
    """Pool indices (train, dev, test) of reference `index` (references.reference_split)."""
    split = exp.cfg.split
    return reference_splits.reference_split(population, row, split["dev"] / split["train"], exp.cfg.seed, index)


def reference_data(exp: Experiment, population: np.ndarray, row: np.ndarray, index: int):
    return exp.tensors_of(reference_parts(exp, population, row, index))


def reference_record(exp: Experiment, setting: ModelSetting, index: int, options: DefenseOptions | None,
                     population: np.ndarray, row: np.ndarray) -> dict:
    """The provenance record of reference `index` of `setting` being written now."""
    split = exp.split_of(reference_parts(exp, population, row, index))
    expected = exp.expected_reference(setting, index, options, split)
    return provenance.new_record(expected.kind or "", expected.settings, split,
                                 {k: v for k, v in expected.parents.items() if v is not None})


def train_original(exp: Experiment, index: int, population: np.ndarray, row: np.ndarray) -> None:
    """Reference `index` of the original kind: the pretraining schedule on its IN half (pretrain.py's recipe)."""
    path = reference_splits.reference_dir(ORIGINAL.refs_folder(exp.root), index) / reference_splits.CHECKPOINT
    seed = reference_seed(exp.cfg, index, "pretrain")
    torch.manual_seed(seed)
    model, data = exp.fresh_model(), reference_data(exp, population, row, index)
    result = fit(model, data, exp.train_config(exp.cfg.epochs), generator=torch.Generator().manual_seed(seed),
                 label="Reference ", desc=path.parent.name)
    train_acc = evaluate(model, data.train_x, data.train_y)[0]
    atomic_torch_save(result.checkpoint() | {"train_acc": train_acc, "setting": "original",
                                             "reference_index": index,
                                             "population_hash": reference_splits.population_hash(population),
                                             RECORD_KEY: reference_record(exp, ORIGINAL, index, None, population, row)},
                      path)
    log.info(f"{path.parent.name} (original): train {train_acc:.2f} / dev {result.dev_acc:.2f} / test "
             f"{result.test_acc:.2f} % on {len(data.train_y)} points, {result.epochs_run} epochs, "
             f"{result.seconds:.1f} s")


def prune_reference(exp: Experiment, index: int, setting: ModelSetting, options: DefenseOptions,
                    population: np.ndarray, row: np.ndarray) -> None:
    """Prune the original reference `index` as the victim was pruned, then fine-tune it (prune.py's recipe)."""
    cfg = exp.cfg
    source = reference_splits.reference_dir(ORIGINAL.refs_folder(exp.root), index) / reference_splits.CHECKPOINT
    path = reference_splits.reference_dir(setting.refs_folder(exp.root), index) / reference_splits.CHECKPOINT
    model, _ = exp.load_model_at(source, exp.command("refs.py", "--original"))
    data = reference_data(exp, population, row, index)
    name, sparsity = str(setting.pruner_name), float(setting.sparsity or 0.0)
    pruner.prune_model(model, name, sparsity, model_name=cfg.model_name)
    seed = reference_seed(cfg, index, "prune")
    torch.manual_seed(seed)
    result = fit(model, data, exp.train_config(cfg.fine_tune_epochs),
                 hooks=create_defense(setting.defend, setting.defend_arg, options),
                 generator=torch.Generator().manual_seed(seed), label="Reference Prune ", desc=path.parent.name)
    state, masks = pruner.bake(model)
    measured = pruner.measure_sparsity(model, name, model_name=cfg.model_name)
    train_acc = evaluate(model, data.train_x, data.train_y)[0]
    atomic_torch_save(result.checkpoint() | {
        "state": state, "masks": masks, "train_acc": train_acc, "sparsity": measured, "pruner_name": name,
        "prune_sparsity": sparsity, "defend": setting.defend, "defend_arg": setting.defend_arg,
        "setting": setting.prefix, "reference_index": index,
        "population_hash": reference_splits.population_hash(population),
        RECORD_KEY: reference_record(exp, setting, index, options, population, row)}, path)
    log.info(f"{path.parent.name} ({setting.prefix}): sparsity {measured['overall']:.3f}, train {train_acc:.2f} / "
             f"test {result.test_acc:.2f} %, {result.epochs_run} epochs, {result.seconds:.1f} s")


def make_reference(exp: Experiment, index: int, setting: ModelSetting, options: DefenseOptions,
                   population: np.ndarray, membership: np.ndarray) -> None:
    """Reference `index` (references_to_make chose it): its original reference first when missing (or when the
    original references are being overwritten), then, for a pruned setting, the pruned one from it."""
    start = time.perf_counter()
    if not exp.reference_path(ORIGINAL, index).is_file() or (setting.is_original and exp.opts.overwrite):
        train_original(exp, index, population, membership[index])
    if not setting.is_original:
        prune_reference(exp, index, setting, options, population, membership[index])
    log.info(f"reference_model_{index}: done in {time.perf_counter() - start:.1f} s")


def references_to_make(exp: Experiment, setting: ModelSetting, options: DefenseOptions, population: np.ndarray,
                       membership: np.ndarray) -> list[int]:
    """The references to (re)make: missing, stale (a pruned one whose original reference was remade; logged)
    or all under --overwrite. A reference made with other settings or on other rows, or before records
    existed, is refused here, before any work."""
    if exp.opts.overwrite:
        return list(range(exp.cfg.ref_models))
    todo = []
    for index in range(exp.cfg.ref_models):
        kinds = [ORIGINAL] if setting.is_original else [ORIGINAL, setting]
        for kind in kinds:
            path = exp.reference_path(kind, index)
            if not path.is_file():
                todo.append(index)
                break
            split = exp.split_of(reference_parts(exp, population, membership[index], index))
            reason = provenance.verify(str(path), checkpoint_record(path, exp.command("refs.py")),
                                       exp.expected_reference(kind, index, options, split),
                                       "rerun with --overwrite to replace it", made="trained")
            if reason is not None:
                log.info(f"{path.parent.name} ({kind.prefix or 'original'}): {reason}, so it is made again")
                todo.append(index)
                break
    return todo


def membership_files(exp: Experiment, setting: ModelSetting, population: np.ndarray) -> np.ndarray:
    """The (ref_models, population) matrix, saved beside the original and (if pruned) the setting's references;
    a folder made for another population or seed is refused (reference_splits.load_reference_membership)."""
    folders = {ORIGINAL.refs_folder(exp.root), setting.refs_folder(exp.root)}
    matrices = [reference_splits.reference_membership(f / reference_splits.MEMBERSHIP, population, exp.cfg.ref_models,
                                                      exp.cfg.seed) for f in sorted(folders)]
    return matrices[0]


def main() -> None:
    parser = base_parser("Step 2b: reference models (LiRA / RMIA online) for one victim setting.")
    add_setting_flags(parser)
    add_workers_flag(parser)
    parser.add_argument("--original", action="store_true", help="references of the unpruned victim")
    ns, opts, cfg = parse(parser)
    setting = ORIGINAL if ns.original else setting_of(ns)
    options = defense_options(ns, cfg)
    check_setting(cfg, setting, options)
    name = setting.prefix or "original"
    exp = open_experiment(opts, cfg, f"refs_{name}.log")
    population = online_population(exp)
    membership = membership_files(exp, setting, population)
    folder = setting.refs_folder(exp.root)
    todo = references_to_make(exp, setting, options, population, membership)
    if not todo:
        log.info(f"References {name}: all {cfg.ref_models} up to date (same settings, rows and originals), nothing "
                 "to do (use --overwrite to redo)")
        return
    log.info(f"References {name}: population {population.size} points, each trains on about half; "
             f"{cfg.ref_models - len(todo)} of {cfg.ref_models} up to date, {len(todo)} to make")
    start = time.perf_counter()
    work = functools.partial(make_reference, setting=setting, options=options, population=population,
                             membership=membership)
    for_each_index(exp, work, todo, f"refs_{name}.log")
    seconds = time.perf_counter() - start
    log.info(f"Made {len(todo)} references in {seconds:.1f} s ({3600 * len(todo) / seconds:.0f} per hour)")
    log.info(f"References in {Path(folder)}")


if __name__ == "__main__":
    run_main(main)
