"""Tables and figure paths for report.py: AMIA by (dataset, P, defense), ADRA SR / MSE, reconstruction grids.

`write_nas_report(records, out)` takes result records (dicts from results.jsonl) and writes Markdown tables
into `out`; it returns (title, path relative to out) pairs, the grids' paths relative to the cwd as recorded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from storage import atomic_write

AMIA_COLS = ("dataset_name", "P", "defense", "setting", "membership_set", "attack", "attack_acc_2p1", "f1", "acc",
             "auc", "tpr_at_1pct_fpr", "target_theta_acc", "target_unseen_acc")
ADRA_COLS = ("dataset_name", "P", "activation", "batch", "defense", "grad_noise", "sr", "mse", "psnr", "n")


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_nas_report(records: list[dict[str, Any]], out: Path) -> list[tuple[str, str]]:
    out = Path(out)
    amia = sorted((r for r in records if str(r.get("setting", "")).startswith("nas_amia")),
                  key=lambda r: tuple(str(r.get(c, "")) for c in AMIA_COLS[:6]))
    adra = sorted((r for r in records if r.get("setting") == "nas_adra"),
                  key=lambda r: tuple(str(r.get(c, "")) for c in ADRA_COLS[:6]))
    made: list[tuple[str, str]] = []
    if amia:
        atomic_write(out / "nas_amia.md", lambda f: f.write(_table(amia, AMIA_COLS)), mode="w")
        made.append(("AMIA by dataset, P and defense (eq. 11 2P-1, eq. 12 F1, project metrics)", "nas_amia.md"))
    if adra:
        atomic_write(out / "nas_adra.md", lambda f: f.write(_table(adra, ADRA_COLS)), mode="w")
        made.append(("ADRA success rate and MSE by P, activation, B and defense", "nas_adra.md"))
        made += [(f"ADRA reconstructions P={r['P']} {r['activation']} B={r['batch']} noise={r.get('grad_noise', 0)}",
                  str(r["grid"])) for r in adra if r.get("grid") and Path(r["grid"]).is_file()]
    return made
