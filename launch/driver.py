"""The grid driver: the tasks whose records say they are done are left out (launch/records.py, checked here
before any launcher starts, so local, Ray and Slurm runs all skip them), the rest go to the launcher."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from launch import records
from launch.base import Launcher
from launch.progress import Progress
from launch.tasks import Task


def run_grid(tasks: Sequence[Task], launcher: Launcher, progress: Progress, recheck: bool = False) -> None:
    """Run `tasks` on `launcher`; without `recheck`, those up to date by their records are reported done and
    not started (their dependants that do run no longer wait for them)."""
    ctx = launcher.ctx
    done = set() if recheck else records.current(tasks, ctx.root, ctx.python)
    progress.up_to_date(done)
    todo = [replace(t, deps=tuple(d for d in t.deps if d not in done)) for t in tasks if t.id not in done]
    if todo:
        launcher.run(todo, progress)
