"""Defenses applied during fine-tuning (paper §6, docs/design.md §6), looked up by name.

Each defense is a `defenses.base.Defense` (a `training.TrainHooks`) in its own file that carries its name,
its `--defend_arg` spec and its own option checks. Adding one is one file plus one `register_defense` line
below (see the README's "How to add an attack / a defense").
"""
from __future__ import annotations

from core.registry import Registry
from defenses.adv import AdvReg
from defenses.base import ArgSpec, Defense, DefenseOptions
from defenses.dp import DPSGD, MicrobatchDP
from defenses.ppb import PPB
from defenses.relaxloss import RelaxLoss
from defenses.wemem import WEMEM_DEFENSES

DEFENSES: Registry[type[Defense]] = Registry("defense")
register_defense = DEFENSES.register

register_defense(Defense)  # "basic": the paper's plain fine-tuning, also what --defend '' means
register_defense(PPB)
register_defense(AdvReg)
register_defense(MicrobatchDP)
register_defense(DPSGD)
register_defense(RelaxLoss)
for _wemem in WEMEM_DEFENSES.values():  # slide, slide_re, random, ml2, slide_ml2, slide_re_ml2 (NDSS '25)
    register_defense(_wemem)


def _key(name: str) -> str:
    return (name or "").strip().lower() or Defense.name


def create_defense(name: str, arg: float | None, options: DefenseOptions | None = None) -> Defense:
    """The hooks for `--defend name --defend_arg arg` ('' = basic; names are case-insensitive)."""
    return DEFENSES.get(_key(name)).create(arg, options or DefenseOptions())


def default_arg(name: str) -> float | None:
    """The defense's own --defend_arg default (the artifact: ppb/adv 4.0, dp 0.1); None for basic."""
    spec = DEFENSES.get(_key(name)).arg
    return spec.default if spec else None


def needs_mem_scores(name: str) -> bool:
    """Whether the defense reads this model's mem-scores (DefenseOptions.mem_scores; WeMem's defenses)."""
    return DEFENSES.get(_key(name)).needs_mem_scores


def folder_options(name: str, options: DefenseOptions) -> tuple[tuple[str, float], ...]:
    """The options beyond --defend_arg that name the defense's folders (see Defense.folder_options)."""
    return DEFENSES.get(_key(name)).folder_options(options)


def defense_help() -> str:
    """The --defend help: every defense with the meaning and default of its argument."""
    def one(d: type[Defense]) -> str:
        if d.arg:
            return f"{d.name}: {d.arg.meaning}, default {d.arg.default:g}"
        return f"{d.name} (or ''): none" if d is Defense else f"{d.name}: no --defend_arg"
    parts = [one(d) for d in DEFENSES]
    return "; ".join(parts)


__all__ = ["DEFENSES", "ArgSpec", "Defense", "DefenseOptions", "create_defense", "default_arg", "defense_help",
           "register_defense", "needs_mem_scores", "folder_options",
           "AdvReg", "DPSGD", "MicrobatchDP", "PPB", "RelaxLoss"]
