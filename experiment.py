"""Everything the three step scripts share around the science: config, CLI, device, seeding, paths, logs.

Precedence is CLI > JSON > defaults, as in the artifact (which loaded the JSON into its argparse Namespace).
Every mistake a user can make surfaces as `errors.UserError`, printed by `run_main` as one line, exit 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from errors import UserError

log = logging.getLogger("prune_mia")

OPTIMIZERS = ("adam", "sgd")


@dataclass
class Config:
    """One experiment's settings: the artifact's JSON keys, then the optional keys of DESIGN §3."""

    dataset_name: str
    model_name: str
    epochs: int
    num_cls: int
    input_dim: int
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    early_stop: int = 5
    shadow_num: int = 5
    seed: int = 7
    prune_epochs: int | None = None  # None: epochs // 2, the artifact's fine-tuning length
    data_root: str = "data/datasets"
    split: dict[str, float] = field(default_factory=lambda: {"victim": 0.5, "train": 0.45, "dev": 0.10,
                                                             "test": 0.45})
    attack_epochs: int = 100
    attack_lr: float = 1e-3
    sensitivity: dict[str, float] = field(default_factory=lambda: {"n": 10, "eps": 1e-3})
    # WeMem (NDSS '25): its split, its iterative rounds, and the mem-score estimator's settings (memscore.py).
    split_scheme: str = "artifact"
    prune_iter: int = 5
    memscore: dict[str, float] = field(default_factory=lambda: {"models": 16, "fraction": 0.7, "epochs": 0})
    # Not JSON keys: filled in from the config path.
    stem: str = ""

    @property
    def fine_tune_epochs(self) -> int:
        return self.prune_epochs if self.prune_epochs is not None else self.epochs // 2


REQUIRED = ("dataset_name", "model_name", "epochs", "num_cls", "input_dim")
JSON_KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "stem")
SUBKEYS = {"split": ("victim", "train", "dev", "test"), "sensitivity": ("n", "eps"),
           "memscore": ("models", "fraction", "epochs")}
SPLIT_SCHEMES = ("artifact", "wemem")


def _check(cond: bool, path: Path, key: str, allowed: str) -> None:
    if not cond:
        raise UserError(f"{path}: bad value for '{key}'", f"allowed: {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(raw: dict[str, Any], path: Path) -> None:
    """Reject unknown keys, wrong types and out-of-range values, naming the file and the key."""
    for key in raw:
        if key not in JSON_KEYS:
            raise UserError(f"{path}: unknown config key '{key}'", "valid keys: " + ", ".join(JSON_KEYS))
    for key in REQUIRED:
        if key not in raw:
            raise UserError(f"{path}: missing required config key '{key}'",
                            "every config needs " + ", ".join(REQUIRED))
    for key in ("dataset_name", "model_name", "data_root"):
        if key in raw:
            _check(isinstance(raw[key], str) and raw[key] != "", path, key, "a non-empty string")
    for key in ("epochs", "num_cls", "input_dim", "batch_size", "shadow_num", "attack_epochs"):
        if key in raw:
            _check(_is_int(raw[key]) and raw[key] >= (2 if key == "num_cls" else 1), path, key,
                   "an integer >= " + ("2" if key == "num_cls" else "1"))
    for key in ("early_stop", "seed", "prune_epochs"):
        if key in raw and not (key == "prune_epochs" and raw[key] is None):
            _check(_is_int(raw[key]) and raw[key] >= 0, path, key, "an integer >= 0")
    for key in ("lr", "attack_lr"):
        if key in raw:
            _check(_is_num(raw[key]) and raw[key] > 0, path, key, "a number > 0")
    if "weight_decay" in raw:
        _check(_is_num(raw["weight_decay"]) and raw["weight_decay"] >= 0, path, "weight_decay", "a number >= 0")
    if "optimizer" in raw:
        _check(raw["optimizer"] in OPTIMIZERS, path, "optimizer", " or ".join(OPTIMIZERS))
    if "split_scheme" in raw:
        _check(raw["split_scheme"] in SPLIT_SCHEMES, path, "split_scheme", " or ".join(SPLIT_SCHEMES))
    if "prune_iter" in raw:
        _check(_is_int(raw["prune_iter"]) and raw["prune_iter"] >= 2, path, "prune_iter", "an integer >= 2")
    for key, subkeys in SUBKEYS.items():
        if key in raw:
            _validate_sub(raw[key], path, key, subkeys)


def _validate_sub(value: Any, path: Path, key: str, subkeys: tuple[str, ...]) -> None:
    _check(isinstance(value, dict), path, key, "an object with keys " + ", ".join(subkeys))
    for sub, v in value.items():
        _check(sub in subkeys, path, f"{key}.{sub}", "keys " + ", ".join(subkeys))
        if key == "memscore" and sub == "epochs":  # 0 = the config's epochs
            _check(_is_int(v) and v >= 0, path, f"{key}.{sub}", "an integer >= 0 (0: the config's epochs)")
            continue
        _check(_is_num(v) and v > 0, path, f"{key}.{sub}", "a number > 0")
    if key == "memscore":
        _check(_is_int(value.get("models", 2)) and value.get("models", 2) >= 2, path, "memscore.models",
               "an integer >= 2")
        _check(0 < value.get("fraction", 0.5) < 1, path, "memscore.fraction", "a fraction strictly between 0 and 1")
    if key == "split":
        _check(all(0 < value.get(s, 0.5) < 1 for s in subkeys), path, key, "fractions strictly between 0 and 1")
        parts = sum(value.get(s, d) for s, d in (("train", .45), ("dev", .10), ("test", .45)))
        _check(abs(parts - 1) < 1e-6, path, key, "train + dev + test = 1")
    if key == "sensitivity" and "n" in value:
        _check(_is_int(value["n"]), path, "sensitivity.n", "an integer >= 1")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a JSON config, then apply CLI overrides (already-typed, None = not given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found", "pass the path of a JSON file, e.g. config/digits_columnfc.json")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a JSON object of config keys")
    validate(raw, path)
    merged = dict(raw)
    for sub, defaults in ((k, Config.__dataclass_fields__[k].default_factory()) for k in SUBKEYS):  # type: ignore[misc]
        merged[sub] = {**defaults, **raw.get(sub, {})}
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    validate({k: v for k, v in merged.items() if k in JSON_KEYS}, Path(f"{path} (with command-line flags)"))
    merged["sensitivity"]["n"] = int(merged["sensitivity"]["n"])
    return Config(**merged, stem=path.stem)


# ---------------------------------------------------------------- command line

def base_parser(description: str) -> argparse.ArgumentParser:
    """Flags every step shares; each flag that mirrors a config key defaults to None (= use the JSON)."""
    p = argparse.ArgumentParser(description=description, usage="%(prog)s [DEVICE] CONFIG [options]",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("positional", nargs="+", metavar="[DEVICE] CONFIG",
                   help="optional device (GPU id like 0, or cpu) then the JSON config path")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto: CUDA when present)")
    p.add_argument("--seed", type=int, default=None, help="seed for splits and training (config default 7)")
    p.add_argument("--batch_size", type=int, default=None, help="training batch size (config default 128)")
    p.add_argument("--early_stop", type=int, default=None,
                   help="stop after more than this many epochs without a dev-accuracy gain (default 5)")
    p.add_argument("--shadow_num", type=int, default=None, help="number of shadow models (config default 5)")
    p.add_argument("--epochs", type=int, default=None, help="pretraining epochs (overrides the config)")
    p.add_argument("--prune_epochs", type=int, default=None, help="fine-tuning epochs (config default epochs // 2)")
    p.add_argument("--attack_epochs", type=int, default=None, help="epochs of the learned attacks (config default 100)")
    p.add_argument("--attack_lr", type=float, default=None, help="learning rate of the learned attacks (config default 0.001)")
    p.add_argument("--data_root", default=None, help="folder holding the datasets (config default data/datasets)")
    p.add_argument("--overwrite", action="store_true", help="redo finished steps instead of skipping them")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (ignored on the CPU)")
    p.add_argument("--fast", action="store_true",
                   help="cudnn.benchmark on, deterministic kernels off: faster on GPUs, not bit-reproducible")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice); 1 is best when jobs run side by side")
    return p


def add_workers_flag(p: argparse.ArgumentParser) -> None:
    """For the steps that train one model per role (pretrain.py, prune.py)."""
    p.add_argument("--workers", type=int, default=1,
                   help="train the victim and shadows in this many processes sharing the cores "
                        "(each gets threads // workers torch threads); faster for small models")


CONFIG_FLAGS = ("seed", "batch_size", "early_stop", "shadow_num", "epochs", "data_root", "prune_epochs",
                "attack_epochs", "attack_lr")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> tuple[argparse.Namespace, Config]:
    """Parse the artifact's `[DEVICE] CONFIG` positionals and the flags, then load the config."""
    args = parser.parse_args(argv)
    pos = args.positional
    if len(pos) > 2:
        raise UserError(f"too many positional arguments: {' '.join(pos)}", "usage: [DEVICE] CONFIG [--flags]")
    if len(pos) == 2:
        if args.device is not None:
            raise UserError("device given twice (positional and --device)", "keep one of them")
        args.device = pos[0]
    args.config = pos[-1]
    overrides = {k: getattr(args, k, None) for k in CONFIG_FLAGS}
    return args, load_config(args.config, overrides)


def resolve_device(spec: str | None) -> torch.device:
    """`0` → cuda:0 (the artifact's GPU id), `cpu`, `cuda`, `cuda:N`, or auto (CUDA when present)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"device {spec} requested but PyTorch sees no CUDA GPU", "pass cpu or --device cpu")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device {spec} requested but only {torch.cuda.device_count()} GPU(s) are visible")
        return torch.device(spec)
    raise UserError(f"unknown device '{spec}'", "use a GPU id like 0, cpu, cuda, cuda:N or auto")


def configure_backends(fast: bool, threads: int | None = None) -> None:
    """Deterministic cuDNN by default (the artifact set benchmark=True); --fast trades that for speed."""
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = fast
    torch.backends.cudnn.deterministic = not fast
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- paths, logs, files

def result_dir(cfg: Config) -> Path:
    return Path("result") / cfg.stem


def log_dir(cfg: Config) -> Path:
    return Path("log") / cfg.stem


class _TqdmHandler(logging.StreamHandler):
    """Writes through tqdm so log lines do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stdout)


def setup_logging(log_file: Path) -> None:
    """Log lines go to stdout and to `log_file` (appended, so reruns keep the history)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in (_TqdmHandler(), logging.FileHandler(log_file)):
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and caches in shared folders should stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One record per line, written with a single append so concurrent runs never interleave lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(_finite(record), sort_keys=True) + "\n")


def _finite(value: Any) -> Any:
    """inf / nan (e.g. epsilon without noise) become null: JSON has no Infinity, and readers choke on it."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _finite(value.item())
    return value


def load_checkpoint(path: Path, make_hint: str) -> dict[str, Any]:
    """Load a checkpoint that never runs code; a missing or corrupt file names the command that makes it."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found", f"make it with: {make_hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors all mean the same thing to the user
        raise UserError(f"checkpoint {path} is unreadable ({type(e).__name__})",
                        f"delete it and rerun: {make_hint}") from None


def run_main(main: Callable[[], None]) -> None:
    """Entry point wrapper: a UserError is one line on stderr and exit 2; Ctrl-C exits 130 quietly."""
    try:
        main()
    except UserError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted (finished models are kept; rerun to resume)", file=sys.stderr)
        sys.exit(130)
