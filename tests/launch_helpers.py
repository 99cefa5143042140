"""The launcher tests' toy grid (tests/toy_step.py) and what they read back from a run."""
from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from launch.base import Context, Launcher
from launch.progress import Progress
from launch.tasks import Task

TOY = Path(__file__).resolve().parent / "toy_step.py"


def toy(task_id: str, reads: Sequence[str] = (), record: bool = False, settings: str = "s") -> Task:
    """A toy task `a/<name>` reading the outputs of the tasks `a/<read>` (config a)."""
    name = task_id.split("/")[1]
    command = f"python {TOY} config/a.json --name {name} --settings {settings}"
    command += f" --reads {','.join(reads)}" if reads else ""
    command += " --record" if record else ""
    return Task(task_id, command, tuple(f"a/{r}" for r in reads), cpus=1, gpus=0.0, config="a")


# pretrain -> two prunes -> an attack on each, and an attack of the original: the grid's shape, 6 tasks.
def toy_grid(record: bool = False) -> list[Task]:
    return [toy("a/pre"), toy("a/p1", ["pre"]), toy("a/p2", ["pre"]),
            toy("a/m0", ["pre"], record), toy("a/m1", ["p1"], record), toy("a/m2", ["p2"], record)]


def args(**kw) -> argparse.Namespace:
    base = {"jobs": 2, "gpus_per_task": 0.0, "address": None, "ray_cpus": 2, "partition": None, "time": 10,
            "slurm_parallelism": 4, "mem_gb": None, "poll": 0.5}
    return argparse.Namespace(**base | kw)


def launch(launcher: type[Launcher], tasks: list[Task], root: Path, retries: int = 2, **kw) -> Progress:
    progress = Progress(tasks, "toy", out=io.StringIO())
    launcher(args(**kw), Context(root, sys.executable, retries)).run(tasks, progress)
    return progress


def runs(root: Path) -> list[str]:
    """The names of the toy tasks that did work, in order."""
    path = root / "runs.log"
    return path.read_text().split() if path.exists() else []


def made(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "result" / "a").glob("*.json"))}
