"""Section "rerun": a finished grid run again, with nothing left to do, both ways: the driver leaving out the
tasks whose records match (launch/records.py, the default) against starting every task's step so it checks its
own outputs (`grid.py --recheck`, what every rerun did before the records), interleaved, best of the repeats."""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, Bench, Section, fmt_s, import_seconds, now, table
from launch.base import Context
from launch.driver import run_grid
from launch.local import LocalLauncher
from launch.profiles import GridBlock
from launch.progress import UP_TO_DATE, Progress
from launch.records import code_folders
from launch.tasks import Task, build_tasks

# The launcher tests' small real grid (victim + 1 shadow, 3 epochs; every attack), one or three sparsities.
FLAGS = "--shadow_num 1 --epochs 3 --prune_epochs 1 --attack_epochs 2"
GRIDS = {True: GridBlock("digits_columnfc", sparsities=(0.7,), flags=FLAGS),
         False: GridBlock("digits_columnfc", sparsities=(0.5, 0.7, 0.9), flags=FLAGS)}


def checkout(root: Path, config: str) -> None:
    """A working folder as run_all.sh sees the repository: the scripts and packages (linked) and the config."""
    (root / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / f"{config}.json", root / "config")
    for path in [*ROOT.glob("*.py"), ROOT / "pyproject.toml", *code_folders(ROOT)]:
        (root / path.name).symlink_to(path)


def timed_run(tasks: list[Task], root: Path, jobs: int, recheck: bool) -> tuple[float, int]:
    """One grid run through the driver on the local launcher: (wall seconds, tasks whose step was started)."""
    progress = Progress(tasks, "bench rerun", out=io.StringIO())
    launcher = LocalLauncher(argparse.Namespace(jobs=jobs, gpus_per_task=0.0), Context(root, sys.executable, 0))
    t0 = now()
    run_grid(tasks, launcher, progress, recheck=recheck)
    seconds = now() - t0
    if not progress.ok:
        raise RuntimeError(progress.summary())
    return seconds, sum(o.tail != UP_TO_DATE for o in progress.outcomes.values())


def run(bench: Bench) -> str:
    block = GRIDS[bench.quick]
    jobs = min(2, os.cpu_count() or 1)  # run_all.sh --quick's default
    tasks = build_tasks([block.commands()], cpus=1)
    with tempfile.TemporaryDirectory(prefix="prune_mia_bench_") as tmp:
        root = Path(tmp)
        checkout(root, block.config)
        first, _ = timed_run(tasks, root, jobs, recheck=False)
        best = {True: (float("inf"), 0), False: (float("inf"), 0)}
        for _ in range(bench.prof.repeats):  # interleaved: the steps' checks, then the records
            for recheck in (True, False):
                seconds, started = timed_run(tasks, root, jobs, recheck)
                best[recheck] = min(best[recheck], (seconds, started))
    (steps_s, steps_n), (fast_s, fast_n) = best[True], best[False]
    n = len(tasks)
    row = [f"{block.config}, {n} tasks ({FLAGS})", fmt_s(first), f"{fmt_s(steps_s)} ({steps_n} steps started)",
           f"{fmt_s(fast_s)} ({fast_n} steps started)", f"{fmt_s(steps_s / n)} vs {fmt_s(fast_s / n)}",
           f"**{steps_s / fast_s:,.0f}x**"]
    return ("A no-op rerun of a finished grid: task records vs each step checking its outputs\n\n"
            f"`--jobs {jobs}`, local launcher, through the grid driver in this process; best of "
            f"{bench.prof.repeats}, alternating. A `grid.py` run also pays once, either way, for its own start "
            f"(Python, torch and the project imported: {fmt_s(import_seconds())} here), not per task.\n\n"
            + table(["grid", "first run", "rerun, every step checks its outputs (`--recheck`)",
                     "rerun, task records (default)", "per task", "speedup"], [row]))


SECTION = Section("rerun", "a no-op rerun of a finished grid: task records vs every step checking its outputs", run)
