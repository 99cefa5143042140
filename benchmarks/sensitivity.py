"""Section "sens": sensitivity features (eq. 2), all noisy copies in one forward (attackers.features) against the
plain loop over copies, on the same noise."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attackers.features import _inference, _softmax64, sensitivity
from benchmarks.common import Bench, Profile, Section, fmt_rate, fresh, load_experiment, now, table, train_config
from core.training import TrainHooks, make_optimizer, train_one_epoch


def sensitivity_loop(model: nn.Module, x: torch.Tensor, *, n: int, eps: float, batch_size: int = 512,
                     generator: torch.Generator | None = None) -> np.ndarray:
    """The plain alternative: one forward for the clean chunk and one per noisy copy, with the noise of
    attackers.features.sensitivity (same draw order), so both give the same numbers."""
    out: list[torch.Tensor] = []
    with _inference(model):
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start:start + batch_size]
            noise = torch.randn((n, *chunk.shape), generator=generator, dtype=chunk.dtype)
            clean = _softmax64(model(chunk))
            acc = torch.zeros_like(clean)
            for i in range(n):
                acc += (_softmax64(model(chunk + eps * noise[i])) - clean).abs()
            out.append(acc / n / eps)
    return torch.cat(out).numpy()


def bench_sensitivity(stem: str, prof: Profile) -> list[str]:
    exp = load_experiment(stem)
    data = exp.tensors(None)
    x = torch.cat([data.train_x, data.test_x])
    n, eps = int(exp.cfg.sensitivity["n"]), float(exp.cfg.sensitivity["eps"])
    model = fresh(exp)
    # A briefly trained model, so the softmax is not uniform (as for a real victim).
    tc = train_config(exp)
    opt = make_optimizer(model, tc)
    train_one_epoch(model, opt, data.train_x, data.train_y, hooks=TrainHooks(), cfg=tc,
                    generator=torch.Generator().manual_seed(0), epoch=0)
    sensitivity(model, x[:64], n=n, eps=eps)  # warm-up
    times_b, times_l, diff = [], [], 0.0
    for _ in range(prof.repeats):
        t0 = now()
        batched = sensitivity(model, x, n=n, eps=eps, generator=torch.Generator().manual_seed(3))
        times_b.append(now() - t0)
        t0 = now()
        looped = sensitivity_loop(model, x, n=n, eps=eps, generator=torch.Generator().manual_seed(3))
        times_l.append(now() - t0)
        diff = max(diff, float(np.max(np.abs(batched - looped)) / max(np.max(np.abs(looped)), 1e-300)))
    rows = len(x)
    b, lp = rows / min(times_b), rows / min(times_l)
    return [stem, f"{rows} x (1 + {n})", fmt_rate(lp), fmt_rate(b), f"{b / lp:.2f}x", f"{diff:.1e}"]


def run(bench: Bench) -> str:
    rows = [bench_sensitivity(c, bench.prof) for c in bench.configs]
    return "Sensitivity features (victim train + test rows, same noise)\n\n" + table(
        ["config", "forwards", "plain loop rows/s", "batched rows/s", "speedup", "max rel. diff"], rows)


SECTION = Section("sens", "sensitivity features: batched noisy copies vs a plain loop", run, uses_configs=True)
