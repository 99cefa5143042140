"""Files and logs, below every other module: atomic writes, JSON lines, checkpoints that never run code, and
the project's logger (stdout through tqdm plus a log file).

Every write goes through a temporary file in the same folder and a rename, so a crash or a full disk never
leaves half a file that a later step would take for a finished result.
"""
from __future__ import annotations

import errno
import fcntl
import glob
import json
import logging
import os
import re
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.errors import UserError

log = logging.getLogger("prune_mia")


class _TqdmHandler(logging.StreamHandler):
    """Writes through tqdm so log lines do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stdout)


def setup_logging(log_file: Path) -> None:
    """Log lines go to stdout and to `log_file` (appended, so reruns keep the history)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in (_TqdmHandler(), logging.FileHandler(log_file)):
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and caches in shared folders should stay readable
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):  # the user's to fix, not a bug
            raise UserError(f"cannot write {path}: {e.strerror}", "free some disk space or fix the folder's "
                            "permissions, then rerun (finished results are kept)") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A temporary file is `.<name>.<pid of its writer>.<random>.tmp`: a kill (SIGKILL, power loss) skips the cleanup
# of atomic_write, so the next write of the same file, and every step's start (remove_stale_tmp over its result
# folder), removes those whose writer is gone. A live writer's file is left alone.
TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")
OLD_TMP_SECONDS = 24 * 3600  # a temporary file without a writer pid (older versions) counts as stale after a day


def _writer_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # no such process (or a pid no process can have)
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_tmp(folder: Path, name: str | None = None, recursive: bool = False) -> list[Path]:
    """Delete the temporary files of killed atomic writes in `folder` (of target `name` only, when given; in
    every subfolder too when `recursive`); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{glob.escape(name)}.*{TMP_SUFFIX}" if name else f".*{TMP_SUFFIX}"
    removed = []
    for tmp in (folder.rglob(pattern) if recursive else folder.glob(pattern)):
        match = _TMP_NAME.match(tmp.name)
        try:
            stale = not _writer_alive(int(match["pid"])) if match and (name is None or match["name"] == name) \
                else match is None and time.time() - tmp.stat().st_mtime > OLD_TMP_SECONDS
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue  # gone already (another process cleaned it) or not ours to delete
    return removed


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch  # here, not at the top: report.py and grid.py use this module without needing torch

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_checkpoint(path: Path, make_hint: str, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint that never runs code; a missing or corrupt file names the command that makes it.
    `mmap`: map the tensors instead of reading them (reading only the provenance record costs ~1 ms)."""
    import torch

    if not path.is_file():
        raise UserError(f"checkpoint {path} not found", f"make it with: {make_hint}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # pickle, zip and torch errors all mean the same thing to the user
        raise UserError(f"checkpoint {path} is unreadable ({type(e).__name__})",
                        f"delete it and rerun: {make_hint}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a checkpoint dict",
                        f"delete it and rerun: {make_hint}")
    return ckpt


# What np.load raises on a damaged npz: a cut-short file is a BadZipFile (not an OSError), an empty one EOFError,
# a missing array KeyError, a damaged member a zlib / CRC ValueError or BadZipFile.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def read_npz(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays `keys` of an npz file, never unpickling; raises one of NPZ_ERRORS when it is damaged."""
    with np.load(path, allow_pickle=False) as f:
        return {k: np.asarray(f[k]) for k in keys}


def load_npz(path: Path, keys: Iterable[str], make_hint: str) -> dict[str, np.ndarray]:
    """`read_npz` for outputs a later step needs: a damaged file is one UserError naming it and its maker."""
    try:
        return read_npz(path, keys)
    except NPZ_ERRORS as e:
        raise UserError(f"{path} is unreadable or cut short ({type(e).__name__})",
                        f"delete it and rerun: {make_hint}") from None


RECORD_KEY = "provenance"  # where a checkpoint or an npz keeps its provenance record (provenance.py)


def checkpoint_record(path: Path, make_hint: str) -> dict[str, Any] | None:
    """The provenance record of a checkpoint (None: it has none), without reading its tensors."""
    record = load_checkpoint(path, make_hint, mmap=True).get(RECORD_KEY)
    return record if isinstance(record, dict) else None


def save_npz_with_record(path: Path, record: dict[str, Any], **arrays: np.ndarray) -> None:
    """atomic_save_npz with the provenance record inside, as one JSON string."""
    atomic_save_npz(path, **arrays, **{RECORD_KEY: np.str_(json.dumps(record, sort_keys=True))})


def npz_record(path: Path) -> dict[str, Any] | None:
    """The provenance record of an npz: {} when it has none (made before records existed), None when the file
    is unreadable (a torn copy: not done, it is made again)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if RECORD_KEY not in f.files:
                return {}
            record = json.loads(str(f[RECORD_KEY]))
    except NPZ_ERRORS as e:
        log.info(f"{path}: unreadable ({type(e).__name__}), it will be made again")
        return None
    return record if isinstance(record, dict) else {}


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One record per line, appended under an exclusive lock (fcntl.flock) with the whole line in one write:
    two runs appending at once (two launchers on one grid, possibly on a shared filesystem where
    O_APPEND alone does not keep writes apart) never interleave. A file whose last line was cut short (a
    killed run) gets its newline first, so the cut line stays one bad line that readers skip instead of
    swallowing this record too; the check and the write happen under the same lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(finite(record), sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size > 0:
            with open(path, "rb") as tail:
                tail.seek(size - 1)
                if tail.read(1) != b"\n":
                    line = b"\n" + line
        view = memoryview(line)
        while view:  # a regular file takes the line in one write; a short write (disk nearly full) continues
            view = view[os.write(fd, view):]
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise UserError(f"cannot append to {path}: {e.strerror}", "free some disk space or fix the folder's "
                            "permissions, then rerun (finished results are kept)") from None
        raise
    finally:
        os.close(fd)  # closing releases the lock


def finite(value: Any) -> Any:
    """inf / nan (e.g. epsilon without noise) become null: JSON has no Infinity, and readers choke on it."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return finite(value.item())
    return value
