"""What an attack reads, computed from the models: each model's features on its members and non-members
(confidences, sensitivities, accuracies), the `AttackInput` of the pooled shadows and the victim, and the
reference sets of the reference-model attacks (refs.py's online references, or the shadows as offline ones)
with their per-target statistics, saved beside the scores. mia.py assembles them per attack run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attackers import ATTACKS, AttackInput
from attackers.features import predict_proba, sensitivity
from attackers.refstats import lira_statistic
from core import reference_splits
from core.errors import UserError
from core.setting import AttackSetting
from core.storage import atomic_save_npz, log
from core.training import evaluate, format_line
from defenses import DefenseOptions
from experiment.runtime import feature_seed
from experiment.session import Experiment


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



def model_features(exp: Experiment, model: nn.Module, shadow: int | None, title: str) -> ModelFeatures:
    """Confidences and sensitivities of members (train) and non-members (test); the artifact's log lines."""
    data = exp.tensors(shadow)
    n, eps = exp.cfg.sensitivity["n"], exp.cfg.sensitivity["eps"]
    gen = torch.Generator().manual_seed(feature_seed(exp.cfg, shadow))
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


def require_finite_outputs(features: ModelFeatures, path: Path) -> None:
    """UserError naming the model when its confidences or sensitivities hold NaN / infinity (finite weights can
    still overflow): no attack on them would mean anything."""
    for name, values in (("confidences", features.probs), ("sensitivities", features.sens)):
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise UserError(f"model {path} gives {bad} non-finite {name}", "retrain it with --overwrite "
                            "(a lower --lr) or lower the sensitivity eps")


def attack_input(exp: Experiment, victim: ModelFeatures, shadows: list[ModelFeatures]) -> AttackInput:
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(s, name) for s in shadows])
    return AttackInput(shadow_probs=cat("probs"), shadow_sens=cat("sens"), shadow_labels=cat("labels"),
                       shadow_member=cat("member"), target_probs=victim.probs, target_sens=victim.sens,
                       target_labels=victim.labels, target_member=victim.member, num_cls=exp.cfg.num_cls)


@dataclass
class ReferenceSet:
    """Reference models of one kind ("online": refs.py's, trained on halves of a population holding the targets;
    "offline": the shadows, which never saw the victim's data) and who trained on what."""

    kind: str
    models: list[nn.Module]
    target_in: np.ndarray       # (n targets, R) bool
    population: np.ndarray      # pool indices of RMIA's / loss's population points z (the victim never saw them)
    population_in: np.ndarray   # (m, R) bool


def targets_of(exp: Experiment) -> np.ndarray:
    """Pool indices of the target rows: the victim's members then its non-members (model_features' order)."""
    return np.concatenate([exp.splits.victim_train, exp.splits.victim_test])


def refs_command(exp: Experiment, setting: AttackSetting) -> str:
    return exp.command("refs.py", (setting.victim.flags() or "--original") + f" --ref_models {exp.cfg.ref_models}")


def reference_shortfall(exp: Experiment, setting: AttackSetting, attack: type) -> tuple[str, str] | None:
    """(problem, hint) when the references `attack` reads are missing or too few, else None."""
    cfg, kind, need = exp.cfg, attack.reference_set, attack.min_references
    if kind is None:
        return None
    if kind == "offline":
        if cfg.shadow_num < need:
            return (f"{attack.name} uses the {cfg.shadow_num} shadow model(s) as offline references and needs at "
                    f"least {need}", f"pretrain and prune with --shadow_num {need} or more")
        return None
    if cfg.ref_models < need:
        return f"{attack.name} needs at least {need} reference models, ref_models is {cfg.ref_models}", \
            f"pass --ref_models {need} or more"
    folder = setting.victim.refs_folder(exp.root)
    missing = reference_splits.missing_references(folder, cfg.ref_models)
    if missing:
        return (f"{attack.name} needs {cfg.ref_models} reference models in {folder}; "
                f"{cfg.ref_models - len(missing)} exist", f"make them with: {refs_command(exp, setting)}")
    return None


def usable_attacks(exp: Experiment, setting: AttackSetting, names: list[str], explicit: bool) -> list[str]:
    """`names` whose reference models exist. An attack named on the command line without them is a UserError;
    under `--attacks all` it is skipped with a log line (all = every attack whose inputs exist)."""
    keep = []
    for name in names:
        problem = reference_shortfall(exp, setting, ATTACKS.get(name))
        if problem is None:
            keep.append(name)
        elif explicit:
            raise UserError(*problem)
        else:
            log.info(f"{name}: skipped under --attacks all ({problem[0]}; {problem[1]})")
    return keep


def online_references(exp: Experiment, setting: AttackSetting, options: DefenseOptions) -> ReferenceSet:
    """refs.py's references of the victim's setting, checked against this split and setting."""
    s, cfg = exp.splits, exp.cfg
    population, offline = reference_splits.victim_populations(len(exp.pool.y), s.victim_train, s.victim_dev,
                                                              s.victim_test)
    folder = setting.victim.refs_folder(exp.root)
    membership = reference_splits.load_reference_membership(folder / reference_splits.MEMBERSHIP, population, cfg.seed)
    if len(membership) < cfg.ref_models:
        raise UserError(f"{folder / reference_splits.MEMBERSHIP} lists {len(membership)} references, "
                        f"ref_models is {cfg.ref_models}", f"make them with: {refs_command(exp, setting)}")
    membership = membership[:cfg.ref_models]
    wanted, digest = setting.victim.prefix or "original", reference_splits.population_hash(population)
    models = []
    for i in range(cfg.ref_models):
        path = reference_splits.reference_dir(folder, i) / reference_splits.CHECKPOINT
        parts = reference_splits.reference_split(population, membership[i], cfg.split["dev"] / cfg.split["train"],
                                           cfg.seed, i)
        exp.checked_id(path, exp.expected_reference(setting.victim, i, options, exp.split_of(parts)),
                       refs_command(exp, setting))
        model, ckpt = exp.load_model_at(path, refs_command(exp, setting))
        if ckpt.get("setting") != wanted or ckpt.get("population_hash") != digest:
            raise UserError(f"reference {path} was made for another victim setting or split "
                            f"({ckpt.get('setting')}, population {ckpt.get('population_hash')}; this run: "
                            f"{wanted}, population {digest})", "delete the folder's references and rerun refs.py")
        models.append(model)
    log.info(f"Loaded {len(models)} online references from {folder}")
    return ReferenceSet("online", models, reference_splits.membership_of(membership, population, targets_of(exp)),
                        offline, reference_splits.membership_of(membership, population, offline))


def offline_references(exp: Experiment, shadow_models: list[nn.Module]) -> ReferenceSet:
    """The shadows as offline references; z = the points the victim never saw that at least one shadow did
    not train on either (RMIA offline needs an OUT reference for every z)."""
    s = exp.splits
    _, offline = reference_splits.victim_populations(len(exp.pool.y), s.victim_train, s.victim_dev, s.victim_test)
    trains = [part[0] for part in s.shadows[:len(shadow_models)]]

    def seen(points: np.ndarray) -> np.ndarray:
        return np.stack([np.isin(points, t) for t in trains], axis=1)
    z_in = seen(offline)
    keep = ~z_in.all(axis=1)
    return ReferenceSet("offline", shadow_models, seen(targets_of(exp)), offline[keep], z_in[keep])


def phi(exp: Experiment, model: nn.Module, points: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled true-class confidence of `model` on pool points (attackers/refstats.py)."""
    idx = torch.as_tensor(points, dtype=torch.long, device=exp.pool.x.device)
    probs = predict_proba(model, exp.pool.x[idx])
    return lira_statistic(exp.pool.y[idx].cpu().numpy(), probs=probs)


def reference_fields(exp: Experiment, victim_model: nn.Module, refs: ReferenceSet, out: Path) -> dict[str, Any]:
    """The AttackInput's reference fields for one set, also saved per target point (references_<kind>.npz)."""
    targets = targets_of(exp)
    fields = {
        "target_stat": phi(exp, victim_model, targets),
        "reference_stats": np.stack([phi(exp, m, targets) for m in refs.models], axis=1),
        "reference_in": refs.target_in,
        "population_stat": phi(exp, victim_model, refs.population),
        "population_ref_stats": np.stack([phi(exp, m, refs.population) for m in refs.models], axis=1),
        "population_ref_in": refs.population_in,
    }
    member = np.r_[np.ones(len(exp.splits.victim_train), np.int64), np.zeros(len(exp.splits.victim_test), np.int64)]
    atomic_save_npz(out / f"references_{refs.kind}.npz", target_indices=targets, member=member,
                    population_indices=refs.population, **fields)
    return fields
