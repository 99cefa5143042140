"""The JSON config of nas_privacy.py, parsed by the project's one config idiom (core/config_schema.py): every
key is a typed field with bounds on the dataclass that uses it (`SpaceConfig`, `SearchConfig`, `AmiaConfig`
from the science modules; the retraining, ADRA grid, split and defense objects below), so a NaN or negative
learning rate, an empty list, a dict where a list belongs or deep nesting is one `error:` line naming the
file and the dotted key, before any work. What the field rules cannot say (fractions that overlap, a defense
argument out of its defense's range, an operation named twice) is checked after parsing, as one line too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config_schema import BELOW_ONE, MAX_INT, items, key, parse_section, read_json_object
from core.errors import UserError
from nas.amia import AmiaConfig
from nas.defenses import DEFENSES, check_defense
from nas.ops import ACTIVATIONS
from nas.search import SearchConfig
from nas.splits import check_total
from nas.supernet import MAX_CELLS, SpaceConfig


def _share(default: float | None, what: str, minimum_strict: bool = True) -> Any:
    return key(default if default is not None else dataclasses.MISSING, help=what, kind=float, minimum=0,
               maximum=BELOW_ONE, strict=minimum_strict)


@dataclass(frozen=True)
class NasSplit:
    """Fractions of the pool, disjoint (nas/splits.py): the five parts every run needs, DMP's reference set."""

    theta: float = _share(None, "D^theta: trains the weights")
    alpha: float = _share(None, "D^alpha: trains the architecture (AMIA's members)")
    shadow_train: float = _share(None, "the attacker's shadow members")
    shadow_test: float = _share(None, "the attacker's shadow non-members")
    unseen: float = _share(None, "the target's non-members")
    reference: float = _share(0.0, "DMP's unlabelled reference set (the distill defense)", minimum_strict=False)


def _default_split() -> NasSplit:
    return NasSplit(theta=0.2, alpha=0.2, shadow_train=0.15, shadow_test=0.15, unseen=0.2, reference=0.1)


@dataclass(frozen=True)
class Retrain:
    """How the searched architecture (and the shadows, and the judge of ADRA) is trained from scratch."""

    epochs: int = key(30, help="epochs", kind=int, minimum=1, maximum=100_000)
    batch_size: int = key(64, help="batch size", kind=int, minimum=1, maximum=1_000_000)
    optimizer: str = key("adam", help="optimiser", kind=str, choices=("adam", "sgd"))
    lr: float = key(3e-3, help="learning rate", kind=float, minimum=0, maximum=10, strict=True)
    weight_decay: float = key(0.0, help="weight decay", kind=float, minimum=0, maximum=1)


@dataclass(frozen=True)
class AdraGrid:
    """ADRA's settings: one reconstruction study per (downsample, P, activation, batch size, noise)."""

    P: tuple[int, ...] = key((6,), help="cells of the victim's supernet", kind=list,
                             item=items(int, minimum=1, maximum=MAX_CELLS))
    C: int = key(4, help="channels of its cells", kind=int, minimum=1, maximum=4096)
    activations: tuple[str, ...] = key(("elu", "relu"), help="its activations", kind=list,
                                       item=items(str, choices=tuple(ACTIVATIONS)))
    batch_sizes: tuple[int, ...] = key((1,), help="samples per architecture update (B)", kind=list,
                                       item=items(int, minimum=1, maximum=4096))
    grad_noise: tuple[float, ...] = key((0.0,), help="std of the noise on Delta alpha (the DP_SGD defense)",
                                        kind=list, item=items(float, minimum=0, maximum=1e6))
    downsample: tuple[int, ...] = key((1,), help="average-pool the D^alpha images by this factor first (fewer "
                                      "pixels than architecture values: an identifiable problem)", kind=list,
                                      item=items(int, minimum=1, maximum=64))
    trials: int = key(3, help="attacked batches per setting", kind=int, minimum=1, maximum=10_000)
    restarts: int = key(2, help="random dummy initialisations per batch", kind=int, minimum=1, maximum=1000)
    iterations: int = key(60, help="L-BFGS iterations per restart", kind=int, minimum=1, maximum=100_000)
    arch_lr: float = key(0.1, help="the victim's architecture SGD step", kind=float, minimum=0, maximum=1000,
                         strict=True)
    attacker_theta: str = key("same", help="the attacker's weights: the victim's draw, or its own", kind=str,
                              choices=("same", "independent"))
    psnr_threshold: float = key(15.0, help="PSNR (dB) of a successful reconstruction", kind=float, minimum=0,
                                maximum=200, strict=True)


@dataclass(frozen=True)
class NasDefense:
    name: str = key("none", help="the defense (nas/defenses.py)", kind=str, choices=DEFENSES)
    arg: float = key(0.0, help="its strength", kind=float, minimum=0, maximum=1e6)


@dataclass(frozen=True)
class NasConfig:
    """A whole nas_privacy.py config."""

    dataset_name: str = key("digits", help="dataset registry name (datasets.py)", kind=str)
    num_cls: int = key(10, help="number of classes", kind=int, minimum=2, maximum=100_000)
    input_dim: int = key(1, help="image channels", kind=int, minimum=1, maximum=10_000)
    data_root: str = key("data/datasets", help="folder holding the datasets", kind=str)
    seed: int = key(7, help="seed of the split, the searches and the training", kind=int, minimum=0,
                    maximum=MAX_INT)
    split: NasSplit = key(help="the disjoint parts of the pool", kind=dict, section=NasSplit,
                          factory=_default_split)
    space: SpaceConfig = key(help="the search space", kind=dict, section=SpaceConfig, factory=SpaceConfig)
    search: SearchConfig = key(help="the bilevel search", kind=dict, section=SearchConfig, factory=SearchConfig)
    retrain: Retrain = key(help="training from scratch", kind=dict, section=Retrain, factory=Retrain)
    amia: AmiaConfig = key(help="AMIA", kind=dict, section=AmiaConfig, factory=AmiaConfig)
    adra: AdraGrid = key(help="ADRA", kind=dict, section=AdraGrid, factory=AdraGrid)
    defense: NasDefense = key(help="the defense", kind=dict, section=NasDefense, factory=NasDefense)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load(path: str | Path, defense: str | None = None, defense_arg: float | None = None) -> NasConfig:
    """The config at `path` with the command line's --defense / --defense_arg in place of its `defense` keys,
    parsed and checked before any work (one UserError line per mistake)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config {path} not found", "pass the path of a JSON file, e.g. config/nas_digits.json")
    raw = read_json_object(path)
    if isinstance(raw, dict) and (defense is not None or defense_arg is not None):
        given = raw.get("defense", {})
        if isinstance(given, dict):
            flags = {"name": defense, "arg": defense_arg}
            raw = raw | {"defense": given | {k: v for k, v in flags.items() if v is not None}}
            path = Path(f"{path} (with command-line flags)")
    cfg = parse_section(NasConfig, raw, path)
    cfg.space.check(str(path))
    check_total(cfg.split, str(path))
    check_defense(cfg.defense.name, cfg.defense.arg)
    return cfg

