"""The Ray launcher: each task a Ray task running its step as a subprocess, with the task's CPUs and (possibly
fractional) GPUs as Ray resources, and the tasks it reads from as ObjectRef arguments, so Ray starts it only
after them. A worker that dies (a lost node, a killed worker process) is retried by Ray (`max_retries`);
a step killed inside a live worker is retried by execute.run_with_retries, as on every backend.

`--address` joins an existing cluster (`ray start --head` on one node, `ray start --address ...` on the
others); without it, a local cluster is started for the run with this machine's cores. Every node must see
the repository at the same path (a shared filesystem holds result/ and log/), and the steps run with the
driver's Python.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.errors import UserError
from launch.base import Launcher
from launch.execute import Outcome, run_with_retries, skipped
from launch.progress import Progress
from launch.tasks import Task, levels

# A local cluster for the run: the object store only carries Outcomes (a few hundred bytes each), so 80 MB
# instead of Ray's default 30% of memory; no dashboard (one process and a port less).
LOCAL_OBJECT_STORE = 80 * 1024 * 1024


def run_task(task: Task, root: str, python: str, retries: int, *deps: Outcome) -> Outcome:
    """The body of each Ray task (a module function, so workers import it instead of unpickling code)."""
    failed = [d.task_id for d in deps if not d.ok]
    if failed:
        return skipped(task, failed)
    from pathlib import Path

    return run_with_retries(task, Path(root), python, retries)


class RayLauncher(Launcher):
    name = "ray"
    help = "a Ray cluster: --address HOST:PORT of an existing one, else a local one started for the run"

    @classmethod
    def add_flags(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--address", default=None,
                           help="Ray cluster to join (as `ray start --head` printed it, or 'auto'); default: "
                                "start a local cluster for the run")
        group.add_argument("--ray_cpus", type=int, default=None,
                           help="CPUs of the local cluster (default: this machine's cores)")

    def check(self) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("--launcher ray needs Ray", "pip install -r requirements-dist.txt") from None

    def _init(self) -> Any:
        import ray

        # Workers import launch.ray_backend from the repository (it must be at the same path on every node).
        env = {"env_vars": {"PYTHONPATH": str(self.ctx.root)}}
        if self.args.address:
            try:
                ray.init(address=self.args.address, runtime_env=env, log_to_driver=False)
            except ConnectionError as e:
                raise UserError(f"cannot join the Ray cluster at {self.args.address} ({e})",
                                "is it up (ray status)? A cluster of `ray start` wants its token: set "
                                "RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN off its nodes), or use --address auto "
                                "on one of its nodes") from None
        else:
            ray.init(num_cpus=self.args.ray_cpus or os.cpu_count(), include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE, runtime_env=env, log_to_driver=False)
        return ray

    def gpus_per_task(self) -> float:
        return 0.0  # resolved against the cluster in run(): one GPU per task when it has any

    def run(self, tasks: Sequence[Task], progress: Progress) -> None:
        ray = self._init()
        try:
            self._run(ray, tasks, progress)
        finally:
            ray.shutdown()

    def _run(self, ray: Any, tasks: Sequence[Task], progress: Progress) -> None:
        if self.args.gpus_per_task is None and ray.cluster_resources().get("GPU", 0) > 0:
            tasks = [replace(t, gpus=1.0) for t in tasks]
        remote = ray.remote(run_task)
        refs: dict[str, Any] = {}
        ctx = self.ctx
        for level in levels(tasks):  # a task's dependencies are submitted before it
            for t in level:
                refs[t.id] = remote.options(num_cpus=t.cpus, num_gpus=t.gpus, max_retries=ctx.retries,
                                            name=t.id).remote(t, str(ctx.root), ctx.python, ctx.retries,
                                                              *(refs[d] for d in t.deps))
        by_ref = {ref: t for t in tasks for ref in [refs[t.id]]}
        outcomes: dict[str, Outcome] = {}
        waiting = list(by_ref)
        while waiting:
            for t in tasks:  # a task whose dependencies ended is queued or running in Ray
                if t.id not in outcomes and t.id not in progress.running and all(d in outcomes for d in t.deps):
                    progress.started(t.id)
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=30)
            for ref in ready:
                t = by_ref[ref]
                outcomes[t.id] = outcome_of(ray, refs, t)
                progress.finished(outcomes[t.id])


def outcome_of(ray: Any, refs: dict[str, Any], task: Task) -> Outcome:
    """The task's Outcome. A task Ray gave up on (its worker died more than max_retries times) failed; a task
    that could not start because a dependency was given up on is skipped, as after a failed step."""
    try:
        return ray.get(refs[task.id])
    except Exception as e:  # RayTaskError, WorkerCrashedError, ...: the task did not finish
        lost = [d for d in task.deps if not finished(ray, refs[d])]
        if lost:
            return skipped(task, lost)
        message = str(e).strip().splitlines()
        return Outcome(task.id, "failed", 0.0, None, f"{type(e).__name__}: {message[-1] if message else ''}")


def finished(ray: Any, ref: Any) -> bool:
    try:
        return bool(ray.get(ref).ok)
    except Exception:
        return False
