"""Worker processes: `for_each_index` spreads a step's models over `--workers N` spawned processes sharing the
cores, and every worker dies with its step (a killed run leaves none behind).
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import torch

from core.config_schema import Config
from core.storage import log
from experiment.runtime import RunOptions
from experiment.session import Experiment, open_experiment


def for_each_index(exp: Experiment, work: Callable[[Experiment, Any], None], todo: list[Any], log_name: str) -> None:
    """Run `work(exp, item)` for every item (roles: None = the victim, i = shadow i; refs.py: reference indices).

    With `--workers N` (N > 1) the items are spread round-robin over N spawned processes sharing the
    cores, each with (threads // N) torch threads: small models use 2+ threads poorly, so N one-thread
    processes finish the same models sooner (bench.py measures it). Each model has its own seed, so the
    models are the same as in one process up to float reduction order (thread count).
    """
    workers = exp.opts.workers
    if workers == 1 or len(todo) <= 1:
        for item in todo:
            work(exp, item)
        return
    workers = min(workers, len(todo))
    threads = max(1, (exp.opts.threads or torch.get_num_threads()) // workers)
    log.info(f"Training {len(todo)} models in {workers} processes with {threads} torch thread(s) each")
    opts = replace(exp.opts, threads=threads, workers=1)
    # spawn, not fork: a forked child of a process that already ran OpenMP/oneDNN code can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        jobs = [pool.submit(_model_worker, opts, exp.cfg, log_name, work, todo[k::workers])
                for k in range(workers)]
        for job in jobs:
            job.result()  # re-raises a worker's UserError here, after the other workers finished


PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies


def die_with_parent(parent: int) -> None:
    """Worker initializer: a worker must not outlive its step. Without this, a SIGKILLed `--workers N` run left
    its workers training and writing checkpoints, then hanging at ~835 MB each. On Linux the kernel sends
    SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG); everywhere, a watchdog thread notices that the
    parent pid changed (the worker was re-parented) within a second and kills the worker."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGKILL)


def _model_worker(opts: RunOptions, cfg: Config, log_name: str, work: Callable[[Experiment, Any], None],
                  items: list[Any]) -> None:
    exp = open_experiment(opts, cfg, log_name)
    for item in items:
        work(exp, item)
