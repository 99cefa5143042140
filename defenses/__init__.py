"""Defenses applied during fine-tuning (paper §6, DESIGN §7), looked up by name.

Each defense is a `defenses.base.Defense` (a `training.TrainHooks`) in its own file that carries its name,
its `--defend_arg` spec and its own option checks. Adding one is one file plus one `register_defense` line
below (see the README's "How to add an attack / a defense").
"""
from __future__ import annotations

from defenses.adv import AdvReg
from defenses.base import ArgSpec, Defense, DefenseOptions
from defenses.dp import DPSGD, MicrobatchDP
from defenses.ppb import PPB
from defenses.relaxloss import RelaxLoss
from registry import Registry

DEFENSES: Registry[type[Defense]] = Registry("defense")
register_defense = DEFENSES.register

register_defense(Defense)  # "basic": the paper's plain fine-tuning, also what --defend '' means
register_defense(PPB)
register_defense(AdvReg)
register_defense(MicrobatchDP)
register_defense(DPSGD)
register_defense(RelaxLoss)


def _key(name: str) -> str:
    return (name or "").strip().lower() or Defense.name


def create_defense(name: str, arg: float | None, options: DefenseOptions | None = None) -> Defense:
    """The hooks for `--defend name --defend_arg arg` ('' = basic; names are case-insensitive)."""
    return DEFENSES.get(_key(name)).create(arg, options or DefenseOptions())


def default_arg(name: str) -> float | None:
    """The defense's own --defend_arg default (the artifact: ppb/adv 4.0, dp 0.1); None for basic."""
    spec = DEFENSES.get(_key(name)).arg
    return spec.default if spec else None


def defense_help() -> str:
    """The --defend help: every defense with the meaning and default of its argument."""
    parts = [f"{d.name}: {d.arg.meaning}, default {d.arg.default:g}" if d.arg else f"{d.name} (or ''): none"
             for d in DEFENSES]
    return "; ".join(parts)


__all__ = ["DEFENSES", "ArgSpec", "Defense", "DefenseOptions", "create_defense", "default_arg", "defense_help",
           "register_defense", "AdvReg", "DPSGD", "MicrobatchDP", "PPB", "RelaxLoss"]
