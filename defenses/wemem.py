"""WeMem's defenses (NDSS '25; docs/wemem.md) as hooks of the one training loop: they choose each epoch's
training indices and, for RMR, which of two optimizers steps a batch. They work in every iterative round
and with one-shot pruning alike.

- RSW, sliding window (`slide`: ranks sorted by mem-score high to low; `slide_re`: low to high; `random`:
  the ablation, the split's own order). Per class, epoch e trains on ranks [e*stride, e*stride + width),
  clipped to the class size; a class whose size is <= e*stride contributes nothing. The window follows
  the epoch counter INSIDE one fine-tuning run, so every iterative round replays the same windows (as
  WeMem does; early stopping can cut the sequence short).
  FIXED: WeMem clipped `end` in place, so a small class shortened the windows of every class after it in
  the same epoch; here each class is clipped on its own. `window_indices(..., carry_clipped_end=True)`
  reproduces the bug for comparison.
- RMR (`ml2`): samples with mem-score >= mem_thre are risky. Each epoch is one shuffled pass over the risky
  batches, stepped by a second Adam (same lr, weight_decay = weight_decay_mem), then one over the general
  batches with the run's optimizer. Two Adams, two moment states; the loss is plain CE in both.
- SWMR (`slide_ml2`, `slide_re_ml2`): the epoch's window split into its risky and general parts, trained
  as RMR (a part that is empty is skipped).

Preparation (per-class sorting, the risky split) happens once, in setup, outside fit's timer, so
FitResult.seconds is WeMem's defense time; WeMem also re-read the CSV and labels every SWMR epoch inside
its timer, which this code does not (its SWMR times are inflated by that). Batches: each group is
shuffled with the run's generator and cut into batch_size slices (WeMem: DataLoader(shuffle=True)).

Public API: window_indices, sort_by_class, risky_split, epoch_groups, the hook classes, WEMEM_DEFENSES,
make_wemem_defense.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from core.errors import UserError
from core.setting import options_suffix
from core.training import SplitTensors, StepStats, TrainConfig, split_batches
from defenses.base import Defense, DefenseOptions, require

DEFAULT_STRIDE, DEFAULT_WIDTH = 50, 500  # WeMem's run_shell.sh for CIFAR-10 slide_re (location: 1, 15)
DEFAULT_MEM_THRE = 0.6
DEFAULT_WEIGHT_DECAY_MEM = 5e-4  # WeMem's argparse default (= Base's wd); its scripts use 0.1

Groups = list[tuple[str, np.ndarray]]  # (group name: "all" | "risky" | "general", positions in the train split)


# ------------------------------------------------------------------------------------------- pure helpers
def sort_by_class(labels: np.ndarray, scores: np.ndarray | None, order: str) -> list[np.ndarray]:
    """Positions of each class (classes in ascending label order), ranked for the window.

    order "desc" (H->L) / "asc" (L->H): by mem-score, ties kept in position order (stable sort);
    "split": the positions in the split's own order (the `random` ablation: the split is already shuffled).
    """
    labels = np.asarray(labels)
    out = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        if order != "split":
            assert scores is not None
            key = -scores[pos] if order == "desc" else scores[pos]
            pos = pos[np.argsort(key, kind="stable")]
        out.append(pos)
    return out


def window_indices(per_class: list[np.ndarray], epoch: int, stride: int, width: int, *,
                   carry_clipped_end: bool = False) -> np.ndarray:
    """The epoch's window: ranks [epoch*stride, epoch*stride + width) of every class, concatenated in class order.

    carry_clipped_end=True is WeMem's bug (README difference 20): `end` is clipped in place, so after a class
    smaller than the window end, every later class is cut at that smaller end too.
    """
    start = epoch * stride
    end = start + width
    parts = []
    for ranked in per_class:
        if start >= len(ranked):
            continue
        clipped = min(end, len(ranked))
        if carry_clipped_end:
            end = clipped
        parts.append(ranked[start:clipped])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def risky_split(scores: np.ndarray, mem_thre: float) -> np.ndarray:
    """Bool per position: risky = mem-score >= mem_thre (WeMem's ml2_process)."""
    return np.asarray(scores) >= mem_thre


def epoch_groups(positions: np.ndarray | None, risky: np.ndarray | None, n: int) -> Groups:
    """The epoch's groups in training order. positions None = the whole split; risky None = one "all" group;
    else the risky part first, then the general part, empty parts left out (WeMem's SWMR)."""
    pos = np.arange(n) if positions is None else np.asarray(positions)
    if risky is None:
        return [("all", pos)] if len(pos) else []
    groups = [("risky", pos[risky[pos]]), ("general", pos[~risky[pos]])]
    return [(name, p) for name, p in groups if len(p)]


# ------------------------------------------------------------------------------------------------ hooks
class WeMemHooks(Defense):
    """Shared machinery. `scores`: the mem-score of each row of THIS model's training split, in its order.

    A registry defense: no --defend_arg (WeMem has none; its settings are --stride, --width, --mem_thre and
    --weight_decay_mem, which name the folders), and the experiment supplies the scores (`needs_mem_scores`).
    """

    window: str | None = None  # "desc" | "asc" | "split" | None (no window)
    rmr = False
    needs_mem_scores = True

    @classmethod
    def create(cls, arg: float | None, options: DefenseOptions) -> WeMemHooks:
        """Validates the options; without scores (a flag check before any data) an empty table stands in,
        which setup refuses, so a model is never trained without its own scores."""
        require(arg is None, f"{cls.name} takes no --defend_arg",
                "set --stride, --width, --mem_thre, --weight_decay_mem")
        require(math.isfinite(options.mem_thre), f"--mem_thre must be finite, got {options.mem_thre}",
                "a number; WeMem's scores lie in [0, 1]")
        scores = options.mem_scores if options.mem_scores is not None else np.zeros(0)
        return cls(scores, stride=options.stride, width=options.width, mem_thre=options.mem_thre,
                   weight_decay_mem=options.weight_decay_mem)

    @classmethod
    def folder_options(cls, options: DefenseOptions) -> tuple[tuple[str, float], ...]:
        out: tuple[tuple[str, float], ...] = ()
        if cls.window is not None:
            out += (("stride", options.stride), ("width", options.width))
        if cls.rmr:
            out += (("mem_thre", options.mem_thre), ("weight_decay_mem", options.weight_decay_mem))
        return out

    def __init__(self, scores: np.ndarray, *, stride: int = DEFAULT_STRIDE, width: int = DEFAULT_WIDTH,
                 mem_thre: float = DEFAULT_MEM_THRE, weight_decay_mem: float = DEFAULT_WEIGHT_DECAY_MEM) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        if self.window is not None and not (stride >= 1 and width >= 1):
            raise UserError(f"--stride and --width must be integers >= 1, got {stride}, {width}")
        if self.rmr and not weight_decay_mem >= 0:
            raise UserError(f"--weight_decay_mem must be >= 0, got {weight_decay_mem}")
        self.stride, self.width = int(stride), int(width)
        self.mem_thre, self.weight_decay_mem = float(mem_thre), float(weight_decay_mem)
        self.per_class: list[np.ndarray] | None = None
        self.risky: np.ndarray | None = None
        self.risk_optimizer: torch.optim.Optimizer | None = None
        self.epoch = 0
        self.group = "all"

    def settings(self) -> dict[str, float]:
        """The hyper-parameters this defense uses (for folder names and results records)."""
        out: dict[str, float] = {}
        if self.window is not None:
            out |= {"stride": self.stride, "width": self.width}
        if self.rmr:
            out |= {"mem_thre": self.mem_thre, "weight_decay_mem": self.weight_decay_mem}
        return out

    def folder_suffix(self) -> str:
        """e.g. `s50-w500-thr0.5-wdm0.1`: every hyper-parameter in the name (setting.options_suffix, the one
        spelling of ModelSetting's folders), so sweeps never overwrite each other."""
        return options_suffix(tuple(self.settings().items()))

    def setup(self, model: nn.Module, data: SplitTensors, cfg: TrainConfig, generator: torch.Generator) -> None:
        """Once per model (rounds reuse it): rank each class and split risky / general."""
        n = len(data.train_y)
        if len(self.scores) != n:
            raise UserError(f"{self.name}: {len(self.scores)} mem-scores for a training split of {n} rows",
                            "the scores must be this model's own train rows, in split order")
        if self.per_class is None and self.window is not None:
            self.per_class = sort_by_class(data.train_y.cpu().numpy(), self.scores, self.window)
        if self.risky is None and self.rmr:
            self.risky = risky_split(self.scores, self.mem_thre)
        self.n = n

    def make_optimizer(self, model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        """The run's optimizer; RMR also builds `optimizer_risk` (Adam, same lr, wd = weight_decay_mem)."""
        optimizer = super().make_optimizer(model, cfg)
        if self.rmr:
            params = [p for p in model.parameters() if p.requires_grad]
            self.risk_optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=self.weight_decay_mem)
        return optimizer

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def groups(self, epoch: int) -> Groups:
        """This epoch's training groups, in order (what `batches` shuffles and slices)."""
        positions = None
        if self.per_class is not None:
            positions = window_indices(self.per_class, epoch, self.stride, self.width)
        return epoch_groups(positions, self.risky, self.n)

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Each group shuffled and sliced; `self.group` names the group of the batch being yielded."""
        for name, positions in self.groups(self.epoch):
            order = torch.randperm(len(positions), generator=generator)
            # the small risky / window groups often leave a batch of one row, which joins the one before
            for chunk in split_batches(torch.from_numpy(positions)[order], batch_size):
                self.group = name
                yield chunk

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   epoch: int) -> StepStats:
        if self.group == "risky":
            assert self.risk_optimizer is not None, "make_optimizer builds it"
            optimizer = self.risk_optimizer
        return super().train_step(model, optimizer, x, y, epoch)


class Slide(WeMemHooks):
    """RSW, high to low mem-score."""
    name, log_suffix, window = "slide", " With Slide", "desc"


class SlideRe(WeMemHooks):
    """RSW, low to high mem-score."""
    name, log_suffix, window = "slide_re", " With SlideRe", "asc"


class RandomWindow(WeMemHooks):
    """Ablation: the window over each class in the split's own (random) order."""
    name, log_suffix, window = "random", " With RandomWindow", "split"


class ML2(WeMemHooks):
    """RMR: risky samples stepped by a second Adam with weight_decay_mem."""
    name, log_suffix, rmr = "ml2", " With ML2", True


class SlideML2(WeMemHooks):
    """SWMR: the H->L window, trained as RMR."""
    name, log_suffix, window, rmr = "slide_ml2", " With SlideML2", "desc", True


class SlideReML2(WeMemHooks):
    """SWMR: the L->H window, trained as RMR."""
    name, log_suffix, window, rmr = "slide_re_ml2", " With SlideReML2", "asc", True


# The registry entries (defenses/__init__.py registers each), by name.
WEMEM_DEFENSES: dict[str, type[WeMemHooks]] = {c.name: c for c in (Slide, SlideRe, RandomWindow, ML2, SlideML2,
                                                                   SlideReML2)}


def make_wemem_defense(name: str, scores: np.ndarray, *, stride: int = DEFAULT_STRIDE, width: int = DEFAULT_WIDTH,
                       mem_thre: float = DEFAULT_MEM_THRE,
                       weight_decay_mem: float = DEFAULT_WEIGHT_DECAY_MEM) -> WeMemHooks:
    """The hooks for `--defend name` given this model's train-row mem-scores."""
    if name not in WEMEM_DEFENSES:
        raise UserError(f"unknown WeMem defense '{name}'", "valid: " + ", ".join(WEMEM_DEFENSES))
    return WEMEM_DEFENSES[name](scores, stride=stride, width=width, mem_thre=mem_thre,
                                   weight_decay_mem=weight_decay_mem)
