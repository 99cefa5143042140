"""nas_privacy.py's outputs: AMIA by (dataset, P, defense), ADRA's success rate and MSE, and ADRA's reconstruction
grids, copied into the report. The last record per table key counts (a rerun appends again); the tables follow
the report's number rule (reporting/markdown.py). A grid is copied only when its recorded path lies under the
results root and the file is a PNG.
"""
from __future__ import annotations

import shutil
from typing import Any

import pandas as pd

from reporting import files
from reporting.context import Report
from reporting.markdown import NUMBER_RULE, Entry, output_path, to_markdown, write_text
from reporting.records import SOURCE, safe_name

SECTION = "Architecture privacy (nas_privacy.py)"
AMIA_KEY = ("config", "dataset_name", "P", "activation", "defense", "setting", "membership_set", "eta", "attack")
AMIA_COLS = ("dataset_name", "P", "defense", "setting", "membership_set", "attack", "attack_acc_2p1", "f1", "acc",
             "auc", "tpr_at_1pct_fpr", "target_theta_acc", "target_alpha_acc", "target_unseen_acc")
ADRA_KEY = ("config", "dataset_name", "P", "activation", "batch", "defense", "grad_noise", "attacker_theta")
ADRA_COLS = ("dataset_name", "P", "activation", "batch", "defense", "grad_noise", "sr", "mse", "psnr", "match_loss",
             "n")
# What bounds each attack (records of schema 5): shown beside it when the records carry it
AMIA_BOUNDS = ("accuracy_cap", "channel_bits")
ADRA_BOUNDS = ("arch_grad_rank", "unknowns")


def latest(records: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """The last record per key, sorted by the key's text."""
    kept = {tuple(str(r.get(k, "")) for k in key): r for r in records}
    return [kept[k] for k in sorted(kept)]


def nas_table(rows: list[dict[str, Any]], cols: tuple[str, ...], bounds: tuple[str, ...]) -> pd.DataFrame:
    """The rows' `cols`, plus the bound columns any row carries."""
    shown = [*cols, *(b for b in bounds if any(r.get(b) is not None for r in rows))]
    return pd.DataFrame([{c: r.get(c) for c in shown} for r in rows], columns=shown)


def copy_grids(r: Report, adra: list[dict[str, Any]]) -> list[Entry]:
    """Each ADRA record's reconstruction grid as out/nas_adra/<config>_<name>.png."""
    made = []
    for rec in adra:
        recorded = rec.get("grid")
        src = files.within_root(r.root, recorded) if recorded else None
        if recorded and src is None:
            why = f"grid {recorded!r} is outside the results root {r.root}"
        elif src is None or not src.exists():
            continue  # no grid recorded, or not made: nothing to copy
        else:
            problem = files.image_problem(src) or (None if safe_name(src.stem) else "not a plain file name")
            why = f"grid {recorded!r}: {problem}" if problem else None
        if why:
            r.note(pd.Series({SOURCE: rec[SOURCE]}), why)
            continue
        name = f"nas_adra/{rec['config']}_{src.stem}.png"
        shutil.copyfile(src, output_path(r.out, name))
        made.append(Entry(SECTION, name, f"ADRA reconstructions ({rec['config']}, P={rec.get('P')}, "
                          f"{rec.get('activation')}, B={rec.get('batch')}, arch-gradient noise "
                          f"{rec.get('grad_noise', 0)}): originals above, "
                          "reconstructions below"))
    return made


def nas_outputs(r: Report) -> list[Entry]:
    records = [s.record.to_json() | {SOURCE: s.where} for s in r.nas]
    amia = latest([x for x in records if str(x.get("setting", "")).startswith("nas_amia")], AMIA_KEY)
    adra = latest([x for x in records if x.get("setting") == "nas_adra"], ADRA_KEY)
    made: list[Entry] = []
    if amia:
        write_text(r.out, "nas_amia.md", "# AMIA\n\n" + NUMBER_RULE + "\n\n"
                   + to_markdown(nas_table(amia, AMIA_COLS, AMIA_BOUNDS)))
        made.append(Entry(SECTION, "nas_amia.md", "AMIA by dataset, P and defense: membership in D^alpha (the "
                          "architecture's training set) and D^theta (the weights'); eq. 11 2P-1 and eq. 12 F1 as "
                          "fractions, the project's metrics in %"))
    if adra:
        write_text(r.out, "nas_adra.md", "# ADRA\n\n" + NUMBER_RULE + "\n\n"
                   + to_markdown(nas_table(adra, ADRA_COLS, ADRA_BOUNDS)))
        made.append(Entry(SECTION, "nas_adra.md", "ADRA success rate (%) and MSE by P, activation, B and "
                          "arch-gradient noise"))
        made += copy_grids(r, adra)
    return made

