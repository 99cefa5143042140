"""Defenses applied during fine-tuning (paper §6, DESIGN §7), looked up by name.

Each defense is a `training.TrainHooks` subclass in its own file; adding one is one file plus one entry in
`DEFENSES` and `ARG_SPECS`. Every defense also keeps the paper's "basic" early stopping and L2 (wd 5e-4),
which live in `training.fit` and the config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from defenses.adv import AdvReg
from defenses.dp import DPSGD, MicrobatchDP
from defenses.ppb import PPB
from defenses.relaxloss import RelaxLoss
from errors import UserError
from training import TrainHooks

DEFENSES: dict[str, type[TrainHooks]] = {
    "ppb": PPB,
    "adv": AdvReg,
    "dp": MicrobatchDP,
    "dpsgd": DPSGD,
    "relaxloss": RelaxLoss,
}

NO_DEFENSE = ("", "basic")


@dataclass(frozen=True)
class ArgSpec:
    """What --defend_arg means for one defense, its default, and its allowed range (> or >= minimum)."""

    meaning: str
    default: float
    minimum: float = 0.0
    strict: bool = False  # True: arg must be > minimum; False: >= minimum

    def allowed(self) -> str:
        return f"a finite number {'>' if self.strict else '>='} {self.minimum:g}"

    def accepts(self, arg: float) -> bool:
        return math.isfinite(arg) and (arg > self.minimum if self.strict else arg >= self.minimum)


ARG_SPECS: dict[str, ArgSpec] = {
    "ppb": ArgSpec("lambda, weight of the sorted-posterior KL term (paper sweeps 1,2,4,8,16)", 4.0),
    "adv": ArgSpec("alpha, weight of the inference model's gain (paper sweeps 0.5,1,2,4,8,16)", 4.0),
    "dp": ArgSpec("sigma, noise multiplier of the artifact's microbatch DPSGD (paper sweeps 0.01..100)", 0.1),
    "dpsgd": ArgSpec("sigma, noise multiplier of per-example DP-SGD; epsilon is reported (0 = no noise)", 1.0),
    "relaxloss": ArgSpec("alpha, target training loss of RelaxLoss (its scripts use 1)", 1.0, strict=True),
}

DEFEND_ARG_DEFAULTS: dict[str, float] = {name: spec.default for name, spec in ARG_SPECS.items()}


def defend_arg_help() -> str:
    """One line per defense for the --defend_arg help text."""
    return "; ".join(f"{name}: {spec.meaning}, default {spec.default:g}" for name, spec in ARG_SPECS.items())


def _require(ok: bool, what: str, allowed: str) -> None:
    if not ok:
        raise UserError(what, f"allowed: {allowed}")


def make_defense(name: str, arg: float | None, *, dp_clip: float = 1.0, dp_delta: float = 1e-5,
                 adv_steps: int = 1) -> TrainHooks:
    """The hooks for `--defend name --defend_arg arg`; "" or "basic" gives plain training, arg None the default."""
    key = (name or "").strip().lower()
    if key in NO_DEFENSE:
        return TrainHooks()
    if key not in DEFENSES:
        raise UserError(f"unknown defense '{name}'", "valid: basic (or ''), " + ", ".join(DEFENSES))
    spec = ARG_SPECS[key]
    arg = spec.default if arg is None else float(arg)
    _require(spec.accepts(arg), f"--defend_arg {arg!r} is out of range for {key} ({spec.meaning})",
             spec.allowed())
    if key in ("dp", "dpsgd"):
        _require(math.isfinite(dp_clip) and dp_clip > 0, f"DP clipping norm {dp_clip!r} is invalid",
                 "a finite number > 0")
    if key == "dp":
        return MicrobatchDP(arg, clip=dp_clip)
    if key == "dpsgd":
        _require(0 < dp_delta < 1, f"DP delta {dp_delta!r} is invalid", "0 < delta < 1, e.g. 1e-5 (< 1/N)")
        return DPSGD(arg, clip=dp_clip, delta=dp_delta)
    if key == "adv":
        _require(adv_steps >= 1, f"adversary steps per batch {adv_steps!r} is invalid", "an integer >= 1")
        return AdvReg(arg, steps=adv_steps)
    return DEFENSES[key](arg)


__all__ = ["DEFENSES", "ARG_SPECS", "DEFEND_ARG_DEFAULTS", "ArgSpec", "defend_arg_help", "make_defense",
           "AdvReg", "DPSGD", "MicrobatchDP", "PPB", "RelaxLoss"]
