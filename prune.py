"""Step 2: prune the victim and shadow originals with one approach and sparsity, then fine-tune them with
the shared training loop, optionally under a defense (DESIGN §6-7).

    python prune.py [DEVICE] CONFIG --pruner_name l1unstructure --prune_sparsity 0.7 [--defend ppb --defend_arg 4]
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools

import torch

import pruner
from cli import add_setting_flags, add_workers_flag, base_parser, defense_options, parse, run_main, setting_of
from defenses import DefenseOptions, create_defense
from experiment import Experiment, check_setting, for_each_model, model_seed, open_experiment, role_label
from setting import ModelSetting
from storage import atomic_torch_save, log
from training import evaluate, fit


def basic_seconds_per_epoch(exp: Experiment, setting: ModelSetting, shadow: int | None) -> float | None:
    """Seconds per fine-tuning epoch of the undefended run of the same model, if it exists (for the log)."""
    path = exp.checkpoint_path(setting.undefended(), shadow)
    if not setting.defended or not path.exists():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt.get("seconds_per_epoch")


def prune_one(exp: Experiment, shadow: int | None, setting: ModelSetting, options: DefenseOptions) -> None:
    """Prune + fine-tune one model unless finished; masks come from the pretrained weights and stay fixed."""
    cfg = exp.cfg
    folder = exp.model_dir(setting, shadow)
    if (folder / "best.pth").exists() and not exp.opts.overwrite:
        log.info(f"{folder.name}: finished earlier, skipped (use --overwrite to redo)")
        return
    model, _ = exp.load_model(ModelSetting.original(), shadow)
    data = exp.tensors(shadow)
    who = "Victim" if shadow is None else "Shadow"
    before = evaluate(model, data.dev_x, data.dev_y), evaluate(model, data.test_x, data.test_y)
    log.info(f"Pretrained {who}: Dev Accuracy {before[0][0]:.3f}, Test Accuracy {before[1][0]:.3f}")
    pruner_name, sparsity = str(setting.pruner_name), float(setting.sparsity or 0.0)
    pruner.prune_model(model, pruner_name, sparsity, model_name=cfg.model_name)
    pruned = evaluate(model, data.dev_x, data.dev_y)[0], evaluate(model, data.test_x, data.test_y)[0]
    seed = model_seed(cfg, shadow, "prune")
    torch.manual_seed(seed)
    hooks = create_defense(setting.defend, setting.defend_arg, options)
    result = fit(model, data, exp.train_config(cfg.fine_tune_epochs), hooks=hooks,
                 generator=torch.Generator().manual_seed(seed),
                 label="Prune " if shadow is None else "Shadow Prune ", desc=folder.name)
    state, masks = pruner.bake(model)
    measured = pruner.measure_sparsity(model, pruner_name, model_name=cfg.model_name)
    train_acc = evaluate(model, data.train_x, data.train_y)[0]
    per_epoch = result.seconds / max(result.epochs_run, 1)
    ckpt = result.checkpoint() | {"state": state, "masks": masks, "train_acc": train_acc,
                                  "sparsity": measured, "pruner_name": pruner_name,
                                  "prune_sparsity": sparsity, "defend": setting.defend,
                                  "defend_arg": setting.defend_arg, "seconds_per_epoch": per_epoch,
                                  "pruned_dev_acc": pruned[0], "pruned_test_acc": pruned[1]}
    atomic_torch_save(ckpt, folder / "best.pth")
    basic = basic_seconds_per_epoch(exp, setting, shadow)
    cost = f" ({per_epoch - basic:+.2f} s/epoch vs no defense)" if basic is not None else ""
    privacy = f", epsilon {result.extras['epsilon']:.2f} at delta {result.extras['delta']:g}" \
        if "epsilon" in result.extras else ""
    log.info(f"{folder.name} ({role_label(shadow)}): sparsity {measured['overall']:.3f} of all weights, "
             f"{measured['pruned_layers']:.3f} of pruned layers; dev {before[0][0]:.2f} -> {pruned[0]:.2f} -> "
             f"{result.dev_acc:.2f}, test {before[1][0]:.2f} -> {pruned[1]:.2f} -> {result.test_acc:.2f} % "
             f"(original -> pruned -> fine-tuned); {result.epochs_run} epochs, {result.seconds:.1f} s, "
             f"{per_epoch:.2f} s/epoch{cost}{privacy}")


def main() -> None:
    parser = base_parser("Step 2: prune and fine-tune the victim and shadow models, optionally defended.")
    add_setting_flags(parser)
    add_workers_flag(parser)
    ns, opts, cfg = parse(parser)
    setting, options = setting_of(ns), defense_options(ns)
    check_setting(cfg, setting, options)
    exp = open_experiment(opts, cfg, f"prune_{setting.prefix}.log")
    exp.require_models(ModelSetting.original())  # fail before any work when step 1 has not run
    for_each_model(exp, functools.partial(prune_one, setting=setting, options=options), f"prune_{setting.prefix}.log")


if __name__ == "__main__":
    run_main(main)
