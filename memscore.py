"""Per-sample memorization scores (Feldman & Zhang, NeurIPS'20) for the WeMem defenses (docs/design.md §10.2).

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

import datasets
from core import provenance
from core.config_schema import Config
from core.errors import UserError
from core.storage import log, npz_record, setup_logging
from core.training import TrainConfig
from defenses.memscores import candidate_rows, compute_scores, read_wemem_csv, save_scores
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
