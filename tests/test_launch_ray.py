"""The Ray launcher on a 2-CPU local cluster (CI installs requirements-dist.txt): a killed worker is retried,
a failure skips only its dependants, an existing cluster is joined with --address, and a small real grid
gives the local launcher's numbers exactly."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-dist.txt")

import grid  # noqa: E402
from launch.ray_backend import RayLauncher  # noqa: E402
from launch_helpers import TINY, checkout, launch, made, numbers, runs, toy_grid  # noqa: E402

pytestmark = pytest.mark.e2e  # every test here runs step scripts (or other programs)

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"


def test_killed_worker_is_retried_and_a_failure_skips_only_its_dependants(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # p1's first run SIGKILLs its Ray worker: Ray retries the task. p2 kills its worker every time: Ray gives
    # up after 1 + 2 retries and m2, which reads p2, is skipped. m0's first run is killed itself: run_with_retries
    # runs it again in the same worker. m1 fails (exit 1): not retried.
    monkeypatch.setenv("TOY_FAULT", "p1:kill-parent-once,p2:kill-parent,m0:kill-once,m1:fail")
    progress = launch(RayLauncher, toy_grid(), tmp_path, retries=2)
    outcomes = progress.outcomes
    assert {k: o.status for k, o in outcomes.items()} == {"a/pre": "done", "a/p1": "done", "a/p2": "failed",
                                                          "a/m0": "done", "a/m1": "failed", "a/m2": "skipped"}
    assert outcomes["a/m0"].attempts == 2 and outcomes["a/m1"].attempts == 1
    assert "error: m1 failed on purpose" in outcomes["a/m1"].tail
    assert "Worker" in outcomes["a/p2"].tail and "a/p2 failed" in outcomes["a/m2"].tail
    assert sorted(runs(tmp_path)) == ["m0", "p1", "pre"]                     # p1 and m0 made once each
    assert (tmp_path / ".p1.kill-parent-once").exists()                      # the worker kill did happen
    assert "3 done, 2 failed, 1 skipped of 6 tasks" in progress.summary()


@pytest.fixture
def ray_head(monkeypatch: pytest.MonkeyPatch):
    """`ray start --head --block` with 2 CPUs, as a user starts a cluster; stopped by its process group."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    monkeypatch.setenv("RAY_TMPDIR", temp)  # a driver on the head node finds the cluster's session there
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # `ray start` clusters want a token (README), ~/.ray/auth_token
    env = dict(os.environ, RAY_TMPDIR=temp, PYTHONPATH=str(ROOT))
    port = 6390 + os.getpid() % 500
    proc = subprocess.Popen([str(RAY), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                             "--include-dashboard", "false", "--object-store-memory", str(80 * 1024 * 1024)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline, seen = time.time() + 120, ""
        while time.time() < deadline and "Ray runtime started" not in seen:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen += line
        if "Ray runtime started" not in seen:
            raise AssertionError(f"ray start --head did not start:\n{seen}")
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # as Ctrl-C: `ray start --block` stops its cluster (it ignores TERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_joins_an_existing_cluster_with_address(tmp_path: Path, ray_head: str) -> None:
    root = tmp_path / "grid"
    root.mkdir()
    progress = launch(RayLauncher, toy_grid(), root, address=ray_head)
    assert progress.ok and sorted(runs(root)) == sorted(t.id[2:] for t in toy_grid())
    before = made(root)
    (root / "result" / "a" / "p2.json").unlink()
    assert launch(RayLauncher, toy_grid(), root, address=ray_head).ok
    assert runs(root)[6:] == ["p2", "m2"]
    assert {k for k, v in made(root).items() if v["model_id"] != before[k]["model_id"]} == {"p2", "m2"}


def test_grid_py_with_ray_gives_the_local_launchers_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(grid.PROFILES, "quick", [TINY])
    results, dry = {}, {}
    for launcher in ("local", "ray"):
        root = tmp_path / launcher
        checkout(root)
        monkeypatch.chdir(root)
        for extra in (["--dry-run"], []):
            cpus = ["--ray_cpus", "2"] if launcher == "ray" else []  # another launcher's flag is refused
            monkeypatch.setattr(sys, "argv", ["grid.py", "--profile", "quick", "--jobs", "2", "--launcher", launcher,
                                              *cpus, *extra])
            grid.main()  # exits (SystemExit) if a task failed
            dry.setdefault(launcher, capsys.readouterr().out)
        results[launcher] = numbers(root)
        grid.main()  # again: every task up to date by the records the Ray workers wrote, and no cluster started
        assert "4 of 4 tasks up to date by their records" in capsys.readouterr().out and not ray_initialized()
    assert dry["local"] == dry["ray"] and dry["ray"].endswith("4 tasks in 3 dependency levels (1, 2, 1)\n")
    assert len(results["local"]) >= 2 * 6 and results["local"] == results["ray"]
    assert {s for s, _ in results["local"]} == {"original", "l1unstructure_0.7"}
    log = (tmp_path / "ray" / "log" / "digits_columnfc" / "run_all.out").read_text()
    assert re.search(r"\$ python mia.py config/digits_columnfc.json --original --attacks all", log)


def ray_initialized() -> bool:
    import ray
    return ray.is_initialized()


def grid_py(*flags: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "grid.py"), "--profile", "quick", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return proc, time.perf_counter() - start


def test_an_address_nothing_listens_on_is_one_line_within_seconds() -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, seconds = grid_py("--launcher", "ray", "--address", f"127.0.0.1:{port}")
    assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port}") and seconds < 60


def test_an_address_that_never_answers_is_one_line_not_a_hang() -> None:
    """Something accepts the connection and says nothing (a firewall's tarpit, another service's port): ray.init
    retried for ever before; now the join gives up after CONNECT_TIMEOUT with one line (Ray's retry warnings,
    a line a second, do not reach the terminal)."""
    from launch.ray_backend import CONNECT_TIMEOUT

    server, held = socket.socket(), []
    server.bind(("127.0.0.1", 0))
    server.listen()
    threading.Thread(target=lambda: held.extend(server.accept() for _ in range(100)), daemon=True).start()
    try:
        proc, seconds = grid_py("--launcher", "ray", "--address", f"127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
    assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr
    assert "did not let this driver join within" in proc.stderr and CONNECT_TIMEOUT <= seconds < CONNECT_TIMEOUT + 60
