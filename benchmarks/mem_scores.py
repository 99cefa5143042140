"""Section "memscore": mem-score subset models (`memscore.py`, Feldman & Zhang) per hour, the unit of its cost."""
from __future__ import annotations

import dataclasses

from benchmarks.common import Bench, Profile, Section, fmt_s, load_experiment, now, table


def bench_memscore(stem: str, prof: Profile, models: int = 2) -> list[str]:
    """Mem-score subset models (memscore.compute_scores, the config's epochs, fraction 0.7) per hour: the
    unit of memscore.py's cost, so K models of a config take K / rate hours on this machine."""
    from defenses import memscores
    exp = load_experiment(stem)
    cfg = exp.cfg
    epochs = int(cfg.memscore["epochs"]) or cfg.epochs
    train = dataclasses.replace(exp.train_config(epochs), early_stop=epochs, progress=False)
    x, y = exp.pool.x, exp.pool.y
    t0 = now()
    memscores.compute_scores(exp.fresh_model, x, y, models=models, fraction=float(cfg.memscore["fraction"]),
                            cfg=train, seed=cfg.seed, progress=False)
    per_model = (now() - t0) / models
    return [stem, f"{len(y):,} rows, {epochs} epochs", fmt_s(per_model), f"**{3600 / per_model:,.0f}**",
            f"{fmt_s(int(cfg.memscore['models']) * per_model)} for K = {int(cfg.memscore['models'])}"]


def run(bench: Bench) -> str:
    rows = [bench_memscore(c, bench.prof) for c in bench.configs]
    return ("Mem-score models (`memscore.py`, Feldman & Zhang subsets; one process)\n\n"
            + table(["config", "data, epochs per model", "per model", "models per hour", "the config's K"], rows))


SECTION = Section("memscore", "mem-score models per hour (memscore.py)", run, uses_configs=True)
