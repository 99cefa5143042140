"""Which model: the typed name of an original, pruned or pruned-and-defended model (docs/design.md §10.1).

One `ModelSetting` gives the artifact's folder prefix `<pruner>_<sparsity>[_<defend>[_<arg>][_<options>]]`
(options: a WeMem defense's hyper-parameters, e.g. `_slide_ml2_s1-w15-thr0.6-wdm0.1`; private fine-tuning's
non-default optimiser and the artifact mode, e.g. `_dp_0.1_artifact`), the model's
folder for the victim or a shadow, and the prune.py flags that make it. prune.py, mia.py, grid.py and
report.py share it, so no script builds or parses a prefix string by hand. No torch import: the grid and
the report use it too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NO_DEFENSE = "basic"  # the paper's "basic" fine-tuning: early stopping + L2; folder names leave it out


def fmt_number(v: float) -> str:
    """Folder names keep the artifact's float spelling: 0.7, 4.0, 0.1."""
    return repr(float(v))


# Folder spelling of the defense options (WeMem's: stride, width, risk threshold, risky weight decay; private
# fine-tuning's learning rate, momentum and steps per epoch; the artifact mode, spelled by its value alone);
# an option not listed is spelled by its own name.
OPTION_SHORT = {"stride": "s", "width": "w", "mem_thre": "thr", "weight_decay_mem": "wdm", "dp_lr": "lr",
                "dp_momentum": "mom", "dp_steps_per_epoch": "steps", "defense_mode": ""}
Options = tuple[tuple[str, float | str], ...]


def fmt_option(v: float | str) -> str:
    """A number with :g (keeps 50 an integer and 5e-4 readable); a word (a mode) as it is."""
    return v if isinstance(v, str) else f"{v:g}"


def options_suffix(options: Options) -> str:
    """`s50-w500-thr0.6-wdm0.0005`, `lr0.01-artifact`: every option with its value."""
    return "-".join(f"{OPTION_SHORT.get(k, k)}{fmt_option(v)}" for k, v in options)


@dataclass(frozen=True)
class ModelSetting:
    """A pruned model (pruner + sparsity), optionally fine-tuned under a defense; `original()` is unpruned."""

    pruner_name: str | None = None        # None: the original (unpruned) model
    sparsity: float | None = None
    defend: str = ""                      # "" = basic (no defense); names are lower case
    defend_arg: float | None = None       # None: a defense that takes no --defend_arg
    options: Options = ()                 # the defense's folder-naming options (Defense.folder_options)

    def __post_init__(self) -> None:
        # "basic", "" and any capitalisation name the same defense, so they must name the same folder
        name = (self.defend or "").strip().lower()
        object.__setattr__(self, "defend", "" if name == NO_DEFENSE else name)
        if not self.defend:
            object.__setattr__(self, "defend_arg", None)
            object.__setattr__(self, "options", ())
        object.__setattr__(self, "options", tuple((str(k), v) for k, v in self.options))

    @classmethod
    def original(cls) -> ModelSetting:
        return cls()

    @property
    def is_original(self) -> bool:
        return self.pruner_name is None

    @property
    def defended(self) -> bool:
        return bool(self.defend)

    def undefended(self) -> ModelSetting:
        """The same pruning without a defense (the basic run a defense is compared with)."""
        return ModelSetting(self.pruner_name, self.sparsity)

    @property
    def prefix(self) -> str | None:
        """`<pruner>_<sparsity>[_<defend>_<arg>]`, the artifact's folder prefix; None for the original."""
        if self.is_original:
            return None
        prefix = f"{self.pruner_name}_{fmt_number(self.sparsity or 0.0)}"
        if self.defend:
            prefix += f"_{self.defend}" + (f"_{fmt_number(self.defend_arg)}" if self.defend_arg is not None else "")
        if self.options:
            prefix += f"_{options_suffix(self.options)}"
        return prefix

    def folder(self, root: Path, shadow: int | None) -> Path:
        """victim_model/, shadow_model_<i>/, <prefix>_model/, shadow_<prefix>_model_<i>/ (artifact names)."""
        prefix = self.prefix
        if prefix is None:
            return root / ("victim_model" if shadow is None else f"shadow_model_{shadow}")
        return root / (f"{prefix}_model" if shadow is None else f"shadow_{prefix}_model_{shadow}")

    def refs_folder(self, root: Path) -> Path:
        """refs/<prefix>/ (or refs/original/): this setting's reference models and their membership file."""
        return root / "refs" / (self.prefix or "original")

    def flags(self) -> str:
        """The prune.py / mia.py flags naming this model ('' for the original)."""
        if self.is_original:
            return ""
        out = f"--pruner_name {self.pruner_name} --prune_sparsity {self.sparsity:g}"
        if self.defend:
            out += f" --defend {self.defend}" + (f" --defend_arg {self.defend_arg:g}" if self.defend_arg is not None
                                                 else "")
        return out + "".join(f" --{k} {fmt_option(v)}" for k, v in self.options)

    def make_script(self) -> str:
        """The step that makes this model: pretrain.py for originals, prune.py otherwise."""
        return "pretrain.py" if self.is_original else "prune.py"


@dataclass(frozen=True)
class AttackSetting:
    """Which victim and which shadows an attack run uses, and the name its outputs go under.

    Shadows are pruned like the victim, fine-tuned with the victim's defense only when `adaptive`, and
    pruned with another approach / sparsity for the paper's unknown-setting attacks (Table 1, Figs 12-13).
    Sparsity 0 is the unpruned model (the paper's "sparsity level = 0"): an original victim attacked with
    pruned shadows, or a pruned victim attacked with the original shadows.
    """

    victim: ModelSetting
    shadows: ModelSetting
    adaptive: bool = False

    @classmethod
    def of(cls, victim: ModelSetting, *, adaptive: bool = False, shadow_pruner_name: str | None = None,
           shadow_sparsity: float | None = None) -> AttackSetting:
        if shadow_sparsity == 0 or (victim.is_original and shadow_sparsity is None):
            return cls(victim, ModelSetting.original())
        if victim.is_original:
            if shadow_pruner_name is None:
                raise ValueError("pruned shadows of an original victim need their pruner's name")
            return cls(victim, ModelSetting(shadow_pruner_name, shadow_sparsity))
        shadows = ModelSetting(shadow_pruner_name or victim.pruner_name,
                               shadow_sparsity if shadow_sparsity is not None else victim.sparsity,
                               victim.defend if adaptive else "", victim.defend_arg, victim.options)
        return cls(victim, shadows, adaptive)

    @property
    def unknown_shadows(self) -> bool:
        """True when the shadows' pruning differs from the victim's (Table 1)."""
        return (self.shadows.pruner_name, self.shadows.sparsity) != (self.victim.pruner_name, self.victim.sparsity)

    @property
    def name(self) -> str:
        """`<victim prefix or original>[_adaptive][_shadow_<shadow prefix or original>]`: folder and log names
        (`original` alone for the original attacked with the original shadows)."""
        name = (self.victim.prefix or "original") + ("_adaptive" if self.adaptive else "")
        if self.unknown_shadows:
            name += f"_shadow_{self.shadows.prefix or 'original'}"
        return name
