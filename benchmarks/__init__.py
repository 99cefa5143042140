"""bench.py's sections: one module each (its measurements and one `Section.run`), registered here in the order
bench.py runs and numbers them (`### 4. ...` is the fourth entry, whichever sections a run picks). Adding a
section is one module (its `SECTION = Section(name, help, run)`) plus its name in the tuple below."""
from __future__ import annotations

import argparse
import re

import torch

from benchmarks import (
    device,
    ensemble,
    mem_scores,
    pipeline,
    references,
    rerun,
    samia,
    sensitivity,
    threshold,
    train_loop,
    workers,
)
from benchmarks.common import CONFIGS, PROFILES, ROOT, Bench, Section
from core.errors import UserError
from core.registry import Registry

SECTIONS: Registry[Section] = Registry("bench section")
for _module in (train_loop, sensitivity, threshold, pipeline, workers, mem_scores, references, samia, ensemble, rerun,
                device):
    SECTIONS.register(_module.SECTION)

# Flags only some sections read: given without any of them, they would be ignored without a word.
CUDA_FLAGS = ("device", "bench_rows", "bench_models", "bench_attack_epochs")


def comma_list(text: str, flag: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise UserError(f"{flag} names nothing", "give a comma list")
    twice = sorted({s for s in items if items.count(s) > 1})
    if twice:
        raise UserError(f"{flag} names {', '.join(twice)} twice", "name each once")
    return items


def plan(args: argparse.Namespace) -> tuple[Bench, list[tuple[int, Section]]]:
    """The run's settings and its (number, section) list, every flag checked before any measurement."""
    if args.sections is None:  # what this machine can run: no cuda without CUDA
        chosen = [s for s in SECTIONS if s.unavailable(None) is None]
    else:
        chosen = [SECTIONS.get(name) for name in comma_list(args.sections, "--sections")]
    configs = comma_list(args.configs, "--configs") if args.configs is not None else list(CONFIGS)
    for c in configs:
        if not re.fullmatch(r"[\w.-]+", c) or not (ROOT / "config" / f"{c}.json").is_file():
            raise UserError(f"--configs {c}: no config/{c}.json", "name configs by their file's stem")
    try:
        device = torch.device(args.device or "cuda")
    except RuntimeError:
        raise UserError(f"--device {args.device}: not a device", "cuda, cuda:N or cpu") from None
    if device.type == "cuda" and device.index is not None and device.index >= max(torch.cuda.device_count(), 1):
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")
    prof = PROFILES["quick" if args.quick else "full"]
    bench = Bench(args.quick, prof, tuple(configs), args.threads, device, args.bench_rows or 13_500,
                  args.bench_models or 6, args.bench_attack_epochs or 100)
    for s in chosen:
        why = s.unavailable(bench)
        if why:
            raise UserError(f"--sections {s.name}: {why}")
        unknown = [c for c in configs if s.config_flags and c not in prof.pipeline]
        if unknown:
            raise UserError(f"--sections {s.name} has step flags for {', '.join(prof.pipeline)} only, not "
                            f"{', '.join(unknown)}", "pick those with --configs, or leave the section out")
    if args.configs is not None and not any(s.uses_configs for s in chosen):
        raise UserError("--configs without a section that reads it",
                        "sections that do: " + ", ".join(s.name for s in SECTIONS if s.uses_configs))
    given = [f"--{f}" for f in CUDA_FLAGS if getattr(args, f) is not None]
    if given and SECTIONS.get("cuda") not in chosen:
        raise UserError(f"{', '.join(given)} without --sections cuda, the only section that reads "
                        + ("it" if len(given) == 1 else "them"))
    number = {s: i for i, s in enumerate(SECTIONS, 1)}
    return bench, [(number[s], s) for s in SECTIONS if s in chosen]
