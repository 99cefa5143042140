"""The JSON config of nas_privacy.py: defaults, and validation with one `error:` line per bad key or value."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from core.errors import UserError
from nas.defenses import check_defense
from nas.ops import ACTIVATIONS, OPS, PRIMITIVES
from nas.splits import check_fractions

DEFAULTS: dict[str, Any] = {
    "dataset_name": "digits", "num_cls": 10, "input_dim": 1, "data_root": "data/datasets", "seed": 7,
    "split": {"theta": 0.2, "alpha": 0.2, "shadow_train": 0.15, "shadow_test": 0.15, "unseen": 0.2,
              "reference": 0.1},
    "space": {"P": 4, "C": 8, "activation": "elu", "primitives": list(PRIMITIVES), "stem_stride": 1,
              "batchnorm": True},
    "search": {"epochs": 10, "batch_size": 64, "optimizer": "sgd", "lr": 0.025, "weight_decay": 3e-4,
               "arch_lr": 3e-3, "arch_weight_decay": 1e-3, "order": "first"},
    "retrain": {"epochs": 30, "batch_size": 64, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0},
    "amia": {"shadow_model": "columnfc", "searched_shadow": True, "attack_epochs": 100, "attack_lr": 0.05,
             "attack_hidden": 64, "eta": 1.0},
    "adra": {"P": [6], "C": 4, "activations": ["elu", "relu"], "batch_sizes": [1], "grad_noise": [0.0],
             "trials": 3, "restarts": 2, "iterations": 60, "arch_lr": 0.1, "attacker_theta": "same",
             "psnr_threshold": 15.0},
    "defense": {"name": "none", "arg": 0.0},
}
SECTIONS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, dict) and k != "split")


def _type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _merge(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key not in DEFAULTS:
            raise UserError(f"{path}: unknown key '{key}'", "valid: " + ", ".join(DEFAULTS))
        if isinstance(DEFAULTS[key], dict) and key != "split":
            if not isinstance(value, dict):
                raise UserError(f"{path}: '{key}' must be an object")
            for sub, v in value.items():
                if sub not in DEFAULTS[key]:
                    raise UserError(f"{path}: unknown key '{key}.{sub}'", "valid: " + ", ".join(DEFAULTS[key]))
                if not _type_ok(v, DEFAULTS[key][sub]):
                    raise UserError(f"{path}: '{key}.{sub}' must be {type(DEFAULTS[key][sub]).__name__}, got {v!r}")
                cfg[key][sub] = v
        elif key == "split":
            if not isinstance(value, dict):
                raise UserError(f"{path}: 'split' must be an object of fractions")
            cfg[key] = value
        else:
            if not _type_ok(value, DEFAULTS[key]):
                raise UserError(f"{path}: '{key}' must be {type(DEFAULTS[key]).__name__}, got {value!r}")
            cfg[key] = value
    return cfg


def _need(cond: bool, path: Path, key: str, allowed: str) -> None:
    if not cond:
        raise UserError(f"{path}: bad value for '{key}'", allowed)


def _check_lists(cfg: dict[str, Any], path: Path) -> None:
    a = cfg["adra"]
    for act in [cfg["space"]["activation"], *a["activations"]]:
        _need(act in ACTIVATIONS, path, "activation", f"unknown activation '{act}'; valid: {', '.join(ACTIVATIONS)}")
    for op in cfg["space"]["primitives"]:
        _need(op in OPS, path, "space.primitives", f"unknown operation '{op}'; valid: {', '.join(OPS)}")
    _need(len(cfg["space"]["primitives"]) > 0, path, "space.primitives", "name at least one operation")
    for key, values in (("adra.P", a["P"]), ("adra.batch_sizes", a["batch_sizes"])):
        _need(len(values) > 0 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values),
              path, key, "a non-empty list of integers >= 1")
    _need(all(isinstance(v, (int, float)) and v >= 0 for v in a["grad_noise"]), path, "adra.grad_noise",
          "a list of noise std >= 0")


def validate(cfg: dict[str, Any], path: Path) -> None:
    _need(cfg["space"]["P"] >= 1, path, "space.P", f"P must be >= 1, got {cfg['space']['P']}")
    _need(cfg["space"]["C"] >= 1 and cfg["adra"]["C"] >= 1, path, "C", "channels must be >= 1")
    _need(cfg["space"]["stem_stride"] in (1, 2), path, "space.stem_stride", "1 or 2")
    _need(cfg["search"]["order"] in ("first", "second"), path, "search.order", "first or second")
    _need(cfg["search"]["optimizer"] in ("sgd", "adam") and cfg["retrain"]["optimizer"] in ("sgd", "adam"),
          path, "optimizer", "sgd or adam")
    for sec in ("search", "retrain"):
        _need(cfg[sec]["epochs"] >= 1 and cfg[sec]["batch_size"] >= 1, path, f"{sec}.epochs/batch_size", ">= 1")
    _need(0 < cfg["amia"]["eta"] <= 1, path, "amia.eta", "a share in (0, 1]")
    from models import MODELS
    _need(cfg["amia"]["shadow_model"] in MODELS, path, "amia.shadow_model", "valid: " + ", ".join(MODELS))
    _need(cfg["adra"]["attacker_theta"] in ("same", "independent"), path, "adra.attacker_theta", "same or independent")
    _need(cfg["adra"]["trials"] >= 1 and cfg["adra"]["restarts"] >= 1 and cfg["adra"]["iterations"] >= 1, path,
          "adra.trials/restarts/iterations", ">= 1")
    _check_lists(cfg, path)
    check_fractions(cfg["split"], str(path))
    check_defense(cfg["defense"]["name"], float(cfg["defense"]["arg"]))


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config {path} not found")
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"config {path} is not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise UserError(f"config {path} must hold a JSON object")
    cfg = _merge(raw, path)
    validate(cfg, path)
    return cfg
