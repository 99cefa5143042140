"""The local launcher: `--jobs N` slots on this machine, each running one task at a time.

A task starts once every task it reads from is done (a failed dependency makes it `skipped`); among the
ready tasks, training steps go first (they unlock the attacks), then the grid's order. With GPUs, the N
slots are spread over them: slot i sees its own CUDA_VISIBLE_DEVICES, and `--gpus_per_task 0.5` puts two
slots on each GPU (small models leave most of a GPU idle).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from core.errors import UserError
from launch.base import Launcher
from launch.execute import Outcome, run_with_retries, skipped
from launch.progress import Progress
from launch.tasks import Task

Env = dict[str, str]


def default_gpus_per_task(n_gpus: int, jobs: int) -> float:
    """A whole GPU per slot while there are enough, else an equal share: 1 GPU and 3 jobs -> 1/3 each."""
    if n_gpus == 0:
        return 0.0
    return 1.0 if jobs <= n_gpus else 1.0 / math.ceil(jobs / n_gpus)


def gpu_slots(n_gpus: int, jobs: int, gpus_per_task: float) -> list[Env]:
    """Each slot's environment: CUDA_VISIBLE_DEVICES naming its GPU(s), or nothing without GPUs.

    A fraction f packs floor(1/f) slots on one GPU, and the slots take the GPUs in turn (slot i on GPU
    i mod n), so fewer jobs than the capacity still spread over every GPU; a whole number g gives slot i
    GPUs i*g .. i*g+g-1."""
    if gpus_per_task == 0:
        return [{} for _ in range(jobs)]
    if n_gpus == 0:
        raise UserError(f"--gpus_per_task {gpus_per_task:g} on a machine without GPUs", "leave it out or pass 0")
    if gpus_per_task < 1:
        per_gpu = math.floor(1 / gpus_per_task + 1e-9)
        if jobs > n_gpus * per_gpu:
            raise UserError(f"--jobs {jobs} at --gpus_per_task {gpus_per_task:g} needs {math.ceil(jobs / per_gpu)} "
                            f"GPUs, this machine has {n_gpus}", "lower --jobs or --gpus_per_task")
        return [{"CUDA_VISIBLE_DEVICES": str(i % n_gpus)} for i in range(jobs)]
    if not float(gpus_per_task).is_integer():
        raise UserError(f"--gpus_per_task {gpus_per_task:g}: above 1 it must be a whole number of GPUs")
    g = int(gpus_per_task)
    if jobs * g > n_gpus:
        raise UserError(f"--jobs {jobs} x --gpus_per_task {g} needs {jobs * g} GPUs, this machine has {n_gpus}",
                        "lower --jobs or --gpus_per_task")
    return [{"CUDA_VISIBLE_DEVICES": ",".join(str(i * g + k) for k in range(g))} for i in range(jobs)]


def schedule(tasks: Sequence[Task], slots: Sequence[Env], run_one: Callable[[Task, Env], Outcome],
             progress: Progress) -> None:
    """Run `tasks` on `len(slots)` threads, each task once its dependencies are done (see the module doc)."""
    order = {t.id: i for i, t in enumerate(tasks)}
    pending = sorted(tasks, key=lambda t: (t.is_attack, order[t.id]))
    outcomes: dict[str, Outcome] = {}
    free = list(slots)
    running: dict[Future, tuple[Task, Env]] = {}

    def settle(outcome: Outcome) -> None:
        outcomes[outcome.task_id] = outcome
        progress.finished(outcome)

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        while pending or running:
            changed = True
            while changed and free:  # a skipped task can make its own dependants skippable: scan again
                changed = False
                for task in [t for t in pending if all(d in outcomes for d in t.deps)]:
                    if not free:
                        break
                    pending.remove(task)
                    failed = [d for d in task.deps if not outcomes[d].ok]
                    if failed:
                        settle(skipped(task, failed))
                        changed = True
                        continue
                    slot = free.pop(0)
                    progress.started(task.id)
                    running[pool.submit(run_one, task, slot)] = (task, slot)
            if not running:
                if pending:  # unreachable for a graph from build_tasks (acyclic, every dependency in it)
                    raise ValueError(f"tasks wait on tasks that never run: {[t.id for t in pending]}")
                break
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                task, slot = running.pop(future)
                free.append(slot)
                settle(future.result())


class LocalLauncher(Launcher):
    name = "local"
    help = "this machine: --jobs N tasks side by side, spread over its GPUs"

    @classmethod
    def add_flags(cls, group: argparse._ArgumentGroup) -> None:
        pass  # --jobs is common to all launchers (it also sets the default threads per task)

    def n_gpus(self) -> int:
        import torch  # the graph already imported it (cli); device_count reads NVML without a CUDA context

        return torch.cuda.device_count()

    def gpus_per_task(self) -> float:
        return default_gpus_per_task(self.n_gpus(), self.args.jobs)

    def check(self) -> None:
        gpu_slots(self.n_gpus(), self.args.jobs, self.args.gpus_per_task)

    def run(self, tasks: Sequence[Task], progress: Progress) -> None:
        slots = gpu_slots(self.n_gpus(), self.args.jobs, self.args.gpus_per_task)
        ctx = self.ctx
        schedule(tasks, slots, lambda t, env: run_with_retries(t, ctx.root, ctx.python, ctx.retries, env), progress)
