"""The Slurm launcher, through submitit: one job array per dependency level (per resource shape within a
level), all submitted at once; the array of level k starts `afterany` the arrays of level k-1, so the
cluster runs the whole grid even if this driver goes away (it only watches and reports).

Each array task runs one step (execute.run_with_retries). Before it, it reads the Outcome files of the tasks
it depends on (log/.slurm/<run>/outcomes/, written by those tasks): a missing or failed one makes it
`skipped`, as on the other backends. A preempted or timed-out task is requeued by submitit (SlurmStep is
checkpointable: its checkpoint is itself) and starts its step again, which skips the models it finished
and redoes the one it was writing (every output is written atomically).

Slurm allocates whole GPUs, so --gpus_per_task is 0 or a whole number here (pack small models with the
local or Ray launcher).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from core.cli import bounded
from core.errors import UserError
from launch.base import Launcher
from launch.execute import Outcome, run_with_retries, skipped
from launch.progress import Progress
from launch.tasks import Task, levels


def partition(text: str) -> str:
    """A Slurm partition name (letters, digits, - _ . and commas between several): anything else would reach
    sbatch's command line."""
    if not re.fullmatch(r"[\w.-]+(,[\w.-]+)*", text):
        raise argparse.ArgumentTypeError(f"not a partition name: {text!r}")
    return text


def outcome_path(folder: Path, task_id: str) -> Path:
    return Path(folder) / (task_id.replace("/", "__") + ".json")


def write_outcome(folder: Path, outcome: Outcome) -> None:
    from core.storage import atomic_write  # numpy: not at import (grid.py first checks the Python has it)

    atomic_write(outcome_path(folder, outcome.task_id), lambda f: json.dump(asdict(outcome), f), mode="w")


def read_outcome(folder: Path, task_id: str) -> Outcome | None:
    path = outcome_path(folder, task_id)
    return Outcome(**json.loads(path.read_text())) if path.is_file() else None


@dataclass
class SlurmStep:
    """One array task: the step of `task` unless a dependency did not end well. Checkpointable for submitit
    (it has `checkpoint`): on preemption or timeout it resubmits itself unchanged."""

    task: Task
    root: str
    python: str
    retries: int
    outcomes: str

    def __call__(self) -> Outcome:
        deps = {d: read_outcome(Path(self.outcomes), d) for d in self.task.deps}
        failed = [d for d, o in deps.items() if o is None or not o.ok]
        outcome = skipped(self.task, failed) if failed else run_with_retries(
            self.task, Path(self.root), self.python, self.retries)
        write_outcome(Path(self.outcomes), outcome)
        return outcome

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def array_groups(tasks: Sequence[Task], max_array: int = 1000) -> list[list[tuple[int, float, list[Task]]]]:
    """Per level, (cpus, gpus, tasks) of each of its arrays: one per resource shape, cut into arrays of at most
    `max_array` tasks (Slurm's MaxArraySize is 1001 unless the cluster raised it; the paper grid's last level
    has 1,258 tasks)."""
    out = []
    for level in levels(tasks):
        shape = sorted(level, key=lambda t: (t.cpus, t.gpus))
        out.append([(c, g, chunk) for (c, g), ts in groupby(shape, key=lambda t: (t.cpus, t.gpus))
                    for chunk in batched(list(ts), max_array)])
    return out


def batched(items: list[Task], n: int) -> list[list[Task]]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def submit(executor: Any, tasks: Sequence[Task], make_step: Callable[[Task], SlurmStep], base: dict[str, Any],
           max_array: int = 1000) -> dict[str, Any]:
    """Submit every level's arrays, each after the previous level's; returns task id -> submitit Job."""
    jobs: dict[str, Any] = {}
    previous: list[str] = []
    for level in array_groups(tasks, max_array):
        submitted: list[str] = []
        for cpus, gpus, group in level:
            extra = dict(base.get("slurm_additional_parameters", {}))
            if previous:
                extra["dependency"] = "afterany:" + ":".join(previous)
            executor.update_parameters(**{**base, "cpus_per_task": cpus, "gpus_per_node": int(gpus),
                                          "slurm_additional_parameters": extra})
            with executor.batch():
                group_jobs = [executor.submit(make_step(t)) for t in group]
            jobs.update({t.id: j for t, j in zip(group, group_jobs)})
            submitted.append(str(group_jobs[0].job_id).split("_")[0])  # the array's job id
        previous = submitted
    return jobs


class SlurmLauncher(Launcher):
    name = "slurm"
    help = "a Slurm cluster through submitit: one job array per dependency level"

    @classmethod
    def add_flags(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--partition", type=partition, default=None,
                           help="Slurm partition (default: the cluster's)")
        group.add_argument("--time", type=bounded(int, 1, 60 * 24 * 365), default=240,
                           help="minutes per array task (default 240); a task that runs out is requeued and resumes")
        group.add_argument("--slurm_parallelism", type=bounded(int, 1, 1_000_000), default=64,
                           help="array tasks running at once per array (default 64)")
        group.add_argument("--mem_gb", type=bounded(int, 1, 1_000_000), default=None,
                           help="memory per array task (default: the cluster's)")
        group.add_argument("--slurm_max_array", type=bounded(int, 1, 4_000_000), default=1000,
                           help="tasks per job array at most (default 1000: Slurm's default MaxArraySize is 1001)")
        group.add_argument("--poll", type=bounded(float, 0.1, 3600), default=30.0,
                           help="seconds between status checks (default 30)")

    def check(self) -> None:
        gpus = self.args.gpus_per_task or 0
        if not float(gpus).is_integer():
            raise UserError(f"--gpus_per_task {gpus:g}: Slurm allocates whole GPUs",
                            "pass 0 or a whole number, or pack small models with --launcher local or ray")
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UserError("--launcher slurm needs submitit", "pip install -r requirements-dist.txt") from None
        if shutil.which("sbatch") is None:  # else submitit fails on its first submission, with a traceback
            raise UserError("--launcher slurm needs Slurm, and this machine has no sbatch on its PATH",
                            "run grid.py on a node of the Slurm cluster, or use --launcher local or ray")

    def executor(self, folder: Path) -> Any:
        import submitit

        return submitit.AutoExecutor(folder=folder, cluster="slurm")

    def parameters(self) -> dict[str, Any]:
        """The submitit parameters every array shares (resources are set per array)."""
        a = self.args
        base: dict[str, Any] = {"name": "prune-mia", "timeout_min": a.time, "slurm_array_parallelism":
                                a.slurm_parallelism, "slurm_signal_delay_s": 120, "nodes": 1, "tasks_per_node": 1}
        if a.partition:
            base["slurm_partition"] = a.partition
        if a.mem_gb:
            base["mem_gb"] = a.mem_gb
        return base

    def run(self, tasks: Sequence[Task], progress: Progress) -> None:
        run_dir = self.ctx.root / "log" / ".slurm" / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")
        outcomes = run_dir / "outcomes"
        outcomes.mkdir(parents=True, exist_ok=True)
        ctx = self.ctx
        jobs = submit(self.executor(run_dir / "submitit"), tasks,
                      lambda t: SlurmStep(t, str(ctx.root), ctx.python, ctx.retries, str(outcomes)), self.parameters(),
                      self.args.slurm_max_array)
        arrays = sum(len(level) for level in array_groups(tasks, self.args.slurm_max_array))
        print(f"submitted {len(tasks)} tasks as {arrays} job arrays; "
              f"submitit files in {run_dir}", flush=True)
        watch(tasks, jobs, progress, self.args.poll)


def watch(tasks: Sequence[Task], jobs: dict[str, Any], progress: Progress, poll: float) -> None:
    """Report each array task as it ends; a job that ended without an Outcome (cancelled, killed by Slurm,
    out of requeues) failed, with the end of its Slurm log."""
    waiting = {t.id for t in tasks}
    while waiting:
        for t in tasks:
            if t.id in waiting and t.id not in progress.running and all(d not in waiting for d in t.deps):
                progress.started(t.id)
        for task_id in sorted(waiting):
            job = jobs[task_id]
            if not job.done():
                continue
            waiting.discard(task_id)
            try:
                progress.finished(job.result())
            except Exception as e:
                log = (job.stderr() or "").strip().splitlines()[-15:]
                progress.finished(Outcome(task_id, "failed", 0.0, None,
                                          "\n".join(log) or f"{type(e).__name__}: {e}"))
        if waiting:
            time.sleep(poll)
