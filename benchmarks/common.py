"""What every section of bench.py shares: the two profiles (--quick or full), the run's settings (`Bench`), the
`Section` every module defines, and the helpers for timing, tables and temporary working folders.

Every comparison is measured in the same run, with the two sides interleaved and the best of several repeats
kept, so a noisy, shared machine biases both sides alike.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import datasets
from core.config_schema import Config, load_config
from core.training import TrainConfig
from experiment import Experiment, RunOptions

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("digits_resnet18", "synthetic_purchase_columnfc")


@dataclass
class Profile:
    """How hard each section works; --quick trades repeats and pipeline length for time."""

    repeats: int          # best-of repeats of every timed comparison
    min_seconds: float    # each timed sample runs at least this long (whole epochs / steps)
    fit_epochs: int       # epochs of the instrumented fit() run
    exhaustive_rows: int  # subsample for the O(n^2) threshold search
    pipeline: dict[str, list[str]]  # per config: extra flags for the three step scripts
    workers: dict[str, list[str]]   # per config: pretrain.py flags of the one-process vs N-process race
    refs: dict[str, list[str]]      # per config: refs.py flags (references of the original, then pruned 0.6)


PROFILES = {
    # resnet18 on CPU costs ~100x more per row than columnfc, so its quick setting is shorter still.
    "quick": Profile(repeats=2, min_seconds=0.5, fit_epochs=2, exhaustive_rows=3000,
                     pipeline={"digits_resnet18": ["--shadow_num", "2", "--epochs", "3", "--prune_epochs", "2",
                                                   "--attack_epochs", "5"],
                               "synthetic_purchase_columnfc": ["--shadow_num", "2", "--epochs", "5",
                                                               "--prune_epochs", "3", "--attack_epochs", "5"]},
                     workers={"digits_resnet18": ["--shadow_num", "3", "--epochs", "2", "--early_stop", "2"],
                              "synthetic_purchase_columnfc": ["--shadow_num", "3", "--epochs", "10"]},
                     # columnfc with its configured epochs (a reference costs what the grid's does); resnet18 short
                     refs={"digits_resnet18": ["--ref_models", "2", "--epochs", "2", "--prune_epochs", "1"],
                           "synthetic_purchase_columnfc": ["--ref_models", "4"]}),
    # Full: columnfc as configured (5 shadows, 50 + 25 epochs) except the attack epochs (SAMIA at 100 epochs
    # on 5 shadows alone takes ~15 min on 2 cores); resnet18 with 3 shadows and short epochs.
    "full": Profile(repeats=4, min_seconds=1.0, fit_epochs=4, exhaustive_rows=5000,
                    pipeline={"digits_resnet18": ["--shadow_num", "3", "--epochs", "6", "--prune_epochs", "3",
                                                  "--attack_epochs", "20"],
                              "synthetic_purchase_columnfc": ["--attack_epochs", "20"]},
                    workers={"digits_resnet18": ["--shadow_num", "3", "--epochs", "4", "--early_stop", "4"],
                             "synthetic_purchase_columnfc": ["--shadow_num", "5"]},
                    refs={"digits_resnet18": ["--ref_models", "4", "--epochs", "6", "--prune_epochs", "3"],
                          "synthetic_purchase_columnfc": ["--ref_models", "16"]}),
}


@dataclass(frozen=True)
class Bench:
    """One bench.py run's settings, as every section reads them."""

    quick: bool
    prof: Profile
    configs: tuple[str, ...]
    threads: int | None           # torch threads here and in the step scripts (None: torch's choice)
    device: torch.device          # the cuda section's device
    bench_rows: int               # the cuda section's train rows, models and attack epochs
    bench_models: int
    bench_attack_epochs: int


@dataclass(frozen=True)
class Section:
    """One part of bench.py (its own module's SECTION, registered in benchmarks/__init__.py): `run` measures and
    returns Markdown whose first line is the heading (bench.py numbers it by the registry's order)."""

    name: str
    help: str
    run: Callable[[Bench], str]
    uses_configs: bool = False   # measured once per --configs entry
    config_flags: bool = False   # needs the profile's flags of each config (Profile.pipeline / workers / refs)
    # why this machine cannot run it (None: it can); bench is None when bench.py chooses the defaults
    unavailable: Callable[[Bench | None], str | None] = lambda bench: None


def now() -> float:
    return time.perf_counter()


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_s(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f} s"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.1f} ms"
    return f"{v * 1e6:.0f} µs"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def say(msg: str) -> None:
    """Progress goes to stderr so stdout is only the Markdown to paste."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def data_root(cfg: Config) -> Path:
    """The config's data folder; a relative one is read from the repository, as the steps run there."""
    root = Path(cfg.data_root)
    return root if root.is_absolute() else ROOT / root


def load_experiment(stem: str) -> Experiment:
    """The experiment the step scripts would open, built in memory: bench.py writes no split file or log."""
    path = ROOT / "config" / f"{stem}.json"
    cfg = load_config(path)
    pool = datasets.load_pool(cfg.dataset_name, data_root(cfg), input_dim=cfg.input_dim, num_cls=cfg.num_cls)
    splits = datasets.make_splits(len(pool.y), seed=cfg.seed, shadow_num=cfg.shadow_num, **cfg.split)
    return Experiment(cfg, RunOptions(str(path), device="cpu", quiet=True), torch.device("cpu"), pool, splits)


def train_config(exp: Experiment, epochs: int = 1) -> TrainConfig:
    """The steps' training settings, with early stopping out of the way so every epoch runs."""
    return dataclasses.replace(exp.train_config(epochs), early_stop=epochs)


def fresh(exp: Experiment, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return exp.fresh_model()


def run_step(name: str, cmd: list[str], cwd: Path, logs: Path) -> tuple[float, bool]:
    say(f"  {name}: {' '.join(cmd[1:])}")
    t0 = now()
    with open(logs / f"{name}.out", "w") as out:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              env=os.environ | {"OMP_WAIT_POLICY": "PASSIVE"})
    wall = now() - t0
    if proc.returncode != 0:
        tail = (logs / f"{name}.out").read_text().splitlines()[-15:]
        say(f"  {name} FAILED (exit {proc.returncode}):\n    " + "\n    ".join(tail))
    return wall, proc.returncode == 0


def import_seconds() -> float:
    """A step script's fixed cost: starting Python and importing torch + the project."""
    t0 = now()
    subprocess.run([sys.executable, "-c", "import mia"], cwd=ROOT, check=True,
                   env=os.environ | {"OMP_WAIT_POLICY": "PASSIVE"})
    return now() - t0


@contextmanager
def workdir() -> Iterator[tuple[Path, Path]]:
    """A temporary folder with a copy of config/ and a bench_logs/ folder: the steps write there, not in the
    repository. Yields (folder, logs)."""
    with tempfile.TemporaryDirectory(prefix="prune_mia_bench_") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "config", work / "config")
        (work / "bench_logs").mkdir()
        yield work, work / "bench_logs"


def header(bench: Bench) -> str:
    threads = torch.get_num_threads()
    return (f"## bench.py {'--quick' if bench.quick else '(full)'}\n\n"
            f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
            f"**{threads} torch thread{'s' if threads != 1 else ''}**"
            f"{'' if bench.threads else ' (torch default)'}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
            f"load average at start {os.getloadavg()[0]:.2f}. Rates are the best of {bench.prof.repeats} "
            "interleaved repeats.\n")
