"""What a launcher is: a name, its own flags, a check before any work, and `run`, which reports every task's
Outcome to the shared Progress. See launch/README.md for adding one."""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from launch.progress import Progress
from launch.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
DEV_TOOLS = {"pytest", "pytest-xdist", "ruff"}  # in requirements.txt for the tests; no step imports them


def check_requirements(requirements: Path = ROOT / "requirements.txt") -> None:
    """The Python that runs the steps (this one, on every launcher) has the packages of requirements.txt
    installed (versions are not compared: a CUDA build of the pinned torch reads 2.x+cu121): one UserError
    naming what is missing, before any step would fail on its import. Reads package metadata, imports nothing."""
    names = [re.split(r"[=<>!~\[; ]", line.strip(), maxsplit=1)[0] for line in requirements.read_text().splitlines()]
    missing = []
    for name in names:
        if not name or name.startswith("#") or name in DEV_TOOLS:
            continue
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise UserError(f"this Python ({sys.executable}) lacks {', '.join(missing)}",
                        "pip install -r requirements.txt, or set PYTHON to the environment that has them")


@dataclass(frozen=True)
class Context:
    """What every backend needs besides the tasks: where the repository (and result/, log/) is, the Python
    that runs the steps, and how often a killed step is run again."""

    root: Path
    python: str
    retries: int


class Launcher:
    name = ""
    help = ""

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        self.args, self.ctx = args, ctx

    @classmethod
    def add_flags(cls, group: argparse._ArgumentGroup) -> None:
        """The backend's own flags (grid.py shows them under the backend's name)."""

    def check(self) -> None:
        """Every problem a user can fix (a missing package, an impossible resource request) as a UserError,
        before any task runs."""

    def gpus_per_task(self) -> float:
        """GPUs per task when --gpus_per_task is not given."""
        return 0.0

    def run(self, tasks: Sequence[Task], progress: Progress) -> None:
        raise NotImplementedError
