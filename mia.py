"""Step 3: attack the pruned (or --original, or defended) victim with shadows treated the same way, then
report every metric (docs/design.md §7-8).

    python mia.py [DEVICE] CONFIG --pruner_name l1unstructure --prune_sparsity 0.7 --attacks all
                  [--defend ppb --defend_arg 4 [--adaptive]] [--original]
                  [--pruner_name iter_prunetxt --defend slide_re --stride 1 --width 15 [--adaptive]]
                  [--shadow_pruner_name slim --shadow_prune_sparsity 0.5]
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or small CPU, spinning threads starve each
# other (measured: a 10-epoch digits MLP took 7.1 s spinning vs 0.45 s passive, on 2 loaded cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import pruner
from attackers import (
    ATTACKS,
    Attack,
    AttackResult,
    TargetAccess,
    artifact_line,
    create_attack,
    resolve_attacks,
)
from attackers.features import (
    confidence_gap,
    generalization_gap,
    predict_proba,
    sensitivity_gap,
    true_class,
)
from attackers.metrics import NonFiniteScores, attack_metrics
from core import provenance
from core.config_schema import Config
from core.errors import UserError
from core.results import AttackRecord, append_record, committed_outputs
from core.setting import AttackSetting, ModelSetting
from core.storage import atomic_save_npz, log, npz_record, save_npz_with_record
from defenses import DefenseOptions
from experiment import (
    Experiment,
    check_setting,
    open_experiment,
    seconds_since,
    settings_defaults,
    versions,
)
from experiment.attack_data import (
    ModelFeatures,
    attack_input,
    model_features,
    offline_references,
    online_references,
    reference_fields,
    refs_command,
    require_finite_outputs,
    usable_attacks,
)
from experiment.cli import add_setting_flags, base_parser, defense_options, parse, run_main, setting_of


def add_mia_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attacks", default="samia",
                   help="comma list of attacks or 'all': " + ", ".join(ATTACKS.names()) + " (default samia)")
    p.add_argument("--original", action="store_true",
                   help="attack the unpruned victim (with unpruned shadows unless --shadow_prune_sparsity)")
    p.add_argument("--adaptive", action="store_true",
                   help="shadows fine-tuned with the victim's defense (default: undefended shadows)")
    p.add_argument("--shadow_pruner_name", default=None,
                   help="unknown-setting attack (paper Table 1): prune the shadows with this approach instead")
    p.add_argument("--shadow_prune_sparsity", type=float, default=None,
                   help="unknown-setting attack: the shadows' sparsity instead of the victim's (0: unpruned shadows)")


def attack_setting(ns: argparse.Namespace, cfg: Config) -> AttackSetting:
    """The victim and shadows the flags name; every flag problem surfaces here, before any work."""
    victim = setting_of(ns)
    if ns.original and victim.defended:
        raise UserError("--original attacks the unpruned victim, which has no defense", "drop --defend")
    if ns.adaptive and not victim.defended:
        raise UserError("--adaptive needs --defend", "adaptive shadows are fine-tuned with the victim's defense")
    check_setting(cfg, victim, defense_options(ns, cfg))
    if ns.shadow_pruner_name:
        pruner.validate_pruner_name(ns.shadow_pruner_name)
    if ns.shadow_prune_sparsity is not None and ns.shadow_prune_sparsity != 0:  # 0: the unpruned shadows
        pruner.validate_sparsity(ns.shadow_prune_sparsity)
    if ns.shadow_prune_sparsity == 0 and (ns.adaptive or ns.shadow_pruner_name):
        raise UserError("--shadow_prune_sparsity 0 means the unpruned shadows",
                        "drop --adaptive / --shadow_pruner_name")
    if ns.original:
        if ns.shadow_pruner_name and ns.shadow_prune_sparsity is None:
            raise UserError("--original with --shadow_pruner_name needs --shadow_prune_sparsity",
                            "the shadows' sparsity (the victim stays unpruned)")
        # an unpruned victim attacked with pruned shadows (Figs 12-13's sparsity 0 row): --pruner_name names
        # the shadows' approach unless --shadow_pruner_name does
        return AttackSetting.of(ModelSetting.original(), shadow_pruner_name=ns.shadow_pruner_name or ns.pruner_name,
                                shadow_sparsity=ns.shadow_prune_sparsity)
    return AttackSetting.of(victim, adaptive=ns.adaptive, shadow_pruner_name=ns.shadow_pruner_name,
                            shadow_sparsity=ns.shadow_prune_sparsity)


def load_all(exp: Experiment, setting: AttackSetting, options: DefenseOptions
             ) -> tuple[tuple[nn.Module, dict], list[nn.Module]]:
    """The victim and every shadow, each checked against this run (model_parents did so before any work)."""
    kind = "" if setting.victim.is_original else "Pruned "
    log.info(f"Load {kind}Model from {exp.model_dir(setting.victim, None)}")
    victim = exp.load_model(setting.victim, None, options)
    shadows = []
    for i in range(exp.cfg.shadow_num):
        log.info(f"Load {'' if setting.shadows.is_original else 'Pruned '}Shadow Model From "
                 f"{exp.model_dir(setting.shadows, i)}")
        shadows.append(exp.load_model(setting.shadows, i, options)[0])
    return victim, shadows


def model_parents(exp: Experiment, setting: AttackSetting, options: DefenseOptions) -> dict[str, str]:
    """The model_ids of the victim and every shadow, each checked (settings, split, not stale); every missing
    file is reported first, with its command."""
    exp.require_models(setting.victim, shadows=False)
    exp.require_models(setting.shadows)
    parents = {"victim": exp.model_id(setting.victim, None, options)}
    return parents | {f"shadow {i}": exp.model_id(setting.shadows, i, options) for i in range(exp.cfg.shadow_num)}


def reference_parents(exp: Experiment, setting: AttackSetting, options: DefenseOptions) -> dict[str, str]:
    """The model_ids of refs.py's references of the victim's setting (checked, their rows when loaded)."""
    victim, command = setting.victim, refs_command(exp, setting)
    return {f"reference {i}": exp.checked_id(exp.reference_path(victim, i),
                                             exp.expected_reference(victim, i, options, None), command)
            for i in range(exp.cfg.ref_models)}


# The attack config fields main() fills from config keys (create_attack's pool), by the key a user sets.
ATTACK_CONFIG_KEYS = {"epochs": "attack_epochs", "lr": "attack_lr"}


def attack_settings(exp: Experiment, setting: AttackSetting, attack: Attack) -> dict[str, Any]:
    """What an attack output depends on besides its models: the config (provenance.IGNORED["attack"]), the
    attack's own config as it read it (so --attack_epochs counts only for the attacks that train), and
    ref_models only for the attacks that read refs.py's references."""
    config = dataclasses.asdict(attack.config) if dataclasses.is_dataclass(attack.config) else {}
    config.pop("device", None)  # where it ran, not what it computed
    config.pop("seed", None)    # the config's seed, recorded anyway
    read = {key: config.pop(field) for field, key in ATTACK_CONFIG_KEYS.items() if field in config}
    settings = exp.settings("attack", attack=attack.name, attack_config=config, setting=setting.name, **read)
    if attack.reference_set != "online":
        settings.pop("ref_models", None)
    return settings


def expected_outputs(exp: Experiment, setting: AttackSetting, attacks: list[Attack], options: DefenseOptions
                     ) -> dict[str, provenance.Expected]:
    """Per attack, what its saved outputs must be to be reused: settings, the victim's split, and the current
    model_ids of the victim, the shadows and (online attacks) the references."""
    parents = model_parents(exp, setting, options)
    refs = reference_parents(exp, setting, options) if any(a.reference_set == "online" for a in attacks) else {}
    split = exp.role_split(None)
    return {a.name: provenance.Expected(attack_settings(exp, setting, a), split,
                                        parents | (refs if a.reference_set == "online" else {}),
                                        settings_defaults(), "attack")
            for a in attacks}


def base_record(exp: Experiment, setting: AttackSetting, victim: ModelFeatures, ckpt: dict[str, Any],
                feature_seconds: float) -> AttackRecord:
    """Everything but the attack: the setting and the victim's numbers (accuracies, sparsity,
    the gaps of paper eqs. 3-4, epsilon)."""
    cfg, v, s = exp.cfg, setting.victim, setting.shadows
    m, y = victim.member == 1, victim.labels
    sparsity = ckpt.get("sparsity") or {}
    extras = ckpt.get("extras") or {}
    return AttackRecord(
        config=cfg.stem, setting=setting.name, attack="", dataset_name=cfg.dataset_name,
        model_name=cfg.model_name, original=v.is_original, pruner_name=v.pruner_name, prune_sparsity=v.sparsity,
        defend=v.defend, defend_arg=v.defend_arg, adaptive=setting.adaptive, shadow_prefix=s.prefix,
        shadow_pruner_name=s.pruner_name, shadow_num=cfg.shadow_num,
        # 0.0: unpruned shadows attacking a pruned victim (None would read as "pruned like the victim")
        shadow_prune_sparsity=0.0 if s.is_original and not v.is_original else s.sparsity,
        seed=cfg.seed, split=cfg.split, attack_epochs=cfg.attack_epochs, sensitivity=cfg.sensitivity,
        victim_train_acc=victim.train_acc, victim_test_acc=victim.test_acc,
        victim_sparsity=sparsity.get("overall", 0.0), victim_sparsity_pruned_layers=sparsity.get("pruned_layers", 0.0),
        confidence_gap=confidence_gap(victim.probs[m], y[m], victim.probs[~m], y[~m]),
        sensitivity_gap=sensitivity_gap(victim.sens[m], y[m], victim.sens[~m], y[~m]),
        generalization_gap=generalization_gap(victim.train_acc, victim.test_acc),
        epsilon=extras.get("epsilon"), delta=extras.get("delta"), feature_seconds=feature_seconds,
        versions=versions(), defense_options=dict(v.options) or None, defense_seconds=ckpt.get("defense_seconds"),
        prune_iter=ckpt.get("prune_iter"), split_scheme=cfg.split_scheme, dp_accountant=extras.get("accountant"),
        dp_steps=extras.get("dp_steps"), privacy_note=extras.get("privacy_note"),
        defense_mode=extras.get("defense_mode"), pretrained_test_acc=ckpt.get("pretrained_test_acc"),
        pruned_test_acc=ckpt.get("pruned_test_acc"))


def report(exp: Experiment, result: AttackResult, base: AttackRecord, member: np.ndarray, out: Path,
           seconds: float, expected: provenance.Expected) -> AttackRecord:
    """Log the artifact's line, save per-sample scores, append the results record; returns the record.

    The scores (with their provenance record) are written first and the results.jsonl record, naming the
    scores' output id, last: the record is the commit point, so scores left by a run killed in between are
    not done (`result_done`) and nothing is reported without its scores."""
    try:
        metrics = attack_metrics(member, result.scores, result.decisions, n_bootstrap=exp.cfg.n_bootstrap,
                                 seed=exp.cfg.seed)
    except NonFiniteScores as e:
        raise UserError(f"attack {result.name} on {base.setting} gave non-finite scores ({e}); nothing of it "
                        "was saved", "lower --attack_lr, or retrain the models if their outputs are off") from None
    line = artifact_line(result.name)
    if line is not None:
        log.info(line.format(result.paper_acc))
    scores_file = out / f"{result.name}.npz"
    output = provenance.new_record("attack", expected.settings, expected.split,
                                   {k: v for k, v in expected.parents.items() if v is not None})
    save_npz_with_record(scores_file, output, scores=result.scores, decisions=result.decisions, member=member)
    record = dataclasses.replace(
        base, attack=result.name, paper_acc=result.paper_acc, acc=metrics["acc"],
        balanced_acc=metrics["balanced_acc"], auc=metrics["auc"], tpr_at_1pct_fpr=metrics["tpr_at_1pct_fpr"],
        tpr_at_0_1pct_fpr=metrics["tpr_at_0.1pct_fpr"], n_members=metrics["n_members"],
        n_nonmembers=metrics["n_nonmembers"], tpr_at_0_01pct_fpr=metrics["tpr_at_0.01pct_fpr"],
        auc_ci_low=metrics.get("auc_ci_low"), auc_ci_high=metrics.get("auc_ci_high"),
        tpr_at_0_1pct_fpr_ci_low=metrics.get("tpr_at_0.1pct_fpr_ci_low"),
        tpr_at_0_1pct_fpr_ci_high=metrics.get("tpr_at_0.1pct_fpr_ci_high"), n_bootstrap=exp.cfg.n_bootstrap,
        n_references=result.extra.get("n_references"), attack_seconds=seconds, scores_file=str(scores_file),
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        provenance={"model_id": output["model_id"], "settings": provenance.fingerprint(output["settings"]),
                    "parents": output["parents"]})
    append_record(exp.logs / "results.jsonl", record)
    return record


def print_table(records: list[AttackRecord]) -> None:
    head = (f"{'attack':<13} {'paper acc':>9} {'acc':>7} {'bal acc':>7} {'AUC':>7} {'TPR@1%':>7} {'TPR@.1%':>7} "
            f"{'TPR@.01%':>8} {'AUC 95% CI':>15}")
    log.info(head)
    log.info("-" * len(head))
    for r in records:
        ci = f"{r.auc_ci_low:6.2f}-{r.auc_ci_high:6.2f}" if r.auc_ci_low is not None else "-"
        log.info(f"{r.attack:<13} {r.paper_acc:9.2f} {r.acc:7.2f} {r.balanced_acc:7.2f} {r.auc:7.2f} "
                 f"{r.tpr_at_1pct_fpr:7.2f} {r.tpr_at_0_1pct_fpr:7.2f} {r.tpr_at_0_01pct_fpr:8.2f} {ci:>15}")


def pending_attacks(out: Path, expected: dict[str, provenance.Expected], committed: set[str],
                    overwrite: bool) -> list[str]:
    """Attacks with a result not done (`result_done`); an attack is done when every result it returns is."""
    def done(name: str) -> bool:
        return all([result_done(out / f"{r}.npz", expected[name], committed) for r in ATTACKS.get(name).results()])
    return [n for n in expected if overwrite or not done(n)]


def result_done(path: Path, expected: provenance.Expected, committed: set[str]) -> bool:
    """Whether one attack result may be reused: its scores exist with a results.jsonl record naming them (else
    a run stopped between the two: not done) and were computed as `expected` asks (a parent model remade
    since: not done, logged; a setting or the split differs: UserError naming it)."""
    if not path.is_file():
        return False
    record = npz_record(path)
    if record is None:
        return False
    if record and record.get("model_id") not in committed:
        log.info(f"{path}: no results.jsonl record names these scores (a run stopped between the two), so they "
                 "are computed again")
        return False
    reason = provenance.verify(str(path), record, expected, "rerun with --overwrite to replace it", made="computed")
    if reason is not None:
        log.info(f"{path}: {reason}, so it is computed again (its old record stays in results.jsonl)")
        return False
    return True


def main() -> None:
    parser = base_parser("Step 3: membership inference attacks on the pruned (or original) victim.")
    add_setting_flags(parser)
    add_mia_flags(parser)
    ns, opts, cfg = parse(parser)
    names = resolve_attacks(ns.attacks)
    setting, options = attack_setting(ns, cfg), defense_options(ns, cfg)
    exp = open_experiment(opts, cfg, f"mia_{setting.name}.log")
    out = exp.root / "mia" / setting.name
    explicit = "all" not in [a.strip() for a in ns.attacks.split(",")]
    settings = {"epochs": cfg.attack_epochs, "lr": cfg.attack_lr, "device": str(exp.device), "seed": cfg.seed}
    usable = [create_attack(name, **settings) for name in usable_attacks(exp, setting, names, explicit)]
    expected = expected_outputs(exp, setting, usable, options)
    todo = pending_attacks(out, expected, committed_outputs(exp.logs / "results.jsonl"), opts.overwrite)
    if not todo:
        log.info(f"{setting.name}: every usable requested attack is up to date (same settings, split and models), "
                 "nothing to do (use --overwrite to redo; attacks skipped for lack of references are listed above)")
        return
    (victim_model, victim_ckpt), shadow_models = load_all(exp, setting, options)
    start = time.perf_counter()
    kind = "" if setting.victim.is_original else "Pruned "
    victim = model_features(exp, victim_model, None, f"Victim {kind}Model")
    shadows = [model_features(exp, m, i, f"Shadow {kind}Model") for i, m in enumerate(shadow_models)]
    for i, features in zip([None, *range(len(shadows))], [victim, *shadows]):
        require_finite_outputs(features, exp.checkpoint_path(setting.victim if i is None else setting.shadows, i))
    attacks = [a for a in usable if a.name in todo]
    victim_data = exp.tensors(None)
    target = TargetAccess(inputs=torch.cat([victim_data.train_x, victim_data.test_x]),
                          query=lambda x: predict_proba(victim_model, x))
    data = attack_input(exp, victim, shadows)
    for attack in attacks:
        data = dataclasses.replace(data, **attack.prepare(target))
    ref_sets = {"online": lambda: online_references(exp, setting, options),
                "offline": lambda: offline_references(exp, shadow_models)}
    kinds = dict.fromkeys(a.reference_set for a in attacks if a.reference_set)
    ref_fields = {kind: reference_fields(exp, victim_model, ref_sets[kind](), out) for kind in kinds}
    atomic_save_npz(out / "features.npz", conf=true_class(victim.probs, victim.labels),
                    sens=true_class(victim.sens, victim.labels), member=victim.member, labels=victim.labels)
    base = base_record(exp, setting, victim, victim_ckpt, seconds_since(start))
    m = victim.member == 1
    log.info(f"Victim: train {victim.train_acc:.2f} / test {victim.test_acc:.2f} %, confidence gap "
             f"{base.confidence_gap:.4f}, sensitivity gap {base.sensitivity_gap:.4f}, "
             f"members {int(m.sum())}, non-members {int((~m).sum())}")
    log.info("Start Membership Inference Attacks")
    records = []
    for attack in attacks:
        t0 = time.perf_counter()
        results = attack.run(dataclasses.replace(data, **ref_fields.get(attack.reference_set, {})))
        seconds = seconds_since(t0) / len(results)
        records += [report(exp, r, base, victim.member, out, seconds, expected[attack.name]) for r in results]
    print_table(records)
    log.info(f"Results appended to {exp.logs / 'results.jsonl'}; per-sample scores in {out}")


if __name__ == "__main__":
    run_main(main)
