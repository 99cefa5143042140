"""The launchers with the real steps: deleting a model's folder makes exactly the task that makes it and the
tasks that read it do work again; every other task finds its outputs up to date and writes nothing."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from launch.local import LocalLauncher
from launch.tasks import build_tasks
from launch_helpers import TINY, checkout, drive, launch, started

pytestmark = pytest.mark.e2e  # every test here runs step scripts (or other programs)


def snapshot(root: Path) -> dict[str, int]:
    """Every file under result/ with its modification time (ns): what a rerun rewrote."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted((root / "result").rglob("*"))
            if p.is_file()}


def records(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()]


def test_deleting_a_model_folder_redoes_exactly_its_task_and_dependants(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the grid driver: the task records leave out the tasks whose files are as they were (pretrain,
    the original's attack), the others' steps decide, and a third run starts no step and changes nothing."""
    checkout(tmp_path)
    monkeypatch.chdir(tmp_path)
    tasks = build_tasks([TINY.commands()])  # pretrain, prune 0.7, mia original, mia 0.7
    assert drive(LocalLauncher, tasks, tmp_path).ok
    before, first = snapshot(tmp_path), records(tmp_path)
    victim = "result/digits_columnfc/l1unstructure_0.7_model"
    assert f"{victim}/best.pth" in before
    for path in (tmp_path / victim).iterdir():
        path.unlink()
    (tmp_path / victim).rmdir()

    progress = drive(LocalLauncher, tasks, tmp_path)
    assert progress.ok, progress.summary()
    assert started(progress) == {"digits_columnfc/1", "digits_columnfc/3"}  # prune 0.7 and the attack on it
    after, second = snapshot(tmp_path), records(tmp_path)
    rewritten = {p for p in after if before.get(p) != after[p]}
    # the pruned victim again, and the pruned setting's attack outputs; the original, the pruned shadow, the
    # original's attack: untouched
    assert f"{victim}/best.pth" in rewritten
    kept = ("victim_model", "shadow_model", "shadow_l1unstructure_0.7", "mia/original/")
    assert not any(p.startswith(tuple(f"result/digits_columnfc/{k}" for k in kept)) for p in rewritten), rewritten
    assert any(p.startswith("result/digits_columnfc/mia/l1unstructure_0.7/") for p in rewritten), sorted(rewritten)
    new = second[len(first):]
    assert new and {r["setting"] for r in new} == {"l1unstructure_0.7"}
    assert {r["attack"] for r in new} == {r["attack"] for r in first if r["setting"] == "l1unstructure_0.7"}
    third = drive(LocalLauncher, tasks, tmp_path)
    assert third.ok and started(third) == set()
    assert snapshot(tmp_path) == after and len(records(tmp_path)) == len(second)


def test_two_launchers_at_once_on_real_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two local launchers on one grid at the same time (every task runs twice, side by side): both finish,
    every results line is whole, and a third run finds everything up to date."""
    checkout(tmp_path)
    monkeypatch.chdir(tmp_path)
    tasks = build_tasks([TINY.commands()])
    done: list = []
    runs = [threading.Thread(target=lambda: done.append(launch(LocalLauncher, tasks, tmp_path, jobs=1)))
            for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert len(done) == 2 and all(p.ok for p in done), [p.summary() for p in done]
    lines = records(tmp_path)  # json.loads raises on a broken line
    assert {r["setting"] for r in lines} == {"original", "l1unstructure_0.7"}
    before = snapshot(tmp_path)
    assert launch(LocalLauncher, tasks, tmp_path).ok
    assert snapshot(tmp_path) == before and len(records(tmp_path)) == len(lines)
