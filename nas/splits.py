"""The disjoint splits of §4.2, saved as JSON indices into the pool (like datasets' data_index.json).

  theta         D^theta: trains the weights (search and the retrained target)
  alpha         D^alpha: trains the architecture; AMIA's members
  shadow_train  D^s_train: the attacker's shadow members
  shadow_test   D^s_test: the attacker's shadow non-members
  unseen        the target's non-members (never touched by search, training or the attacker's shadows)
  reference     DMP's unlabelled reference set (only the distillation defense reads it; may be 0)
The paper names the first four; `unseen` makes the target's non-members explicit and disjoint from the
attacker's data, and `reference` is DMP's (Appendix D). Fractions of the pool (nas.config.NasSplit); their
sum must be <= 1, and each part the run reads must get at least MIN_ROWS rows of the pool.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.storage import atomic_write, log

SPLIT_NAMES = ("theta", "alpha", "shadow_train", "shadow_test", "unseen", "reference")
REQUIRED = ("theta", "alpha", "shadow_train", "shadow_test", "unseen")
# Every part trains or evaluates something: the searched shadow halves shadow_train, and each half needs two
# rows (BatchNorm cannot train on one), so no required part may hold fewer than 4.
MIN_ROWS = 4


def _fractions(split: Any) -> dict[str, float]:
    return dataclasses.asdict(split) if dataclasses.is_dataclass(split) else dict(split)


def check_total(split: Any, where: str) -> None:
    total = sum(_fractions(split).values())
    if total > 1 + 1e-9:
        raise UserError(f"{where}: the split fractions overlap (they sum to {total:g} > 1)",
                        "the six parts are disjoint: make theta + alpha + shadow_train + shadow_test + unseen"
                        " + reference <= 1")


def make_nas_splits(n: int, fractions: Any, seed: int, needs_reference: bool = False) -> dict[str, np.ndarray]:
    """One seeded permutation of the pool cut into consecutive disjoint parts (floor of fraction * n); a part
    that would be (nearly) empty on this pool is refused before any work."""
    shares = _fractions(fractions)
    perm = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for name in SPLIT_NAMES:
        size = int(shares.get(name, 0.0) * n)
        needed = MIN_ROWS if name in REQUIRED else (1 if needs_reference else 0)
        if size < needed:
            raise UserError(f"split.{name} {shares.get(name, 0.0):g} of the {n}-sample pool is {size} rows",
                            f"every part needs at least {needed} rows: raise split.{name}")
        out[name] = np.sort(perm[start:start + size])
        start += size
    return out


def save_nas_splits(splits: dict[str, np.ndarray], path: Path) -> None:
    atomic_write(path, lambda f: json.dump({k: v.tolist() for k, v in splits.items()}, f,
                                           separators=(",", ":")), mode="w")


def nas_splits_for(n: int, fractions: Any, seed: int, path: Path, *, remake: bool = False,
                   remake_hint: str = "", needs_reference: bool = False) -> dict[str, np.ndarray]:
    """Reuse the saved split when it equals what the config makes; write a missing one; a stale one (dataset
    size, seed or fractions changed) is replaced when `remake` (the search with --overwrite, which redoes
    what reads it) and refused otherwise, with `remake_hint` (the command that remakes it) as the hint."""
    expected = make_nas_splits(n, fractions, seed, needs_reference)
    if path.is_file():
        try:
            saved = {k: np.asarray(v, dtype=np.int64) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            saved = None
            why = f"is unreadable ({type(e).__name__})"
        else:
            why = "disagrees with the config (dataset size, seed or split changed)"
            if set(saved) == set(expected) and all(np.array_equal(saved[k], expected[k]) for k in expected):
                return expected
        if not remake:
            raise UserError(f"split file {path} {why}", f"remake it and what was made from it: {remake_hint}")
        log.info(f"split file {path} {why}: made again (--overwrite)")
    save_nas_splits(expected, path)
    return expected
