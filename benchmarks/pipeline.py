"""Section "pipeline": one full setting (pretrain, prune l1unstructure 0.7, every attack) through the step
scripts, each step's wall time and mia.py's parts (features, each attack, the rest)."""
from __future__ import annotations

import json
import sys

from attackers import ATTACKS
from attackers.threshold import ThresholdAttack
from benchmarks.common import (
    ROOT,
    Bench,
    Profile,
    Section,
    data_root,
    fmt_s,
    import_seconds,
    run_step,
    say,
    table,
    workdir,
)
from core.config_schema import load_config

THRESHOLD_FAMILY = ThresholdAttack.results()
ATTACK_ORDER = ATTACKS.names()


def bench_pipeline(stem: str, prof: Profile, threads: int | None) -> tuple[list[list[str]], str]:
    flags = prof.pipeline[stem]
    cfg = load_config(ROOT / "config" / f"{stem}.json")
    common = ["cpu", f"config/{stem}.json", "--quiet", "--data_root", str(data_root(cfg))]
    if threads is not None:
        common += ["--threads", str(threads)]

    def only(*keys: str) -> list[str]:  # the subset of `flags` a script accepts
        out = []
        for k, v in zip(flags[::2], flags[1::2]):
            if k in keys:
                out += [k, v]
        return out
    shared = only("--shadow_num")
    prune = ["--pruner_name", "l1unstructure", "--prune_sparsity", "0.7"]
    steps = [("pretrain", ["pretrain.py", *common, *shared, *only("--epochs")]),
             ("prune", ["prune.py", *common, *shared, *prune, *only("--prune_epochs")]),
             ("mia", ["mia.py", *common, *shared, *prune, "--attacks", "all",  # all: skips LiRA/RMIA online
                      *only("--attack_epochs")])]
    rows: list[list[str]] = []
    with workdir() as (work, logs):
        walls: dict[str, float] = {}
        for name, (script, *args) in steps:
            wall, ok = run_step(name, [sys.executable, str(ROOT / script), *args], work, logs)
            walls[name] = wall
            if not ok:
                rows.append([stem, name, "FAILED", "see stderr"])
                return rows, " ".join(flags) or "(config as is)"
        records = [json.loads(line) for line in (work / "log" / stem / "results.jsonl").read_text().splitlines()]
    per_attack: dict[str, float] = {}
    for r in records:
        family = "threshold" if r["attack"] in THRESHOLD_FAMILY else r["attack"]
        per_attack[family] = per_attack.get(family, 0.0) + float(r["attack_seconds"])
    feature_s = float(records[0]["feature_seconds"]) if records else float("nan")
    attacks = [(a, per_attack[a]) for a in ATTACK_ORDER if a in per_attack]
    rest = walls["mia"] - feature_s - sum(s for _, s in attacks)
    top_step = max(("pretrain", "prune", "mia"), key=lambda k: walls[k])
    top_part = max([("features", feature_s), *attacks], key=lambda i: i[1])[0]
    star = lambda hit, what: f" **← most expensive {what}**" if hit else ""  # noqa: E731
    rows.append([stem, "pretrain.py", fmt_s(walls["pretrain"]) + star(top_step == "pretrain", "step"),
                 "victim + shadows, whole process"])
    rows.append([stem, "prune.py", fmt_s(walls["prune"]) + star(top_step == "prune", "step"),
                 "l1unstructure 0.7 + fine-tune victim + shadows, whole process"])
    rows.append([stem, "mia.py", fmt_s(walls["mia"]) + star(top_step == "mia", "step"),
                 "whole process"])
    rows.append([stem, "↳ features", fmt_s(feature_s) + star(top_part == "features", "part of mia.py"),
                 "confidences + sensitivity of victim and shadows (+ BlindMI probes)"])
    for a, sec in attacks:
        rows.append([stem, f"↳ {a}", fmt_s(sec) + star(top_part == a, "part of mia.py"), "attack only"])
    rows.append([stem, "↳ rest", fmt_s(rest), "Python start + imports, data, checkpoints, writing results"])
    return rows, " ".join(flags) or "(config as is)"


def run(bench: Bench) -> str:
    imp = import_seconds()
    rows, used = [], []
    for c in bench.configs:
        say(f" {c}")
        r, flags = bench_pipeline(c, bench.prof, bench.threads)
        rows += r
        used.append(f"`{c}`: {flags}")
    return ("One full setting through the step scripts (l1unstructure 0.7, all attacks)\n\n"
            + "Flags: " + "; ".join(used) + f". Every step also pays ~{fmt_s(imp)} to start Python and import "
            "torch + the project.\n\n" + table(["config", "step", "wall time", "what"], rows))


SECTION = Section("pipeline", "one full setting through the step scripts, each step's and each attack's time",
                  run, uses_configs=True, config_flags=True)
