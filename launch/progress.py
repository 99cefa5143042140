"""The progress and failure report every launcher prints (one module, so local, Ray and Slurm runs read alike).

    [  7/51 | 2 running | 0 failed] done     12.3 s  python prune.py config/x.json --pruner_name slim ...
    [  8/51 | 1 running | 1 failed] FAILED    3.1 s  python mia.py config/x.json ... (exit 2)
        error: checkpoint result/x/slim_0.7_model/best.pth not found (make it with: ...)
    grid quick (local): 50 done, 1 failed, 1 skipped of 52 tasks in 712 s

A rerun first prints how many tasks the driver left out as up to date (launch/records.py), in one line.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from launch.execute import Outcome
from launch.tasks import Task

UP_TO_DATE = "up to date by its task record"


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


class Progress:
    """Counts tasks as they start and end and prints one line per end. Thread-safe (the local launcher
    reports from its worker threads)."""

    def __init__(self, tasks: Sequence[Task], title: str, out: TextIO | None = None) -> None:
        self.tasks = {t.id: t for t in tasks}
        self.title, self.out = title, out or sys.stdout
        self.running: set[str] = set()
        self.outcomes: dict[str, Outcome] = {}
        self.lock = threading.Lock()
        self.start_time = time.perf_counter()

    def up_to_date(self, task_ids: set[str]) -> None:
        """Tasks the driver left out because their records still match (launch/records.py): done, one line for
        all of them (a finished paper grid would print 2,492)."""
        if not task_ids:
            return
        with self.lock:
            for task_id in task_ids:
                self.outcomes[task_id] = Outcome(task_id, "done", tail=UP_TO_DATE, attempts=0)
            print(f"{len(task_ids)} of {len(self.tasks)} tasks up to date by their records (same command, config, "
                  "code and files): not started", file=self.out, flush=True)

    def started(self, task_id: str) -> None:
        with self.lock:
            self.running.add(task_id)

    def finished(self, outcome: Outcome) -> None:
        with self.lock:
            self.running.discard(outcome.task_id)
            self.outcomes[outcome.task_id] = outcome
            failed = sum(not o.ok for o in self.outcomes.values())
            head = (f"[{len(self.outcomes):>3}/{len(self.tasks)} | {len(self.running)} running | "
                    f"{failed} failed]")
            command = self.tasks[outcome.task_id].command
            tries = f"{outcome.attempts} attempts" if outcome.attempts > 1 else ""
            if outcome.status == "skipped":
                line = f"{head} skipped           {command}\n{indent(outcome.tail)}"
            elif outcome.ok:
                line = f"{head} done   {outcome.seconds:7.1f} s  {command}" + (f" ({tries})" if tries else "")
            else:
                why = ", ".join(w for w in (f"exit {outcome.returncode}", tries) if w)
                line = f"{head} FAILED {outcome.seconds:7.1f} s  {command} ({why})\n{indent(outcome.tail)}"
            print(line, file=self.out, flush=True)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if not o.ok]

    def summary(self) -> str:
        """The closing line, then each failed task's command and the end of its output."""
        counts = {s: sum(o.status == s for o in self.outcomes.values()) for s in ("done", "failed", "skipped")}
        missing = len(self.tasks) - len(self.outcomes)
        kept = sum(o.tail == UP_TO_DATE for o in self.outcomes.values())
        text = (f"{self.title}: {counts['done']} done" + (f" ({kept} up to date by their records)" if kept else "")
                + f", {counts['failed']} failed, {counts['skipped']} skipped"
                + (f", {missing} never reported" if missing else "")
                + f" of {len(self.tasks)} tasks in {time.perf_counter() - self.start_time:.0f} s")
        failed = [o for o in self.failures if o.status == "failed"]
        if failed:
            text += "\nfailed (full output in log/<config>/run_all.out):"
            for o in failed:
                text += f"\n  {self.tasks[o.task_id].command}\n{indent(indent(o.tail))}"
        return text

    @property
    def ok(self) -> bool:
        return len(self.outcomes) == len(self.tasks) and not self.failures
