"""Step 3: attack the pruned (or --original, or defended) victim with shadows treated the same way, then
report every metric (DESIGN §8-9).

    python mia.py [DEVICE] CONFIG --pruner_name l1unstructure --prune_sparsity 0.7 --attacks all
                  [--defend ppb --defend_arg 4 [--adaptive]] [--original]
                  [--shadow_pruner_name slim --shadow_prune_sparsity 0.5]
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import pruner
from attackers import ATTACKS, build_attack, resolve_attacks
from attackers.base import AttackInput, AttackResult
from attackers.blindmi import BlindMIConfig, generate_nonmembers
from attackers.features import (confidence_gap, generalization_gap, predict_proba, sensitivity,
                                sensitivity_gap, true_class)
from attackers.metrics import attack_metrics
from errors import UserError
from experiment import Config, append_jsonl, atomic_save_npz, base_parser, log, log_dir, parse, run_main
from models import build_model
from pipeline import (Experiment, load_model, model_dir, open_experiment, prune_prefix, seconds_since,
                      step_command, versions)
from prune import add_prune_flags, check_prune_flags
from training import evaluate, format_line

METRIC_KEYS = ("acc", "balanced_acc", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")

# The artifact's result lines, so its users' log parsers keep working.
ARTIFACT_LINES = {
    "samia": "SAMIA attack accuracy {:.3f}",
    "conf": "Ground-truth class confidence-based threshold attack (Conf) accuracy: {:.3f}",
    "entr": "Cross-entropy-based threshold attack (Xent) accuracy: {:.3f}",
    "mentr": "Modified-entropy-based threshold attack (Mentr) accuracy: {:.3f}",
    "hconf": "Top1 Confidence-based threshold attack (Top1-conf) accuracy: {:.3f}",
    "nn": "NN attack accuracy {:.3f}",
    "nn_top3": "Top3-NN Attack Accuracy {}",
    "nn_cls": "NNCls Attack Accuracy {}",
}


@dataclass
class Setting:
    """Which victim and which shadows an attack run uses, and the names its outputs go under."""

    victim_prefix: str | None   # None: the original (unpruned) victim
    shadow_prefix: str | None
    name: str                   # the folder / log name of this run

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Setting":
        if args.original:
            return cls(None, None, "original")
        victim = prune_prefix(args.pruner_name, args.prune_sparsity, args.defend, args.defend_arg)
        shadow_pruner = args.shadow_pruner_name or args.pruner_name
        shadow_sparsity = args.shadow_prune_sparsity if args.shadow_prune_sparsity is not None \
            else args.prune_sparsity
        defend = args.defend if args.adaptive else ""
        shadow = prune_prefix(shadow_pruner, shadow_sparsity, defend, args.defend_arg)
        name = victim + ("_adaptive" if args.adaptive else "")
        if (shadow_pruner, shadow_sparsity) != (args.pruner_name, args.prune_sparsity):
            name += f"_shadow_{shadow}"
        return cls(victim, shadow, name)


@dataclass
class ModelFeatures:
    """One model's outputs on its members (train split) and non-members (test split)."""

    probs: np.ndarray
    sens: np.ndarray
    labels: np.ndarray
    member: np.ndarray
    train_acc: float
    test_acc: float
    train_loss: float
    test_loss: float


def add_mia_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attacks", default="samia", help="comma list of attacks or 'all': " + ", ".join(ATTACKS))
    p.add_argument("--original", action="store_true", help="attack the unpruned victim with unpruned shadows")
    p.add_argument("--adaptive", action="store_true",
                   help="shadows fine-tuned with the victim's defense (default: undefended shadows)")
    p.add_argument("--shadow_pruner_name", default=None,
                   help="unknown-setting attack (paper Table 1): prune the shadows with this approach instead")
    p.add_argument("--shadow_prune_sparsity", type=float, default=None,
                   help="unknown-setting attack: the shadows' sparsity instead of the victim's")


def check_mia_flags(args: argparse.Namespace, cfg: Config) -> list[str]:
    check_prune_flags(args, cfg.model_name, build_model(cfg.model_name, cfg.num_cls, cfg.input_dim))
    if args.adaptive and not args.defend:
        raise UserError("--adaptive needs --defend", "adaptive shadows are fine-tuned with the victim's defense")
    if args.original and (args.defend or args.shadow_pruner_name or args.shadow_prune_sparsity is not None):
        raise UserError("--original attacks unpruned models", "drop --defend / --shadow_* with --original")
    if args.shadow_pruner_name:
        pruner.validate_pruner_name(args.shadow_pruner_name)
    if args.shadow_prune_sparsity is not None:
        pruner.validate_sparsity(args.shadow_prune_sparsity)
    return resolve_attacks(args.attacks)


def prune_hint(exp: Experiment, prefix: str) -> str:
    """The prune.py command that makes the models named by `prefix`."""
    args = exp.args
    for name in pruner.PRUNERS:
        if prefix.startswith(name + "_"):
            parts = prefix[len(name) + 1:].split("_")
            extra = f"--pruner_name {name} --prune_sparsity {parts[0]}"
            if len(parts) >= 3:
                extra += f" --defend {parts[1]} --defend_arg {parts[2]}"
            return step_command("prune.py", exp, extra)
    return step_command("prune.py", exp, f"--pruner_name {args.pruner_name}")


def load_all(exp: Experiment, setting: Setting) -> tuple[tuple[nn.Module, dict], list[nn.Module]]:
    """The victim and every shadow; every missing file is reported before any work, with its command."""
    def hint(prefix: str | None) -> str:
        return step_command("pretrain.py", exp) if prefix is None else prune_hint(exp, prefix)
    wanted = [(None, setting.victim_prefix)] + [(i, setting.shadow_prefix) for i in range(exp.cfg.shadow_num)]
    for shadow, prefix in wanted:
        path = model_dir(exp.root, prefix, shadow) / "best.pth"
        if not path.exists():
            raise UserError(f"{'victim' if shadow is None else 'shadow'} checkpoint {path} not found",
                            f"make it with: {hint(prefix)}")
    victim_dir = model_dir(exp.root, setting.victim_prefix, None)
    log.info(f"Load {'Pruned ' if setting.victim_prefix else ''}Model from {victim_dir}")
    victim = load_model(exp, victim_dir, hint(setting.victim_prefix))
    shadows = []
    for i in range(exp.cfg.shadow_num):
        folder = model_dir(exp.root, setting.shadow_prefix, i)
        log.info(f"Load {'Pruned ' if setting.shadow_prefix else ''}Shadow Model From {folder}")
        shadows.append(load_model(exp, folder, hint(setting.shadow_prefix))[0])
    return victim, shadows


def model_features(exp: Experiment, model: nn.Module, shadow: int | None, title: str) -> ModelFeatures:
    """Confidences and sensitivities of members (train) and non-members (test); the artifact's log lines."""
    data = exp.tensors(shadow)
    n, eps = exp.cfg.sensitivity["n"], exp.cfg.sensitivity["eps"]
    gen = torch.Generator().manual_seed(exp.cfg.seed + (0 if shadow is None else shadow + 1))
    train = evaluate(model, data.train_x, data.train_y)
    test = evaluate(model, data.test_x, data.test_y)
    log.info(format_line(f"{title} Train", *train))
    log.info(format_line(f"{title} Test", *test))
    x = torch.cat([data.train_x, data.test_x])
    probs = predict_proba(model, x)
    sens = sensitivity(model, x, n=int(n), eps=float(eps), generator=gen)
    labels = torch.cat([data.train_y, data.test_y]).cpu().numpy()
    member = np.r_[np.ones(len(data.train_y), np.int64), np.zeros(len(data.test_y), np.int64)]
    return ModelFeatures(probs, sens, labels, member, train[0], test[0], train[1], test[1])


def attack_input(exp: Experiment, victim: ModelFeatures, shadows: list[ModelFeatures],
                 reference_probs: np.ndarray | None) -> AttackInput:
    cat = lambda field: np.concatenate([getattr(s, field) for s in shadows])  # noqa: E731
    return AttackInput(shadow_probs=cat("probs"), shadow_sens=cat("sens"), shadow_labels=cat("labels"),
                       shadow_member=cat("member"), target_probs=victim.probs, target_sens=victim.sens,
                       target_labels=victim.labels, target_member=victim.member, num_cls=exp.cfg.num_cls,
                       reference_probs=reference_probs)


def victim_summary(victim: ModelFeatures, ckpt: dict[str, Any]) -> dict[str, Any]:
    """Per-model numbers of DESIGN §9: accuracies, sparsity, the gaps of paper eqs. 3-4, epsilon."""
    m, y = victim.member == 1, victim.labels
    sparsity = ckpt.get("sparsity") or {}
    extras = ckpt.get("extras") or {}
    return {
        "victim_train_acc": victim.train_acc, "victim_test_acc": victim.test_acc,
        "victim_sparsity": sparsity.get("overall", 0.0),
        "victim_sparsity_pruned_layers": sparsity.get("pruned_layers", 0.0),
        "confidence_gap": confidence_gap(victim.probs[m], y[m], victim.probs[~m], y[~m]),
        "sensitivity_gap": sensitivity_gap(victim.sens[m], y[m], victim.sens[~m], y[~m]),
        "generalization_gap": generalization_gap(victim.train_acc, victim.test_acc),
        "epsilon": extras.get("epsilon"), "delta": extras.get("delta"),
    }


def setting_fields(exp: Experiment, setting: Setting) -> dict[str, Any]:
    a, cfg = exp.args, exp.cfg
    return {"config": cfg.stem, "dataset_name": cfg.dataset_name, "model_name": cfg.model_name,
            "setting": setting.name, "original": a.original,
            "pruner_name": None if a.original else a.pruner_name,
            "prune_sparsity": None if a.original else a.prune_sparsity,
            "defend": a.defend or "", "defend_arg": a.defend_arg if a.defend else None, "adaptive": a.adaptive,
            "shadow_prefix": setting.shadow_prefix,
            "shadow_pruner_name": None if a.original else (a.shadow_pruner_name or a.pruner_name),
            "shadow_prune_sparsity": None if a.original else (
                a.shadow_prune_sparsity if a.shadow_prune_sparsity is not None else a.prune_sparsity),
            "shadow_num": cfg.shadow_num, "seed": cfg.seed, "split": cfg.split,
            "attack_epochs": cfg.attack_epochs, "sensitivity": cfg.sensitivity}


def report(exp: Experiment, setting: Setting, result: AttackResult, base: dict[str, Any], out: Path,
           seconds: float) -> dict[str, Any]:
    """Log the artifact's line, save per-sample scores, append the results record; returns the record."""
    member = base.pop("_member")
    metrics = attack_metrics(member, result.scores, result.decisions)
    if result.name in ARTIFACT_LINES:
        log.info(ARTIFACT_LINES[result.name].format(result.paper_acc))
    scores_file = out / f"{result.name}.npz"
    atomic_save_npz(scores_file, scores=result.scores, decisions=result.decisions, member=member)
    record = base | metrics | {"attack": result.name, "paper_acc": result.paper_acc, "attack_seconds": seconds,
                               "scores_file": str(scores_file),
                               "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    append_jsonl(log_dir(exp.cfg) / "results.jsonl", record)
    base["_member"] = member
    return record


def print_table(records: list[dict[str, Any]]) -> None:
    head = f"{'attack':<10} {'paper acc':>9} {'acc':>7} {'bal acc':>7} {'AUC':>7} {'TPR@1%':>7} {'TPR@.1%':>7}"
    log.info(head)
    log.info("-" * len(head))
    for r in records:
        log.info(f"{r['attack']:<10} {r['paper_acc']:9.2f} {r['acc']:7.2f} {r['balanced_acc']:7.2f} "
                 f"{r['auc']:7.2f} {r['tpr_at_1pct_fpr']:7.2f} {r['tpr_at_0.1pct_fpr']:7.2f}")


def pending_attacks(out: Path, names: list[str], overwrite: bool) -> list[str]:
    """Attacks whose scores are not saved yet (threshold counts as done when all six of its files exist)."""
    def done(name: str) -> bool:
        files = [f"{n}.npz" for n in ("conf", "xent", "entr", "mentr", "top1_conf", "hconf")] \
            if name == "threshold" else [f"{name}.npz"]
        return all((out / f).exists() for f in files)
    return [n for n in names if overwrite or not done(n)]


def main() -> None:
    parser = base_parser("Step 3: membership inference attacks on the pruned (or original) victim.")
    add_prune_flags(parser)
    add_mia_flags(parser)
    args, cfg = parse(parser)
    names = check_mia_flags(args, cfg)
    setting = Setting.from_args(args)
    exp = open_experiment(args, cfg, f"mia_{setting.name}.log")
    out = exp.root / "mia" / setting.name
    todo = pending_attacks(out, names, args.overwrite)
    if not todo:
        log.info(f"{setting.name}: every requested attack finished earlier, skipped (use --overwrite to redo)")
        return
    (victim_model, victim_ckpt), shadow_models = load_all(exp, setting)
    start = time.perf_counter()
    kind = "Pruned " if setting.victim_prefix else ""
    victim = model_features(exp, victim_model, None, f"Victim {kind}Model")
    shadows = [model_features(exp, m, i, f"Shadow {kind}Model") for i, m in enumerate(shadow_models)]
    reference = None
    if "blindmi" in todo:
        gen = torch.Generator().manual_seed(cfg.seed)
        fake = generate_nonmembers(torch.cat([exp.tensors(None).train_x, exp.tensors(None).test_x]),
                                   BlindMIConfig().n_reference or len(victim.labels), gen)
        reference = predict_proba(victim_model, fake.to(exp.device))
    data = attack_input(exp, victim, shadows, reference)
    m = victim.member == 1
    atomic_save_npz(out / "features.npz", conf=true_class(victim.probs, victim.labels),
                    sens=true_class(victim.sens, victim.labels), member=victim.member, labels=victim.labels)
    base = setting_fields(exp, setting) | victim_summary(victim, victim_ckpt) | {
        "feature_seconds": seconds_since(start), "versions": versions(), "_member": victim.member}
    log.info(f"Victim: train {victim.train_acc:.2f} / test {victim.test_acc:.2f} %, confidence gap "
             f"{base['confidence_gap']:.4f}, sensitivity gap {base['sensitivity_gap']:.4f}, "
             f"members {int(m.sum())}, non-members {int((~m).sum())}")
    log.info("Start Membership Inference Attacks")
    settings = {"epochs": cfg.attack_epochs, "lr": cfg.attack_lr, "device": str(exp.device), "seed": cfg.seed}
    records = []
    for name in todo:
        t0 = time.perf_counter()
        results = build_attack(name, **settings).run(data)
        seconds = seconds_since(t0) / len(results)
        records += [report(exp, setting, r, base, out, seconds) for r in results]
    print_table(records)
    log.info(f"Results appended to {log_dir(cfg) / 'results.jsonl'}; per-sample scores in {out}")


if __name__ == "__main__":
    run_main(main)
