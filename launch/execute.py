"""Running one task, the same way on every backend: the step as a subprocess in the repository root, its
output appended to log/<config>/run_all.out, and an Outcome (what the progress report prints) back.

A step that exits non-zero failed (its error is deterministic: a missing input, a bad flag), and is not run
again. A step killed by a signal (the OOM killer, a preempted node, a lost worker) is run again, up to
`retries` times: the steps write every output atomically and skip finished models, so a second run finishes
the work and never counts a half-written file as done.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from launch import records
from launch.tasks import Task

TAIL_LINES = 15  # of a failed step's output, in the report


@dataclass(frozen=True)
class Outcome:
    """How a task ended: done, failed (non-zero exit or killed every time) or skipped (a dependency failed)."""

    task_id: str
    status: str                     # "done" | "failed" | "skipped"
    seconds: float = 0.0
    returncode: int | None = None   # negative: killed by that signal
    tail: str = ""                  # the last lines of its output (failed) or why it was skipped
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status == "done"


def locked_append(path: Path, text: str) -> None:
    """Append under an exclusive lock: several tasks of one config (threads, Ray workers on other nodes,
    Slurm array tasks) end at once, and each command's output must stay one piece."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(text)
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_step(task: Task, root: Path, python: str, env: Mapping[str, str] | None = None) -> Outcome:
    """Run the task's step once; its output goes to log/<config>/run_all.out as `$ command` + output."""
    start = time.perf_counter()
    proc = subprocess.run(task.argv(python), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    locked_append(Path(root) / "log" / task.config / "run_all.out", f"\n$ {task.command}\n{proc.stdout}")
    if proc.returncode == 0:
        return Outcome(task.id, "done", seconds, 0)
    tail = "\n".join(proc.stdout.rstrip().splitlines()[-TAIL_LINES:]) or "(no output)"
    if proc.returncode < 0:
        tail += f"\n(killed by signal {-proc.returncode})"
    return Outcome(task.id, "failed", seconds, proc.returncode, tail)


def run_with_retries(task: Task, root: Path, python: str, retries: int,
                     env: Mapping[str, str] | None = None) -> Outcome:
    """`run_step`, again while the step is killed by a signal, at most `retries` more times; a step that
    succeeded leaves its task record (launch/records.py), so a rerun of the grid need not start it."""
    attempt = 0
    while True:
        attempt += 1
        outcome = run_step(task, root, python, env)
        killed = outcome.returncode is not None and outcome.returncode < 0
        if not killed or attempt > retries:
            if outcome.ok:
                records.write(root, task, python)
            return Outcome(outcome.task_id, outcome.status, outcome.seconds, outcome.returncode, outcome.tail,
                           attempt)


def skipped(task: Task, failed_deps: list[str]) -> Outcome:
    return Outcome(task.id, "skipped", tail=f"not run: {', '.join(failed_deps)} failed")
