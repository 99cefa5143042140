"""Run the experiment grid of run_all.sh on a launcher. The profiles themselves (which commands each runs, one
`GridBlock` line per config block) are in launch/profiles.py.

    python grid.py --profile quick|paper [--dry-run] [--launcher local|ray|slurm] [--jobs N] [--recheck]

A rerun leaves out the tasks whose records say they are done (launch/records.py) and runs the others' steps,
which check their own outputs. No torch is imported before the task graph is built (`--help` answers at once).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.cli import Parser, bounded, run_main
from core.errors import UserError
from core.version import add_version_flag
from launch import LAUNCHERS
from launch.base import Context, check_requirements
from launch.driver import run_grid
from launch.profiles import PROFILES, check_names, grid_tasks
from launch.progress import Progress
from launch.tasks import describe

MAX_JOBS = 1024  # tasks side by side on one machine; more is a typo, not a plan
MAX_CPUS = 4096


def parser() -> Parser:
    p = Parser(description="Run an experiment grid (see run_all.sh and README 'Running the grid on a cluster').",
               once=True)
    p.add_argument("--profile", choices=PROFILES, required=True)
    p.add_argument("--dry-run", action="store_true", help="print the task graph (each task with its dependencies "
                                                          "and resources), run nothing")
    p.add_argument("--launcher", choices=LAUNCHERS.names(), default="local",
                   help="where the tasks run: " + "; ".join(f"{e.name}: {e.help}" for e in LAUNCHERS))
    p.add_argument("--jobs", type=bounded(int, 1, MAX_JOBS), default=1,
                   help="local: tasks side by side (training steps first, then the attacks, each once what it "
                        "reads is done); every launcher: sets the default --cpus_per_task")
    p.add_argument("--cpus_per_task", type=bounded(int, 1, MAX_CPUS), default=None,
                   help="threads of each step and the CPUs a backend reserves for it (default: cores // --jobs, "
                        "the same on every launcher, so every launcher computes the same numbers)")
    p.add_argument("--gpus_per_task", type=bounded(float, 0, 64), default=None,
                   help="GPUs reserved per task; a fraction packs small models on one GPU (local, ray). Default: "
                        "local: one GPU per slot while there are enough, else an equal share; ray: 1 if the "
                        "cluster has GPUs; slurm: 0")
    p.add_argument("--retries", type=bounded(int, 0, 100), default=2,
                   help="runs more of a task whose step or worker was killed (a failing step is not retried)")
    p.add_argument("--recheck", action="store_true",
                   help="start every task's step, which checks its own outputs, even when the task's record says "
                        "it is done (default: leave those out; a rerun of a finished grid then starts no step)")
    add_version_flag(p)
    for launcher in LAUNCHERS:
        launcher.add_flags(p.add_argument_group(f"--launcher {launcher.name}"))
    return p


def refuse_other_launchers_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A flag of another launcher than the chosen one would be ignored without a word: refuse it."""
    for group in p._action_groups:
        owner = group.title.removeprefix("--launcher ") if group.title else ""
        if owner in LAUNCHERS and owner != args.launcher:
            for action in group._group_actions:
                if getattr(args, action.dest) != action.default:
                    raise UserError(f"{action.option_strings[0]} is a --launcher {owner} flag, not one of "
                                    f"--launcher {args.launcher}", f"drop it or pass --launcher {owner}")


def main() -> None:
    p = parser()
    args = p.parse_args()
    refuse_other_launchers_flags(p, args)
    check_requirements()
    blocks = PROFILES[args.profile]
    launcher = LAUNCHERS.get(args.launcher)(args, Context(Path.cwd(), sys.executable, args.retries))
    cpus = args.cpus_per_task or max(1, (os.cpu_count() or 1) // args.jobs)
    if args.dry_run:
        check_names(blocks)
        print(describe(grid_tasks(blocks, cpus, args.gpus_per_task or 0.0)))
        return
    missing = [e.config for e in blocks if not Path(f"config/{e.config}.json").exists()]
    if missing:
        raise UserError(f"config files missing: {', '.join(missing)}", "run from the repository root")
    if args.gpus_per_task is None:
        args.gpus_per_task = launcher.gpus_per_task()
    launcher.check()  # before the registries' torch import: a launcher's problem shows within seconds
    check_names(blocks)
    tasks = grid_tasks(blocks, cpus, args.gpus_per_task)
    progress = Progress(tasks, f"grid {args.profile} ({args.launcher})")
    run_grid(tasks, launcher, progress, recheck=args.recheck)
    print(progress.summary(), flush=True)
    if not progress.ok:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
