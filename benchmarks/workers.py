"""Section "workers": the victim + shadows trained in one process with every core against one process per
core (`pretrain.py --workers`), whole runs alternating."""
from __future__ import annotations

import math
import os
import sys

from benchmarks.common import ROOT, Bench, Profile, Section, data_root, fmt_s, run_step, table, workdir
from core.config_schema import load_config


def bench_workers(stem: str, prof: Profile) -> list[str]:
    """pretrain.py on the victim + shadows: one process with every core vs --workers = cores, one thread
    each; the same models either way (tests/test_pretrain.py checks they are bit-identical)."""
    cores = max(1, os.cpu_count() or 1)
    flags = prof.workers[stem]
    walls: dict[int, float] = {}
    with workdir() as (work, logs):
        cfg = load_config(ROOT / "config" / f"{stem}.json")
        base = [sys.executable, str(ROOT / "pretrain.py"), "cpu", f"config/{stem}.json", "--quiet",
                "--data_root", str(data_root(cfg)), "--threads", str(cores), *flags]
        # Alternate the two sides so drifts in the machine's load hit both alike.
        for rep in range(prof.repeats):
            for workers in (1, cores):
                wall, ok = run_step(f"workers{workers}_{rep}", base + ["--workers", str(workers), "--overwrite"],
                                    work, logs)
                if not ok:
                    return [stem, " ".join(flags), "FAILED", "", "", ""]
                walls[workers] = min(walls.get(workers, math.inf), wall)
    models = 1 + int(flags[flags.index("--shadow_num") + 1])
    return [stem, f"{models} models ({' '.join(flags)})", fmt_s(walls[1]), fmt_s(walls[cores]),
            str(cores), f"**{walls[1] / walls[cores]:.2f}x**"]


def run(bench: Bench) -> str:
    rows = [bench_workers(c, bench.prof) for c in bench.configs]
    return ("Victim + shadows: one process vs one process per core (`pretrain.py --workers`)\n\n"
            "Whole `pretrain.py` runs (Python start, imports and data loading included), best of "
            f"{bench.prof.repeats}, alternating.\n\n"
            + table(["config", "what", f"1 process, {os.cpu_count()} threads", "N processes, 1 thread each",
                     "N", "speedup"], rows))


SECTION = Section("workers", "victim + shadows: one process vs one process per core (pretrain.py --workers)",
                  run, uses_configs=True, config_flags=True)
