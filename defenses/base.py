"""What a defense is: a `training.TrainHooks` with a name, the meaning, default and range of its
`--defend_arg`, and a `create` that validates its own options. The registry (defenses/__init__.py) finds it
by name; no caller branches on a name.

`Defense` itself is the paper's "basic" fine-tuning (early stopping + L2, which live in `training.fit` and
the config), so "no defense" is an entry like any other.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import UserError
from core.training import TrainHooks


@dataclass(frozen=True)
class ArgSpec:
    """What --defend_arg means for one defense, its default, and its allowed range (> or >= minimum)."""

    meaning: str
    default: float
    minimum: float = 0.0
    strict: bool = False  # True: arg must be > minimum; False: >= minimum
    maximum: float = 1e6  # beyond this no published sweep goes, and noise / weights overflow

    def allowed(self) -> str:
        return f"a finite number {'>' if self.strict else '>='} {self.minimum:g} and <= {self.maximum:g}"

    def accepts(self, arg: float) -> bool:
        above = arg > self.minimum if self.strict else arg >= self.minimum
        return math.isfinite(arg) and above and arg <= self.maximum


# Opacus' accountants: Renyi DP (Mironov; the default, as in Opacus) and the tighter privacy loss random
# variable accountant (Gopi et al. NeurIPS '21). 70 steps at sigma 1, q 128/1350, delta 1e-5: 6.42 vs 5.67.
ACCOUNTANTS = ("rdp", "prv")
# A defense's behaviour: ours ("fixed"), or the artifact's where we changed it (dp, adv; Defense.modes).
MODES = ("fixed", "artifact")


@dataclass(frozen=True)
class DefenseOptions:
    """Settings some defenses read besides --defend_arg; a defense asks for the ones it uses with `checked`."""

    dp_clip: float = 1.0
    dp_delta: float = 1e-5
    # Private fine-tuning's own optimiser (dp, dpsgd; defenses/dp.py): SGD with this learning rate (None: the
    # defense's own default) and momentum, and this many noisy steps per epoch (0: N // batch_size, one
    # expected pass); the accountant that turns (sigma, q, steps) into epsilon (dpsgd).
    dp_lr: float | None = None
    dp_momentum: float = 0.9
    dp_steps_per_epoch: int = 0
    dp_accountant: str = "rdp"
    adv_steps: int = 1
    # "fixed" (default) or "artifact": run dp / adv as the artifact did (README differences 13, 14).
    defense_mode: str = "fixed"
    # Supplied by the experiment, not the user: the config's `epochs`, which the artifact's dp multiplied its
    # steps per fine-tuning epoch by (0: unknown; dp's artifact mode refuses to run without it). Not compared:
    # provenance records the config's epochs already, and a step that builds options without the config
    # (0) names the same model.
    config_epochs: int = field(default=0, compare=False)
    # WeMem's defenses (defenses/wemem.py; its argparse defaults)
    stride: int = 50
    width: int = 500
    mem_thre: float = 0.6
    weight_decay_mem: float = 5e-4
    # Supplied by the experiment, not the user: this model's mem-score per training row, in split order
    # (memscore.load_scores), for the defenses with `needs_mem_scores`.
    mem_scores: Any = field(default=None, compare=False, repr=False)

    def checked(self, *names: str) -> DefenseOptions:
        """Self, after checking the named options against OPTION_RULES (UserError naming the flag)."""
        for name in names:
            ok, what, allowed_values = OPTION_RULES[name]
            value = getattr(self, name)
            require(ok(value), f"{what} {value!r} is invalid", allowed_values)
        return self


# option -> (check, what it is, allowed values in words)
OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "dp_clip": (lambda v: math.isfinite(v) and 0 < v <= 1e6, "DP clipping norm", "a finite number > 0 and <= 1e6"),
    "dp_delta": (lambda v: 0 < v < 1, "DP delta", "0 < delta < 1, e.g. 1e-5 (< 1/N)"),
    "dp_lr": (lambda v: v is None or (math.isfinite(v) and 0 < v <= 10), "--dp_lr",
              "a finite number > 0 and <= 10"),
    "dp_momentum": (lambda v: math.isfinite(v) and 0 <= v < 1, "--dp_momentum", "0 <= momentum < 1"),
    "dp_steps_per_epoch": (lambda v: 0 <= v <= 1_000_000, "--dp_steps_per_epoch",
                           "an integer between 0 (N // batch_size) and 1000000"),
    "dp_accountant": (lambda v: v in ACCOUNTANTS, "--dp_accountant", " or ".join(ACCOUNTANTS)),
    "adv_steps": (lambda v: 1 <= v <= 1000, "adversary steps per batch", "an integer between 1 and 1000"),
    "defense_mode": (lambda v: v in MODES, "--defense_mode", " or ".join(MODES)),
    "config_epochs": (lambda v: 0 <= v <= 100_000, "the config's epochs", "core/config_schema.py's epochs bounds"),
    # WeMem's: no published run goes past width 500 or stride 100; a million ranks is past any class here
    "stride": (lambda v: _is_int(v) and 1 <= v <= 1_000_000, "--stride", "an integer between 1 and 1000000"),
    "width": (lambda v: _is_int(v) and 1 <= v <= 1_000_000, "--width", "an integer between 1 and 1000000"),
    "mem_thre": (lambda v: math.isfinite(v) and 0 <= v <= 1, "--mem_thre",
                 "a number in [0, 1], the range of the min-max normalised mem-scores"),
    "weight_decay_mem": (lambda v: math.isfinite(v) and 0 <= v <= 1, "--weight_decay_mem",
                         "a finite number between 0 and 1 (the config's weight_decay bounds)"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def require(ok: bool, what: str, allowed: str) -> None:
    if not ok:
        raise UserError(what, f"allowed: {allowed}")


class Defense(TrainHooks):
    """Basic fine-tuning; subclasses override hooks of the one training loop and set `arg`."""

    name: ClassVar[str] = "basic"
    arg: ClassVar[ArgSpec | None] = None  # None: takes no --defend_arg
    uses: ClassVar[dict[str, str]] = {}   # constructor keyword -> DefenseOptions field it is given
    needs_mem_scores: ClassVar[bool] = False  # True: the experiment must set DefenseOptions.mem_scores
    modes: ClassVar[tuple[str, ...]] = ("fixed",)  # ("fixed", "artifact"): it can also run as the artifact did
    mode: str = MODES[0]  # the mode this instance runs in (set by the defenses with several)

    @classmethod
    def folder_options(cls, options: DefenseOptions) -> tuple[tuple[str, float | str], ...]:
        """The DefenseOptions this defense reads that name its models' folders (beyond --defend_arg), as
        (flag name, value) pairs in flag order, so sweeps over them never overwrite each other; here the
        mode, when it is not the default (the artifact's dp and adv train other models than ours)."""
        return (("defense_mode", options.defense_mode),) if options.defense_mode != MODES[0] else ()

    def summary(self) -> dict[str, Any]:
        """What the finished fine-tuning adds to the checkpoint and the results record: a defense's mode
        (nothing for basic, which is Defense itself), and what subclasses add (DP-SGD: epsilon over every
        step run); called once after training."""
        return {} if type(self) is Defense else {"defense_mode": self.mode}

    @classmethod
    def create(cls, arg: float | None, options: DefenseOptions) -> Defense:
        """The hooks for `--defend <name> --defend_arg arg`; arg None means the defense's default."""
        mode = options.checked("defense_mode").defense_mode
        if mode not in cls.modes:
            raise UserError(f"--defense_mode {mode} does not apply to {cls.name}",
                            f"{cls.name} runs one way; --help lists the defenses with an artifact mode")
        if cls.arg is None:
            return cls()
        value = cls.arg.default if arg is None else float(arg)
        require(cls.arg.accepts(value), f"--defend_arg {value!r} is out of range for {cls.name} ({cls.arg.meaning})",
                cls.arg.allowed())
        return cls.build(value, options)

    @classmethod
    def build(cls, arg: float, options: DefenseOptions) -> Defense:
        """Construct from a validated arg and the (checked) options named in `uses`."""
        checked = options.checked(*cls.uses.values())
        return cls(arg, **{kw: getattr(checked, name) for kw, name in cls.uses.items()})  # type: ignore[call-arg]
