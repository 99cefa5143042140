"""Per-sample memorization scores (Feldman & Zhang, NeurIPS'20) for the WeMem defenses (docs/design.md §10.2).

    mem(i) = P[model correct on i | i in S] - P[model correct on i | i not in S]

estimated from K models of the config's kind, model k trained on a random subset S_k (a fixed fraction of
the candidate rows, drawn without replacement): the two probabilities are the mean correctness over the
models that did / did not train on i. A row that was in every subset or in none has no estimate: NaN in the
table and an empty field in the CSV (0 would rank it as unmemorised), counted in the log; the WeMem defenses
treat such rows explicitly (defenses/wemem.py). With K = 16 and fraction 0.7 a row is out of all 16 subsets
with probability 0.3^16 (4e-9) and in all with 0.7^16 (3e-3).

Scores are correctness differences over K models, so many rows tie: a row every model gets right, in or out,
scores exactly 0. Measured on synthetic Purchase (10 epochs, fraction 0.7): 66 % of the rows at K = 8, 60 % at
16, 54 % at 32, 49 % at 64; the log and scores.npz (`tie_share`) give the share, because over a tie a window
ranked by mem-score follows the split's own order, i.e. the `random` ablation.

Candidate rows: the rows that can be members, i.e. the pool's train part under `"split_scheme": "wemem"`
(WeMem's rows = train indices), else the whole pool. Scores are computed ONCE per config and shared by the
victim and every shadow, each reading its own rows (as WeMem shares one CSV); they are min-max normalised to
[0, 1] like WeMem's files (one 0 and one 1 per file).

Outputs under result/<config-stem>/memscore/: model_<k>.npz (that model's subset mask and correctness, written
as each model finishes, so a rerun resumes), scores.npz (index = pool rows, score = normalised, raw), and
memscore.csv in WeMem's format (header `,0`, row r = candidate r). `--memscore_csv FILE` imports WeMem's own
CSV instead of training; it never replaces scores computed here (nor computed scores an import, nor scores of
other settings) without --overwrite. K, the fraction and the epochs are checked, flags included, against the
config key's bounds before any work, and a fraction that leaves a subset under 2 rows (or none out) is refused.

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

import datasets
from core import provenance
from core.config_schema import Config, validate_sub
from core.errors import UserError
from core.storage import log, npz_record, setup_logging
from core.training import TrainConfig
from defenses.memscores import candidate_rows, compute_scores, largest_tie, read_wemem_csv, save_scores
from experiment import RunOptions, check_model_fits, configure_backends, resolve_device, result_dir, seed_everything
from experiment.cli import base_parser, parse, run_main
from models import build_model


# ------------------------------------------------------------------------------------------ the step
def main() -> None:
    p = base_parser("Memorization scores (Feldman & Zhang) for the WeMem defenses, once per config.")
    p.add_argument("--models", type=int, default=None, help="K, models on random subsets (config memscore.models)")
    p.add_argument("--fraction", type=float, default=None, help="subset fraction (config memscore.fraction)")
    p.add_argument("--memscore_epochs", type=int, default=None, help="epochs per model (config memscore.epochs; "
                                                                        "0 = the config's epochs)")
    p.add_argument("--memscore_csv", default=None, help="import WeMem's CSV (header ',0', row = train index)")
    args, opts, cfg = parse(p)
    settings = {**cfg.memscore, **{k: v for k, v in (("models", args.models), ("fraction", args.fraction),
                                                      ("epochs", args.memscore_epochs)) if v is not None}}
    validate_sub(settings, Path(f"{opts.config_path} (with command-line flags)"), "memscore")
    configure_backends(opts.fast, opts.threads)
    device = resolve_device(opts.device)
    folder = result_dir(cfg) / "memscore"
    setup_logging(Path("log") / cfg.stem / "memscore.log")
    seed_everything(cfg.seed)
    pool = datasets.load_pool(cfg.dataset_name, Path(cfg.data_root), input_dim=cfg.input_dim, num_cls=cfg.num_cls,
                              download=False)
    check_model_fits(cfg, pool.x[:2])
    rows = candidate_rows(pool, cfg.split_scheme, cfg.seed)
    split = provenance.split_fingerprint(cfg.seed, cfg.split_scheme, {}, [rows])
    if args.memscore_csv:
        if pool.csv_rows:
            raise UserError(f"cannot import {args.memscore_csv}: {pool.csv_rows}",
                            "put WeMem's index file beside the dataset (datasets.py's layout), or compute the scores")
        raw = read_wemem_csv(Path(args.memscore_csv), len(rows))
        imported = {"memscore_csv": hashlib.sha256(Path(args.memscore_csv).read_bytes()).hexdigest()[:16]}
        if up_to_date(folder, score_settings(cfg, opts, imported), split, opts.overwrite):
            return
        record = provenance.new_record("memscore", score_settings(cfg, opts, imported), split)
        save_scores(folder, rows, raw, len(pool.y), record)
        log.info(f"mem-scores imported from {args.memscore_csv}: {len(rows)} rows ({int(np.isnan(raw).sum())} "
                 f"without an estimate) -> {folder / 'scores.npz'}")
        return
    expected = score_settings(cfg, opts, settings)
    if up_to_date(folder, expected, split, opts.overwrite):
        return
    check_subsets(len(rows), float(settings["fraction"]))
    epochs = int(settings["epochs"]) or cfg.epochs
    train_cfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, early_stop=epochs, optimizer=cfg.optimizer,
                            lr=cfg.lr, weight_decay=cfg.weight_decay, progress=False)
    start = time.perf_counter()
    masks, _, raw = compute_scores(lambda: build_model(cfg.model_name, cfg.num_cls, cfg.input_dim),
                                   pool.x[rows].to(device), pool.y[rows].to(device), models=int(settings["models"]),
                                   fraction=float(settings["fraction"]), cfg=train_cfg, seed=cfg.seed, folder=folder,
                                   progress=not opts.quiet, tag=provenance.fingerprint(expected))
    score = save_scores(folder, rows, raw, len(pool.y), provenance.new_record("memscore", expected, split))
    known = score[np.isfinite(score)]
    log.info(f"mem-scores: {len(rows)} rows, K={int(settings['models'])}, fraction {settings['fraction']}, "
             f"{epochs} epochs, {time.perf_counter() - start:.1f} s; mean {known.mean():.3f}, share >= 0.6 "
             f"{(known >= 0.6).mean():.3f}, {len(score) - len(known)} rows always in or always out (no estimate, "
             f"NaN); {100 * largest_tie(score):.1f} % of the estimated rows tie at one score, where a window "
             f"ranked by mem-score follows the split's own order -> {folder}")


def up_to_date(folder: Path, expected: dict[str, Any], split: dict[str, Any], overwrite: bool) -> bool:
    """Whether scores.npz holds the scores this run would make (True: nothing to do, logged). Scores made
    otherwise are refused before any work, naming what made them: computed scores are never replaced by an
    import (nor an import by computed scores, nor either by other settings) without --overwrite."""
    path = folder / "scores.npz"
    if overwrite or not path.is_file():
        return False
    record = npz_record(path)
    if record is None:  # unreadable: made again
        return False
    made = record.get("settings", {}).get("memscore") if isinstance(record.get("settings"), dict) else None
    asked = expected["memscore"]
    if isinstance(made, dict) and ("memscore_csv" in made) != ("memscore_csv" in asked):
        what = (f"imported from a CSV (sha256 {made['memscore_csv']})" if "memscore_csv" in made
                else f"computed from K={made.get('models')} models")
        this = "import a CSV over them" if "memscore_csv" in asked else "compute scores over them"
        raise UserError(f"{path} holds mem-scores {what}; this run would {this}",
                        "rerun with --overwrite to replace them (every WeMem model made from them is made again)")
    provenance.verify(str(path), record, provenance.Expected(expected, split), "rerun with --overwrite to replace "
                      "them", made="computed")
    log.info(f"{path}: up to date (same settings and rows), nothing to do (use --overwrite to redo)")
    return True


def check_subsets(rows: int, fraction: float) -> None:
    """Each model must train on at least 2 rows (BatchNorm) and leave at least one out to score."""
    size = int(round(fraction * rows))
    if not 2 <= size <= rows - 1:
        raise UserError(f"memscore.fraction {fraction:g} of the {rows} candidate rows gives subsets of {size} rows",
                        f"each model trains on 2 to {rows - 1} rows: a fraction between {2 / rows:.2g} and "
                        f"{(rows - 1) / rows:.4g}")


def score_settings(cfg: Config, opts: RunOptions, memscore_settings: dict[str, Any]) -> dict[str, Any]:
    """The effective settings of the scores: the config's (provenance.IGNORED["memscore"] lists what cannot
    change them) and memscore.py's own (K, fraction, epochs after its flags; or the imported CSV's hash)."""
    return provenance.effective_settings(dataclasses.asdict(cfg), vars(opts), "memscore", memscore=memscore_settings)


if __name__ == "__main__":
    run_main(main)
