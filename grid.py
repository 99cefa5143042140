"""Run the experiment grid of run_all.sh on a launcher. The profiles themselves (which commands each runs, one
`GridBlock` line per config block) are in launch/profiles.py.

    python grid.py --profile quick|paper [--dry-run] [--launcher local|ray|slurm] [--jobs N]  (run_all.sh calls this)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.errors import UserError
from experiment.cli import run_main
from launch import LAUNCHERS
from launch.base import Context
from launch.profiles import PROFILES, check_names, grid_tasks
from launch.progress import Progress
from launch.tasks import describe


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run an experiment grid (see run_all.sh and README 'Running the grid "
                                            "on a cluster').")
    p.add_argument("--profile", choices=PROFILES, required=True)
    p.add_argument("--dry-run", action="store_true", help="print the task graph (each task with its dependencies "
                                                          "and resources), run nothing")
    p.add_argument("--launcher", choices=LAUNCHERS.names(), default="local",
                   help="where the tasks run: " + "; ".join(f"{e.name}: {e.help}" for e in LAUNCHERS))
    p.add_argument("--jobs", type=int, default=1,
                   help="local: tasks side by side (training steps first, then the attacks, each once what it "
                        "reads is done); every launcher: sets the default --cpus_per_task")
    p.add_argument("--cpus_per_task", type=int, default=None,
                   help="threads of each step and the CPUs a backend reserves for it (default: cores // --jobs, "
                        "the same on every launcher, so every launcher computes the same numbers)")
    p.add_argument("--gpus_per_task", type=float, default=None,
                   help="GPUs reserved per task; a fraction packs small models on one GPU (local, ray). Default: "
                        "local: one GPU per slot while there are enough, else an equal share; ray: 1 if the "
                        "cluster has GPUs; slurm: 0")
    p.add_argument("--retries", type=int, default=2,
                   help="runs more of a task whose step or worker was killed (a failing step is not retried)")
    for launcher in LAUNCHERS:
        launcher.add_flags(p.add_argument_group(f"--launcher {launcher.name}"))
    return p


def main() -> None:
    args = parser().parse_args()
    if args.jobs < 1 or (args.cpus_per_task is not None and args.cpus_per_task < 1) or args.retries < 0:
        raise UserError("--jobs and --cpus_per_task must be >= 1, --retries >= 0")
    if args.gpus_per_task is not None and args.gpus_per_task < 0:
        raise UserError(f"--gpus_per_task must be >= 0, got {args.gpus_per_task:g}")
    blocks = PROFILES[args.profile]
    check_names(blocks)
    launcher = LAUNCHERS.get(args.launcher)(args, Context(Path.cwd(), sys.executable, args.retries))
    cpus = args.cpus_per_task or max(1, (os.cpu_count() or 1) // args.jobs)
    if args.dry_run:
        print(describe(grid_tasks(blocks, cpus, args.gpus_per_task or 0.0)))
        return
    missing = [e.config for e in blocks if not Path(f"config/{e.config}.json").exists()]
    if missing:
        raise UserError(f"config files missing: {', '.join(missing)}", "run from the repository root")
    if args.gpus_per_task is None:
        args.gpus_per_task = launcher.gpus_per_task()
    launcher.check()
    tasks = grid_tasks(blocks, cpus, args.gpus_per_task)
    progress = Progress(tasks, f"grid {args.profile} ({args.launcher})")
    launcher.run(tasks, progress)
    print(progress.summary(), flush=True)
    if not progress.ok:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
