"""Per-sample memorization scores (Feldman & Zhang, NeurIPS'20), the input of the WeMem defenses: the
estimator, the subset models, WeMem's CSV format and the per-config score table (scores.npz). The step that
computes or imports them is memscore.py; prune.py's WeMem defenses read them through `load_scores`.

    mem(i) = P[model correct on i | i in S] - P[model correct on i | i not in S]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import datasets
from core import provenance
from core.errors import UserError
from core.storage import (
    NPZ_ERRORS,
    atomic_save_npz,
    atomic_write,
    load_npz,
    log,
    npz_record,
    read_npz,
    save_npz_with_record,
)
from core.training import SplitTensors, TrainConfig, fit

EVAL_ROWS = 256  # held-out rows fit evaluates each epoch (log only: no early stopping here)


# ------------------------------------------------------------------------------------------ the estimator
def memscore_estimate(in_mask: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Raw mem(i) from (K, n) bool tables: mean correct over models with i in S minus over models without.

    A row never in (or never out of) any subset has no estimate: NaN, carried as "no estimate" through the
    score table and WeMem's CSV (an empty field); 0 would rank it as unmemorised, which nothing measured.
    """
    in_mask, correct = np.asarray(in_mask, dtype=bool), np.asarray(correct, dtype=bool)
    if in_mask.shape != correct.shape or in_mask.ndim != 2:
        raise ValueError(f"in_mask {in_mask.shape} and correct {correct.shape} must be the same (K, n) shape")
    n_in, n_out = in_mask.sum(0), (~in_mask).sum(0)
    hit_in, hit_out = (correct & in_mask).sum(0), (correct & ~in_mask).sum(0)
    defined = (n_in > 0) & (n_out > 0)
    out = np.full(in_mask.shape[1], np.nan)
    out[defined] = hit_in[defined] / n_in[defined] - hit_out[defined] / n_out[defined]
    return out


def minmax(scores: np.ndarray) -> np.ndarray:
    """(s - min) / (max - min) over the rows with an estimate, WeMem's normalisation (inferred from its files:
    one 0 and one 1 each); all equal -> all 0; rows without an estimate (NaN) stay NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    known = np.isfinite(scores)
    if not known.any():
        return np.full_like(scores, np.nan)
    low, span = scores[known].min(), scores[known].max() - scores[known].min()
    return np.where(known, 0.0 if span == 0 else (scores - low) / (span or 1.0), np.nan)


def largest_tie(scores: np.ndarray) -> float:
    """The share of the estimated rows that hold the most common score: windows ranked by mem-score are in
    effect the split's own (random) order over a tie, so a large one makes slide / slide_re the `random`
    ablation there (K = 8 models on synthetic Purchase: 68 % of the rows tie at raw score 0)."""
    known = np.asarray(scores, dtype=np.float64)
    known = known[np.isfinite(known)]
    return float(np.unique(known, return_counts=True)[1].max() / len(known)) if len(known) else 1.0


def subset_masks(n: int, models: int, fraction: float, seed: int) -> np.ndarray:
    """(K, n) bool: model k's subset, round(fraction * n) rows without replacement, from one seeded stream."""
    rng = np.random.default_rng(seed)
    size = int(round(fraction * n))
    masks = np.zeros((models, n), dtype=bool)
    for k in range(models):
        masks[k, rng.choice(n, size, replace=False)] = True
    return masks


# ------------------------------------------------------------------------------------------ WeMem's CSV
def write_wemem_csv(path: Path, scores: np.ndarray) -> None:
    """WeMem's pandas dump: header `,0`, then `row,score` per line (an empty score: no estimate)."""
    atomic_write(path, lambda f: pd.DataFrame(np.asarray(scores, dtype=np.float64)).to_csv(f), mode="w")


def read_wemem_csv(path: Path, rows: int) -> np.ndarray:
    """Scores from WeMem's CSV (row i = candidate i): two columns, rows 0..rows-1 in order, each score in
    [0, 1] (WeMem's files are min-max normalised) or empty (no estimate, NaN); anything else is a UserError."""
    path = Path(path)
    hint = f"expected WeMem's format: a header line ',0' then {rows} lines 'index,score' with scores in [0, 1]"
    if not path.is_file():
        raise UserError(f"mem-score CSV {path} not found", hint)
    try:
        table = pd.read_csv(path)
        if table.shape[1] != 2:
            raise ValueError(f"{table.shape[1]} columns")
        values = np.asarray(table.iloc[:, 1], dtype=np.float64)
        index = np.asarray(table.iloc[:, 0])
    except (ValueError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"mem-score CSV {path} is malformed ({type(e).__name__}: {e})", hint) from None
    if len(values) != rows:
        raise UserError(f"mem-score CSV {path} has {len(values)} rows but the pool has {rows} candidates", hint)
    if not (np.issubdtype(index.dtype, np.integer) and np.array_equal(index, np.arange(rows))):
        raise UserError(f"mem-score CSV {path} is malformed (its rows must be numbered 0..{rows - 1} in order)", hint)
    known = ~np.isnan(values)
    if not np.all((values[known] >= 0) & (values[known] <= 1)):
        raise UserError(f"mem-score CSV {path} has scores outside [0, 1] (or infinite)", hint)
    return values


# ------------------------------------------------------------------------------------------ training
def model_correctness(make_model, x: torch.Tensor, y: torch.Tensor, member: np.ndarray, cfg: TrainConfig,
                      seed: int) -> np.ndarray:
    """Train one model on the rows where `member` is True (fixed epochs, last epoch kept); correctness on all."""
    inside, outside = np.flatnonzero(member), np.flatnonzero(~member)
    held = torch.from_numpy(outside[:EVAL_ROWS])
    data = SplitTensors(x[torch.from_numpy(inside)], y[torch.from_numpy(inside)], x[held], y[held], x[held], y[held])
    torch.manual_seed(seed)
    model = make_model().to(x.device)
    fit(model, data, cfg, generator=torch.Generator().manual_seed(seed), desc=f"model seed {seed}",
        restore_best=False)
    model.eval()
    with torch.no_grad():
        preds = torch.cat([model(x[i:i + 1024]).argmax(1) for i in range(0, len(y), 1024)])
    return (preds == y).cpu().numpy()


def compute_scores(make_model, x: torch.Tensor, y: torch.Tensor, *, models: int, fraction: float, cfg: TrainConfig,
                   seed: int, folder: Path | None = None, progress: bool = True, tag: str = "") -> tuple[
                       np.ndarray, np.ndarray, np.ndarray]:
    """(in_mask, correct, raw scores) over the rows of x; with `folder`, each model's result is saved as it
    finishes and reused on the next call when its subset and `tag` (the fingerprint of the settings that
    trained it) are the same (resume); one made with other settings is trained again."""
    masks = subset_masks(len(y), models, fraction, seed)
    correct = np.zeros_like(masks)
    for k in tqdm(range(models), desc="mem-score models", disable=not progress, unit="model"):
        path = folder / f"model_{k}.npz" if folder is not None else None
        if path is not None and path.is_file():
            try:
                saved = read_npz(path, ("in_mask", "correct", "tag"))
            except NPZ_ERRORS as e:  # killed mid-write on an older version, made before tags, or a damaged disk
                log.warning(f"{path} is unreadable or untagged ({type(e).__name__}); model {k} is trained again")
                saved = None
            if saved is not None and np.array_equal(saved["in_mask"], masks[k]) and str(saved["tag"]) == tag:
                correct[k] = saved["correct"]
                continue
        correct[k] = model_correctness(make_model, x, y, masks[k], cfg, seed + 1 + k)
        if path is not None:
            atomic_save_npz(path, in_mask=masks[k], correct=correct[k], tag=np.str_(tag))
    return masks, correct, memscore_estimate(masks, correct)


def candidate_rows(pool: datasets.Pool, split_scheme: str, seed: int) -> np.ndarray:
    """Pool rows that can be members: the train part under WeMem's split, else every row."""
    if split_scheme == "wemem":
        return datasets.wemem_parts(len(pool.y), pool.n_train, seed)[0]
    return np.arange(len(pool.y))


def save_scores(folder: Path, rows: np.ndarray, raw: np.ndarray, n_pool: int, record: dict[str, Any]) -> np.ndarray:
    """scores.npz (the candidate rows `index` with their normalised `score`, NaN where no estimate; `per_pool`,
    NaN for non-candidates too; `tie_share` (largest_tie); with its provenance `record`) and WeMem's CSV;
    returns the normalised scores. The CSV goes first: scores.npz is what says the scores are finished."""
    score = minmax(raw)
    per_pool = np.full(n_pool, np.nan)
    per_pool[rows] = score
    write_wemem_csv(folder / "memscore.csv", score)
    save_npz_with_record(folder / "scores.npz", record, index=rows, score=score, raw=raw, per_pool=per_pool,
                         tie_share=np.float64(largest_tie(score)))
    return score


def _checked_table(path: Path, table: dict[str, np.ndarray], n_pool: int | None, remedy: str) -> dict[int, float]:
    """{pool row: score} of a score table, after checking it is one: `index` distinct integer pool rows, `score`
    as long, floats in [0, 1] or NaN (no estimate), and as many pool rows as this run's pool."""
    index, score, per_pool = table["index"], table["score"], table["per_pool"]
    pool = len(per_pool) if per_pool.ndim == 1 else -1
    problems = [
        (index.ndim == 1 and np.issubdtype(index.dtype, np.integer), "its index is no list of integer rows"),
        (score.ndim == 1 and len(score) == len(index) and np.issubdtype(score.dtype, np.floating),
         "its scores are not one float per indexed row"),
        (n_pool is None or pool == n_pool, f"it was made for a pool of {pool} rows, this one has {n_pool}"),
        (len(np.unique(index)) == len(index) and (len(index) == 0 or 0 <= index.min() <= index.max() < pool),
         "its index repeats rows or names rows outside the pool"),
    ]
    for ok, what in problems:
        if not ok:
            raise UserError(f"mem-scores {path} are malformed ({what})", remedy)
    known = ~np.isnan(score)
    if not np.all((score[known] >= 0) & (score[known] <= 1)):
        raise UserError(f"mem-scores {path} are malformed (scores outside [0, 1])", remedy)
    return dict(zip(index.tolist(), score.tolist()))


def load_scores(folder: Path, split_rows: np.ndarray, command: str = "python memscore.py CONFIG",
                expected: dict[str, Any] | None = None, n_pool: int | None = None) -> np.ndarray:
    """The mem-scores of one model's own training rows (pool indices, in split order): victim and shadows
    alike; NaN for a row without an estimate (the defenses treat those explicitly, defenses/wemem.py).
    `command`: the memscore.py command the error hint names; `expected`: settings the scores must have been
    made with (the run's config; memscore.py's own flags may differ), refused naming the first that differs;
    `n_pool`: the pool's size, which a table made for another pool does not have."""
    path = Path(folder) / "scores.npz"
    remedy = f"make them again: {command} --overwrite"
    if not path.is_file():
        raise UserError(f"mem-scores {path} not found", f"run: {command} (or with --memscore_csv FILE)")
    if expected is not None:
        record = npz_record(path)
        if record is None:
            raise UserError(f"mem-scores {path} are unreadable", remedy)
        provenance.verify(str(path), record, provenance.Expected(expected, None), remedy, made="computed")
    by_row = _checked_table(path, load_npz(path, ("index", "score", "per_pool"), f"{command} --overwrite"), n_pool,
                            remedy)
    missing = [r for r in np.asarray(split_rows).tolist() if r not in by_row]
    if missing:
        raise UserError(f"{path} has no score for {len(missing)} training rows (e.g. pool row {missing[0]})", remedy)
    return np.array([by_row[r] for r in np.asarray(split_rows).tolist()], dtype=np.float64)
