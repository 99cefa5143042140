"""The disjoint splits of §4.2, saved as JSON indices into the pool (like datasets' data_index.json).

  theta         D^theta: trains the weights (search and the retrained target)
  alpha         D^alpha: trains the architecture; AMIA's members
  shadow_train  D^s_train: the attacker's shadow members
  shadow_test   D^s_test: the attacker's shadow non-members
  unseen        the target's non-members (never touched by search, training or the attacker's shadows)
  reference     DMP's unlabelled reference set (only the distillation defense reads it; may be 0)
The paper names the first four; `unseen` makes the target's non-members explicit and disjoint from the
attacker's data, and `reference` is DMP's (Appendix D). Fractions of the pool; their sum must be <= 1.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.errors import UserError
from core.storage import atomic_write

SPLIT_NAMES = ("theta", "alpha", "shadow_train", "shadow_test", "unseen", "reference")
REQUIRED = ("theta", "alpha", "shadow_train", "shadow_test", "unseen")


def check_fractions(fractions: dict[str, float], where: str) -> None:
    unknown = sorted(set(fractions) - set(SPLIT_NAMES))
    if unknown:
        raise UserError(f"{where}: unknown split '{unknown[0]}'", "valid: " + ", ".join(SPLIT_NAMES))
    for name in REQUIRED:
        v = fractions.get(name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < 1:
            raise UserError(f"{where}: split.{name} must be a number in (0, 1), got {v!r}")
    ref = fractions.get("reference", 0.0)
    if not isinstance(ref, (int, float)) or isinstance(ref, bool) or not 0 <= ref < 1:
        raise UserError(f"{where}: split.reference must be a number in [0, 1), got {ref!r}")
    total = sum(fractions.values())
    if total > 1 + 1e-9:
        raise UserError(f"{where}: the split fractions overlap (they sum to {total:g} > 1)",
                        "the six parts are disjoint: make theta + alpha + shadow_train + shadow_test + unseen"
                        " + reference <= 1")


def make_nas_splits(n: int, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """One seeded permutation of the pool cut into consecutive disjoint parts (floor of fraction * n)."""
    perm = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for name in SPLIT_NAMES:
        size = int(fractions.get(name, 0.0) * n)
        out[name] = np.sort(perm[start:start + size])
        start += size
    return out


def save_nas_splits(splits: dict[str, np.ndarray], path: Path) -> None:
    atomic_write(path, lambda f: json.dump({k: v.tolist() for k, v in splits.items()}, f,
                                           separators=(",", ":")), mode="w")


def nas_splits_for(n: int, fractions: dict[str, float], seed: int, path: Path) -> dict[str, np.ndarray]:
    """Reuse the saved split when it equals what the config makes; refuse a stale one, write a new one."""
    expected = make_nas_splits(n, fractions, seed)
    if path.is_file():
        try:
            saved = {k: np.asarray(v, dtype=np.int64) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, TypeError) as e:
            raise UserError(f"split file {path} is unreadable ({type(e).__name__})", "delete it") from None
        if set(saved) != set(expected) or any(not np.array_equal(saved[k], expected[k]) for k in expected):
            raise UserError(f"split file {path} disagrees with the config (dataset size, seed or split changed)",
                            "rerun search with --overwrite, or delete the file")
        return expected
    save_nas_splits(expected, path)
    return expected
