"""Per-sample memorization scores (Feldman & Zhang, NeurIPS'20) for the WeMem defenses (DESIGN §11).

    mem(i) = P[model correct on i | i in S] - P[model correct on i | i not in S]

estimated from K models of the config's kind, model k trained on a random subset S_k (a fixed fraction of
the candidate rows, drawn without replacement): the two probabilities are the mean correctness over the
models that did / did not train on i. A row that was in every subset or in none has no estimate; it gets
raw score 0 ("membership made no measurable difference"), and the count of such rows is reported. With K = 16
and fraction 0.7 a row is out of all 16 subsets with probability 0.3^16 (4e-9) and in all with 0.7^16 (3e-3).

Candidate rows: the rows that can be members, i.e. the pool's train part under `"split_scheme": "wemem"`
(WeMem's rows = train indices), else the whole pool. Scores are computed ONCE per config and shared by the
victim and every shadow, each reading its own rows (as WeMem shares one CSV); they are min-max normalised to
[0, 1] like WeMem's files (one 0 and one 1 per file).

Outputs under result/<config-stem>/memscore/: model_<k>.npz (that model's subset mask and correctness, written
as each model finishes, so a rerun resumes), scores.npz (index = pool rows, score = normalised, raw), and
memscore.csv in WeMem's format (header `,0`, row r = candidate r). `--memscore_csv FILE` imports WeMem's own
CSV instead of training.

Each model trains with the config's optimizer, lr, weight decay and batch size for `memscore.epochs` epochs
(0 = the config's `epochs`) without early stopping (Feldman & Zhang train a fixed schedule), the last epoch's
weights scored; fit still evaluates a small held-out slice per epoch, for the log only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import datasets
import provenance
from cli import base_parser, parse, run_main
from config import Config
from errors import UserError
from experiment import RunOptions, check_model_fits, configure_backends, resolve_device, result_dir, seed_everything
from models import build_model
from storage import (
    NPZ_ERRORS,
    atomic_save_npz,
    atomic_write,
    load_npz,
    log,
    npz_record,
    read_npz,
    save_npz_with_record,
    setup_logging,
)
from training import SplitTensors, TrainConfig, fit

EVAL_ROWS = 256  # held-out rows fit evaluates each epoch (log only: no early stopping here)


# ------------------------------------------------------------------------------------------ the estimator
def memscore_estimate(in_mask: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Raw mem(i) from (K, n) bool tables: mean correct over models with i in S minus over models without.

    A row never in (or never out of) any subset has no estimate: 0.0, see the module docstring.
    """
    in_mask, correct = np.asarray(in_mask, dtype=bool), np.asarray(correct, dtype=bool)
    if in_mask.shape != correct.shape or in_mask.ndim != 2:
        raise ValueError(f"in_mask {in_mask.shape} and correct {correct.shape} must be the same (K, n) shape")
    n_in, n_out = in_mask.sum(0), (~in_mask).sum(0)
    hit_in, hit_out = (correct & in_mask).sum(0), (correct & ~in_mask).sum(0)
    defined = (n_in > 0) & (n_out > 0)
    out = np.zeros(in_mask.shape[1])
    out[defined] = hit_in[defined] / n_in[defined] - hit_out[defined] / n_out[defined]
    return out


def minmax(scores: np.ndarray) -> np.ndarray:
    """(s - min) / (max - min), WeMem's normalisation (inferred from its files: one 0 and one 1 each);
    all equal -> all 0."""
    scores = np.asarray(scores, dtype=np.float64)
    span = scores.max() - scores.min()
    return np.zeros_like(scores) if span == 0 else (scores - scores.min()) / span


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
    """WeMem's pandas dump: header `,0`, then `row,score` per line."""
    atomic_write(path, lambda f: pd.DataFrame(np.asarray(scores, dtype=np.float64)).to_csv(f), mode="w")


def read_wemem_csv(path: Path, rows: int) -> np.ndarray:
    """Scores from WeMem's CSV (row i = candidate i); a missing, malformed or wrong-length file is a UserError."""
    path = Path(path)
    hint = f"expected WeMem's format: a header line ',0' then {rows} lines 'index,score'"
    if not path.is_file():
        raise UserError(f"mem-score CSV {path} not found", hint)
    try:
        table = pd.read_csv(path)
        values = np.asarray(table.iloc[:, 1], dtype=np.float64)
        index = np.asarray(table.iloc[:, 0])
    except (ValueError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"mem-score CSV {path} is malformed ({type(e).__name__}: {e})", hint) from None
    if len(values) != rows:
        raise UserError(f"mem-score CSV {path} has {len(values)} rows but the pool has {rows} candidates", hint)
    if not np.array_equal(index, np.arange(rows)) or not np.all(np.isfinite(values)):
        raise UserError(f"mem-score CSV {path} is malformed (rows must be 0..{rows - 1} with finite scores)", hint)
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
    """scores.npz (score per pool row, NaN for non-candidates; with its provenance `record`) and WeMem's CSV;
    returns the normalised scores. The CSV goes first: scores.npz is what says the scores are finished."""
    score = minmax(raw)
    per_pool = np.full(n_pool, np.nan)
    per_pool[rows] = score
    write_wemem_csv(folder / "memscore.csv", score)
    save_npz_with_record(folder / "scores.npz", record, index=rows, score=score, raw=raw, per_pool=per_pool)
    return score


def load_scores(folder: Path, split_rows: np.ndarray, command: str = "python memscore.py CONFIG",
                expected: dict[str, Any] | None = None) -> np.ndarray:
    """The mem-scores of one model's own training rows (pool indices, in split order): victim and shadows alike.
    `command`: the memscore.py command the error hint names; `expected`: settings the scores must have been
    made with (the run's config; memscore.py's own flags may differ), refused naming the first that differs."""
    path = Path(folder) / "scores.npz"
    if not path.is_file():
        raise UserError(f"mem-scores {path} not found", f"run: {command} (or with --memscore_csv FILE)")
    if expected is not None:
        record = npz_record(path)
        if record is None:
            raise UserError(f"mem-scores {path} are unreadable", f"make them again: {command} --overwrite")
        provenance.verify(str(path), record, provenance.Expected(expected, None),
                          f"make them again: {command} --overwrite", made="computed")
    per_pool = load_npz(path, ("per_pool",), f"{command} --overwrite")["per_pool"]
    scores = per_pool[np.asarray(split_rows)]
    if np.isnan(scores).any():
        raise UserError(f"{path} has no score for some training rows", "rerun memscore.py with the same split_scheme")
    return scores


# ------------------------------------------------------------------------------------------ the step
def main() -> None:
    p = base_parser("Memorization scores (Feldman & Zhang) for the WeMem defenses, once per config.")
    p.add_argument("--models", type=int, default=None, help="K, models on random subsets (config memscore.models)")
    p.add_argument("--fraction", type=float, default=None, help="subset fraction (config memscore.fraction)")
    p.add_argument("--memscore_epochs", type=int, default=None, help="epochs per model (config memscore.epochs; "
                                                                        "0 = the config's epochs)")
    p.add_argument("--memscore_csv", default=None, help="import WeMem's CSV (header ',0', row = train index)")
    args, opts, cfg = parse(p)
    configure_backends(opts.fast, opts.threads)
    device = resolve_device(opts.device)
    settings = {**cfg.memscore, **{k: v for k, v in (("models", args.models), ("fraction", args.fraction),
                                                      ("epochs", args.memscore_epochs)) if v is not None}}
    if not (int(settings["models"]) >= 2 and 0 < settings["fraction"] < 1 and int(settings["epochs"]) >= 0):
        raise UserError(f"bad mem-score settings {settings}", "models >= 2, 0 < fraction < 1, epochs >= 0")
    folder = result_dir(cfg) / "memscore"
    setup_logging(Path("log") / cfg.stem / "memscore.log")
    seed_everything(cfg.seed)
    pool = datasets.load_pool(cfg.dataset_name, Path(cfg.data_root), input_dim=cfg.input_dim, num_cls=cfg.num_cls,
                              download=False)
    check_model_fits(cfg, pool.x[:2])
    rows = candidate_rows(pool, cfg.split_scheme, cfg.seed)
    split = provenance.split_fingerprint(cfg.seed, cfg.split_scheme, {}, [rows])
    if args.memscore_csv:
        raw = read_wemem_csv(Path(args.memscore_csv), len(rows))
        imported = {"memscore_csv": hashlib.sha256(Path(args.memscore_csv).read_bytes()).hexdigest()[:16]}
        record = provenance.new_record("memscore", score_settings(cfg, opts, imported), split)
        save_scores(folder, rows, raw, len(pool.y), record)
        log.info(f"mem-scores imported from {args.memscore_csv}: {len(rows)} rows -> {folder / 'scores.npz'}")
        return
    expected = score_settings(cfg, opts, settings)
    if (folder / "scores.npz").is_file() and not opts.overwrite:
        record = npz_record(folder / "scores.npz")
        if record is not None:  # unreadable: made again
            provenance.verify(str(folder / "scores.npz"), record, provenance.Expected(expected, split),
                              "rerun with --overwrite to replace them", made="computed")
            log.info(f"{folder / 'scores.npz'}: up to date (same settings and rows), nothing to do "
                     "(use --overwrite to redo)")
            return
    epochs = int(settings["epochs"]) or cfg.epochs
    train_cfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, early_stop=epochs, optimizer=cfg.optimizer,
                            lr=cfg.lr, weight_decay=cfg.weight_decay, progress=False)
    start = time.perf_counter()
    masks, _, raw = compute_scores(lambda: build_model(cfg.model_name, cfg.num_cls, cfg.input_dim),
                                   pool.x[rows].to(device), pool.y[rows].to(device), models=int(settings["models"]),
                                   fraction=float(settings["fraction"]), cfg=train_cfg, seed=cfg.seed, folder=folder,
                                   progress=not opts.quiet, tag=provenance.fingerprint(expected))
    score = save_scores(folder, rows, raw, len(pool.y), provenance.new_record("memscore", expected, split))
    undefined = int((masks.all(0) | (~masks).all(0)).sum())
    log.info(f"mem-scores: {len(rows)} rows, K={int(settings['models'])}, fraction {settings['fraction']}, "
             f"{epochs} epochs, {time.perf_counter() - start:.1f} s; mean {score.mean():.3f}, share >= 0.6 "
             f"{(score >= 0.6).mean():.3f}, {undefined} rows always in or always out (raw 0) -> {folder}")


def score_settings(cfg: Config, opts: RunOptions, memscore_settings: dict[str, Any]) -> dict[str, Any]:
    """The effective settings of the scores: the config's (provenance.IGNORED["memscore"] lists what cannot
    change them) and memscore.py's own (K, fraction, epochs after its flags; or the imported CSV's hash)."""
    return provenance.effective_settings(dataclasses.asdict(cfg), vars(opts), "memscore", memscore=memscore_settings)


if __name__ == "__main__":
    run_main(main)
