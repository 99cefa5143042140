"""The one task model of every launcher: a Task is one step command, its resources and the tasks it needs.

The dependencies are read off what each command names, not off the order the grid lists it in: a command
*makes* some things (a model folder, a config's mem-scores, reference models, a NAS search) and *reads*
others. The graph joins every read to the task that makes it:

    pretrain.py             makes the original (victim + shadows)
    memscore.py             makes the config's mem-scores (reads only the data: no dependency)
    prune.py S              reads the original (and the mem-scores when S's defense uses them); makes S
    refs.py --original      reads the original (its split); makes the original's references
    refs.py S               reads the original's references and S; makes S's references
    mia.py S [--adaptive] [--shadow_*]   reads the victim S, the shadows' setting (an original on either side:
                            sparsity 0 / --original), and S's references if the grid makes them (`--attacks
                            all` runs the online attacks only when they exist)
    nas_privacy.py search [--defense D]  makes the search of D (a search defense) or the plain one
    nas_privacy.py amia / adra           read the plain search (the attacker's); amia also the defended search;
                            a defended amia after the plain one, which makes the attacker's shadow search
                            they all reuse (run side by side, each would search it again into one folder)

A task is done when its outputs exist with matching settings: the step scripts decide that themselves (they
skip finished models). So that a finished grid does not start Python and torch once per task to learn that,
each task also carries the files it makes and reads (`files`, glob patterns under the repository, from
`files_of` below) and the results log it reads (`appends`): launch/records.py keeps a record of them per
finished task, and the driver skips a task whose record still matches everything.
No torch here until `build_tasks` parses the setting flags (cli's parser names the model folders).
"""
from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.setting import AttackSetting

# What a command makes or reads: (kind, config, name), e.g. ("model", "digits_columnfc", "l1unstructure_0.7").
Key = tuple[str, str, str]

# Steps that only read what a config's training steps made; the local launcher starts them after every
# ready training step, so the training chains (which unlock many attacks each) stay ahead.
ATTACK_STEPS = ({"mia.py"}, {"nas_privacy.py", "amia"}, {"nas_privacy.py", "adra"})


@dataclass(frozen=True)
class Task:
    """One step command of the grid. `id` is `<config>/<position in its block>`, stable while the grid is."""

    id: str
    command: str                      # as grid.py writes it: "python prune.py config/x.json --flags"
    deps: tuple[str, ...] = ()        # ids of the tasks whose outputs this one reads
    cpus: int = 1                     # threads of the step (--threads) and the CPUs a backend reserves
    gpus: float = 0.0                 # GPUs a backend reserves; a fraction packs small models on one GPU
    config: str = ""
    files: tuple[str, ...] = ()       # glob patterns of the files it makes and reads (none: never skipped)
    appends: tuple[str, ...] = ()     # append-only logs it reads and appends to (log/<config>/results.jsonl)

    @property
    def is_attack(self) -> bool:
        words = shlex.split(self.command)[1:3]
        return any(step <= {Path(words[0]).name, *words[1:]} for step in ATTACK_STEPS)

    def argv(self, python: str) -> list[str]:
        """The process every backend runs: the same flags everywhere, so every backend gets the same numbers
        (the thread count changes CPU reductions' order, hence `--threads` from the task, not the machine)."""
        return [python, *shlex.split(self.command)[1:], "--quiet", "--device", "auto", "--threads", str(self.cpus)]


def config_of(command: str) -> str:
    """The config stem a command works on: its first argument ending in .json (nas_privacy.py puts a
    subcommand before it)."""
    return next(Path(a).stem for a in shlex.split(command)[2:] if a.endswith(".json"))


def files_of(key: Key) -> list[str]:
    """Where the outputs of `key` live (core/setting.py's folders, nas_privacy.py's search files), as glob patterns
    whose `*` spans folders too (fnmatch): a model is its victim folder and every shadow folder."""
    kind, cfg, name = key
    root = f"result/{cfg}"
    if kind == "model":
        if name == "original":
            return [f"{root}/victim_model/*", f"{root}/shadow_model_*"]
        return [f"{root}/{name}_model/*", f"{root}/shadow_{name}_model_*"]
    if kind == "refs":
        return [f"{root}/refs/{name}/*"]
    if kind == "memscore":
        return [f"{root}/memscore/*"]
    if kind == "search":
        return [f"{root}/nas/{name}/target_*"]
    if kind == "nas_shadow":
        return [f"{root}/nas/none/shadow_*"]
    raise ValueError(f"no files for {key}")


@dataclass
class _Io:
    makes: list[Key] = field(default_factory=list)
    needs: list[Key] = field(default_factory=list)       # missing from the grid: a bug in the grid
    wants: list[Key] = field(default_factory=list)       # used when the grid makes them (references)
    outputs: list[str] = field(default_factory=list)     # what it writes that no other command reads
    appends: list[str] = field(default_factory=list)
    split: str = ""                                      # the split file of its config

    def files(self) -> tuple[str, ...]:
        """Every pattern of what the command makes and reads, the split file first."""
        keys = self.makes + self.needs + self.wants
        return tuple(dict.fromkeys([self.split, *(p for k in keys for p in files_of(k)), *self.outputs]))


def _setting_parser() -> argparse.ArgumentParser:
    from experiment.cli import add_setting_flags  # cli imports the registries (torch): only when a graph is built

    p = argparse.ArgumentParser(add_help=False)
    add_setting_flags(p)
    for flag in ("--original", "--adaptive"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--shadow_pruner_name", default=None)
    p.add_argument("--shadow_prune_sparsity", type=float, default=None)
    p.add_argument("--defense", default=None)
    p.add_argument("--defense_arg", type=float, default=None)
    return p


def attack_of(ns: argparse.Namespace) -> AttackSetting:
    """The victim and shadows of a mia.py command, as mia.attack_setting reads its flags (without its checks,
    which need the config; tests/test_launch.py compares the two on the quick profile)."""
    from core.setting import AttackSetting, ModelSetting
    from experiment.cli import setting_of

    if ns.original:  # --pruner_name names pruned shadows' approach unless --shadow_pruner_name does
        return AttackSetting.of(ModelSetting.original(), shadow_pruner_name=ns.shadow_pruner_name or ns.pruner_name,
                                shadow_sparsity=ns.shadow_prune_sparsity)
    return AttackSetting.of(setting_of(ns), adaptive=ns.adaptive, shadow_pruner_name=ns.shadow_pruner_name,
                            shadow_sparsity=ns.shadow_prune_sparsity)


def _io(command: str, parser: argparse.ArgumentParser) -> _Io:
    """What one command makes and reads (the table in the module docstring)."""
    from core.setting import ModelSetting
    from defenses import needs_mem_scores
    from experiment.cli import setting_of
    from nas.defenses import SEARCH_DEFENSES

    words = shlex.split(command)
    script, cfg = Path(words[1]).name, config_of(command)  # a script may be named by its path
    ns, _ = parser.parse_known_args(words[2:])

    def model(s: ModelSetting) -> Key:
        return ("model", cfg, s.prefix or "original")

    def refs(s: ModelSetting) -> Key:
        return ("refs", cfg, s.prefix or "original")

    original = ModelSetting.original()
    io = _Io(split=f"result/{cfg}/{'nas/' if script == 'nas_privacy.py' else ''}data_index.json")
    if script == "pretrain.py":
        io.makes.append(model(original))
    elif script == "memscore.py":
        io.makes.append(("memscore", cfg, ""))
    elif script == "prune.py":
        s = setting_of(ns)
        io.needs.append(model(original))
        if s.defended and needs_mem_scores(s.defend):
            io.needs.append(("memscore", cfg, ""))
        io.makes.append(model(s))
    elif script == "refs.py":
        s = original if ns.original else setting_of(ns)
        io.needs += [model(original)] if s.is_original else [refs(original), model(s)]
        io.makes.append(refs(s))
    elif script == "mia.py":
        a = attack_of(ns)
        io.needs += list(dict.fromkeys([model(a.victim), model(a.shadows)]))
        io.wants.append(refs(a.victim))
        io.outputs.append(f"result/{cfg}/mia/{a.name}/*")
        io.appends.append(f"log/{cfg}/results.jsonl")
    elif script == "nas_privacy.py":
        sub, defense = words[2], ns.defense or "none"
        tag = f"{defense}_{ns.defense_arg:g}" if defense != "none" else "none"
        searched = tag if defense in SEARCH_DEFENSES else "none"
        if sub == "search":
            io.makes.append(("search", cfg, searched))
        else:
            io.needs += list(dict.fromkeys([("search", cfg, "none"), ("search", cfg, searched)]))
            if sub == "amia":
                (io.makes if tag == "none" else io.needs).append(("nas_shadow", cfg, ""))
            io.outputs.append(f"result/{cfg}/nas/{tag}/{sub}/*")
        io.appends.append(f"log/{cfg}/results.jsonl")
    else:
        raise ValueError(f"grid command of an unknown step: {command}")
    return io


def build_tasks(blocks: Sequence[Sequence[str]], cpus: int = 1, gpus: float = 0.0) -> list[Task]:
    """The grid's tasks, block by block in the grid's order, each with the ids of the tasks it reads from.
    A read no task of the grid makes is a ValueError (a grid that cannot run as written)."""
    parser = _setting_parser()
    ids, ios = [], []
    for commands in blocks:
        for i, command in enumerate(commands):
            ids.append(f"{config_of(command)}/{i}")
            ios.append(_io(command, parser))
    if len(set(ids)) != len(ids):
        raise ValueError("two grid blocks share a config; each config is one block")
    maker: dict[Key, str] = {}
    for task_id, io in zip(ids, ios):
        for key in io.makes:
            if key in maker:
                raise ValueError(f"{key} is made by both {maker[key]} and {task_id}")
            maker[key] = task_id
    commands = [c for block in blocks for c in block]
    tasks = []
    for task_id, command, io in zip(ids, commands, ios):
        missing = [k for k in io.needs if k not in maker]
        if missing:
            raise ValueError(f"{command} reads {missing}, which no grid command makes")
        deps = [maker[k] for k in io.needs + io.wants if k in maker]
        tasks.append(Task(task_id, command, tuple(dict.fromkeys(deps)), cpus, gpus, config_of(command), io.files(),
                          tuple(io.appends)))
    return tasks


def levels(tasks: Iterable[Task]) -> list[list[Task]]:
    """Tasks by dependency depth: level 0 needs nothing, level k needs only tasks of levels below k."""
    depth: dict[str, int] = {}
    by_id = {t.id: t for t in tasks}

    def of(t: Task) -> int:
        if t.id not in depth:
            depth[t.id] = 1 + max((of(by_id[d]) for d in t.deps), default=-1)
        return depth[t.id]
    out: list[list[Task]] = []
    for t in by_id.values():
        k = of(t)
        out += [[] for _ in range(k + 1 - len(out))]
        out[k].append(t)
    return out


def dependants(tasks: Iterable[Task], roots: Iterable[str]) -> set[str]:
    """`roots` and every task that reads from them, directly or not."""
    tasks = list(tasks)
    out = set(roots)
    grew = True
    while grew:
        new = {t.id for t in tasks if t.id not in out and out.intersection(t.deps)}
        out |= new
        grew = bool(new)
    return out


def describe(tasks: Sequence[Task]) -> str:
    """`--dry-run`: every task with its resources and dependencies, then its command."""
    lines = []
    for t in tasks:
        after = f"after {', '.join(t.deps)}" if t.deps else "no dependencies"
        lines.append(f"{t.id}  [cpus {t.cpus}, gpus {t.gpus:g}]  {after}\n    {t.command}")
    depth = levels(tasks)
    lines.append(f"{len(tasks)} tasks in {len(depth)} dependency levels ("
                 + ", ".join(str(len(level)) for level in depth) + ")")
    return "\n".join(lines)
