"""Writing tables: CSV with the records' full precision, Markdown with one number format per kind of column (the
number rule, NUMBER_RULE in words), and the index entries that say what each file is.

A column the rule does not know is printed with fields.DEFAULT_FORMAT: a new table column never raises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import UserError
from reporting import fields

HEADERS = {  # Markdown column titles (CSV keeps the record keys)
    "config": "config", "setting": "setting", "attack": "attack", "victim_test_acc": "test acc (%)",
    "paper_acc": "attack acc (%)", "auc": "AUC (%)", "tpr_at_1pct_fpr": "TPR@1%FPR (%)",
    "pruner_name": "pruner", "prune_sparsity": "sparsity", "shadow_pruner_name": "shadow pruner",
    "shadow_prune_sparsity": "shadow sparsity", "known_acc": "known acc (%)", "unknown_acc": "unknown acc (%)",
    "loss_pct": "loss (%)", "mean_loss_pct": "mean loss (%)", "n_pairs": "pairs", "defend": "defense",
    "defend_arg": "arg", "adaptive": "adaptive", "epsilon": "epsilon", "basic_test_acc": "basic test acc (%)",
    "basic_paper_acc": "basic attack acc (%)", "kept": "kept", "reason": "why dropped",
    # nas_privacy.py's tables
    "acc": "acc (%)", "sr": "SR (%)", "target_theta_acc": "target D^theta acc (%)",
    "target_alpha_acc": "target D^alpha acc (%)", "target_unseen_acc": "target unseen acc (%)",
    "accuracy_cap": "accuracy cap (%)", "attack_acc_2p1": "2P-1", "f1": "F1", "arch_grad_rank": "update rank"}
# One number format per kind of column in every Markdown table; the CSV files keep the full precision of
# results.jsonl, so nothing is lost to the rounding.
PERCENT_FORMAT = fields.PERCENT.fmt   # every "(%)" column: accuracies, AUC, TPR, losses (87.7)
EPSILON_FORMAT = fields.EPSILON.fmt   # DP epsilon (3.97), also in the defense figures' labels
SETTING_FORMAT = fields.SETTING.fmt   # sparsity and defense argument as configured (0.6, 16)
SECONDS_FORMAT = fields.SECONDS.fmt   # timings (WeMem's defense time, 12.3)
COUNT_COLUMNS = ("references", "n_pairs")  # table columns of whole numbers (NaN makes them float)
NUMBER_RULE = ("Markdown tables give percentages with one decimal (87.7), ε with two decimals (3.97), seconds "
               "with one decimal, sparsity, rounds and defense arguments as configured (0.6, 16), fractions "
               "that are not percentages (F1, 2P-1) with three decimals (0.125) and other numbers with four "
               "significant digits; the CSV files keep full precision.")


def is_percent(column: str) -> bool:
    """Columns in %: a record's percentage fields, titles ending in (%), and the per-attack columns of the wide
    tables (`samia acc`, `samia AUC`, `TPR@0.1%FPR`)."""
    return (HEADERS.get(column, "").endswith("(%)") or column.endswith((" acc", " AUC")) or column.startswith("TPR@")
            or fields.NUMBERS.get(column) in (fields.PERCENT, fields.SIGNED_PERCENT))


def number_format(column: str) -> str:
    """The format spec of a float column of a Markdown table; fields.DEFAULT_FORMAT for one no rule names."""
    if is_percent(column):
        return PERCENT_FORMAT
    if column in COUNT_COLUMNS:
        return fields.COUNT.fmt
    if column.endswith("_seconds"):
        return SECONDS_FORMAT
    kind = fields.NUMBERS.get(column)
    return kind.fmt if kind is not None else fields.DEFAULT_FORMAT


def fmt(value: Any, column: str) -> str:
    """A cell of `column`: yes/no, blank for a missing value, floats by number_format, text with | and line
    breaks escaped (a cell is one line of one row)."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return format(value, number_format(column))
    return str(value).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency); floats formatted per column (number_format)."""
    if df.empty:
        return "_(no rows)_\n"
    head = [HEADERS.get(c, c) for c in df.columns]
    rows = [[fmt(v, c) for v, c in zip(row, df.columns)] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def per_config_markdown(title: str, intro: str, df: pd.DataFrame, summary: pd.DataFrame | None = None) -> str:
    """`# title`, intro, optional summary table, then one section per config (config column dropped)."""
    parts = [f"# {title}\n\n{intro} {NUMBER_RULE}\n"]
    if summary is not None:
        parts.append("## Summary\n\n" + to_markdown(summary))
    for config, g in df.groupby("config", sort=False):
        parts.append(f"## {config}\n\n" + to_markdown(g.drop(columns="config")))
    return "\n".join(parts)


@dataclass(frozen=True)
class Entry:
    """One line of index.md: a written file with its caption, or a skipped output with the reason."""

    section: str
    file: str | None
    text: str


def skip(section: str, what: str, reason: str) -> Entry:
    return Entry(section, None, f"{what}: {reason}")


def output_path(out: Path, name: str) -> Path:
    """out / name, with its folders made. Every name is built from checked record names (records.safe_name), so
    this never refuses in practice; it is the last guard that nothing is written outside --out."""
    path = out / name
    if not path.resolve().is_relative_to(out.resolve()):
        raise UserError(f"refusing to write {name} outside {out}", "a record name holds a path; report it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_text(out: Path, name: str, text: str) -> None:
    output_path(out, name).write_text(text)


def write_table(out: Path, stem: str, table: pd.DataFrame, caption: str, md: tuple[str, str] | None = None,
                section: str = "Tables") -> list[Entry]:
    """`stem`.csv, plus the Markdown `md` = (file name, text) when given; one index entry per file."""
    table.to_csv(output_path(out, f"{stem}.csv"), index=False)
    entries = [Entry(section, f"{stem}.csv", caption)]
    if md is not None:
        write_text(out, md[0], md[1])
        entries.append(Entry(section, md[0], caption))
    return entries
