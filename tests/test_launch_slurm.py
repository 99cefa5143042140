"""The Slurm launcher: the submitit calls it makes (against a fake executor), its array tasks' dependency
check and requeue hook, and a tiny grid end to end on a local Slurm (slurmctld + slurmd in a temporary
folder, no munge) when slurm-wlm is installed, including a preempted task that is requeued and resumes."""
from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import pytest

from launch.base import Context
from launch.driver import run_grid
from launch.execute import Outcome
from launch.progress import Progress
from launch.slurm import SlurmLauncher, SlurmStep, read_outcome, write_outcome
from launch_helpers import args, made, runs, started, toy_grid

pytestmark = pytest.mark.e2e  # every test here runs step scripts (or other programs)

ROOT = Path(__file__).resolve().parents[1]


class FakeJob:
    def __init__(self) -> None:
        self.job_id, self.outcome = "", None

    def done(self) -> bool:
        return self.outcome is not None

    def result(self) -> Outcome:
        return self.outcome


class FakeExecutor:
    """Records what submitit would send to Slurm: one entry per array (its parameters and size), and runs
    each array's tasks when the array is submitted (arrays arrive in dependency order)."""

    def __init__(self) -> None:
        self.params: dict = {}
        self.arrays: list[dict] = []
        self._batch: list[tuple[SlurmStep, FakeJob]] | None = None

    def update_parameters(self, **kw) -> None:
        self.params.update(kw)

    @contextmanager
    def batch(self):
        self._batch = []
        yield
        array_id = str(100 + len(self.arrays))
        self.arrays.append({"id": array_id, "size": len(self._batch), "params": dict(self.params),
                            "tasks": [step.task.id for step, _ in self._batch]})
        for i, (step, job) in enumerate(self._batch):
            job.job_id, job.outcome = f"{array_id}_{i}", step()
        self._batch = None

    def submit(self, step: SlurmStep) -> FakeJob:
        assert self._batch is not None, "every submission goes into an array"
        self._batch.append((step, FakeJob()))
        return self._batch[-1][1]


def fake_launcher(root: Path, **kw) -> tuple[SlurmLauncher, FakeExecutor]:
    fake = FakeExecutor()
    launcher = SlurmLauncher(args(**kw), Context(root, sys.executable, 1))
    launcher.executor = lambda folder: fake
    return launcher, fake


def test_one_array_per_dependency_level_each_after_the_previous(tmp_path: Path) -> None:
    launcher, fake = fake_launcher(tmp_path, partition="gpu", time=30, slurm_parallelism=8, mem_gb=16)
    tasks = toy_grid()
    progress = Progress(tasks, "toy", out=io.StringIO())
    launcher.run(tasks, progress)
    assert [(a["size"], a["tasks"]) for a in fake.arrays] == [
        (1, ["a/pre"]), (3, ["a/p1", "a/p2", "a/m0"]), (2, ["a/m1", "a/m2"])]
    deps = [a["params"]["slurm_additional_parameters"].get("dependency") for a in fake.arrays]
    assert deps == [None, "afterany:100", "afterany:101"]
    first = fake.arrays[0]["params"]
    assert {k: first[k] for k in ("slurm_partition", "timeout_min", "slurm_array_parallelism", "mem_gb",
                                  "cpus_per_task", "gpus_per_node", "slurm_signal_delay_s")} == {
        "slurm_partition": "gpu", "timeout_min": 30, "slurm_array_parallelism": 8, "mem_gb": 16,
        "cpus_per_task": 1, "gpus_per_node": 0, "slurm_signal_delay_s": 120}
    assert progress.ok and sorted(runs(tmp_path)) == sorted(t.id[2:] for t in tasks)


def test_tasks_of_other_shapes_get_their_own_array_after_the_whole_previous_level(tmp_path: Path) -> None:
    tasks = [replace(t, cpus=4, gpus=1.0) if t.id in ("a/p2", "a/m2") else t for t in toy_grid()]
    launcher, fake = fake_launcher(tmp_path)
    launcher.run(tasks, Progress(tasks, "toy", out=io.StringIO()))
    shape = [(a["tasks"], a["params"]["cpus_per_task"], a["params"]["gpus_per_node"],
              a["params"]["slurm_additional_parameters"].get("dependency")) for a in fake.arrays]
    assert shape == [(["a/pre"], 1, 0, None),
                     (["a/p1", "a/m0"], 1, 0, "afterany:100"), (["a/p2"], 4, 1, "afterany:100"),
                     (["a/m1"], 1, 0, "afterany:101:102"), (["a/m2"], 4, 1, "afterany:101:102")]


def test_a_level_larger_than_the_array_limit_is_cut_into_arrays(tmp_path: Path) -> None:
    launcher, fake = fake_launcher(tmp_path, slurm_max_array=2)
    launcher.run(toy_grid(), Progress(toy_grid(), "toy", out=io.StringIO()))
    assert [(a["tasks"], a["params"]["slurm_additional_parameters"].get("dependency")) for a in fake.arrays] == [
        (["a/pre"], None), (["a/p1", "a/p2"], "afterany:100"), (["a/m0"], "afterany:100"),
        (["a/m1", "a/m2"], "afterany:101:102")]


def test_a_rerun_submits_only_the_tasks_whose_records_do_not_match(tmp_path: Path) -> None:
    """The array tasks write the task records (execute.run_with_retries on the node); the driver reads them
    before submitting: a finished grid submits no array, a deleted output only its task and its readers."""
    launcher, fake = fake_launcher(tmp_path)
    assert drive_with(launcher, toy_grid()).ok and len(fake.arrays) == 3
    progress = drive_with(launcher, toy_grid())
    assert progress.ok and started(progress) == set() and len(fake.arrays) == 3  # nothing submitted
    (tmp_path / "result" / "a" / "m0.json").unlink()
    progress = drive_with(launcher, toy_grid())
    assert started(progress) == {"a/m0"} and [a["tasks"] for a in fake.arrays[3:]] == [["a/m0"]]
    assert fake.arrays[3]["params"]["slurm_additional_parameters"].get("dependency") is None  # pre: done
    assert runs(tmp_path)[6:] == ["m0"]


def drive_with(launcher: SlurmLauncher, tasks: list) -> Progress:
    progress = Progress(tasks, "toy", out=io.StringIO())
    run_grid(tasks, launcher, progress)
    return progress


def test_an_array_task_runs_only_after_its_dependencies_ended_well(tmp_path: Path) -> None:
    tasks = {t.id: t for t in toy_grid()}
    folder = tmp_path / "outcomes"
    step = SlurmStep(tasks["a/m1"], str(tmp_path), sys.executable, 0, str(folder))
    out = step()  # p1 never reported (cancelled, or killed by Slurm): m1 does not run
    assert out.status == "skipped" and "a/p1 failed" in out.tail and read_outcome(folder, "a/m1") == out
    write_outcome(folder, Outcome("a/pre", "failed", returncode=1))
    assert SlurmStep(tasks["a/p1"], str(tmp_path), sys.executable, 0, str(folder))().status == "skipped"
    for name in ("a/pre", "a/p1"):
        assert SlurmStep(tasks[name], str(tmp_path), sys.executable, 0, str(folder))().ok
    assert step().ok and runs(tmp_path) == ["pre", "p1", "m1"]
    requeued = step.checkpoint()  # what submitit resubmits on preemption or timeout: the same step
    assert requeued.function is step and requeued.args == () and requeued.kwargs == {}


# ------------------------------------------------------------------ a local Slurm, when slurm-wlm is installed

SLURM_CONF = """ClusterName=toy
SlurmctldHost={host}
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
SlurmctldPort={port}
SlurmdPort={port2}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture
def local_slurm(monkeypatch: pytest.MonkeyPatch):
    """slurmctld + slurmd for one 2-CPU node, no authentication (auth/none: a test cluster only)."""
    missing = [b for b in ("slurmctld", "slurmd", "sbatch") if shutil.which(b) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"no local Slurm: {'missing ' + ', '.join(missing) if missing else 'needs root'} "
                    "(apt-get install -y slurm-wlm)")
    folder = Path(f"/tmp/slurm-{os.getpid()}")  # short: Slurm's socket and state paths
    (folder / "state").mkdir(parents=True, exist_ok=True)
    (folder / "spool").mkdir(exist_ok=True)
    conf = folder / "slurm.conf"
    port = 17000 + os.getpid() % 1000 * 2
    conf.write_text(SLURM_CONF.format(host=socket.gethostname().split(".")[0], port=port, port2=port + 1, d=folder))
    monkeypatch.setenv("SLURM_CONF", str(conf))
    started = [subprocess.run([daemon, "-f", str(conf)], capture_output=True, text=True)
               for daemon in ("slurmctld", "slurmd")]
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            log = "\n".join(p.stderr for p in started) + (folder / "slurmctld.log").read_text()[-2000:]
            pytest.skip(f"local Slurm did not start (node state '{state}'):\n{log}")
        yield folder
    finally:
        for pid_file in ("slurmd.pid", "slurmctld.pid"):  # our two daemons, by the pids they wrote
            path = folder / pid_file
            if path.exists():
                with suppress(ProcessLookupError):
                    os.kill(int(path.read_text().strip()), signal.SIGTERM)
        time.sleep(1)
        shutil.rmtree(folder, ignore_errors=True)


def test_local_slurm_runs_a_grid_and_a_preempted_task_resumes(tmp_path: Path, local_slurm: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    logging.getLogger("submitit").setLevel(logging.ERROR)  # no accounting here: submitit warns on every sacct
    tasks = toy_grid()
    launcher = SlurmLauncher(args(poll=0.5, time=5), Context(tmp_path, sys.executable, 1))
    progress = Progress(tasks, "toy", out=io.StringIO())
    launcher.run(tasks, progress)
    assert progress.ok, progress.summary()
    assert sorted(runs(tmp_path)) == sorted(t.id[2:] for t in tasks)
    before = made(tmp_path)

    # Preemption: p1 sleeps in its first run; Slurm's warning signal (USR2, as before a preemption or the time
    # limit) makes submitit requeue the array task, and its second run finishes p1 and then m1 runs.
    (tmp_path / "result" / "a" / "p1.json").unlink()
    monkeypatch.setenv("TOY_FAULT", "p1:sleep-once")
    progress = Progress(tasks, "toy", out=io.StringIO())
    signal_when_sleeping(tmp_path)
    launcher.run(tasks, progress)
    assert progress.ok, progress.summary()
    assert (tmp_path / ".p1.sleep-once").exists() and runs(tmp_path)[6:] == ["p1", "m1"]
    assert {k for k, v in made(tmp_path).items() if v["model_id"] != before[k]["model_id"]} == {"p1", "m1"}


def signal_when_sleeping(root: Path) -> None:
    """In the background: once p1's first run sleeps (the other tasks of its level are up to date and end
    at once), send USR2 to the running jobs (scancel --signal, as Slurm does before preempting)."""

    def watch() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not (root / ".p1.sleep-once").exists():
            time.sleep(0.2)
        time.sleep(3)
        jobs = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True).stdout
        for job_id in jobs.split():
            subprocess.run(["scancel", "--signal=USR2", job_id], capture_output=True)
        # Slurm holds a requeued job for ~2.5 min (measured here: 162 s) before it may start again; the
        # test lets it start at once, as a busy cluster's queue wait would anyway make it wait.
        while time.time() < deadline:
            held = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True,
                                  text=True).stdout.split("\n")
            held = [line.split()[0] for line in held if line.endswith("BeginTime")]
            for job_id in held:
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)
            if held:
                return
            time.sleep(0.5)
    threading.Thread(target=watch, daemon=True).start()
