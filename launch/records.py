"""Task records: a finished grid recognised as done without starting a Python step per task.

The steps decide whether their outputs are up to date (core/provenance.py: settings, split, parents), and that
stays the rule; but asking them costs a Python + torch start per task (4-10 s each on a busy 2-core machine, hours
for the paper grid's 2,492 tasks). So after a task's step succeeds, the backend that ran it (local thread, Ray
worker, Slurm array task: execute.run_with_retries) writes a small record, log/<config>/.tasks/<hash>.json:

- the command (as the grid writes it: the run options the launcher adds, --threads / --device / --quiet, cannot
  change a finished output, as core/provenance.py rules) and the Python that ran it;
- the SHA-256 of the config file and of the project's code (every source file and pyproject.toml, so an edit
  of an uncommitted file counts as other code, which a commit id would not show);
- (size, mtime_ns, inode) of every file the task made and read (Task.files: its model folders, references,
  mem-scores, searches, attack outputs and the split file; temporaries, dot-files, are left out), and of the
  results log it appends to, the size and SHA-256 of the log's first `size` bytes: other tasks append to
  it, so it only has to keep what it held when the task ended.

On a rerun the driver (`current`) compares each record with the files as they are, in-process and without
torch; a task is left out only when everything matches and every task it reads from is left out too.
Anything else (no record, a changed or deleted file, a new file in its folders, another config or code,
`--overwrite` in the command, `grid.py --recheck`) runs the step, which decides as before and, when it
succeeds, writes the record again.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.errors import UserError
from launch.tasks import Task, levels

VERSION = 1
WILDCARD = re.compile(r"[*?\[]")


def record_path(root: Path, task: Task) -> Path:
    name = hashlib.sha256(task.command.encode()).hexdigest()[:24]
    return Path(root) / "log" / task.config / ".tasks" / f"{name}.json"


def config_path(task: Task) -> str | None:
    return next((a for a in shlex.split(task.command)[2:] if a.endswith(".json")), None)


def sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def code_folders(root: Path) -> list[Path]:
    """The repository's code folders: those with a *.py file of their own (packages, core/ a namespace one
    among them), tests/ and hidden folders aside; data, results and virtual environments hold none."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name != "tests" and any(p.glob("*.py")))


@functools.cache
def code_hash(root: Path) -> str:
    """SHA-256 over the project's sources: the root's *.py and pyproject.toml, and every *.py under its code
    folders. Computed once per process."""
    root = Path(root)
    files = [*root.glob("*.py"), root / "pyproject.toml"]
    for folder in code_folders(root):
        files += folder.rglob("*.py")
    h = hashlib.sha256()
    for path in sorted(set(files)):
        if path.is_file():
            h.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes() + b"\0")
    return h.hexdigest()


class Files:
    """The files under `root` that glob patterns name, each with (size, mtime_ns, inode). Folder listings are
    cached, so one instance reads each folder once however many tasks ask (the driver keeps one per check)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._listing: dict[str, list[tuple[str, bool, list[int]]]] = {}

    def _list(self, folder: str) -> list[tuple[str, bool, list[int]]]:
        if folder not in self._listing:
            entries = []
            try:
                with os.scandir(self.root / folder) as it:
                    for e in it:
                        if e.name.startswith("."):  # atomic_write's temporaries and the records themselves
                            continue
                        if e.is_dir():
                            entries.append((e.name, True, []))
                        elif e.is_file():
                            st = e.stat()
                            entries.append((e.name, False, [st.st_size, st.st_mtime_ns, st.st_ino]))
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._listing[folder] = sorted(entries)
        return self._listing[folder]

    def _walk(self, folder: str) -> Iterable[tuple[str, list[int]]]:
        for name, is_dir, stat in self._list(folder):
            rel = f"{folder}/{name}" if folder else name
            if is_dir:
                yield from self._walk(rel)
            else:
                yield rel, stat

    def match(self, patterns: Sequence[str]) -> dict[str, list[int]]:
        """rel path -> [size, mtime_ns, inode] of every file a pattern matches (`*` spans folders)."""
        out: dict[str, list[int]] = {}
        for pattern in patterns:
            cut = WILDCARD.search(pattern)
            literal = pattern[:cut.start()] if cut else pattern
            folder, _, start = literal.rpartition("/")
            for name, is_dir, stat in self._list(folder):
                if not name.startswith(start):
                    continue
                rel = f"{folder}/{name}" if folder else name
                found = self._walk(rel) if is_dir else [(rel, stat)]
                for path, st in found:
                    if fnmatch.fnmatchcase(path, pattern) or (not cut and path.startswith(pattern + "/")):
                        out[path] = st
        return out


def read_log(path: Path) -> bytes:
    """A results log's bytes; a log not written yet reads as empty (its first 0 bytes are always there)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def prefix_digests(path: Path, sizes: Iterable[int]) -> dict[int, str]:
    """SHA-256 of the first n bytes of `path` for each n in `sizes` that the file reaches, in one pass."""
    out: dict[int, str] = {}
    data = read_log(path)
    h, done = hashlib.sha256(), 0
    for n in sorted(set(sizes)):
        if n > len(data):
            break
        h.update(data[done:n])
        done = n
        out[n] = h.hexdigest()
    return out


def _expected(root: Path, task: Task, python: str) -> dict[str, Any]:
    """The fields a record must hold to stand for `task` run now: the command, Python, config and code."""
    cfg = config_path(task)
    return {"version": VERSION, "command": task.command, "python": python,
            "config": sha256_file(Path(root) / cfg) if cfg else None, "code": code_hash(Path(root))}


def write(root: Path, task: Task, python: str) -> None:
    """After the task's step succeeded: the record of what it made and read, as they are now. A task that names
    no files gets no record (nothing to check it by); a record that cannot be written is only a slower rerun."""
    if not task.files:
        return
    from core.storage import atomic_write  # numpy: not at import (grid.py first checks the Python has it)

    root = Path(root)
    try:
        logs = {log: read_log(root / log) for log in task.appends}
        record = _expected(root, task, python) | {
            "files": Files(root).match(task.files),
            "appends": {log: [len(data), hashlib.sha256(data).hexdigest()] for log, data in logs.items()}}
        atomic_write(record_path(root, task), lambda f: json.dump(record, f), mode="w")
    except (OSError, UserError):  # a full disk or a read-only log folder: the step's result stands
        pass


def read(root: Path, task: Task) -> dict[str, Any] | None:
    try:
        record = json.loads(record_path(root, task).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def current(tasks: Sequence[Task], root: Path, python: str) -> set[str]:
    """Ids of the tasks whose record still matches (module doc) and whose dependencies are all current too."""
    root = Path(root)
    files = Files(root)
    records = {t.id: read(root, t) for t in tasks if t.files and "--overwrite" not in shlex.split(t.command)}
    records = {k: r for k, r in records.items() if r is not None}
    logs: dict[str, set[int]] = {}
    for t in tasks:
        for log, (size, _) in (records.get(t.id) or {}).get("appends", {}).items():
            logs.setdefault(log, set()).add(size)
    digests = {log: prefix_digests(root / log, sizes) for log, sizes in logs.items()}
    ok: set[str] = set()
    for t in (t for level in levels(tasks) for t in level):  # a task after the tasks it reads from
        r = records.get(t.id)
        if r is None or not all(d in ok for d in t.deps):
            continue
        same = all(r.get(k) == v for k, v in _expected(root, t, python).items())
        same = same and r.get("files") == files.match(t.files) and set(r.get("appends", {})) == set(t.appends)
        same = same and all(digests[log].get(size) == digest for log, (size, digest) in r["appends"].items())
        if same:
            ok.add(t.id)
    return ok
