"""Tables and figures for report.py: AMIA by (dataset, P, defense), ADRA SR / MSE, reconstruction grids.

`write_nas_report(records, out, root)` takes result records (dicts from results.jsonl), keeps the last one per
table key (a rerun appends again), writes Markdown tables into `out` and copies the ADRA grids (recorded paths
relative to `root`) into `out/nas_adra/`; it returns (title, path relative to out) pairs for the index.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from core.storage import atomic_write

AMIA_KEY = ("config", "dataset_name", "P", "activation", "defense", "setting", "membership_set", "eta", "attack")
AMIA_COLS = ("dataset_name", "P", "defense", "setting", "membership_set", "attack", "attack_acc_2p1", "f1", "acc",
             "auc", "tpr_at_1pct_fpr", "target_theta_acc", "target_alpha_acc", "target_unseen_acc")
ADRA_KEY = ("config", "dataset_name", "P", "activation", "batch", "defense", "grad_noise", "attacker_theta")
ADRA_COLS = ("dataset_name", "P", "activation", "batch", "defense", "grad_noise", "sr", "mse", "psnr", "match_loss",
             "n")


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def latest(records: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """The last record per key, sorted by the key's text."""
    kept = {tuple(str(r.get(k, "")) for k in key): r for r in records}
    return [kept[k] for k in sorted(kept)]


def _grids(adra: list[dict[str, Any]], out: Path, root: Path) -> list[tuple[str, str]]:
    made = []
    for r in adra:
        src = root / str(r.get("grid", ""))
        if not r.get("grid") or not src.is_file():
            continue
        name = f"nas_adra/{r['config']}_{src.stem}.png"
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / name)
        made.append((f"ADRA reconstructions ({r['config']}, P={r['P']}, {r['activation']}, B={r['batch']}, "
                     f"arch-gradient noise {r.get('grad_noise', 0)}): originals above, reconstructions below", name))
    return made


def write_nas_report(records: list[dict[str, Any]], out: Path, root: Path = Path(".")) -> list[tuple[str, str]]:
    out = Path(out)
    amia = latest([r for r in records if str(r.get("setting", "")).startswith("nas_amia")], AMIA_KEY)
    adra = latest([r for r in records if r.get("setting") == "nas_adra"], ADRA_KEY)
    made: list[tuple[str, str]] = []
    if amia:
        atomic_write(out / "nas_amia.md", lambda f: f.write(_table(amia, AMIA_COLS)), mode="w")
        made.append(("AMIA by dataset, P and defense: membership in D^alpha (the architecture's training set) and "
                     "D^theta (the weights'); eq. 11 2P-1 and eq. 12 F1 as fractions, the project's metrics in %",
                     "nas_amia.md"))
    if adra:
        atomic_write(out / "nas_adra.md", lambda f: f.write(_table(adra, ADRA_COLS)), mode="w")
        made.append(("ADRA success rate (%) and MSE by P, activation, B and arch-gradient noise", "nas_adra.md"))
        made += _grids(adra, out, Path(root))
    return made
