"""Attack registry (DESIGN §1, §8): adding an attack is one module plus one entry in ATTACKS.

Every attack reads one `AttackInput` and returns AttackResults with one score per victim row
(larger = member); see attackers/base.py.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from attackers.base import Attack, AttackInput, AttackResult
from attackers.blindmi import BlindMIAttack
from attackers.nn import NNAttack, NNClsAttack, NNTop3Attack
from attackers.samia import SamiaAttack
from attackers.threshold import ThresholdAttack
from errors import UserError

ATTACKS: dict[str, type[Attack]] = {
    "samia": SamiaAttack,
    "threshold": ThresholdAttack,
    "nn": NNAttack,
    "nn_top3": NNTop3Attack,
    "nn_cls": NNClsAttack,
    "blindmi": BlindMIAttack,
}
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)


def resolve_attacks(spec: str) -> list[str]:
    """`--attacks` value -> attack names in the order given (duplicates dropped); "all" = every attack."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if "all" in names:
        return list(ATTACK_NAMES)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise UserError(f"unknown attack(s) {', '.join(unknown) or repr(spec)} in --attacks",
                        "valid: all, " + ", ".join(ATTACK_NAMES))
    return list(dict.fromkeys(names))


def build_attack(name: str, **settings: Any) -> Attack:
    """An attack with its config built from the `settings` its config dataclass knows (others ignored),
    so a caller can pass one pool of settings (epochs, lr, device, seed, ...) to every attack."""
    cls = ATTACKS[name]
    if cls.config_cls is None:
        return cls()
    known = {f.name for f in dataclasses.fields(cls.config_cls)}
    return cls(cls.config_cls(**{k: v for k, v in settings.items() if k in known}))


__all__ = ["ATTACKS", "ATTACK_NAMES", "Attack", "AttackInput", "AttackResult", "build_attack", "resolve_attacks"]
