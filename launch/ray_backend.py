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
import logging
import os
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.cli import bounded
from core.errors import UserError
from launch.base import Launcher
from launch.execute import Outcome, run_with_retries, skipped
from launch.progress import Progress
from launch.tasks import Task, levels

# How long joining an existing cluster may take: ray.init retries a cluster that does not answer for ever
# (measured: still "Failed to connect to GCS" after minutes on an address nothing listens on).
CONNECT_TIMEOUT = 15.0
PROBE_TIMEOUT = 5.0  # the TCP connection check before it, for the usual mistake (a wrong host or port)

# A local cluster for the run: the object store only carries Outcomes (a few hundred bytes each), so 80 MB
# instead of Ray's default 30% of memory; no dashboard (one process and a port less).
LOCAL_OBJECT_STORE = 80 * 1024 * 1024


def address(text: str) -> str:
    """--address: auto, HOST:PORT or ray://HOST:PORT (a Ray client server), checked while parsing."""
    m = re.fullmatch(r"(?:ray://)?([\w.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})", text)
    if text != "auto" and not (m and 1 <= int(m.group(2)) <= 65535):
        raise argparse.ArgumentTypeError(f"not auto or HOST:PORT: {text!r}")
    return text


def probe(addr: str, timeout: float = PROBE_TIMEOUT) -> None:
    """A UserError unless something accepts TCP connections at `addr` (HOST:PORT) within `timeout` seconds."""
    host, _, port = addr.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"no Ray cluster answers at {addr} ({e.strerror or type(e).__name__})",
                        "is it up (ray status on its head node)? Start it with ray start --head --port PORT, or "
                        "leave out --address for a local cluster") from None


def join(ray: Any, addr: str, env: dict[str, Any]) -> None:
    """ray.init on an existing cluster, within CONNECT_TIMEOUT seconds: a cluster that does not let the driver
    join is one error line and exit 2 (nothing has been submitted yet, so nothing is left behind). Ray's core
    worker logs a warning a second on stderr while it retries; that goes to a file, replayed if the join works."""
    saved = os.dup(2)

    def give_up() -> None:
        os.write(saved, f"error: the Ray cluster at {addr} did not let this driver join within {CONNECT_TIMEOUT:.0f} s "
                        "(is it a Ray head node's address, and does it want a token: RAY_AUTH_MODE=token?)\n".encode())
        os._exit(2)
    watchdog = threading.Timer(CONNECT_TIMEOUT, give_up)
    watchdog.daemon = True
    with tempfile.TemporaryFile() as chatter:
        os.dup2(chatter.fileno(), 2)
        watchdog.start()
        try:
            ray.init(address=addr, runtime_env=env, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"cannot join the Ray cluster at {addr} ({first})",
                            "is it up (ray status)? A cluster of `ray start` wants its token: set RAY_AUTH_MODE=token "
                            "(and RAY_AUTH_TOKEN off its nodes), or use --address auto on one of its nodes") from None
        finally:
            watchdog.cancel()
            os.dup2(saved, 2)
            os.close(saved)
        chatter.seek(0)
        sys.stderr.write(chatter.read().decode(errors="replace"))


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
        group.add_argument("--address", type=address, default=None,
                           help="Ray cluster to join (HOST:PORT as `ray start --head` printed it, or 'auto'); "
                                "default: start a local cluster for the run")
        group.add_argument("--ray_cpus", type=bounded(int, 1, 65536), default=None,
                           help="CPUs of the local cluster (default: this machine's cores)")

    def check(self) -> None:
        if self.args.address and self.args.ray_cpus is not None:
            raise UserError("--ray_cpus sizes the local cluster of a run, and --address joins a cluster that has "
                            "its own CPUs", "drop one of them")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("--launcher ray needs Ray", "pip install -r requirements-dist.txt") from None
        if self.args.address:  # join now, before the task graph's torch import, so a bad one shows at once
            if self.args.address != "auto":
                probe(self.args.address)
            self._init()

    def _init(self) -> Any:
        import ray

        if ray.is_initialized():  # check() joined the cluster of --address
            return ray
        # Workers import launch.ray_backend from the repository (it must be at the same path on every node).
        env = {"env_vars": {"PYTHONPATH": str(self.ctx.root)}}
        if self.args.address:
            join(ray, self.args.address, env)
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
