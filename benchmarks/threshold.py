"""Section "threshold": fitting a threshold by one sort and a cumulative pass against the artifact's exhaustive
O(n^2) search, and the whole threshold attack on 270,000 shadow rows."""
from __future__ import annotations

import numpy as np

from attackers.base import AttackInput
from attackers.threshold import ThresholdAttack, fit_threshold, fit_threshold_exhaustive
from benchmarks.common import Bench, Profile, Section, fmt_s, now, table


def bench_threshold(prof: Profile) -> list[list[str]]:
    rng = np.random.default_rng(0)
    half = 135_000
    # Confidence-like values rounded to 4 decimals: ~10k distinct values, so most values are tied.
    in_vals = np.round(rng.beta(5, 2, half), 4)
    out_vals = np.round(rng.beta(2, 2, half), 4)
    rows: list[list[str]] = []

    fast = []
    for _ in range(prof.repeats):
        t0 = now()
        t_fast = fit_threshold(in_vals, out_vals)
        fast.append(now() - t0)
    sub = prof.exhaustive_rows // 2
    idx = rng.choice(half, sub, replace=False)
    sin, sout = in_vals[idx], out_vals[idx]
    t0 = now()
    t_exh = fit_threshold_exhaustive(sin, sout)
    exh = now() - t0
    agree = t_exh == fit_threshold(sin, sout)
    small = []
    for _ in range(prof.repeats):
        t0 = now()
        fit_threshold(sin, sout)
        small.append(now() - t0)
    scale = (2 * half / (2 * sub)) ** 2
    rows.append([f"fit_threshold_exhaustive (artifact, O(n²)), {2 * sub:,} rows", fmt_s(exh), "measured"])
    rows.append([f"fit_threshold, {2 * sub:,} rows (same threshold: {'yes' if agree else 'NO'})",
                 fmt_s(min(small)), f"{exh / min(small):,.0f}x faster"])
    rows.append([f"fit_threshold_exhaustive, {2 * half:,} rows", f"≈ {fmt_s(exh * scale)}",
                 f"extrapolated ×{scale:,.0f} (quadratic)"])
    rows.append([f"fit_threshold, {2 * half:,} rows (threshold {t_fast:.4f})", fmt_s(min(fast)),
                 f"≈ {exh * scale / min(fast):,.0f}x faster"])

    # The real use: ThresholdAttack.run = 6 scores x (1 global + per-class) fits on 270k shadow rows.
    num_cls = 100
    probs = rng.dirichlet(np.full(num_cls, 0.1), 2 * half)
    labels = rng.integers(0, num_cls, 2 * half)
    member = np.r_[np.ones(half, np.int64), np.zeros(half, np.int64)]
    target = slice(0, 20_000)
    data = AttackInput(shadow_probs=probs, shadow_sens=probs, shadow_labels=labels, shadow_member=member,
                       target_probs=probs[target], target_sens=probs[target], target_labels=labels[target],
                       target_member=member[target], num_cls=num_cls)
    t0 = now()
    ThresholdAttack().run(data)
    rows.append([f"ThresholdAttack.run: 6 scores, {num_cls} per-class thresholds, {2 * half:,} shadow rows",
                 fmt_s(now() - t0), "whole attack"])
    return rows


def run(bench: Bench) -> str:
    return ("Threshold fitting (135k in + 135k out shadow rows, values rounded to 4 decimals: ties)\n\n"
            + table(["what", "time", "note"], bench_threshold(bench.prof)))


SECTION = Section("threshold", "threshold fitting: sort + cumulative pass vs the exhaustive search", run)
