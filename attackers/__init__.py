"""Attack registry (docs/design.md §2, §7): adding an attack is one module plus one `register_attack` line below.

Every attack reads one `AttackInput` and returns AttackResults with one score per victim row
(larger = member); see attackers/base.py for the class attributes a caller relies on.
"""
from __future__ import annotations

from typing import Any

from attackers.base import Attack, AttackInput, AttackResult, TargetAccess
from attackers.blindmi import BlindMIAttack
from attackers.lira import LiraOfflineAttack, LiraOnlineAttack
from attackers.nn import NNAttack, NNClsAttack, NNTop3Attack
from attackers.population_loss import LossAttack
from attackers.rmia import RmiaOfflineAttack, RmiaOnlineAttack
from attackers.samia import SamiaAttack
from attackers.threshold import ThresholdAttack
from core.errors import UserError
from core.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")
register_attack = ATTACKS.register

register_attack(SamiaAttack)
register_attack(ThresholdAttack)
register_attack(NNAttack)
register_attack(NNTop3Attack)
register_attack(NNClsAttack)
register_attack(BlindMIAttack)
# Reference-model attacks, one registered name per variant so records and figures tell them apart.
register_attack(LiraOnlineAttack)
register_attack(LiraOfflineAttack)
register_attack(RmiaOnlineAttack)
register_attack(RmiaOfflineAttack)
register_attack(LossAttack)


def families() -> dict[str, list[str]]:
    """Family name -> its registered variants (e.g. lira -> lira_online, lira_offline)."""
    out: dict[str, list[str]] = {}
    for attack in ATTACKS:
        if attack.family:
            out.setdefault(attack.family, []).append(attack.name)
    return out


def resolve_attacks(spec: str) -> list[str]:
    """`--attacks` value -> attack names in the order given (duplicates dropped); "all" = every attack, a
    family name (lira, rmia) = its variants."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    groups = families()
    unknown = [n for n in names if n not in ATTACKS and n not in groups and n != "all"]
    if unknown or not names:
        raise UserError(f"unknown attack(s) {', '.join(unknown) or repr(spec)} in --attacks",
                        "valid: all, " + ", ".join([*ATTACKS.names(), *groups]))
    if "all" in names:
        return list(ATTACKS.names())
    return list(dict.fromkeys(v for n in names for v in groups.get(n, [n])))


def create_attack(name: str, **settings: Any) -> Attack:
    return ATTACKS.get(name).create(**settings)


def result_order() -> tuple[str, ...]:
    """Every result name in registry order (tables and figures list attacks in this order)."""
    return tuple(r for a in ATTACKS for r in a.results())


def headline_results() -> tuple[str, ...]:
    return tuple(r for a in ATTACKS for r in a.headline)


def proposed_result() -> str | None:
    """The paper's own attack (SAMIA), which the report shows by default."""
    return next((r for a in ATTACKS for r in a.proposed), None)


def baseline_result() -> str | None:
    """The simple attack other results are compared with (Conf, as in the paper's Fig 10)."""
    return next((r for a in ATTACKS for r in a.baseline), None)


def classic_result() -> str | None:
    """The strongest classic (shadow-threshold) attack: Song & Mittal's mentr."""
    return next((r for a in ATTACKS for r in a.classic), None)


def comparison_results() -> tuple[str, ...]:
    """What the report compares by today's standard: every reference-model attack (LiRA, RMIA, the loss
    baseline), the paper's own attack and the strongest classic one, in registry order within each group."""
    reference = tuple(r for a in ATTACKS if a.reference_set for r in a.results())
    return reference + tuple(r for a in ATTACKS for r in a.proposed + a.classic)


def artifact_line(result: str) -> str | None:
    """The artifact's log line format for a result name, if it printed one."""
    for attack in ATTACKS:
        if result in attack.artifact_lines:
            return attack.artifact_lines[result]
    return None


__all__ = ["ATTACKS", "Attack", "AttackInput", "AttackResult", "TargetAccess", "artifact_line", "baseline_result",
           "create_attack", "headline_results", "proposed_result", "register_attack", "resolve_attacks",
           "result_order"]
