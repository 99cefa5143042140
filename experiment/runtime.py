"""How a step runs, apart from its config: the run options, each model's seeds, the device and the numeric
backends, and the versions every record carries. No experiment state: pure functions of their arguments.
"""
from __future__ import annotations

import platform
import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from core.config_schema import Config
from core.errors import UserError
from core.version import code_version

PHASE_SEED = {"pretrain": 0, "prune": 1}
MAX_SHADOWS = 1000  # config.shadow_num's maximum: reference seeds start above every shadow's


@dataclass(frozen=True)
class RunOptions:
    """How to run a step, apart from the config: what the command line says beyond the config keys."""

    config_path: str
    device: str | None = None     # None = auto
    overwrite: bool = False
    amp: bool = False
    fast: bool = False
    quiet: bool = False
    threads: int | None = None
    workers: int = 1
    download: bool = False

    def words(self) -> list[str]:
        """`key=value` for every option that is set (the artifact's `Arguments:` log line)."""
        return [f"{k}={v}" for k, v in sorted(vars(self).items()) if v not in (None, False)]


def model_seed(cfg: Config, shadow: int | None, phase: str) -> int:
    """Each model has its own seed (seed + 1000 * index, plus the phase's offset), so a resumed run trains
    the same models as an uninterrupted one."""
    index = 0 if shadow is None else shadow + 1
    return cfg.seed + 1000 * index + PHASE_SEED[phase]


def reference_seed(cfg: Config, index: int, phase: str) -> int:
    """Reference model i's seed, disjoint from the victim's and every shadow's (model_seed)."""
    return cfg.seed + 1000 * (MAX_SHADOWS + 1 + index) + PHASE_SEED[phase]


def feature_seed(cfg: Config, shadow: int | None) -> int:
    """The sensitivity noise of the victim (seed) and of shadow i (seed + i + 1)."""
    return cfg.seed + (0 if shadow is None else shadow + 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(spec: str | None) -> torch.device:
    """`0` -> cuda:0 (the artifact's GPU id), `cpu`, `cuda`, `cuda:N`, or auto (CUDA when present)."""
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
        if not 1 <= threads <= 4096:
            raise UserError(f"--threads must be between 1 and 4096, got {threads}")
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = fast
    torch.backends.cudnn.deterministic = not fast
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast




def channels_last(device: torch.device, x: torch.Tensor) -> bool:
    """NHWC on CUDA for image batches: cuDNN's fast convolution kernels (tensor cores) want it; on the CPU
    the default NCHW is as fast, so CPU runs keep it."""
    return device.type == "cuda" and x.dim() == 4



def versions() -> dict[str, str]:
    """What a results record says made it: torch, Python, and this code's version and commit (core/version.py)."""
    return {"torch": torch.__version__, "python": platform.python_version()} | code_version()


def seconds_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)
