"""What a hostile user found, end to end: a killed `--workers` run leaves no worker
behind, a diverged or damaged checkpoint and NaN attack scores are one `error:` line naming the culprit,
`--defend_arg` alone is refused, and hints are commands that survive a paste into a shell."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mia
import prune
from attackers.threshold import ThresholdAttack
from conftest import ROOT, run_script
from core.errors import UserError
from core.storage import atomic_save_npz
from defenses import memscores
from experiment.cli import run_main

CONFIG = "config/digits_columnfc.json"
FAST = ("--shadow_num", "1", "--epochs", "2", "--prune_epochs", "1", "--quiet", "--threads", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits_columnfc pretrained and pruned (l1unstructure 0.5) once, with one shadow."""
    root = tmp_path_factory.mktemp("hostile")
    shutil.copytree(ROOT / "config", root / "config")
    for script, extra in (("pretrain.py", ()), ("prune.py", ("--prune_sparsity", "0.5"))):
        out = run_script(script, "cpu", CONFIG, *extra, *FAST, cwd=root)
        assert out.returncode == 0, out.stderr
    return root


@pytest.fixture
def work(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained folder as cwd, so a test may damage files."""
    copy = tmp_path / "work"
    shutil.copytree(trained, copy)
    monkeypatch.chdir(copy)
    return copy


def error_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, main, *argv: str) -> str:
    """Run a step's main() in-process under run_main; asserts exit 2 with one `error:` line, returns it."""
    monkeypatch.setattr(sys, "argv", ["step", *argv])
    with pytest.raises(SystemExit) as e:
        run_main(main)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ------------------------------------------------------------------------------------------ orphaned workers
def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_killed_parent(tmp_path: Path) -> None:
    # early_stop 0 and 10^5 epochs: without their parent the two workers would train for hours.
    shutil.copytree(ROOT / "config", tmp_path / "config")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, str(ROOT / "pretrain.py"), "cpu", CONFIG, "--workers", "2",
                               "--shadow_num", "3", "--epochs", "100000", "--early_stop", "0", "--quiet",
                               "--threads", "2"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and parent.poll() is None:
            workers = [p for p in children(parent.pid)
                       if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
            log = tmp_path / "log" / "digits_columnfc" / "pretrain.log"
            if len(workers) == 2 and log.is_file() and "Epoch 3 Train" in log.read_text():
                break  # both spawned and the models are training
            time.sleep(0.2)
        assert len(workers) == 2, f"workers never started (parent exit {parent.poll()})"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(alive, workers)):
            time.sleep(0.1)
        left = [w for w in workers if alive(w)]
    finally:
        for pid in [w for w in children(parent.pid)]:
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
    for pid in left:  # clean up before failing, so a failure does not leave hours of training behind
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"


# ------------------------------------------------------------------------------------------ NaN models and scores
@pytest.mark.e2e
def test_a_checkpoint_with_nan_weights_is_refused_naming_it(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    path = work / "result" / "digits_columnfc" / "shadow_l1unstructure_0.5_model_0" / "best.pth"
    ckpt = torch.load(path, weights_only=True)
    ckpt["state"]["4.weight"][0, 0] = float("nan")
    torch.save(ckpt, path)
    line = error_line(monkeypatch, capsys, mia.main, "cpu", CONFIG, *FAST, "--prune_sparsity", "0.5",
                      "--attacks", "threshold")
    assert f"checkpoint {path.relative_to(work)} holds a diverged model: non-finite values in 4.weight" in line
    assert not (work / "log" / "digits_columnfc" / "results.jsonl").exists()


@pytest.mark.e2e
def test_a_checkpoint_that_is_no_dict_is_one_line(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    path = work / "result" / "digits_columnfc" / "l1unstructure_0.5_model" / "best.pth"
    torch.save(torch.zeros(3), path)
    line = error_line(monkeypatch, capsys, mia.main, "cpu", CONFIG, *FAST, "--prune_sparsity", "0.5")
    assert "holds a Tensor, not a checkpoint dict" in line and "python prune.py" in line


@pytest.mark.e2e
def test_nan_attack_scores_are_refused_naming_the_attack(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    real_run = ThresholdAttack.run

    def nan_run(self, data):  # an attack whose scores came out NaN (e.g. a learned attack that diverged)
        return [r if r.name != "mentr" else type(r)(r.name, np.full_like(r.scores, np.nan), r.decisions, r.paper_acc)
                for r in real_run(self, data)]
    monkeypatch.setattr(ThresholdAttack, "run", nan_run)
    line = error_line(monkeypatch, capsys, mia.main, "cpu", CONFIG, *FAST, "--prune_sparsity", "0.5",
                      "--attacks", "threshold")
    assert "attack mentr on l1unstructure_0.5 gave non-finite scores" in line
    records = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    assert len(records) == 3 and not (work / "result" / "digits_columnfc" / "mia" / "l1unstructure_0.5"
                                      / "mentr.npz").exists()  # conf, xent, entr came first and are kept


def test_cut_short_mem_scores_are_one_line(tmp_path: Path) -> None:
    atomic_save_npz(tmp_path / "scores.npz", per_pool=np.arange(100.0))
    data = (tmp_path / "scores.npz").read_bytes()
    (tmp_path / "scores.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match="scores.npz is unreadable or cut short .BadZipFile. .delete it and rerun: "
                                        "python memscore.py X --overwrite"):
        memscores.load_scores(tmp_path, np.arange(10), "python memscore.py X")


# ------------------------------------------------------------------------------------------ flags and hints
@pytest.mark.parametrize("main", [prune.main, mia.main])
def test_defend_arg_without_defend_is_refused(main, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    for defend in ((), ("--defend", "basic")):
        line = error_line(monkeypatch, capsys, main, "cpu", CONFIG, "--defend_arg", "8", *defend)
        assert line == "error: --defend_arg 8 without a defense (name the defense with --defend, or drop --defend_arg)"


def test_hints_are_shell_quoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "my configs"
    folder.mkdir()
    config = folder / "digits it's.json"
    shutil.copy(ROOT / CONFIG, config)
    line = error_line(monkeypatch, capsys, prune.main, "cpu", str(config.relative_to(tmp_path)))
    command = line.split("make it with: ", 1)[1].rstrip(")")
    assert shlex.split(command)[:5] == ["python", "pretrain.py", "--device", "cpu", "my configs/digits it's.json"]
