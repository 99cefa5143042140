"""Step 2: prune the victim and shadow originals with one approach and sparsity, then fine-tune them with
the shared training loop, optionally under a defense (DESIGN §6-7).

    python prune.py [DEVICE] CONFIG --pruner_name l1unstructure --prune_sparsity 0.7 [--defend ppb --defend_arg 4]
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import functools

import torch

import pruner
from defenses import DEFEND_ARG_DEFAULTS, DEFENSES, defend_arg_help, make_defense
from errors import UserError
from experiment import add_workers_flag, atomic_torch_save, base_parser, log, parse, run_main
from models import build_model
from pipeline import (Experiment, for_each_model, load_model, model_dir, model_label, open_experiment,
                      prune_prefix, roles, step_command, train_config)
from training import evaluate, fit


def add_prune_flags(p: argparse.ArgumentParser) -> None:
    """The flags that name a pruned model; mia.py reads the same ones to find it."""
    p.add_argument("--pruner_name", default="l1unstructure", help="one of: " + ", ".join(pruner.PRUNERS))
    p.add_argument("--prune_sparsity", type=float, default=0.7, help="fraction of the targeted weights removed")
    p.add_argument("--defend", default="", help="defense during fine-tuning: '' (basic) or one of: "
                   + ", ".join(DEFENSES))
    p.add_argument("--defend_arg", type=float, default=None,
                   help="the defense's strength (" + defend_arg_help() + ")")
    p.add_argument("--dp_clip", type=float, default=1.0, help="dpsgd per-example clipping norm")
    p.add_argument("--dp_delta", type=float, default=1e-5, help="dpsgd delta at which epsilon is reported")


def check_prune_flags(args: argparse.Namespace, model_name: str, model: torch.nn.Module) -> None:
    """Every flag problem surfaces before data are loaded or anything is trained."""
    if args.defend_arg is None:  # each defense's own default (the artifact: ppb/adv 4.0, dp 0.1)
        args.defend_arg = DEFEND_ARG_DEFAULTS.get(args.defend, 4.0)
    pruner.validate_pruner_name(args.pruner_name)
    pruner.validate_sparsity(args.prune_sparsity)
    pruner.require_targets(model, args.pruner_name, model_name)
    make_defense(args.defend, args.defend_arg, dp_clip=args.dp_clip, dp_delta=args.dp_delta)


def basic_seconds_per_epoch(exp: Experiment, shadow: int | None) -> float | None:
    """Seconds per fine-tuning epoch of the undefended run of the same model, if it exists (for the log)."""
    path = model_dir(exp.root, prune_prefix(exp.args.pruner_name, exp.args.prune_sparsity), shadow) / "best.pth"
    if not exp.args.defend or not path.exists():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt.get("seconds_per_epoch")


def prune_one(exp: Experiment, shadow: int | None, prefix: str) -> None:
    """Prune + fine-tune one model unless finished; masks come from the pretrained weights and stay fixed."""
    args, cfg = exp.args, exp.cfg
    folder = model_dir(exp.root, prefix, shadow)
    if (folder / "best.pth").exists() and not args.overwrite:
        log.info(f"{folder.name}: finished earlier, skipped (use --overwrite to redo)")
        return
    model, _ = load_model(exp, model_dir(exp.root, None, shadow), step_command("pretrain.py", exp))
    data = exp.tensors(shadow)
    who = "Victim" if shadow is None else "Shadow"
    before = evaluate(model, data.dev_x, data.dev_y), evaluate(model, data.test_x, data.test_y)
    log.info(f"Pretrained {who}: Dev Accuracy {before[0][0]:.3f}, Test Accuracy {before[1][0]:.3f}")
    pruner.prune_model(model, args.pruner_name, args.prune_sparsity, model_name=cfg.model_name)
    pruned = evaluate(model, data.dev_x, data.dev_y)[0], evaluate(model, data.test_x, data.test_y)[0]
    index = 0 if shadow is None else shadow + 1
    torch.manual_seed(cfg.seed + 1000 * index + 1)
    hooks = make_defense(args.defend, args.defend_arg, dp_clip=args.dp_clip, dp_delta=args.dp_delta)
    result = fit(model, data, train_config(exp, cfg.fine_tune_epochs), hooks=hooks,
                 generator=torch.Generator().manual_seed(cfg.seed + 1000 * index + 1),
                 label="Prune " if shadow is None else "Shadow Prune ", desc=folder.name)
    state, masks = pruner.bake(model)
    sparsity = pruner.measure_sparsity(model, args.pruner_name, model_name=cfg.model_name)
    train_acc = evaluate(model, data.train_x, data.train_y)[0]
    per_epoch = result.seconds / max(result.epochs_run, 1)
    ckpt = result.checkpoint() | {"state": state, "masks": masks, "train_acc": train_acc,
                                  "sparsity": sparsity, "pruner_name": args.pruner_name,
                                  "prune_sparsity": args.prune_sparsity, "defend": args.defend,
                                  "defend_arg": args.defend_arg if args.defend else None,
                                  "seconds_per_epoch": per_epoch,
                                  "pruned_dev_acc": pruned[0], "pruned_test_acc": pruned[1]}
    atomic_torch_save(ckpt, folder / "best.pth")
    basic = basic_seconds_per_epoch(exp, shadow)
    cost = f" ({per_epoch - basic:+.2f} s/epoch vs no defense)" if basic is not None else ""
    privacy = f", epsilon {result.extras['epsilon']:.2f} at delta {result.extras['delta']:g}" \
        if "epsilon" in result.extras else ""
    log.info(f"{folder.name} ({model_label(shadow)}): sparsity {sparsity['overall']:.3f} of all weights, "
             f"{sparsity['pruned_layers']:.3f} of pruned layers; dev {before[0][0]:.2f} -> {pruned[0]:.2f} -> "
             f"{result.dev_acc:.2f}, test {before[1][0]:.2f} -> {pruned[1]:.2f} -> {result.test_acc:.2f} % "
             f"(original -> pruned -> fine-tuned); {result.epochs_run} epochs, {result.seconds:.1f} s, "
             f"{per_epoch:.2f} s/epoch{cost}{privacy}")


def main() -> None:
    parser = base_parser("Step 2: prune and fine-tune the victim and shadow models, optionally defended.")
    add_prune_flags(parser)
    add_workers_flag(parser)
    args, cfg = parse(parser)
    check_prune_flags(args, cfg.model_name, build_model(cfg.model_name, cfg.num_cls, cfg.input_dim))
    prefix = prune_prefix(args.pruner_name, args.prune_sparsity, args.defend, args.defend_arg)
    exp = open_experiment(args, cfg, f"prune_{prefix}.log")
    for shadow in roles(cfg):  # fail before any work when step 1 has not run
        path = model_dir(exp.root, None, shadow) / "best.pth"
        if not path.exists():
            raise UserError(f"original model {path} not found (step 1 has not run)",
                            f"run first: {step_command('pretrain.py', exp)}")
    for_each_model(exp, functools.partial(prune_one, prefix=prefix), f"prune_{prefix}.log")


if __name__ == "__main__":
    run_main(main)
