"""The step scripts' command line: `[DEVICE] CONFIG [flags]`, every config key as a `--<key>` flag (generated
from config.py's schema, with its help and default shown once), run options, the pruned-model flags, and the
one-line error path (`error: <what> (<hint>)`, exit 2) that argparse's own errors use too (core/cli.py, torch-free;
`Parser` and `run_main` are re-exported here for the steps).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import defenses
import pruner
from core import config_schema, provenance
from core.cli import Parser, bounded, run_main  # noqa: F401 (the steps import run_main from here)
from core.config_schema import Config, load_config
from core.errors import UserError
from core.setting import ModelSetting
from core.version import add_version_flag
from defenses import DefenseOptions
from defenses.base import ACCOUNTANTS, MODES
from experiment import RunOptions


def _number(kind: type) -> Callable[[str], Any]:
    """int/float conversion whose failure argparse reports as 'invalid value'."""
    def convert(text: str) -> Any:
        return kind(text)
    convert.__name__ = kind.__name__
    return convert


MAX_THREADS = 4096  # configure_backends' bound, checked again there for callers that skip the parser


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=bounded(int, 1, MAX_THREADS), default=None,
                   help="CPU threads for torch (default: torch's choice); 1 is best when jobs run side by side")


def base_parser(description: str) -> Parser:
    """Flags every step shares. Config-key flags default to None (= use the JSON); help shows the default."""
    p = Parser(description=description, usage="%(prog)s [DEVICE] CONFIG [options]")
    p.add_argument("positional", nargs="+", metavar="[DEVICE] CONFIG",
                   help="optional device (GPU id like 0, or cpu) then the JSON config path")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: auto, CUDA when present)")
    for name in config_schema.flag_keys():
        field = config_schema.FIELDS[name]
        kind = field.metadata["kind"]
        if name in config_schema.REQUIRED:
            shown = "required in the config"
        else:
            default = "epochs // 2" if name == "prune_epochs" else str(config_schema.default_of(name))
            shown = f"config default {default}"
        p.add_argument(f"--{name}", type=_number(kind) if kind in (int, float) else str, default=None,
                       help=f"{field.metadata['help']} ({shown}; {config_schema.allowed(name)})")
    p.add_argument("--overwrite", action="store_true", help="redo finished steps instead of skipping them")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (ignored on the CPU)")
    p.add_argument("--fast", action="store_true",
                   help="cudnn.benchmark and TF32 on: faster on GPUs, not bit-reproducible")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_flag(p)
    add_code_flags(p)
    return p


def add_code_flags(p: argparse.ArgumentParser) -> None:
    """--version, and --strict_version for the steps that reuse finished outputs (docs/design.md §9.4)."""
    add_version_flag(p)
    p.add_argument("--strict_version", action="store_true",
                   help="refuse to reuse an output made by another version or commit of this code (default: "
                        "reuse it, with one note line naming the versions)")


def start_code_check(ns: argparse.Namespace) -> None:
    """After parsing: this run's reuse of outputs made by other code starts from nothing (see run_main)."""
    provenance.REUSE.start(strict=getattr(ns, "strict_version", False))


def add_workers_flag(p: argparse.ArgumentParser) -> None:
    """For the steps that train one model per role (pretrain.py, prune.py)."""
    p.add_argument("--workers", type=int, default=1,
                   help="train the victim and shadows in this many processes sharing the cores, each with "
                        "threads // workers torch threads; faster for small models (default 1)")


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """The flags that name a pruned / defended model (prune.py makes it, mia.py attacks it)."""
    p.add_argument("--pruner_name", default="l1unstructure",
                   help="pruning approach, one of: " + ", ".join(pruner.PRUNERS.names()) + " (default l1unstructure)")
    p.add_argument("--prune_sparsity", type=float, default=0.7,
                   help="fraction of the targeted weights removed (default 0.7)")
    p.add_argument("--defend", default="", help="defense during fine-tuning: " + defenses.defense_help())
    p.add_argument("--defend_arg", type=float, default=None,
                   help="the defense's strength (default: the defense's own, listed under --defend)")
    p.add_argument("--dp_clip", type=float, default=1.0, help="dp / dpsgd clipping norm (default 1.0)")
    p.add_argument("--dp_delta", type=float, default=1e-5, help="dpsgd delta at which epsilon is reported "
                                                                "(default 1e-5)")
    dp = DefenseOptions()
    p.add_argument("--dp_lr", type=float, default=None,
                   help="dp / dpsgd SGD learning rate (default: the defense's own, dp 0.005, dpsgd 0.05)")
    p.add_argument("--dp_momentum", type=float, default=dp.dp_momentum,
                   help=f"dp / dpsgd SGD momentum (default {dp.dp_momentum:g})")
    p.add_argument("--dp_steps_per_epoch", type=int, default=dp.dp_steps_per_epoch,
                   help="dp / dpsgd noisy steps per fine-tuning epoch (default 0: N // batch_size, one expected "
                        "pass over the training split)")
    p.add_argument("--dp_accountant", default=dp.dp_accountant, choices=ACCOUNTANTS,
                   help="dpsgd's privacy accountant: rdp (Renyi DP) or prv (privacy loss random variables, "
                        f"tighter) (default {dp.dp_accountant})")
    p.add_argument("--defense_mode", default=dp.defense_mode, choices=MODES,
                   help="fixed (default), or artifact: " + " and ".join(d.name for d in defenses.DEFENSES
                                                                          if "artifact" in d.modes)
                        + " as the artifact ran them (README differences 13, 14)")
    wemem = DefenseOptions()
    p.add_argument("--stride", type=int, default=wemem.stride,
                   help=f"WeMem window defenses: ranks the window moves per epoch (default {wemem.stride})")
    p.add_argument("--width", type=int, default=wemem.width,
                   help=f"WeMem window defenses: ranks per class per epoch (default {wemem.width})")
    p.add_argument("--mem_thre", type=float, default=wemem.mem_thre,
                   help=f"WeMem ml2 family: mem-score at or above which a row is risky (default {wemem.mem_thre:g})")
    p.add_argument("--weight_decay_mem", type=float, default=wemem.weight_decay_mem,
                   help="WeMem ml2 family: the risky rows' optimizer weight decay "
                        f"(default {wemem.weight_decay_mem:g}; WeMem's scripts use 0.1)")


SETTING_FLAGS = ("pruner_name", "prune_sparsity", "defend", "defend_arg", "dp_clip", "dp_delta", "dp_lr",
                 "dp_momentum", "dp_steps_per_epoch", "dp_accountant", "defense_mode", "stride", "width", "mem_thre",
                 "weight_decay_mem")  # add_setting_flags' flags


def given_setting_flags(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> list[str]:
    """The setting flags (add_setting_flags) this command line sets to something other than their defaults."""
    return [f"--{name}" for name in SETTING_FLAGS if getattr(ns, name) != parser.get_default(name)]


def setting_of(ns: argparse.Namespace) -> ModelSetting:
    """The model named by the flags; a defense without --defend_arg gets that defense's default, and the
    options it reads beyond --defend_arg (WeMem's --stride ...) join its folder name."""
    setting = ModelSetting(ns.pruner_name, ns.prune_sparsity, ns.defend or "", ns.defend_arg)
    if not setting.defended and ns.defend_arg is not None:  # it would be dropped without a word
        raise UserError(f"--defend_arg {ns.defend_arg:g} without a defense",
                        "name the defense with --defend, or drop --defend_arg")
    if setting.defended and setting.defend_arg is None:
        setting = replace(setting, defend_arg=defenses.default_arg(setting.defend))
    if setting.defended:
        setting = replace(setting, options=defenses.folder_options(setting.defend, defense_options(ns)))
    return setting


def defense_options(ns: argparse.Namespace, cfg: Config | None = None) -> DefenseOptions:
    """The defense options of the flags; with the config, also what the experiment supplies from it (the
    config's epochs, which dp's artifact mode multiplies its steps by)."""
    return DefenseOptions(dp_clip=ns.dp_clip, dp_delta=ns.dp_delta, dp_lr=ns.dp_lr, dp_momentum=ns.dp_momentum,
                          dp_steps_per_epoch=ns.dp_steps_per_epoch, dp_accountant=ns.dp_accountant,
                          defense_mode=ns.defense_mode, stride=ns.stride, width=ns.width, mem_thre=ns.mem_thre,
                          weight_decay_mem=ns.weight_decay_mem, config_epochs=cfg.epochs if cfg else 0)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None
          ) -> tuple[argparse.Namespace, RunOptions, Config]:
    """Parse the artifact's `[DEVICE] CONFIG` positionals and the flags, then load the config."""
    ns = parser.parse_args(argv)
    start_code_check(ns)
    pos = ns.positional
    if len(pos) > 2:
        raise UserError(f"too many positional arguments: {' '.join(pos)}", "usage: [DEVICE] CONFIG [--flags]")
    device = ns.device
    if len(pos) == 2:
        if device is not None:
            raise UserError("device given twice (positional and --device)", "keep one of them")
        device = pos[0]
    workers = getattr(ns, "workers", 1)
    if not 1 <= workers <= 1024:
        raise UserError(f"--workers must be between 1 and 1024, got {workers}")
    opts = RunOptions(config_path=pos[-1], device=device, overwrite=ns.overwrite, amp=ns.amp, fast=ns.fast,
                      quiet=ns.quiet, threads=ns.threads, workers=workers, download=getattr(ns, "download", False))
    overrides = {k: getattr(ns, k) for k in config_schema.flag_keys()}
    return ns, opts, load_config(opts.config_path, overrides)
