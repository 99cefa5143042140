"""What a launcher is: a name, its own flags, a check before any work, and `run`, which reports every task's
Outcome to the shared Progress. See launch/README.md for adding one."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from launch.progress import Progress
from launch.tasks import Task


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
