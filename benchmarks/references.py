"""Section "refs": reference models for LiRA / RMIA online (`refs.py`) per hour, the original's and pruned ones
(which start from the original references), from refs.py's own timing."""
from __future__ import annotations

import sys

from benchmarks.common import ROOT, Bench, Profile, Section, data_root, fmt_s, run_step, table, workdir
from core.config_schema import load_config


def made_rate(log_text: str) -> tuple[int, float]:
    """(references, seconds) from refs.py's `Made N references in S s` line (training only, no start-up)."""
    line = [ln for ln in log_text.splitlines() if ln.startswith("Made ")][-1].split()
    return int(line[1]), float(line[4])


def bench_refs(stem: str, prof: Profile, threads: int | None) -> list[list[str]]:
    """refs.py as the grid runs it: the original references, then the same references pruned (l1unstructure
    0.6) and fine-tuned; references per hour from refs.py's own timing, and the whole process's wall time."""
    flags = prof.refs[stem]
    cfg = load_config(ROOT / "config" / f"{stem}.json")
    common = ["cpu", f"config/{stem}.json", "--quiet", "--data_root", str(data_root(cfg)), *flags]
    if threads is not None:
        common += ["--threads", str(threads)]
    rows = []
    with workdir() as (work, logs):
        for name, extra in (("original", ["--original"]), ("l1unstructure 0.6", ["--prune_sparsity", "0.6"])):
            tag = name.split()[0]
            wall, ok = run_step(f"refs_{tag}", [sys.executable, str(ROOT / "refs.py"), *common, *extra], work, logs)
            if not ok:
                return [[stem, name, " ".join(flags), "FAILED", "", ""]]
            n, seconds = made_rate((logs / f"refs_{tag}.out").read_text())
            rows.append([stem, name, " ".join(flags), f"{n} in {fmt_s(seconds)}", f"**{3600 * n / seconds:.0f}**",
                         fmt_s(wall)])
    return rows


def run(bench: Bench) -> str:
    rows = [r for c in bench.configs for r in bench_refs(c, bench.prof, bench.threads)]
    return ("Reference models for LiRA / RMIA online (`refs.py`, one process)\n\n"
            "Pruned references start from the original ones, so their rate is prune + fine-tune only; a "
            "pruned setting made from scratch costs both rows.\n\n"
            + table(["config", "references", "flags", "made", "references per hour", "refs.py wall"], rows))


SECTION = Section("refs", "reference models per hour (refs.py)", run, uses_configs=True, config_flags=True)
