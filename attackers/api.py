"""Any registered attack on your own arrays, from a notebook (docs/design.md §7.3; README "Python API"):

    from attackers.api import run_attack
    out = run_attack("lira_online", probs=probs, labels=labels, member=member,
                     reference_stats=reference_stats, reference_in=reference_in)
    out["lira_online"].metrics["auc"], out["lira_online"].scores

The keyword arguments fill an `AttackInput`; what an attack needs is read off its class (`reads`, the
AttackInput fields its `run` reads; `reference_set` / `min_references`; `prepare`, when it queries the victim
itself), so an attack added to the registry works here without a line of this module changing. A missing
input is a `MissingInput` (a ValueError) of one line naming the keyword. The metrics are the dict mia.py
records (attackers/metrics.py), with the artifact's accuracy and the counts every figure must state.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.special import softmax

from attackers import ATTACKS, Attack, AttackInput, TargetAccess
from attackers.metrics import attack_metrics
from attackers.refstats import lira_statistic

# What each AttackInput field a caller can give holds (n target points, C classes, k shadow rows, R reference
# models, m population points). Its keyword is the field's name, except for the victim's target arrays.
MEANING = {
    "target_probs": "the victim's softmax outputs on the target points, (n, C) (or logits=)",
    "target_labels": "the target points' true classes, (n,)",
    "target_member": "1 for a target point the victim trained on, 0 otherwise, (n,)",
    "target_sens": "the victim's prediction sensitivity on the target points, (n, C) (attackers.features."
                   "sensitivity, paper eq. 2)",
    "shadow_probs": "the shadow models' softmax outputs on their own rows, (k, C) (or shadow_logits=)",
    "shadow_labels": "the shadow rows' true classes, (k,)",
    "shadow_member": "1 for a shadow row its shadow model trained on, 0 otherwise, (k,)",
    "shadow_sens": "the shadow models' prediction sensitivity on their rows, (k, C)",
    "target_stat": "the victim's logit-scaled true-class confidence on the targets, (n,) (default: from probs / "
                   "logits)",
    "reference_stats": "each reference model's logit-scaled true-class confidence on each target, (n, R) "
                       "(attackers.refstats.lira_statistic)",
    "reference_in": "whether reference r trained on target i, (n, R) bool",
    "population_stat": "the victim's statistic on population points it never saw, (m,)",
    "population_ref_stats": "the references' statistics on those points, (m, R)",
    "population_ref_in": "whether reference r trained on population point j, (m, R) (default: none did)",
    "reference_probs": "the victim's softmax outputs on generated non-members, (g, C)",
}
RENAMED = {"target_probs": "probs", "target_labels": "labels", "target_member": "member", "target_sens": "sens"}
KEYWORDS = {name: (RENAMED.get(name, name), meaning) for name, meaning in MEANING.items()}  # (keyword, meaning)
KEYWORDS_BY_NAME = {keyword: name for name, (keyword, _) in KEYWORDS.items()}


class MissingInput(ValueError):
    """An attack was asked for without an input it reads (one line naming the keyword)."""


@dataclass
class Audit:
    """One result of an attack: a score per target point (larger = member), the hard decisions, the metrics
    mia.py records (percentages; counts as ints) and what the attack adds (its variance rule, references, ...)."""

    name: str
    scores: np.ndarray
    decisions: np.ndarray
    metrics: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _outputs(probs: Any, logits: Any, what: str) -> np.ndarray | None:
    """Softmax outputs from probs or logits (exactly one of them, or neither), as float64 (rows, C)."""
    if probs is not None and logits is not None:
        raise ValueError(f"give {what} probs or logits, not both")
    if probs is None and logits is None:
        return None
    out = softmax(np.asarray(logits, np.float64), axis=-1) if probs is None else np.asarray(probs, np.float64)
    if out.ndim != 2 or out.shape[1] < 2:
        raise ValueError(f"{what} outputs must be (rows, classes) with at least 2 classes, got shape {out.shape}")
    return out


def _settings(attack: type[Attack], settings: dict[str, Any]) -> Attack:
    """The attack with its config built from `settings`; a setting it does not have is a ValueError."""
    known = [f.name for f in dataclasses.fields(attack.config_cls)] if attack.config_cls else []
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"{attack.name} has no setting {', '.join(unknown)} (its settings: "
                         f"{', '.join(known) or 'none'})")
    return attack.create(**settings)


def _query(query: Callable[[Any], Any]) -> Callable[[torch.Tensor], np.ndarray]:
    """The user's model query (inputs -> softmax outputs, as an array or a tensor) as TargetAccess wants it."""
    def ask(x: torch.Tensor) -> np.ndarray:
        out = query(x)
        return (out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)).astype(np.float64)
    return ask


def _check_reads(attack: type[Attack], given: dict[str, Any], can_query: bool) -> None:
    for name in attack.reads:
        if given.get(name) is None:
            keyword, meaning = KEYWORDS[name]
            also = (" (or query= and inputs=, from which it asks the model itself)"
                    if attack.prepare is not Attack.prepare and not can_query else "")
            raise MissingInput(f"{attack.name} needs {keyword}={also}: {meaning}")
    stats = given.get("reference_stats")
    if attack.reference_set is not None and stats is not None:
        refs = np.shape(stats)[1] if np.ndim(stats) == 2 else 0
        if refs < attack.min_references:
            raise MissingInput(f"{attack.name} needs at least {attack.min_references} reference models; "
                               f"reference_stats has {refs} (shape {np.shape(stats)})")


def run_attack(name: str, *, labels: Any, member: Any, probs: Any = None, logits: Any = None,
               shadow_logits: Any = None, inputs: Any = None, query: Callable[[Any], Any] | None = None,
               access: dict[str, Any] | None = None, n_bootstrap: int = 200, seed: int = 0,
               settings: dict[str, Any] | None = None, **arrays: Any) -> dict[str, Audit]:
    """Run the registered attack `name` on arrays; returns its results by name (the threshold family gives six).

    labels, member: (n,) true classes and 0/1 membership of the target points; probs or logits: (n, C) the
    victim's outputs on them. `arrays`: any further input by its keyword (`KEYWORDS`: sens, shadow_probs,
    shadow_labels, shadow_member, shadow_sens, target_stat, reference_stats, reference_in, population_stat,
    population_ref_stats, population_ref_in, reference_probs), with shadow_logits for shadow_probs. inputs,
    query: the target points themselves and a function from a batch of inputs to the victim's softmax outputs,
    for the attacks that query the model (BlindMI); access: any further `TargetAccess` field such an attack
    reads (its dataclass says which). n_bootstrap, seed: the bootstrap intervals of the metrics
    (mia.py's default 200 resamples). settings: the attack's own settings (e.g. {"epochs": 10} for SAMIA).
    """
    attack = ATTACKS.get(name)
    unknown = sorted(set(arrays) - {keyword for keyword, _ in KEYWORDS.values()})
    if unknown:
        raise ValueError(f"unknown input {', '.join(unknown)} (valid: probs, logits, labels, member, shadow_logits, "
                         f"inputs, query, {', '.join(k for k, _ in KEYWORDS.values() if k != 'probs')})")
    target = _outputs(probs, logits, "the victim's")
    if target is None:
        raise MissingInput(f"{name} needs probs= or logits=: {KEYWORDS['target_probs'][1]}")
    labels, member = np.asarray(labels).astype(np.int64), np.asarray(member).astype(np.int64)
    n, classes = target.shape
    if labels.shape != (n,) or member.shape != (n,):
        raise ValueError(f"labels and member must be ({n},), one per row of the outputs; got {labels.shape} and "
                         f"{member.shape}")
    if labels.min() < 0 or labels.max() >= classes or not set(np.unique(member)) == {0, 1}:
        raise ValueError(f"labels must lie in 0..{classes - 1} and member must hold both 0 and 1")
    given: dict[str, Any] = {KEYWORDS_BY_NAME[k]: v for k, v in arrays.items() if v is not None}
    given["shadow_probs"] = _outputs(given.get("shadow_probs"), shadow_logits, "the shadows'")
    if given.get("target_stat") is None and logits is not None:  # exact where p_y rounds to 1 (refstats)
        given["target_stat"] = lira_statistic(labels, logits=np.asarray(logits, np.float64))
    instance = _settings(attack, settings or {})
    can_query = query is not None and inputs is not None
    if can_query and type(instance).prepare is not Attack.prepare:
        x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        given = instance.prepare(TargetAccess(inputs=x, query=_query(query), **(access or {}))) | \
            {k: v for k, v in given.items() if v is not None}
    _check_reads(attack, given, can_query)
    fields = {f.name: None for f in dataclasses.fields(AttackInput)} | {k: v for k, v in given.items()}
    data = AttackInput(**fields | {"target_probs": target, "target_labels": labels, "target_member": member,
                                   "num_cls": classes})
    out = {}
    for result in instance.run(data):
        metrics = {"paper_acc": result.paper_acc}
        metrics |= attack_metrics(member, result.scores, result.decisions, n_bootstrap=n_bootstrap, seed=seed)
        metrics |= {"n_bootstrap": n_bootstrap, "n_references": result.extra.get("n_references")}
        out[result.name] = Audit(result.name, np.asarray(result.scores), np.asarray(result.decisions), metrics,
                                 dict(result.extra))
    return out

