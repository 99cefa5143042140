"""Files: an append after a killed write keeps both records readable; a full disk is one user error and
leaves no temporary file behind."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from core import storage
from core.errors import UserError
from core.results import read_records


def test_append_after_a_cut_line_keeps_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    storage.append_jsonl(path, {"config": "c", "setting": "original", "attack": "a", "paper_acc": 50.0})
    with open(path, "a") as f:
        f.write('{"config": "c", "setting": "orig')  # a run killed in the middle of its line
    storage.append_jsonl(path, {"config": "c", "setting": "original", "attack": "b", "paper_acc": 60.0})
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["attack"] == "b"
    records, notes = read_records(path)
    assert [r.attack for r in records] == ["a", "b"] and len(notes) == 1 and "not valid JSON" in notes[0]


def test_a_full_disk_is_one_user_error_without_leftovers(tmp_path: Path) -> None:
    def write(f: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(UserError, match="No space left on device"):
        storage.atomic_write(tmp_path / "x.npz", write)
    assert list(tmp_path.iterdir()) == []


def test_other_write_errors_stay_bugs(tmp_path: Path) -> None:
    def write(f: object) -> None:
        raise ValueError("a bug")
    with pytest.raises(ValueError):
        storage.atomic_write(tmp_path / "x.npz", write)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_that_is_not_a_dict_is_one_user_error(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "best.pth"
    torch.save([1, 2, 3], path)  # loads under weights_only, but is no checkpoint
    with pytest.raises(UserError, match=r"best.pth holds a list, not a checkpoint dict \(delete it and rerun: x\)"):
        storage.load_checkpoint(path, "x")


@pytest.mark.parametrize("keep", [0, 10, 100, -10])
def test_a_cut_short_npz_is_one_user_error_naming_it(tmp_path: Path, keep: int) -> None:
    import numpy as np

    path = tmp_path / "scores.npz"
    storage.atomic_save_npz(path, per_pool=np.arange(1000.0))
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(UserError, match="scores.npz is unreadable or cut short .* rerun: python memscore.py"):
        storage.load_npz(path, ["per_pool"], "python memscore.py")


def test_leftover_tmp_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "victim_model"
    folder.mkdir()
    dead = folder / ".best.pth.4194304999.abcd1234.tmp"   # a pid above Linux's maximum: its writer is gone
    live = folder / f".best.pth.{os.getpid()}.efgh5678.tmp"  # a writer still running (this process)
    other = folder / ".data.npz.4194304999.ijkl9012.tmp"    # another target's leftover
    for f in (dead, live, other):
        f.write_bytes(b"half a file")
    storage.atomic_write(folder / "best.pth", lambda f: f.write(b"whole"))
    assert (folder / "best.pth").read_bytes() == b"whole"
    assert not dead.exists() and live.exists() and other.exists()  # the write cleans its own target's leftovers
    assert storage.remove_stale_tmp(tmp_path, recursive=True) == [other]  # a step's start sweeps the rest
    assert live.exists() and sorted(p.name for p in folder.iterdir()) == sorted(["best.pth", live.name])
