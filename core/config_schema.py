"""The config schema (docs/design.md §3): every key with its type, default, bounds and help, in one place.

Validation, the step scripts' `--<key>` flags (cli.py) and the README's key table all read the field
metadata below, so a new key is one field. Precedence is CLI > JSON > defaults, as in the artifact (which
loaded the JSON into its argparse Namespace). Every mistake surfaces as `errors.UserError` naming the file
and the key.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError

MAX_INT = 2 ** 31 - 1      # larger counts cannot be allocated, and torch seeds stop at 2^32 (seed + 1000 i)


def key(default: Any = dataclasses.MISSING, *, help: str, kind: type, minimum: float | None = None,
        maximum: float | None = None, strict: bool = False, choices: tuple[str, ...] = (), flag: bool = True,
        factory: Any = None) -> Any:
    """A config field: `kind` int / float / str / dict, bounds inclusive unless `strict` (minimum excluded);
    `flag` False keeps it JSON-only (the keys that name the data and model, and the nested ones)."""
    meta = {"help": help, "kind": kind, "minimum": minimum, "maximum": maximum, "strict": strict,
            "choices": choices, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _split() -> dict[str, float]:
    return {"victim": 0.5, "train": 0.45, "dev": 0.10, "test": 0.45}


def _sensitivity() -> dict[str, float]:
    return {"n": 10, "eps": 1e-3}


def _memscore() -> dict[str, float]:
    return {"models": 16, "fraction": 0.7, "epochs": 0}


@dataclass
class Config:
    """One experiment's settings: the artifact's JSON keys, then the optional keys (README "Configs")."""

    dataset_name: str = key(help="dataset registry name (datasets.py)", kind=str, flag=False)
    model_name: str = key(help="victim architecture (models.py)", kind=str, flag=False)
    epochs: int = key(help="pretraining epochs", kind=int, minimum=1, maximum=100_000)
    num_cls: int = key(help="number of classes", kind=int, minimum=2, maximum=100_000, flag=False)
    input_dim: int = key(help="channels (images) or features (tabular)", kind=int, minimum=1, maximum=10_000_000,
                         flag=False)
    optimizer: str = key("adam", help="training optimiser", kind=str, choices=("adam", "sgd"))
    lr: float = key(1e-3, help="training learning rate", kind=float, minimum=0, maximum=10, strict=True)
    weight_decay: float = key(5e-4, help="L2 weight decay", kind=float, minimum=0, maximum=1)
    batch_size: int = key(128, help="training batch size", kind=int, minimum=1, maximum=1_000_000)
    early_stop: int = key(5, help="stop after more than this many epochs without a dev-accuracy gain",
                          kind=int, minimum=0, maximum=100_000)
    shadow_num: int = key(5, help="number of shadow models", kind=int, minimum=1, maximum=1000)
    seed: int = key(7, help="seed for splits and training", kind=int, minimum=0, maximum=MAX_INT)
    prune_epochs: int | None = key(None, help="fine-tuning epochs (default: epochs // 2)", kind=int, minimum=0,
                                   maximum=100_000)
    data_root: str = key("data/datasets", help="folder holding the datasets", kind=str)
    split: dict[str, float] = key(help="victim share, then train/dev/test shares of each half", kind=dict,
                                  flag=False, factory=_split)
    attack_epochs: int = key(100, help="epochs of the learned attacks", kind=int, minimum=1, maximum=100_000)
    attack_lr: float = key(1e-3, help="learning rate of the learned attacks", kind=float, minimum=0, maximum=10,
                           strict=True)
    sensitivity: dict[str, float] = key(help="noisy copies n and noise scale eps of eq. 2", kind=dict, flag=False,
                                        factory=_sensitivity)
    # WeMem (NDSS '25): its split, its iterative rounds, and the mem-score estimator (memscore.py).
    split_scheme: str = key("artifact", help="data split: the artifact's, or WeMem's (train-only pool, 90/10)",
                            kind=str, choices=("artifact", "wemem"))
    prune_iter: int = key(5, help="rounds of iterative pruning (round 0 dense)", kind=int, minimum=2, maximum=1000)
    memscore: dict[str, float] = key(help="mem-score models K, subset fraction, epochs (0: the config's)",
                                     kind=dict, flag=False, factory=_memscore)
    ref_models: int = key(16, help="reference models per setting (LiRA / RMIA online; refs.py trains them)",
                          kind=int, minimum=1, maximum=10_000)
    n_bootstrap: int = key(200, help="bootstrap resamples for the AUC and TPR-at-0.1-percent-FPR intervals (0: none)",
                           kind=int, minimum=0, maximum=100_000)
    # Not a JSON key: filled in from the config path.
    stem: str = ""

    @property
    def fine_tune_epochs(self) -> int:
        return self.prune_epochs if self.prune_epochs is not None else self.epochs // 2


FIELDS = {f.name: f for f in dataclasses.fields(Config) if f.metadata}
JSON_KEYS = tuple(FIELDS)
REQUIRED = tuple(n for n, f in FIELDS.items() if f.default is dataclasses.MISSING
                 and f.default_factory is dataclasses.MISSING)
# Nested keys: (kind, low, high), each value in the open-closed interval (low, high]; fractions that
# must stay below 1 use a high just under it.
BELOW_ONE = 1 - 1e-9
SUBKEYS: dict[str, dict[str, tuple[type, float, float]]] = {
    "split": {"victim": (float, 0, 1), "train": (float, 0, 1), "dev": (float, 0, 1), "test": (float, 0, 1)},
    "sensitivity": {"n": (int, 0, 1000), "eps": (float, 0, 1)},
    "memscore": {"models": (int, 1, 100_000), "fraction": (float, 0, BELOW_ONE), "epochs": (int, -1, 100_000)},
}


def default_of(name: str) -> Any:
    f = FIELDS[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def allowed(name: str) -> str:
    """What a key accepts, in words (error hints and --help)."""
    m = FIELDS[name].metadata
    if m["choices"]:
        return " or ".join(m["choices"])
    if m["kind"] is str:
        return "a non-empty string"
    lo = "" if m["minimum"] is None else f"{'>' if m['strict'] else '>='} {_shown(m['minimum'])}"
    hi = "" if m["maximum"] is None else f"<= {_shown(m['maximum'])}"
    what = "an integer" if m["kind"] is int else "a finite number"
    return " ".join(p for p in (what, lo, "and" if lo and hi else "", hi) if p)


def _shown(v: float) -> str:
    """Bounds as a reader writes them: 100000, not 1e+05; 0.001 stays 0.001."""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _fits(name: str, v: Any) -> bool:
    m = FIELDS[name].metadata
    if m["kind"] is str:
        return isinstance(v, str) and v != "" and (not m["choices"] or v in m["choices"])
    if not (_is_int(v) if m["kind"] is int else _is_num(v)):
        return False
    lo, hi = m["minimum"], m["maximum"]
    return (lo is None or (v > lo if m["strict"] else v >= lo)) and (hi is None or v <= hi)


def _check(cond: bool, path: Path, key_name: str, what: str) -> None:
    if not cond:
        raise UserError(f"{path}: bad value for '{key_name}'", f"allowed: {what}")


def validate(raw: dict[str, Any], path: Path) -> None:
    """Reject unknown keys, wrong types and out-of-range values, naming the file and the key."""
    for name in raw:
        if name not in FIELDS:
            raise UserError(f"{path}: unknown config key '{name}'", "valid keys: " + ", ".join(JSON_KEYS))
    for name in REQUIRED:
        if name not in raw:
            raise UserError(f"{path}: missing required config key '{name}'",
                            "every config needs " + ", ".join(REQUIRED))
    for name, value in raw.items():
        if name in SUBKEYS:
            _validate_sub(value, path, name)
        elif not (value is None and default_of(name) is None):
            _check(_fits(name, value), path, name, allowed(name))


def _validate_sub(value: Any, path: Path, name: str) -> None:
    subkeys = SUBKEYS[name]
    _check(isinstance(value, dict), path, name, "an object with keys " + ", ".join(subkeys))
    for sub, v in value.items():
        _check(sub in subkeys, path, f"{name}.{sub}", "keys " + ", ".join(subkeys))
        kind, lo, hi = subkeys[sub]
        ok = (_is_int(v) if kind is int else _is_num(v)) and lo < v <= hi
        upper = "< 1" if hi == BELOW_ONE else f"<= {_shown(hi)}"
        _check(ok, path, f"{name}.{sub}", f"{'an integer' if kind is int else 'a number'} > {_shown(lo)} and {upper}")
    if name == "split":
        _check(all(0 < value.get(s, 0.5) < 1 for s in subkeys), path, name, "fractions strictly between 0 and 1")
        parts = sum(value.get(s, d) for s, d in (("train", .45), ("dev", .10), ("test", .45)))
        _check(abs(parts - 1) < 1e-6, path, name, "train + dev + test = 1")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: a key given twice is a mistake (json.loads would silently keep the last one)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key '{k}' appears twice")
        out[k] = v
    return out


def read_json_object(path: Path) -> Any:
    """The JSON in `path`, refusing what json.loads would accept silently or crash on: text that is not
    UTF-8 (UTF-16 files included), duplicate keys, nesting deep enough to exhaust the parser's recursion."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start})", "save the config as UTF-8") from None
    except OSError as e:
        raise UserError(f"{path} is unreadable ({e.strerror})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # a duplicate key
        raise UserError(f"{path}: {e}", "keep one of them") from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a config") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a JSON config, then apply CLI overrides (already-typed, None = not given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found",
                        "pass the path of a JSON file, e.g. config/digits_columnfc.json")
    raw = read_json_object(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a JSON object of config keys")
    validate(raw, path)
    merged = dict(raw)
    for sub in SUBKEYS:
        merged[sub] = {**default_of(sub), **raw.get(sub, {})}
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    validate(merged, Path(f"{path} (with command-line flags)"))
    merged["sensitivity"]["n"] = int(merged["sensitivity"]["n"])
    return Config(**merged, stem=path.stem)


def flag_keys() -> tuple[str, ...]:
    """The keys that get a `--<key>` flag on every step script."""
    return tuple(n for n, f in FIELDS.items() if f.metadata["flag"])
