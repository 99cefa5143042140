"""Files: an append after a killed write keeps both records readable; a full disk is one user error and
leaves no temporary file behind."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import storage
from errors import UserError
from results import read_records


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
