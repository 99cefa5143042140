"""Launchers of the experiment grid: one task model (launch.tasks), one way to run a task (launch.execute),
one progress report (launch.progress), and a backend per engine in LAUNCHERS. Ray and submitit are imported
only by their own backend, when it runs (requirements-dist.txt)."""
from __future__ import annotations

from core.registry import Registry
from launch.base import Launcher
from launch.local import LocalLauncher
from launch.ray_backend import RayLauncher
from launch.slurm import SlurmLauncher

LAUNCHERS: Registry[type[Launcher]] = Registry("launcher")
for _launcher in (LocalLauncher, RayLauncher, SlurmLauncher):
    LAUNCHERS.register(_launcher)
