"""The launcher tests' toy grid (tests/toy_step.py) and what they read back from a run."""
from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from launch.base import Context, Launcher
from launch.driver import run_grid
from launch.profiles import GridBlock
from launch.progress import UP_TO_DATE, Progress
from launch.tasks import Task

TOY = Path(__file__).resolve().parent / "toy_step.py"


def toy(task_id: str, reads: Sequence[str] = (), record: bool = False, settings: str = "s") -> Task:
    """A toy task `a/<name>` reading the outputs of the tasks `a/<read>` (config a); its files, as
    launch.tasks gives them for a real step: what it makes and reads, and the results log it appends to."""
    name = task_id.split("/")[1]
    command = f"python {TOY} config/a.json --name {name} --settings {settings}"
    command += f" --reads {','.join(reads)}" if reads else ""
    command += " --record" if record else ""
    files = tuple(f"result/a/{n}.json" for n in (name, *reads))
    return Task(task_id, command, tuple(f"a/{r}" for r in reads), cpus=1, gpus=0.0, config="a", files=files,
                appends=("log/a/results.jsonl",) if record else ())


# pretrain -> two prunes -> an attack on each, and an attack of the original: the grid's shape, 6 tasks.
def toy_grid(record: bool = False) -> list[Task]:
    return [toy("a/pre"), toy("a/p1", ["pre"]), toy("a/p2", ["pre"]),
            toy("a/m0", ["pre"], record), toy("a/m1", ["p1"], record), toy("a/m2", ["p2"], record)]


def args(**kw) -> argparse.Namespace:
    base = {"jobs": 2, "gpus_per_task": 0.0, "address": None, "ray_cpus": 2, "partition": None, "time": 10,
            "slurm_parallelism": 4, "mem_gb": None, "poll": 0.5, "slurm_max_array": 1000}
    return argparse.Namespace(**base | kw)


def launch(launcher: type[Launcher], tasks: list[Task], root: Path, retries: int = 2, **kw) -> Progress:
    progress = Progress(tasks, "toy", out=io.StringIO())
    launcher(args(**kw), Context(root, sys.executable, retries)).run(tasks, progress)
    return progress


def drive(launcher: type[Launcher], tasks: list[Task], root: Path, recheck: bool = False, **kw) -> Progress:
    """`launch`, through the grid driver: the tasks up to date by their records are not started."""
    progress = Progress(tasks, "toy", out=io.StringIO())
    run_grid(tasks, launcher(args(**kw), Context(root, sys.executable, 2)), progress, recheck)
    return progress


def started(progress: Progress) -> set[str]:
    """The ids of the tasks whose step the run started (the others were up to date by their records)."""
    return {k for k, o in progress.outcomes.items() if o.tail != UP_TO_DATE}


def runs(root: Path) -> list[str]:
    """The names of the toy tasks that did work, in order."""
    path = root / "runs.log"
    return path.read_text().split() if path.exists() else []


def made(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "result" / "a").glob("*.json"))}


# A real grid through grid.py's own command line: one digits_columnfc block cut to seconds (victim + 1 shadow,
# 3 epochs; one l1unstructure prune fine-tuned 1 epoch; every attack on the original and the pruned model).
TINY = GridBlock("digits_columnfc", sparsities=(0.7,),
                 flags="--shadow_num 1 --epochs 3 --prune_epochs 1 --attack_epochs 2")


def run_dependent(key: str) -> bool:
    """Fields that differ between two runs of the same commands: timings, dates, paths, and in the provenance
    record the ids minted per run (its settings and split fingerprint must agree)."""
    return key.endswith("seconds") or key in ("time", "versions", "scores_file", "model_id", "parents")


def without_run_dependent(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_run_dependent(v) for k, v in value.items() if not run_dependent(k)}
    return value


def numbers(root: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for line in (root / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["setting"], r["attack"]] = without_run_dependent(r)
    return out


def checkout(root: Path) -> None:
    """A working folder as run_all.sh sees the repository: the scripts and packages (linked) and config/."""
    from benchmarks.rerun import checkout as bench_checkout  # bench.py's rerun section runs the same grid

    bench_checkout(root, "digits_columnfc")
