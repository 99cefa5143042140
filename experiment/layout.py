"""Where an experiment's outputs live: result/<config>/ for models, splits and scores, log/<config>/ for logs
and results.jsonl, the artifact's folder names per model (core/setting.py), and the shell commands that make
each output (for hints). `Layout` is mixed into `Experiment`; it reads only `cfg` and `opts`.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from core.config_schema import Config
from core.errors import UserError
from core.setting import ModelSetting
from experiment.runtime import RunOptions


def result_dir(cfg: Config) -> Path:
    return Path("result") / cfg.stem


def log_dir(cfg: Config) -> Path:
    return Path("log") / cfg.stem


def role_label(shadow: int | None) -> str:
    return "victim" if shadow is None else f"shadow {shadow}"


def step_command(opts: RunOptions, script: str, extra: str = "") -> str:
    """The shell command of a step on the run's config, for hints: a user can paste it, so the device and the
    config path are shell-quoted (a path with a space or a quote stays one argument)."""
    device, config = shlex.quote(opts.device or "auto"), shlex.quote(opts.config_path)
    return f"python {script} --device {device} {config}{(' ' + extra) if extra else ''}"


def memscore_file(cfg: Config) -> Path:
    """memscore.py's scores of one config (read by the defenses with needs_mem_scores)."""
    return result_dir(cfg) / "memscore" / "scores.npz"


def split_file(cfg: Config) -> Path:
    return result_dir(cfg) / "data_index.json"


class Layout:
    """The paths and commands of one experiment (a mixin of `Experiment`)."""

    cfg: Config
    opts: RunOptions

    @property
    def root(self) -> Path:
        return result_dir(self.cfg)

    @property
    def logs(self) -> Path:
        return log_dir(self.cfg)

    def roles(self) -> list[int | None]:
        """The victim first, then every shadow, the order in which the artifact trains them."""
        return [None, *range(self.cfg.shadow_num)]

    def model_dir(self, setting: ModelSetting, shadow: int | None) -> Path:
        return setting.folder(self.root, shadow)

    def command(self, script: str, extra: str = "") -> str:
        """The shell command of a step on this experiment, for hints."""
        return step_command(self.opts, script, extra)

    def make_command(self, setting: ModelSetting) -> str:
        """The command that makes the models of `setting` (pretrain.py or prune.py with its flags)."""
        return self.command(setting.make_script(), setting.flags())

    def checkpoint_path(self, setting: ModelSetting, shadow: int | None) -> Path:
        return self.model_dir(setting, shadow) / "best.pth"

    def require_models(self, setting: ModelSetting, shadows: bool = True) -> None:
        """UserError naming the first missing checkpoint of `setting` and the command that makes it."""
        for shadow in (self.roles() if shadows else [None]):
            self.require_model(setting, shadow)

    def require_model(self, setting: ModelSetting, shadow: int | None) -> None:
        path = self.checkpoint_path(setting, shadow)
        if not path.is_file():
            what = "original model" if setting.is_original else f"{role_label(shadow)} checkpoint"
            raise UserError(f"{what} {path} not found", f"make it with: {self.make_command(setting)}")

    def reference_path(self, setting: ModelSetting, index: int) -> Path:
        """refs.py's reference model `index` of `setting` (the victim's kind)."""
        return setting.refs_folder(self.root) / f"reference_model_{index}" / "best.pth"
