"""The files a report reads besides the records: per-sample scores, features, mem-scores, the split and ADRA's
image grids, each read only from under the results root (the folder mia.py ran in) and checked for what the
figure needs (1-D, finite, one value per target point) before it is drawn from. A file that fails is a
reason (text), never an exception.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.storage import NPZ_ERRORS, read_npz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 50 * 2**20  # an ADRA grid is a few hundred kB


def within_root(root: Path, file: Any) -> Path | None:
    """The recorded path `file` (relative to `root`, or absolute) when it names a place under `root` once links
    and .. are resolved; None otherwise (no path recorded, or one leading out of the results root)."""
    if not isinstance(file, str) or not file or "\x00" in file:
        return None
    path = Path(file)
    path = path if path.is_absolute() else root / path
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return None
    return real if real.is_relative_to(root.resolve()) else None


def load_npz(path: Path | None, keys: Iterable[str]) -> dict[str, np.ndarray] | None:
    """The arrays `keys` of an npz file, or None when the file is absent, unreadable or lacks a key."""
    if path is None or not path.is_file():
        return None
    try:
        return read_npz(path, keys)
    except NPZ_ERRORS:  # a damaged or cut-short file: the figure that needs it is skipped
        return None


def vector_problem(name: str, values: np.ndarray, n: int | None = None, finite: bool = True) -> str | None:
    """Why `values` is not a 1-D numeric array of n entries (finite unless `finite` is False)."""
    if values.ndim != 1:
        return f"{name} is {values.ndim}-D, not one value per target point"
    if values.dtype.kind not in "biuf":
        return f"{name} is not numeric ({values.dtype})"
    if n is not None and values.size != n:
        return f"{name} has {values.size} values, not {n}"
    if finite and not np.isfinite(values.astype(float)).all():
        return f"{name} holds NaN or infinite values"
    return None


def membership_problem(member: np.ndarray, n: int | None = None) -> str | None:
    why = vector_problem("member", member, n)
    if why is None and not np.isin(member, (0, 1)).all():
        return "member holds values other than 0 and 1"
    return why


def target_count(record: dict[str, Any]) -> int | None:
    """The record's member + non-member count, when it states both."""
    members, nonmembers = record.get("n_members"), record.get("n_nonmembers")
    ok = all(isinstance(v, (int, float)) and np.isfinite(v) for v in (members, nonmembers))
    return int(members) + int(nonmembers) if ok else None


def read_checked(path: Path | None, keys: tuple[str, ...], n: int | None, what: str
                 ) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(arrays, None), (None, None) when the file is absent, or (None, why) when it cannot be used. Every key
    must be a 1-D vector of the same length (n when given); `member` holds 0 / 1."""
    if path is None or not path.exists():
        return None, None
    arrays = load_npz(path, keys)
    if arrays is None:
        return None, f"{what} is unreadable or lacks {', '.join(keys)}"
    n = n if n is not None else arrays[keys[0]].size
    for key in keys:
        why = membership_problem(arrays[key], n) if key == "member" else vector_problem(key, arrays[key], n)
        if why:
            return None, f"{what}: {why}"
    return arrays, None


def victim_members(root: Path, config: str) -> tuple[np.ndarray | None, str | None]:
    """The split's victim_train indices (the order mia.py lists members in), checked as whole numbers >= 0."""
    path = within_root(root, f"result/{config}/data_index.json")
    if path is None or not path.is_file():
        return None, None
    try:
        split = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None, f"{path} is unreadable"
    rows = split.get("victim_train") if isinstance(split, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rows):
        return None, f"{path}: victim_train is not a list of row numbers"
    return np.asarray(rows, dtype=np.int64), None


def member_memscores(root: Path, config: str) -> tuple[np.ndarray | None, str | None]:
    """The victim's training rows' mem-scores (memscore.py's per-pool table at the split's victim_train
    indices), None when a file is missing, with a reason when one cannot be used. Rows without an estimate
    are NaN (memscore.py's mark); infinite scores are refused."""
    path = within_root(root, f"result/{config}/memscore/scores.npz")
    if path is None or not path.is_file():
        return None, None
    scores = load_npz(path, ["per_pool"])
    if scores is None:
        return None, f"{path} is unreadable"
    why = vector_problem("per_pool", scores["per_pool"], finite=False)
    if why or np.isinf(scores["per_pool"].astype(float)).any():
        return None, f"{path}: {why or 'per_pool holds infinite values'}"
    rows, why = victim_members(root, config)
    if rows is None:
        return None, why
    if not rows.size or rows.max() >= scores["per_pool"].size:
        return None, f"{path}: {scores['per_pool'].size} rows, fewer than the split's victim_train needs"
    return scores["per_pool"][rows].astype(float), None


def image_problem(path: Path) -> str | None:
    """Why `path` is not a PNG a report may copy (None: it is)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(len(PNG_MAGIC))
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if head != PNG_MAGIC:
        return "not a PNG image"
    return f"larger than {MAX_IMAGE_BYTES // 2**20} MiB" if size > MAX_IMAGE_BYTES else None
