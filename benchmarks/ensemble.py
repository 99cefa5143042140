"""Section "ensemble": many models at once, `training.fit` one at a time against `ensemble.fit_ensemble` (vmap over
stacked weights), models per hour both ways."""
from __future__ import annotations

import math

import torch

from benchmarks.common import Bench, Profile, Section, fmt_s, now, table
from core.training import TrainConfig


def bench_ensemble(prof: Profile, k: int = 6, rows: int = 4950, epochs: int = 1) -> list[list[str]]:
    """K columnfc models on synthetic_purchase-shaped random data: one at a time (training.fit) vs at once
    (ensemble.fit_ensemble), interleaved, best of prof.repeats; models per hour both ways."""
    from core.training import SplitTensors, fit
    from experiment.ensemble import fit_ensemble
    from models import build_model
    gen = torch.Generator().manual_seed(0)

    def split() -> SplitTensors:
        parts = []
        for n in (rows, rows * 2 // 9, rows):  # the 45/10/45 split of a half
            parts += [torch.randint(0, 2, (n, 600), generator=gen).float(), torch.randint(0, 100, (n,), generator=gen)]
        return SplitTensors(*parts)
    datas = [split() for _ in range(k)]
    cfg = TrainConfig(epochs=epochs, batch_size=128, early_stop=epochs, optimizer="adam", lr=1e-3, progress=False)

    def one_at_a_time() -> None:
        for i, d in enumerate(datas):
            torch.manual_seed(i)
            fit(build_model("columnfc", 100, 600), d, cfg, generator=torch.Generator().manual_seed(i))

    def at_once() -> None:
        models, drop = [], []
        for i in range(k):
            torch.manual_seed(i)
            models.append(build_model("columnfc", 100, 600))
            drop.append(torch.Generator().manual_seed(100 + i))
        fit_ensemble(models, datas, cfg, [torch.Generator().manual_seed(i) for i in range(k)], drop)

    best = {"alone": math.inf, "ensemble": math.inf}
    for _ in range(prof.repeats):
        for name, fn in (("alone", one_at_a_time), ("ensemble", at_once)):
            t0 = now()
            fn()
            best[name] = min(best[name], now() - t0)
    per_hour = {n: k * 3600 / t for n, t in best.items()}
    return [[f"{k} x columnfc, {rows:,} x 600 -> 100, {epochs} epoch(s) each", fmt_s(best["alone"]),
             fmt_s(best["ensemble"]), f"{per_hour['alone']:,.0f}", f"{per_hour['ensemble']:,.0f}",
             f"{best['alone'] / best['ensemble']:.2f}x"]]


def run(bench: Bench) -> str:
    return ("Many models at once: `training.fit` one at a time vs `ensemble.fit_ensemble`\n\n"
            + table(["work", "one at a time", "at once", "models/h one at a time", "models/h at once",
                     "speedup"], bench_ensemble(bench.prof)))


SECTION = Section("ensemble", "many models at once: training.fit one at a time vs ensemble.fit_ensemble", run)
