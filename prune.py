"""Step 2: prune the victim and shadow originals with one approach and sparsity, then fine-tune them with
the shared training loop, optionally under a defense (docs/design.md §5-6). A one-shot approach prunes once from
the pretrained weights; an iterative one (WeMem's iter_pruning / iter_prunetxt) runs `prune_iter` rounds of
`prune_epochs` epochs (pruner.iterative_prune), the defense active in every round.

    python prune.py [DEVICE] CONFIG --pruner_name l1unstructure --prune_sparsity 0.7 [--defend ppb --defend_arg 4]
    python prune.py [DEVICE] CONFIG --pruner_name iter_prunetxt --prune_sparsity 0.6 [--prune_iter 5]
                    [--defend slide_ml2 --stride 1 --width 15 --mem_thre 0.6 --weight_decay_mem 0.1]
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools
from dataclasses import asdict, replace

import torch
from torch import nn

import pruner
from core.setting import ModelSetting
from core.storage import RECORD_KEY, atomic_torch_save, load_checkpoint, log
from core.training import FitResult, SplitTensors, evaluate, fit
from defenses import Defense, DefenseOptions, create_defense, memscores, needs_mem_scores
from experiment import (
    Experiment,
    check_setting,
    for_each_index,
    model_seed,
    models_to_make,
    open_experiment,
    role_label,
)
from experiment.cli import (
    add_setting_flags,
    add_workers_flag,
    base_parser,
    defense_options,
    parse,
    run_main,
    setting_of,
)


def basic_seconds_per_epoch(exp: Experiment, setting: ModelSetting, shadow: int | None) -> float | None:
    """Seconds per fine-tuning epoch of the undefended run of the same model, if it exists (for the log)."""
    path = exp.checkpoint_path(setting.undefended(), shadow)
    if not setting.defended or not path.exists():
        return None
    # mmap: only one float is read, not the model's tensors (once per role and defended run)
    return load_checkpoint(path, exp.make_command(setting.undefended()), mmap=True).get("seconds_per_epoch")


def role_options(exp: Experiment, shadow: int | None, setting: ModelSetting, options: DefenseOptions) -> DefenseOptions:
    """The options with what the experiment supplies for this model: its own mem-score rows, when the
    defense reads them (victim and shadows read the one per-config table, each at its own train rows)."""
    if not needs_mem_scores(setting.defend):
        return options
    scores = memscores.load_scores(exp.root / "memscore", exp.train_rows(shadow), exp.command("memscore.py"),
                                  expected=exp.settings("memscore"))
    return replace(options, mem_scores=scores)


def fine_tune(exp: Experiment, model: nn.Module, data: SplitTensors, setting: ModelSetting, hooks: Defense,
              seed: int, label: str, desc: str) -> tuple[FitResult, dict]:
    """Prune and fine-tune: once (one-shot approaches) or in `prune_iter` rounds (iterative ones, docs/wemem.md).
    Returns the fit result and extra checkpoint entries (one-shot: the accuracies right after pruning;
    iterative: the rounds, their schedule and measured sparsity)."""
    cfg = exp.cfg
    pruner_name, sparsity = str(setting.pruner_name), float(setting.sparsity or 0.0)
    generator = torch.Generator().manual_seed(seed)
    train_cfg = exp.train_config(cfg.fine_tune_epochs)
    if not pruner.PRUNERS.get(pruner_name).iterative:
        pruner.prune_model(model, pruner_name, sparsity, model_name=cfg.model_name)
        pruned = {"pruned_dev_acc": evaluate(model, data.dev_x, data.dev_y)[0],
                  "pruned_test_acc": evaluate(model, data.test_x, data.test_y)[0]}
        return fit(model, data, train_cfg, hooks=hooks, generator=generator, label=label, desc=desc), pruned
    log.info(f"Iterative pruning: {cfg.prune_iter} rounds of {cfg.fine_tune_epochs} epochs, layer sparsity schedule "
             + ", ".join(f"{t:.4f}" for t in pruner.iterative_schedule(sparsity, cfg.prune_iter)))
    result, rounds = pruner.iterative_prune(model, data, train_cfg, cfg.prune_iter, sparsity, pruner_name,
                                            lambda: hooks, generator, model_name=cfg.model_name, label=label)
    return result, {"prune_iter": cfg.prune_iter, "schedule": result.extras["schedule"],
                    "rounds": [asdict(r) for r in rounds]}


def prune_one(exp: Experiment, shadow: int | None, setting: ModelSetting, options: DefenseOptions) -> None:
    """Prune + fine-tune one model unless finished; masks come from the pretrained weights (one-shot) or from
    the weights entering each round (iterative), and a pruned weight stays zero."""
    cfg = exp.cfg
    folder = exp.model_dir(setting, shadow)
    model, _ = exp.load_model(ModelSetting.original(), shadow)
    data = exp.tensors(shadow)
    who = "Victim" if shadow is None else "Shadow"
    before = evaluate(model, data.dev_x, data.dev_y), evaluate(model, data.test_x, data.test_y)
    log.info(f"Pretrained {who}: Dev Accuracy {before[0][0]:.3f}, Test Accuracy {before[1][0]:.3f}")
    pruner_name, sparsity = str(setting.pruner_name), float(setting.sparsity or 0.0)
    seed = model_seed(cfg, shadow, "prune")
    torch.manual_seed(seed)
    hooks = create_defense(setting.defend, setting.defend_arg, role_options(exp, shadow, setting, options))
    result, entries = fine_tune(exp, model, data, setting, hooks, seed,
                                  "Prune " if shadow is None else "Shadow Prune ", folder.name)
    # What the defense did over the whole run (DP-SGD: epsilon over every step, not the best epoch's)
    result.extras.update(hooks.summary())
    recovery = recovery_of(before[1][0], entries.get("pruned_test_acc"), result.test_acc)
    # WeMem's defense time: the fine-tuning loop(s) with per-epoch evaluation, preparation excluded
    defense_seconds = result.extras.get("rounds_seconds", result.seconds)
    log.info(f"Total {setting.defend or 'Base'} defend time: {defense_seconds:.2f}s")
    state, masks = pruner.bake(model)
    measured = pruner.measure_sparsity(model, pruner_name, model_name=cfg.model_name)
    train_acc = evaluate(model, data.train_x, data.train_y)[0]
    per_epoch = result.seconds / max(result.epochs_run, 1)
    ckpt = result.checkpoint() | {"state": state, "masks": masks, "train_acc": train_acc,
                                  "sparsity": measured, "pruner_name": pruner_name,
                                  "prune_sparsity": sparsity, "defend": setting.defend,
                                  "defend_arg": setting.defend_arg, "defense_options": dict(setting.options),
                                  "defense_seconds": defense_seconds, "seconds_per_epoch": per_epoch,
                                  "split_scheme": cfg.split_scheme, "pretrained_test_acc": before[1][0],
                                  "recovery": recovery,
                                  RECORD_KEY: exp.new_model_record(setting, shadow, options)} | entries
    atomic_torch_save(ckpt, folder / "best.pth")
    basic = basic_seconds_per_epoch(exp, setting, shadow)
    cost = f" ({per_epoch - basic:+.2f} s/epoch vs no defense)" if basic is not None else ""
    privacy = privacy_words(result.extras)
    log.info(f"{folder.name} ({role_label(shadow)}): sparsity {measured['overall']:.3f} of all weights, "
             f"{measured['pruned_layers']:.3f} of pruned layers; dev {before[0][0]:.2f} -> {result.dev_acc:.2f}, "
             f"test {before[1][0]:.2f} -> {result.test_acc:.2f} % (original -> fine-tuned); {result.epochs_run} "
             f"epochs{' (last round)' if 'rounds' in entries else ''}, {result.seconds:.1f} s, {per_epoch:.2f} "
             f"s/epoch{cost}{recovery_words(recovery)}{privacy}")


def recovery_of(pretrained: float, pruned: float | None, fine_tuned: float) -> dict[str, float] | None:
    """Test accuracy (%) before pruning, right after it, after fine-tuning; `lost` = pretrained - pruned and
    `recovered` = fine-tuned - pruned points. None for iterative pruning (no single pruned-only model)."""
    if pruned is None:
        return None
    return {"pretrained_test_acc": pretrained, "pruned_test_acc": pruned, "fine_tuned_test_acc": fine_tuned,
            "lost": pretrained - pruned, "recovered": fine_tuned - pruned}


def recovery_words(recovery: dict[str, float] | None) -> str:
    """`; recovered 1.9 of 2.4 test points lost to pruning` ('' when nothing was lost or not one-shot)."""
    if recovery is None or recovery["lost"] <= 0:
        return ""
    return f"; recovered {recovery['recovered']:.2f} of {recovery['lost']:.2f} test points lost to pruning"


def privacy_words(extras: dict) -> str:
    """`, epsilon 6.42 (rdp, all 70 steps) at delta 1e-05 [note]` for DP-SGD; the note alone for dp."""
    if "epsilon" in extras:
        return (f", epsilon {extras['epsilon']:.2f} ({extras['accountant']}, all {extras['dp_steps']} steps) at "
                f"delta {extras['delta']:g} [{extras['privacy_note']}]")
    return f" [{extras['privacy_note']}]" if "privacy_note" in extras else ""


def main() -> None:
    parser = base_parser("Step 2: prune and fine-tune the victim and shadow models, optionally defended.")
    add_setting_flags(parser)
    add_workers_flag(parser)
    ns, opts, cfg = parse(parser)
    setting, options = setting_of(ns), defense_options(ns, cfg)
    check_setting(cfg, setting, options)
    exp = open_experiment(opts, cfg, f"prune_{setting.prefix}.log")
    exp.require_models(ModelSetting.original())  # fail before any work when step 1 has not run
    todo = models_to_make(exp, setting, options)
    for shadow in todo:  # originals that disagree with this run, a missing or short mem-score table, too
        exp.model_id(ModelSetting.original(), shadow)
        role_options(exp, shadow, setting, options)
    for_each_index(exp, functools.partial(prune_one, setting=setting, options=options), todo,
                   f"prune_{setting.prefix}.log")


if __name__ == "__main__":
    run_main(main)
