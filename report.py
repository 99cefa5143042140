"""Step 4: turn log/*/results.jsonl into tables (CSV + Markdown) and figures (PNG) (DESIGN §9-10).

    python report.py LOGDIR [--out report/] [--root DIR] [--attack NAME]

Reads every LOGDIR/*/results.jsonl that mia.py appended to, keeps the LAST record per (config, setting,
attack) (reruns with --overwrite append again), and writes into --out:
  all_results.csv                    every kept record, nested keys flattened (split.dev, versions.torch, ...)
  headline.csv / .md                 test acc, attack acc, AUC, TPR@1%FPR for samia, mentr, conf, hconf, blindmi
  table1_unknown.csv, table1.md      paper Table 1: attack-accuracy loss (known - unknown) / known, in %
  table2_split.csv, table2.md        paper Table 2: attack AUC per data split (configs differing in their split)
  defense_tradeoff.csv / .md         paper Figs 16-19 data with the paper's dropping rule ('kept' column)
  fig*.png, defense_*.png, roc/...   paper Figs 1, 7-10, 12, 16-19 analogues and log-log ROC curves;
                                     fig12_matrix_<config>.png: Figs 12-13's victim x shadow sparsity heatmaps
  index.md                           every file with a one-sentence caption; skipped figures and why
Per-sample files (scores_file in the records, features.npz beside it) are paths relative to the folder
mia.py ran in, by default LOGDIR's parent (--root overrides). Absent data skip a figure, never the report.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation, Text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from attackers import (  # noqa: E402
    baseline_result,
    classic_result,
    comparison_results,
    headline_results,
    metrics,
    proposed_result,
    result_order,
)
from core import results  # noqa: E402
from core.errors import UserError  # noqa: E402
from core.results import AttackRecord  # noqa: E402
from core.setting import OPTION_SHORT, options_suffix  # noqa: E402
from core.storage import NPZ_ERRORS, read_npz  # noqa: E402
from experiment.cli import run_main  # noqa: E402
from pruner import PRUNERS  # noqa: E402

ROOT = Path(__file__).resolve().parent
KEY = ["config", "setting", "attack"]
KEEP_ACC_FRACTION = 0.75  # paper §6.3.2: drop defended settings below 75 % of Basic's test accuracy
HEADERS = {  # Markdown column titles (CSV keeps the record keys)
    "config": "config", "setting": "setting", "attack": "attack", "victim_test_acc": "test acc (%)",
    "paper_acc": "attack acc (%)", "auc": "AUC (%)", "tpr_at_1pct_fpr": "TPR@1%FPR (%)",
    "pruner_name": "pruner", "prune_sparsity": "sparsity", "shadow_pruner_name": "shadow pruner",
    "shadow_prune_sparsity": "shadow sparsity", "known_acc": "known acc (%)", "unknown_acc": "unknown acc (%)",
    "loss_pct": "loss (%)", "mean_loss_pct": "mean loss (%)", "n_pairs": "pairs", "defend": "defense",
    "defend_arg": "arg", "adaptive": "adaptive", "epsilon": "epsilon", "basic_test_acc": "basic test acc (%)",
    "basic_paper_acc": "basic attack acc (%)", "kept": "kept", "reason": "why dropped"}
ACC_LABEL = "attack accuracy (%)"
TEST_ACC_LABEL = "victim test accuracy (%)"
SPARSITY_LABEL = "sparsity (fraction of weights pruned)"




# ----------------------------------------------------------------------------------------------- loading
def read_records(logdir: Path) -> tuple[list[AttackRecord], list[str]]:
    """Every record of LOGDIR/*/results.jsonl in file order, plus notes about lines that were skipped."""
    if not logdir.is_dir():
        raise UserError(f"{logdir}: no such folder", "pass the log/ folder that mia.py writes to")
    files = sorted(logdir.glob("*/results.jsonl"))
    if not files and (logdir / "results.jsonl").is_file():
        raise UserError(f"{logdir} is one config's log folder", f"pass the folder above it: {logdir.parent}")
    records: list[AttackRecord] = []
    notes: list[str] = []
    for path in files:
        found, skipped = results.read_records(path)
        records += found
        notes += skipped
    if not records:
        raise UserError(f"no results in {logdir}/*/results.jsonl",
                        "run mia.py first; it appends to log/<config>/results.jsonl")
    return records, notes


def dedup(df: pd.DataFrame) -> pd.DataFrame:
    """The last record per (config, setting, attack) in file order: a rerun with --overwrite replaces."""
    return df.drop_duplicates(subset=KEY, keep="last").reset_index(drop=True)


def normalize(records: list[AttackRecord]) -> pd.DataFrame:
    """Flat, deduplicated, sorted DataFrame: shadow_* = victim's when unset (records of other producers)."""
    df = pd.json_normalize([r.to_json() for r in records], sep=".")
    df["defend"] = df["defend"].fillna("").astype(str)
    df["original"] = df["original"].fillna(df["setting"] == "original").astype(bool)
    df["adaptive"] = df["adaptive"].fillna(False).astype(bool)
    for col in ("prune_sparsity", "shadow_prune_sparsity", "defend_arg"):
        df[col] = pd.to_numeric(df[col], errors="coerce").round(6)
    # shadow sparsity 0.0: the unpruned shadows attacking a pruned victim (Figs 12-13), which have no pruner
    unpruned_shadows = df["shadow_prune_sparsity"].eq(0)
    df["shadow_pruner_name"] = df["shadow_pruner_name"].fillna(df["pruner_name"].where(~unpruned_shadows))
    df["shadow_prune_sparsity"] = df["shadow_prune_sparsity"].fillna(df["prune_sparsity"])
    return sort_records(dedup(df))


def sort_records(df: pd.DataFrame) -> pd.DataFrame:
    """Config, original first, pruner, sparsity, defense, argument, adaptive, shadows, attack order."""
    rank = {a: i for i, a in enumerate(result_order())}
    tmp = df.assign(_rank=df["attack"].map(rank).fillna(len(rank)))
    cols = ["config", "original", "pruner_name", "prune_sparsity", "defend", "defend_arg", "adaptive",
            "shadow_pruner_name", "shadow_prune_sparsity", "_rank", "attack"]
    asc = [True, False] + [True] * (len(cols) - 2)
    return tmp.sort_values(cols, ascending=asc, na_position="first", kind="stable").drop(columns="_rank") \
        .reset_index(drop=True)


def load_results(logdir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The pruning study's records (nas_privacy.py's are drawn apart, by `nas_report`)."""
    records, notes = read_records(logdir)
    pruning = [r for r in records if not is_nas(r)]
    return (normalize(pruning) if pruning else pd.DataFrame()), notes


# ----------------------------------------------------------------------------------------------- architecture privacy
def is_nas(record: AttackRecord) -> bool:
    """A record of nas_privacy.py (AMIA / ADRA on a searched architecture): its own tables, not the pruning ones."""
    return record.setting.startswith("nas_")


def nas_report(logdir: Path, root: Path, out: Path) -> tuple[list[Entry], int]:
    """nas/report.py's AMIA and ADRA tables and the ADRA reconstruction grids (copied into `out`; their
    recorded paths resolve against `root`, the folder nas_privacy.py ran in), as index entries; and how many
    records they came from."""
    from nas.report import write_nas_report

    records = [r.to_json() for r in read_records(logdir)[0] if is_nas(r)]
    if not records:
        return [], 0
    return [Entry(NAS_SECTION, file, title) for title, file in write_nas_report(records, out, root)], len(records)


# ----------------------------------------------------------------------------------------------- record kinds
def defended(df: pd.DataFrame) -> pd.Series:
    return df["defend"] != ""


def unknown(df: pd.DataFrame) -> pd.Series:
    """Unknown-setting attacks (paper Table 1, Figs 12-13): shadows pruned differently from the victim,
    an unpruned victim with pruned shadows included."""
    same_pruner = (df["shadow_pruner_name"] == df["pruner_name"]) | df["pruner_name"].isna()
    same_sparsity = np.isclose(df["shadow_prune_sparsity"], df["prune_sparsity"])
    pruned_shadows = df["shadow_prune_sparsity"].fillna(0).ne(0)
    return (~df["original"] & ~(same_pruner & same_sparsity)) | (df["original"] & pruned_shadows)


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """Undefended records with matched shadows: the original and the pruned models of Section 5."""
    return df[~defended(df) & ~unknown(df)]


def main_attack(df: pd.DataFrame, wanted: str | None = None) -> str | None:
    """`wanted` if given, else samia (the paper's), else the attack with the highest mean attack accuracy."""
    attacks = set(df["attack"])
    if wanted is not None:
        return wanted if wanted in attacks else None
    if proposed_result() in attacks:
        return proposed_result()
    return str(df.groupby("attack")["paper_acc"].mean().idxmax()) if len(df) else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r over the finite pairs; nan with fewer than 3 pairs or a constant variable."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


# ----------------------------------------------------------------------------------------------- tables
def headline_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per config and setting, the main attacks that exist: test acc, attack acc, AUC, TPR at 1 % FPR."""
    cols = ["config", "setting", "attack", "victim_test_acc", "paper_acc", "auc", "tpr_at_1pct_fpr"]
    return df.loc[df["attack"].isin(headline_results()), cols].reset_index(drop=True)


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Every unknown-setting record with a pruned victim and pruned shadows (Table 1 draws among the pruned
    settings; an unpruned side belongs to Figs 12-13) beside its known counterpart (same victim, matched
    shadows, same attack).

    loss_pct = (known - unknown) / known * 100 (paper Table 1); nan when no known record exists. The records
    are the distinct pairs attacked: a pair the grid drew twice is one record, a draw that gave the shadows
    the victim's own setting (loss 0 in the paper's mean) has no record of its own, and on a config that also
    runs the sparsity matrix, the matrix's same-approach pairs are records too.
    """
    victim = ["config", "pruner_name", "prune_sparsity", "defend", "defend_arg", "adaptive", "attack"]
    cols = victim + ["shadow_pruner_name", "shadow_prune_sparsity", "known_acc", "unknown_acc", "loss_pct"]
    pruned_both = ~df["original"] & df["shadow_prune_sparsity"].ne(0)  # Table 1 draws among pruned settings
    unk = df[unknown(df) & pruned_both].rename(columns={"paper_acc": "unknown_acc"})
    if unk.empty:
        return pd.DataFrame(columns=cols)
    known = df[~unknown(df) & ~df["original"]].drop_duplicates(victim, keep="last")
    known = known[victim + ["paper_acc"]].rename(columns={"paper_acc": "known_acc"})
    out = unk.merge(known, how="left", on=victim)
    out["loss_pct"] = (out["known_acc"] - out["unknown_acc"]) / out["known_acc"] * 100.0
    return out[cols].reset_index(drop=True)


def table1_summary(t1: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per config and attack over the (victim, shadow) pairs that have a known counterpart."""
    cols = ["config", "attack", "mean_loss_pct", "n_pairs"]
    t = t1.dropna(subset=["loss_pct"])
    if t.empty:
        return pd.DataFrame(columns=cols)
    g = t.groupby(["config", "attack"], sort=False)["loss_pct"]
    return g.agg(mean_loss_pct="mean", n_pairs="count").reset_index()[cols]


TABLE2_SETTING = ("l1unstructure", 0.7)  # paper Table 2: CIFAR10 ResNet18, L1-unstructured at sparsity 0.7
SPLIT_PARTS = ("train", "test", "dev")     # the order of the paper's "Train(%) / Test(%) / Dev(%)"


def split_label(row: pd.Series) -> str:
    """`45/45/10`: the split's train / test / dev shares of each half in percent (paper Table 2's rows)."""
    return "/".join(f"{100 * row[f'split.{p}']:g}" for p in SPLIT_PARTS)


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 2: attack AUC (%) per data split (rows) and attack (columns `<attack> AUC`) at
    TABLE2_SETTING, for every (dataset, model) whose configs differ in their split; empty when none do."""
    pruner, sparsity = TABLE2_SETTING
    cols = [f"split.{p}" for p in SPLIT_PARTS]
    if not set(cols) <= set(df.columns):
        return pd.DataFrame()
    d = plain(df)
    d = d[(d["pruner_name"] == pruner) & np.isclose(d["prune_sparsity"], sparsity)].dropna(subset=cols)
    if d.empty:
        return pd.DataFrame()
    d = d.assign(split=d.apply(split_label, axis=1))
    varied = d.groupby(["dataset_name", "model_name"])["split"].transform("nunique") > 1
    d = d[varied]
    if d.empty:
        return pd.DataFrame()
    rank = {a: i for i, a in enumerate(result_order())}
    attacks = sorted(d["attack"].unique(), key=lambda a: rank.get(a, len(rank)))
    t = d.pivot_table(index=["dataset_name", "model_name", "split.train", "split", "config"], columns="attack",
                      values="auc", aggfunc="last")[attacks]
    t.columns = [f"{a} AUC" for a in attacks]
    return t.reset_index().drop(columns="split.train").rename(columns={"dataset_name": "dataset",
                                                                      "model_name": "model"})


def defense_tradeoff(df: pd.DataFrame) -> pd.DataFrame:
    """Defended records (matched shadows) beside Basic (undefended, same pruner, sparsity and attack).

    The paper's plotting rule (§6.3.2): drop a setting whose test accuracy is below 75 % of Basic's or whose
    attack accuracy is higher than Basic's. Without a Basic record the rule cannot apply: kept, with a reason.
    """
    on = ["config", "pruner_name", "prune_sparsity", "attack"]
    cols = ["config", "pruner_name", "prune_sparsity", "defend", "defense_mode", "defend_arg", "adaptive", "epsilon",
            "attack", "setting", "victim_test_acc", "paper_acc", "basic_test_acc", "basic_paper_acc", "kept", "reason"]
    d = df[defended(df) & ~unknown(df)]
    if d.empty:
        return pd.DataFrame(columns=cols)
    if "defense_mode" not in d:  # records before schema 4
        d = d.assign(defense_mode=None)
    basic = plain(df)
    basic = basic[~basic["original"]].drop_duplicates(on, keep="last")[on + ["victim_test_acc", "paper_acc"]] \
        .rename(columns={"victim_test_acc": "basic_test_acc", "paper_acc": "basic_paper_acc"})
    m = d.merge(basic, how="left", on=on)
    low = m["victim_test_acc"] < KEEP_ACC_FRACTION * m["basic_test_acc"]
    higher = m["paper_acc"] > m["basic_paper_acc"]
    no_basic = m["basic_paper_acc"].isna()
    m["kept"] = ~(low | higher)
    m["reason"] = [drop_reason(lo, hi, nb) for lo, hi, nb in zip(low, higher, no_basic)]
    return m[cols].reset_index(drop=True)


def drop_reason(low: bool, higher: bool, no_basic: bool) -> str:
    if no_basic:
        return "no Basic record: rule not applied"
    parts = ([f"test acc < {KEEP_ACC_FRACTION:.0%} of Basic's"] if low else []) + \
        (["attack acc > Basic's"] if higher else [])
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------- writing tables
# One number format per kind of column in every Markdown table (NUMBER_RULE says it in words); the CSV files
# keep the full precision of results.jsonl, so nothing is lost to the rounding.
PERCENT_FORMAT = ".1f"      # every "(%)" column: accuracies, AUC, TPR, losses (87.7)
EPSILON_FORMAT = ".2f"      # DP epsilon (3.97), also in the defense figures' labels
SETTING_FORMAT = "g"        # sparsity and defense argument as configured (0.6, 16)
SECONDS_FORMAT = ".1f"      # timings (WeMem's defense time, 12.3)
SETTING_COLUMNS = ("prune_sparsity", "shadow_prune_sparsity", "defend_arg", "prune_iter")
COUNT_COLUMNS = ("references", "n_nonmembers", "n_members", "n_references")  # whole numbers (NaN makes them float)
NUMBER_RULE = ("Markdown tables give percentages with one decimal (87.7), ε with two decimals (3.97), seconds "
               "with one decimal and sparsity, rounds and defense arguments as configured (0.6, 16); the CSV "
               "files keep full precision.")


def number_format(column: str) -> str:
    """The format spec of a float column of a Markdown table (a ValueError for a column without one)."""
    if column == "epsilon":
        return EPSILON_FORMAT
    if column in SETTING_COLUMNS:
        return SETTING_FORMAT
    if HEADERS.get(column, "").endswith("(%)") or column.endswith((" acc", " AUC")) or column.startswith("TPR@"):
        return PERCENT_FORMAT  # per-attack columns and the reference-attack table's TPR columns are in % too
    if column in COUNT_COLUMNS:
        return SETTING_FORMAT
    if column.endswith("_seconds"):
        return SECONDS_FORMAT
    raise ValueError(f"no number format for column {column!r}: give it one in number_format")


def fmt(value: Any, column: str) -> str:
    """A cell of `column`: yes/no, blank for a missing value, floats by number_format, text with | escaped."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return format(value, number_format(column))
    return str(value).replace("|", "\\|")


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


def write_table(out: Path, stem: str, table: pd.DataFrame, caption: str, md: tuple[str, str] | None = None
                ) -> list[Entry]:
    """`stem`.csv, plus the Markdown `md` = (file name, text) when given; one index entry per file."""
    table.to_csv(out / f"{stem}.csv", index=False)
    entries = [Entry("Tables", f"{stem}.csv", caption)]
    if md is not None:
        (out / md[0]).write_text(md[1])
        entries.append(Entry("Tables", md[0], caption))
    return entries


def write_tables(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    head = headline_table(df)
    t1 = table1(df)
    trade = defense_tradeoff(df)
    figure_attack = trade["config"].map(lambda c: defense_attack(trade, c, wanted))
    md_head = per_config_markdown(
        "Headline results", "Victim test accuracy and attack accuracy / AUC / TPR at 1 % FPR (all %).", head)
    md_t1 = per_config_markdown(
        "Table 1: attack-accuracy loss with unknown settings",
        "loss = (known - unknown) / known * 100, where known is the same victim attacked with shadows pruned "
        "like it; a positive loss means the unknown-setting attack is weaker.", t1, table1_summary(t1))
    md_trade = per_config_markdown(
        "Defense trade-off (paper Figs 16-19)",
        f"Attack: the one the defense figures use per config. kept = no: test accuracy below "
        f"{KEEP_ACC_FRACTION:.0%} of Basic's or attack accuracy above Basic's (the paper's plotting rule); "
        "every attack is in defense_tradeoff.csv.", trade[trade["attack"] == figure_attack])
    return (write_table(out, "all_results", df, f"All {len(df)} records after keeping the last per (config, "
                        "setting, attack); nested keys flattened.")
            + write_table(out, "headline", head, "Per config and setting: test accuracy, attack accuracy, AUC "
                          "and TPR@1%FPR (%) of samia, mentr, conf, hconf and blindmi.", ("headline.md", md_head))
            + write_table(out, "table1_unknown", t1, "Paper Table 1 analogue: attack-accuracy loss (known - "
                          "unknown) / known in % with unknown pruner / sparsity; the Markdown adds the mean per "
                          "config and attack.", ("table1.md", md_t1))
            + write_table(out, "defense_tradeoff", trade, "Defended settings beside Basic with the paper's "
                          "dropping rule (kept, reason); the Markdown shows the figures' attack.",
                          ("defense_tradeoff.md", md_trade))
            + write_table2(df, out))


def write_table2(df: pd.DataFrame, out: Path) -> list[Entry]:
    """table2_split.csv / table2.md, or a skipped entry when no configs differ only in their split."""
    t2 = table2(df)
    if t2.empty:
        return [skip("Tables", "Table 2 (AUC by data split)", "no (dataset, model) with results under more than "
                     f"one split at {TABLE2_SETTING[0]} {TABLE2_SETTING[1]:g}")]
    head = [c for c in t2.columns if not c.endswith(" AUC") or c[:-4] in headline_results()]
    md = (f"# Table 2: attack AUC by data split\n\nPaper Table 2: {TABLE2_SETTING[0]} at sparsity "
          f"{TABLE2_SETTING[1]:g}; split = train / test / dev share of each half (%); AUC in %. The Markdown "
          f"shows the headline attacks, table2_split.csv every attack. {NUMBER_RULE}\n\n" + to_markdown(t2[head]))
    return write_table(out, "table2_split", t2, "Paper Table 2 analogue: attack AUC (%) per data split and attack "
                       f"({TABLE2_SETTING[0]} {TABLE2_SETTING[1]:g}).", ("table2.md", md))


# ----------------------------------------------------------------------------------------------- plotting helper
@dataclass(frozen=True)
class Series:
    """One legend entry. kind: line (style decides markers / lines), hist (x = values), bar (x = slot
    index, y = heights), vline (x[0]), hline (y[0]), note (legend text only). notes label the points of
    a line one by one. A line without points is left out, legend entry included."""

    label: str
    x: Sequence[float] = ()
    y: Sequence[float] = ()
    kind: str = "line"
    style: dict[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    loglog: bool = False
    limits: tuple[float, float] | None = None  # both axes (ROC)
    xticklabels: Sequence[str] = ()            # bar groups


LINE = {"marker": "o", "linestyle": "-"}
DOTS = {"marker": "o", "linestyle": "none"}
STAR = {"marker": "*", "markersize": 14, "linestyle": "none", "color": "black"}  # original / Basic / known
DIAMOND = {"marker": "D", "markersize": 8, "linestyle": "none", "color": "dimgray"}


def draw(ax: plt.Axes, panel: Panel) -> list[tuple[Annotation, float]]:
    """The panel's series, axes, title and legend (beside the axes, outside the data); returns the point
    labels with their marker's half size (points), which place_notes moves apart once the layout is final."""
    bars = [s for s in panel.series if s.kind == "bar"]
    width = 0.8 / max(len(bars), 1)
    notes = []
    for s in panel.series:
        if s.kind == "hist":
            ax.hist(s.x, label=s.label, **({"histtype": "stepfilled", "alpha": 0.45} | s.style))
        elif s.kind == "bar":
            offset = (bars.index(s) - (len(bars) - 1) / 2) * width
            ax.bar(np.asarray(s.x, float) + offset, s.y, width, label=s.label, **s.style)
        elif s.kind == "vline":
            ax.axvline(s.x[0], label=s.label, **({"linestyle": "--"} | s.style))
        elif s.kind == "hline":
            ax.axhline(s.y[0], label=s.label, **({"linestyle": "--", "color": "black"} | s.style))
        elif s.kind == "note":
            ax.plot([], [], " ", label=s.label)
        elif len(s.x):
            (line,) = ax.plot(s.x, s.y, label=s.label, **s.style)
            # In the series' colour, so that a label tells which line it belongs to where lines meet.
            notes += [(ax.annotate(note, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                                   color=line.get_color(), in_layout=False), line.get_markersize() / 2)
                      for x, y, note in zip(s.x, s.y, s.notes)]
    if panel.loglog:
        ax.set_xscale("log", nonpositive="mask")
        ax.set_yscale("log", nonpositive="mask")
    if panel.limits:
        ax.set_xlim(*panel.limits)
        ax.set_ylim(*panel.limits)
    if panel.xticklabels:
        ax.set_xticks(range(len(panel.xticklabels)), panel.xticklabels)
    elif not panel.loglog:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.margins(x=0.08)
    ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return notes


def note_offsets(half: float) -> list[tuple[float, float]]:
    """A point label's candidate offsets (points) around a marker of half size `half`: up-right first (the
    old fixed place, (4, 4) for the default marker), then the other corners, then further up and down; text
    on the left of the point is right-aligned to it. 7: about one 7-point text line below the point."""
    gap = half + 1
    return [(dx, dy) for dy in (gap, -gap - 7, gap + 10, -gap - 17, gap + 20, -gap - 27) for dx in (gap, -gap)]
PANEL_INCHES = (5.2, 4.2)  # one panel's axes and labels; the legend column is added to the width
# Laid out at the dpi it is saved with: hinted text is not exactly proportional to the dpi, and a layout made
# at 100 dpi saved at 110 cut the last legend's last characters off the canvas (seen in fig9).
DPI = 110


def compose(panels: Sequence[Panel], title: str, ncols: int = 3) -> Figure:
    """Panels in a grid under one title, laid out so that every title, label and legend lies on the canvas,
    legends beside their axes and no two point labels overlap."""
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_INCHES[0] * ncols, PANEL_INCHES[1] * nrows),
                             squeeze=False, layout="constrained", dpi=DPI)
    used = list(axes.flat)[:len(panels)]
    notes = [draw(ax, panel) for ax, panel in zip(used, panels)]
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    heading = fig.suptitle(title)
    fig.draw_without_rendering()
    legend_inches = max(ax.get_legend().get_window_extent().width for ax in used) / fig.dpi
    fig.set_size_inches(fig.get_figwidth() + ncols * (legend_inches + 0.1), fig.get_figheight())
    renderer = fig.canvas.get_renderer()
    for _ in range(3):  # a wrap changes the layout, which changes the room; twice at most settled it (measured)
        fig.draw_without_rendering()
        if not fit_texts(heading, used, renderer):
            break
    else:
        fig.draw_without_rendering()
    fig.set_layout_engine("none")  # freeze the layout: the point labels are placed against it
    for ax, ax_notes in zip(used, notes):
        place_notes(ax, ax_notes, renderer)
    return fig


def wrap_to(text: Text, room: float, renderer: Any, vertical: bool = False) -> bool:
    """Re-wrap `text` at word boundaries until its extent (height if `vertical`) is at most `room` pixels;
    whether the text changed."""
    before = text.get_text()
    original = before.replace("\n", " ")
    for chars in range(len(original), 7, -1):
        text.set_text(textwrap.fill(original, chars, break_long_words=False))
        box = text.get_window_extent(renderer)
        if (box.height if vertical else box.width) <= room:
            break
    return text.get_text() != before


def fit_texts(heading: Text, axes: Sequence[plt.Axes], renderer: Any) -> bool:
    """Wrap the figure title to the canvas and each panel's title and axis labels to its axes; whether any
    text changed (then the layout must be made again)."""
    changed = [wrap_to(heading, 0.96 * heading.figure.bbox.width, renderer)]
    for ax in axes:
        box = ax.get_window_extent(renderer)
        changed += [wrap_to(ax.title, box.width, renderer), wrap_to(ax.xaxis.label, box.width, renderer),
                    wrap_to(ax.yaxis.label, box.height, renderer, vertical=True)]
    return any(changed)


def place_notes(ax: plt.Axes, notes: Sequence[tuple[Annotation, float]], renderer: Any) -> None:
    """Each point label at the candidate offset with the fewest conflicts, the first on a tie. Conflicts, worst
    first: leaving the axes, covering a label placed before, covering a marker, crossing a line."""
    frame = ax.get_window_extent(renderer)
    paths = [line.get_transform().transform_path(line.get_path()) for line in ax.get_lines()
             if line.get_linestyle() not in ("None", "none", " ", "")]
    markers = marker_boxes(ax, renderer)
    placed: list[Bbox] = []
    for note, half in notes:
        anchor = ax.transData.transform(note.xy)
        others = [b for b in markers if not b.contains(*anchor)]  # its own point's marker is not in the way

        def conflicts(offset: tuple[float, float], note: Any = note, others: list[Any] = others) -> int:
            note.xyann = offset
            note.set_horizontalalignment("left" if offset[0] > 0 else "right")
            box = note.get_window_extent(renderer)
            outside = not (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1)
            return (1000 * outside + 100 * sum(box.overlaps(b) for b in placed)
                    + 10 * sum(box.overlaps(b) for b in others) + sum(p.intersects_bbox(box, filled=False)
                                                                      for p in paths))
        best = min(note_offsets(half), key=conflicts)  # min keeps the first of equals: up-right when free
        conflicts(best)
        placed.append(note.get_window_extent(renderer))


def marker_boxes(ax: plt.Axes, renderer: Any) -> list[Bbox]:
    """A square of the marker's size around every drawn marker of the axes, in pixels."""
    boxes = []
    for line in ax.get_lines():
        if line.get_marker() in ("None", "none", "", " ", None):
            continue
        half = renderer.points_to_pixels(line.get_markersize()) / 2
        xy = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
        boxes += [Bbox([[x - half, y - half], [x + half, y + half]]) for x, y in xy if np.isfinite([x, y]).all()]
    return boxes


def render(panels: Sequence[Panel], title: str, path: Path, ncols: int = 3) -> None:
    """compose(), saved as PNG (Agg backend)."""
    fig = compose(panels, title, ncols)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure(section: str, out: Path, name: str, panels: Sequence[Panel], title: str, caption: str,
           ncols: int = 3) -> Entry:
    render(panels, title, out / name, ncols)
    return Entry(section, name, caption)


def skip(section: str, what: str, reason: str) -> Entry:
    return Entry(section, None, f"{what}: {reason}")


def legend_note(label: str) -> Series:
    return Series(label, kind="note")


def pruner_lines(rows: pd.DataFrame, x: str, style: dict[str, Any], annotate: bool = True) -> list[Series]:
    """One series per pruner over its sparsities (points labelled with the sparsity)."""
    out = []
    for pruner, g in rows[~rows["original"]].groupby("pruner_name", sort=True):
        g = g.sort_values("prune_sparsity")
        notes = [f"{s:g}" for s in g["prune_sparsity"]] if annotate else []
        out.append(Series(str(pruner), g[x].to_numpy(float), g["paper_acc"].to_numpy(float), style=style,
                          notes=notes))
    return out


def original_points(rows: pd.DataFrame, attack: str, x: str) -> list[Series]:
    """The original model attacked with `attack` (star) and, as the paper plots it, with conf (diamond)."""
    out = []
    baseline = baseline_result()
    for name, style in ((attack, STAR), (baseline, DIAMOND)):
        o = rows[rows["original"] & (rows["attack"] == name)]
        if len(o) and not (name == baseline and attack == baseline):
            xs = o[x].fillna(0.0) if x == "prune_sparsity" else o[x]  # the original sits at sparsity 0
            out.append(Series(f"original ({name})", xs.to_numpy(float),
                              o["paper_acc"].to_numpy(float), style=style))
    return out


# ----------------------------------------------------------------------------------------------- figures
def resolve(root: Path, file: Any) -> Path | None:
    if not isinstance(file, str) or not file:
        return None
    p = Path(file)
    return p if p.is_absolute() else root / p


def load_npz(path: Path | None, keys: Iterable[str]) -> dict[str, np.ndarray] | None:
    """The arrays `keys` of an npz file, or None when the file is absent, unreadable or lacks a key."""
    if path is None or not path.is_file():
        return None
    try:
        return read_npz(path, keys)
    except NPZ_ERRORS:  # a damaged or cut-short file: the figure that needs it is skipped
        return None


def features_path(row: pd.Series, root: Path) -> Path:
    """features.npz beside the record's scores file (mia.py writes both into result/<config>/mia/<setting>/)."""
    scores = resolve(root, row.get("scores_file"))
    return scores.parent / "features.npz" if scores else root / "result" / row["config"] / "mia" / \
        row["setting"] / "features.npz"


FEATURE_KEYS = ("conf", "sens", "member")


def fig1_candidates(cfg: pd.DataFrame) -> pd.DataFrame:
    """Undefended pruned settings (one row each), the first registered pruner first (l1unstructure, the
    paper's Fig 1), then by sparsity from the highest."""
    pruned = plain(cfg)
    pruned = pruned[~pruned["original"]].drop_duplicates("setting")
    return pruned.assign(_l1=pruned["pruner_name"] == PRUNERS.names()[0]).sort_values(
        ["_l1", "prune_sparsity"], ascending=False, kind="stable")


def first_features(rows: pd.DataFrame, root: Path) -> tuple[pd.Series, dict[str, np.ndarray]] | None:
    """The first row whose features.npz loads, with its arrays."""
    for _, row in rows.iterrows():
        feats = load_npz(features_path(row, root), FEATURE_KEYS)
        if feats is not None:
            return row, feats
    return None


def histogram_panels(models: list[tuple[str, dict[str, np.ndarray]]]) -> list[Panel]:
    """Members vs non-members, true-class confidence and sensitivity, with mean lines; shared bins per
    quantity; sensitivity clipped at its 99th percentile (the outliers land in the last bin)."""
    quantities = (("conf", "true-class confidence (probability, fraction)", None),
                  ("sens", "true-class sensitivity (mean |Δp| / ε)", 99.0))
    panels = []
    for key, label, clip in quantities:
        pooled = np.concatenate([f[key] for _, f in models]).astype(float)
        hi = float(np.percentile(pooled, clip)) if clip else float(pooled.max())
        bins = np.histogram_bin_edges(np.clip(pooled, pooled.min(), hi), bins=30)
        for name, f in models:
            m = f["member"].astype(bool)
            values = np.clip(f[key].astype(float), None, hi)
            series = [Series(f"{who} (n={int(mask.sum())})", values[mask], kind="hist",
                             style={"bins": bins, "color": color})
                      for who, mask, color in (("members", m, "tab:blue"), ("non-members", ~m, "tab:red"))]
            # 3 significant digits, zeros kept (0.500, 38.7): one rule for both scales (fraction, |Δp|/ε)
            series += [Series(f"{who} mean {f[key][mask].mean():#.3g}", [f[key][mask].mean()], kind="vline",
                              style={"color": color}) for who, mask, color in
                       (("members", m, "black"), ("non-members", ~m, "red"))]
            panels.append(Panel(f"{name}: {key}", label, "count (samples)", series))
    return [panels[i] for i in (0, 2, 1, 3)]  # rows: model; columns: confidence, sensitivity


def fig1(df: pd.DataFrame, root: Path, out: Path) -> list[Entry]:
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        original = first_features(cfg[cfg["original"]], root)
        pruned = first_features(fig1_candidates(cfg), root)
        if original is None or pruned is None:
            entries.append(skip("Fig 1", f"Fig 1 for {config}", "needs features.npz (beside the scores files) of "
                                "the original and of an undefended pruned setting"))
            continue
        setting = pruned[0]["setting"]
        entries.append(figure("Fig 1", out, f"fig1_divergence_{config}.png",
                              histogram_panels([("original", original[1]), (setting, pruned[1])]),
                              f"{config}: true-class confidence and sensitivity, original vs {setting}",
                              f"Paper Fig 1 analogue for {config}: member vs non-member histograms of true-class "
                              f"confidence and sensitivity, original vs {setting} (lines: means).", ncols=2))
    return entries


def fig7_8(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        rows = plain(cfg)
        attack = main_attack(rows, wanted)
        pruned = rows[~rows["original"] & (rows["attack"] == attack)]
        if attack is None or pruned.empty:
            entries += [skip("Figs 7-8", f"Figs 7-8 for {config}", "no undefended pruned records"
                             + (f" with attack {wanted}" if wanted else ""))]
            continue
        star = ", original model as a star" if rows["original"].any() else " (no original record)"
        for name, x, xlabel, fig, caption, labelled in (
                ("fig7_acc_vs_testacc", "victim_test_acc", TEST_ACC_LABEL, "Fig 7", "victim test accuracy", True),
                ("fig8_acc_vs_sparsity", "prune_sparsity", SPARSITY_LABEL + "; original at 0", "Fig 8",
                 "sparsity", False)):
            series = pruner_lines(pruned, x, LINE, labelled) + original_points(rows, attack, x)
            panel = Panel(f"{attack} attack accuracy vs {caption}", xlabel, ACC_LABEL, series)
            entries.append(figure("Figs 7-8", out, f"{name}_{config}.png", [panel],
                                  f"{config}: privacy risk of pruning ({fig} analogue)",
                                  f"Paper {fig} analogue for {config}: {attack} attack accuracy vs {caption} per "
                                  f"pruner{' (labels: sparsity)' if labelled else ''}{star}."))
    return entries


GAPS = (("confidence_gap", "confidence gap (fraction, members − non-members)"),
        ("sensitivity_gap", "sensitivity gap (|Δp|/ε, members − non-members)"),
        ("generalization_gap", "generalization gap (%, train − test accuracy)"))


def gap_panel(rows: pd.DataFrame, gap: str, xlabel: str) -> Panel:
    """Scatter of attack accuracy against one gap per pruner plus the original, with a fit and Pearson r."""
    series = pruner_lines(rows, gap, DOTS, annotate=False) + [
        Series("original", rows.loc[rows["original"], gap].to_numpy(float),
               rows.loc[rows["original"], "paper_acc"].to_numpy(float), style=STAR)]
    x, y = rows[gap].to_numpy(float), rows["paper_acc"].to_numpy(float)
    r = pearson(x, y)
    n = int((np.isfinite(x) & np.isfinite(y)).sum())
    if math.isnan(r):
        series.append(legend_note(f"Pearson r n/a (n={n})"))
    else:
        ok = np.isfinite(x) & np.isfinite(y)
        slope, icept = np.polyfit(x[ok], y[ok], 1)
        xs = np.array([x[ok].min(), x[ok].max()])
        series.append(Series(f"fit, Pearson r = {r:.3f} (n={n})", xs, slope * xs + icept,
                             style={"linestyle": ":", "color": "gray"}))
    return Panel(gap.replace("_", " "), xlabel, ACC_LABEL, series)


def fig9(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        rows = plain(cfg)
        attack = main_attack(rows, wanted)
        rows = rows[rows["attack"] == attack]
        if rows["paper_acc"].count() < 2:
            entries.append(skip("Fig 9", f"Fig 9 for {config}", "fewer than two undefended settings"))
            continue
        panels = [gap_panel(rows, gap, label) for gap, label in GAPS]
        entries.append(figure("Fig 9", out, f"fig9_gaps_{config}.png", panels,
                              f"{config}: gaps vs {attack} attack accuracy (Fig 9 analogue)",
                              f"Paper Fig 9 analogue for {config}: confidence, sensitivity and generalization gap "
                              f"vs {attack} attack accuracy over undefended settings, Pearson r in the legend."))
    return entries


def attack_bars(rows: pd.DataFrame, pruner: str, reference: pd.DataFrame) -> Panel:
    """Grouped bars: one group per sparsity, one bar per attack; the original's conf accuracy as a line."""
    g = rows[rows["pruner_name"] == pruner]
    sparsities = sorted(g["prune_sparsity"].unique())
    attacks = [a for a in result_order() if a in set(g["attack"])] + sorted(set(g["attack"]) - set(result_order()))
    table = g.pivot_table(index="prune_sparsity", columns="attack", values="paper_acc").reindex(sparsities)
    series = [Series(a, range(len(sparsities)), table[a].to_numpy(float), kind="bar", style={"color": color})
              for a, color in zip(attacks, bar_colors(len(attacks)))]
    series += [Series(f"{r.attack} (original)", y=[r.paper_acc], kind="hline") for r in reference.itertuples()]
    return Panel(pruner, SPARSITY_LABEL, ACC_LABEL, series, xticklabels=[f"{s:g}" for s in sparsities])


def bar_colors(n: int) -> list[Any]:
    """n distinct colours: the default cycle's 10, else tab20's 20 (11 attacks gave samia and blindmi one colour)."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[:n] if n <= len(cycle) else [plt.get_cmap("tab20")(i % 20) for i in range(n)]


def fig10(df: pd.DataFrame, out: Path) -> list[Entry]:
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        rows = plain(cfg)
        pruned = rows[~rows["original"]]
        if pruned.empty:
            entries.append(skip("Fig 10", f"Fig 10 for {config}", "no undefended pruned records"))
            continue
        original = rows[rows["original"]]
        compare = baseline_result() if baseline_result() in set(original["attack"]) else main_attack(original)
        reference = original[original["attack"] == compare]
        panels = [attack_bars(pruned, p, reference) for p in sorted(pruned["pruner_name"].unique())]
        entries.append(figure("Fig 10", out, f"fig10_attacks_{config}.png", panels,
                              f"{config}: attack comparison per pruning approach (Fig 10 analogue)",
                              f"Paper Fig 10 analogue for {config}: attack accuracy of every attack per pruner and "
                              f"sparsity" + "".join(f"; dashed line: the original model under {a}"
                                                    for a in reference["attack"]) + ".", ncols=2))
    return entries


def unknown_sparsity_panel(rows: pd.DataFrame, pruner: str) -> Panel:
    """Attack accuracy vs the shadows' sparsity, one line per victim sparsity; stars: matched shadows."""
    g = rows[rows["pruner_name"] == pruner]
    series = [Series(f"victim sparsity {sp:g}", v["shadow_prune_sparsity"].to_numpy(float),
                     v["paper_acc"].to_numpy(float), style=LINE)
              for sp, v in g.sort_values("shadow_prune_sparsity").groupby("prune_sparsity")]
    known = g[np.isclose(g["shadow_prune_sparsity"], g["prune_sparsity"])]
    series.append(Series("known sparsity (shadow = victim)", known["shadow_prune_sparsity"].to_numpy(float),
                         known["paper_acc"].to_numpy(float), style=STAR))
    return Panel(pruner, "shadow sparsity (fraction of weights pruned)", ACC_LABEL, series)


def fig12(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        rows = cfg[~defended(cfg) & ~cfg["original"] & (cfg["shadow_pruner_name"] == cfg["pruner_name"])]
        attack = main_attack(rows, wanted)
        rows = rows[rows["attack"] == attack]
        pruners = sorted(rows.loc[unknown(rows), "pruner_name"].unique())
        if not pruners:
            entries.append(skip("Fig 12", f"Fig 12 for {config}", "no attacks with shadows of another sparsity"))
            continue
        entries.append(figure("Fig 12", out, f"fig12_unknown_sparsity_{config}.png",
                              [unknown_sparsity_panel(rows, p) for p in pruners],
                              f"{config}: {attack} attack accuracy with unknown sparsity (Fig 12 analogue)",
                              f"Paper Fig 12 analogue for {config}: {attack} attack accuracy vs the shadows' "
                              f"sparsity per victim sparsity (same pruner); stars: the known setting.", ncols=2))
    return entries


MATRIX_VALUES = (("paper_acc", ACC_LABEL), ("auc", "attack AUC (%)"))
LEVEL = "sparsity (0 = unpruned)"


def matrix_cells(cfg: pd.DataFrame, pruner: str) -> pd.DataFrame:
    """One config's undefended records on `pruner`'s sparsity matrix (Figs 12-13), with `victim_level` and
    `shadow_level` (0 = the unpruned model): the known runs on the diagonal (the original included), the
    unknown-sparsity runs of the same approach and the unpruned victim / shadows off it."""
    d = cfg[~defended(cfg) & ~cfg["adaptive"]]
    victim_level = d["prune_sparsity"].where(~d["original"], 0.0)
    shadow_level = d["shadow_prune_sparsity"].fillna(0.0)  # the original against the original shadows
    ok = (d["original"] | (d["pruner_name"] == pruner)) & (shadow_level.eq(0) | (d["shadow_pruner_name"] == pruner))
    return d[ok].assign(victim_level=victim_level[ok].round(6), shadow_level=shadow_level[ok].round(6))


def is_matrix(cells: pd.DataFrame) -> bool:
    """Whether the cells span a matrix: attacks off the diagonal, on more than one victim and shadow sparsity."""
    return bool((cells["victim_level"] != cells["shadow_level"]).any()) and cells["victim_level"].nunique() > 1 \
        and cells["shadow_level"].nunique() > 1


def matrix_table(cells: pd.DataFrame, value: str) -> pd.DataFrame:
    """victim level (rows) x shadow level (columns) of `value`; NaN where a pair was not attacked."""
    levels = sorted(set(cells["victim_level"]) | set(cells["shadow_level"]))
    table = cells.pivot_table(index="victim_level", columns="shadow_level", values=value, aggfunc="last")
    return table.reindex(index=levels, columns=levels)


def draw_heatmap(fig: Figure, ax: plt.Axes, table: pd.DataFrame, title: str, label: str) -> None:
    """One matrix as coloured cells with their values (one decimal, the report's % rule); blank: not run."""
    values = np.ma.masked_invalid(table.to_numpy(float))
    image = ax.imshow(values, cmap=plt.get_cmap("viridis").with_extremes(bad="white"), aspect="auto")
    ticks = [f"{v:g}" for v in table.columns]
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_yticks(range(len(ticks)), ticks)
    middle = (values.min() + values.max()) / 2 if values.count() else 0.0
    for (i, j), v in np.ndenumerate(table.to_numpy(float)):
        if np.isfinite(v):
            ax.text(j, i, format(v, PERCENT_FORMAT), ha="center", va="center", fontsize=8,
                    color="white" if v < middle else "black")
    ax.set(title=title, xlabel=f"shadow {LEVEL}", ylabel=f"victim {LEVEL}")
    fig.colorbar(image, ax=ax, label=label)


def fig12_matrix(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    """Figs 12-13 analogue: per config, a heatmap of attack accuracy and AUC over victim x shadow sparsity per
    approach that has attacks off the diagonal."""
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        cells = {p: matrix_cells(cfg, p) for p in sorted(cfg["pruner_name"].dropna().unique())}
        cells = {p: c for p, c in cells.items() if is_matrix(c)}
        pruners = list(cells)
        if not pruners:
            entries.append(skip("Fig 12", f"sparsity matrix for {config}", "no attacks with shadows of another "
                                "sparsity on more than one victim sparsity"))
            continue
        off = pd.concat([c[c["victim_level"] != c["shadow_level"]] for c in cells.values()])
        attack = main_attack(off, wanted)
        if attack is None:
            entries.append(skip("Fig 12", f"sparsity matrix for {config}", f"no {wanted} attacks off the diagonal"))
            continue
        fig, axes = plt.subplots(len(pruners), len(MATRIX_VALUES), squeeze=False, layout="constrained", dpi=DPI,
                                 figsize=(PANEL_INCHES[0] * len(MATRIX_VALUES), PANEL_INCHES[1] * len(pruners)))
        for row, pruner in zip(axes, pruners):
            rows = cells[pruner][cells[pruner]["attack"] == attack]
            for ax, (value, label) in zip(row, MATRIX_VALUES):
                draw_heatmap(fig, ax, matrix_table(rows, value), f"{pruner}: {label}", label)
        heading = fig.suptitle(f"{config}: {attack} with unknown sparsity, victim x shadow (Figs 12-13 analogue)")
        fig.draw_without_rendering()
        fit_texts(heading, list(axes.flat), fig.canvas.get_renderer())
        name = f"fig12_matrix_{config}.png"
        fig.savefig(out / name, dpi=DPI)
        plt.close(fig)
        entries.append(Entry("Fig 12", name, f"Paper Figs 12-13 analogue for {config}: {attack} attack accuracy and "
                             "AUC (%) for each victim sparsity (rows) attacked with shadows of each sparsity "
                             "(columns), same approach; 0 = the unpruned model, the diagonal = the known setting, "
                             "blank = not run."))
    return entries


def defense_attack(trade: pd.DataFrame, config: str, wanted: str | None) -> str | None:
    """The attack of a config's defense figures, chosen among its defended records."""
    return main_attack(trade[trade["config"] == config], wanted)


def defense_label(row: Any) -> str:
    eps = getattr(row, "epsilon", np.nan)
    finite = isinstance(eps, float) and np.isfinite(eps)
    return f"{row.defend_arg:{SETTING_FORMAT}}" + (f" (ε={eps:{EPSILON_FORMAT}})" if finite else "")


DEFENSE_MARKERS = ("s", "o", "^", "D", "v", "P", "X")


def defense_series(row: Any) -> str:
    """`dp`, or `dp (artifact)` for a defense run as the artifact ran it (--defense_mode artifact)."""
    mode = getattr(row, "defense_mode", None)
    return f"{row.defend} ({mode})" if isinstance(mode, str) and mode != "fixed" else str(row.defend)


def defense_panel(rows: pd.DataFrame, basic: pd.DataFrame, title: str) -> Panel:
    """Kept defended settings per defense (labels: the defense argument), Basic as a star."""
    series = []
    kept = rows[rows["kept"]]
    kept = kept.assign(series=[defense_series(r) for r in kept.itertuples()])
    for i, (defend, g) in enumerate(kept.groupby("series", sort=True)):
        g = g.sort_values("defend_arg")
        # One marker shape per defense, largest first: where two defenses land on one point (dp and dpsgd
        # did), the later smaller marker leaves the earlier one's edge visible.
        style = LINE | {"marker": DEFENSE_MARKERS[i % len(DEFENSE_MARKERS)], "markersize": 9 - i % 4}
        series.append(Series(str(defend), g["victim_test_acc"].to_numpy(float), g["paper_acc"].to_numpy(float),
                             style=style, notes=[defense_label(r) for r in g.itertuples()]))
    b = basic.dropna(subset=["basic_paper_acc"]).head(1)
    series.append(Series("basic (no defense)", b["basic_test_acc"].to_numpy(float),
                         b["basic_paper_acc"].to_numpy(float), style=STAR))
    return Panel(title, TEST_ACC_LABEL, ACC_LABEL, series)


def fig_defenses(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    trade = defense_tradeoff(df)
    entries = []
    if trade.empty:
        return [skip("Figs 16-19", "defense figures", "no defended records")]
    for (config, pruner, sp), g in trade.groupby(["config", "pruner_name", "prune_sparsity"], sort=False):
        attack = defense_attack(trade, config, wanted)
        g = g[g["attack"] == attack]
        for adaptive, fig, kind in ((False, "Figs 16-17", "non-adaptive"), (True, "Figs 18-19", "adaptive")):
            what = f"{fig} for {config} {pruner} {sp:g} ({kind})"
            rows = g[g["adaptive"] == adaptive]
            if rows.empty:
                entries.append(skip("Figs 16-19", what, f"no {kind} {attack} records"))
                continue
            dropped = int((~rows["kept"]).sum())
            basic = "Basic as a star" if rows["basic_paper_acc"].notna().any() else "no Basic record"
            name = f"defense_{config}_{pruner}_{sp:g}_{kind.replace('-', '')}.png"
            panel = defense_panel(rows, g, f"{kind} {attack} attack")
            entries.append(figure(
                "Figs 16-19", out, name, [panel], f"{config}: defenses at {pruner} {sp:g} ({fig} analogue)",
                f"Paper {fig} analogue for {config}, {pruner} {sp:g}: {kind} {attack} attack accuracy vs test "
                f"accuracy per defense (labels: argument), {basic}; {dropped} of {len(rows)} settings "
                f"dropped by the paper's rule (see defense_tradeoff.md)."))
    return entries


def roc_series(rows: pd.DataFrame, root: Path) -> tuple[list[Series], list[str], int]:
    """Log-log ROC series per attack with a scores file; the attacks without one; the largest n_nonmembers."""
    series, missing, n = [], [], 0
    for r in rows.itertuples():
        z = load_npz(resolve(root, r.scores_file), ("scores", "member"))
        if z is None:
            missing.append(str(r.attack))
            continue
        fpr, tpr = metrics.roc_points(z["member"], z["scores"])
        n = max(n, int((~z["member"].astype(bool)).sum()))
        series.append(Series(f"{r.attack} (AUC {metrics.roc_auc(z['member'], z['scores']):.1f} %)", fpr, tpr,
                             style={"linestyle": "-"}))
    return series, missing, n


def fig_roc(df: pd.DataFrame, root: Path, out: Path) -> list[Entry]:
    entries = []
    # One log-log ROC per setting with every attack that saved scores (reference attacks included), down to
    # FPR 1/n: the smallest FPR n non-members can show.
    for (config, setting), rows in df.groupby(["config", "setting"], sort=False):
        series, missing, n = roc_series(rows, root)
        what = f"ROC for {config} {setting}"
        if not series:
            entries.append(skip("ROC curves", what, f"no score files under {root} (--root: the folder mia.py "
                                                     "ran in)"))
            continue
        lo = 1.0 / max(n, 1)  # no FPR below 1/n exists
        series.append(Series("random guess (TPR = FPR)", [lo, 1.0], [lo, 1.0],
                             style={"linestyle": "--", "color": "gray"}))
        panel = Panel(f"{n} non-members, every attack", "false positive rate (fraction, log)",
                      "true positive rate (fraction, log)", series, loglog=True, limits=(lo, 1.0))
        note = f"; no scores for {', '.join(missing)}" if missing else ""
        entries.append(figure("ROC curves", out, f"roc/{config}/{setting}.png", [panel],
                              f"ROC (log-log): {config} {setting}",
                              f"Log-log ROC of every attack on {config} {setting}, from FPR 1/n = {lo:.2g} "
                              f"(n = {n} non-members){note}."))
    return entries


# ----------------------------------------------------------------------------------------------- reference attacks
# Issue 15: LiRA / RMIA with reference models, low-FPR figures with bootstrap intervals, original vs pruned at
# equal utility. The reference-model attacks and the paper's SAMIA, in this order, where present.
REFERENCE_ATTACKS = comparison_results()


def ci_text(value: Any, low: Any, high: Any) -> str:
    """`v [lo, hi]` (one decimal), `v` without an interval, '' without a value."""
    if value is None or pd.isna(value):
        return ""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{value:.1f}"
    return f"{value:.1f} [{low:.1f}, {high:.1f}]"


def resolution_note(n_nonmembers: Any) -> str:
    """What the low-FPR figures of a setting can resolve: at FPR f one needs more than 1/f non-members."""
    if n_nonmembers is None or pd.isna(n_nonmembers):
        return ""
    n = int(n_nonmembers)
    lost = [f"{f * 100:g} %" for f in (0.001, 0.0001) if not metrics.resolvable(n, f)]
    return f"{n} non-members: TPR at {' and '.join(lost)} FPR is the TPR at FPR 0" if lost else ""


def original_vs_pruned(df: pd.DataFrame) -> pd.DataFrame:
    """Per config and plain setting (the original first): test accuracy, then per reference attack the AUC
    and TPR at 0.1 % FPR with 95 % bootstrap intervals, TPR at 0.01 %, references used, resolution note."""
    wanted = plain(df)[plain(df)["attack"].isin(REFERENCE_ATTACKS)].copy()
    cols = ["config", "setting", "prune_sparsity", "victim_test_acc", "attack", "AUC [95% CI]",
            "TPR@0.1%FPR [95% CI]", "TPR@0.01%FPR", "references", "n_nonmembers", "note"]
    if wanted.empty:
        return pd.DataFrame(columns=cols)
    wanted = wanted.reindex(columns=[*wanted.columns, *(c for c in (
        "auc_ci_low", "auc_ci_high", "tpr_at_0.1pct_fpr_ci_low", "tpr_at_0.1pct_fpr_ci_high", "tpr_at_0.01pct_fpr",
        "n_references") if c not in wanted.columns)])
    rank = {a: i for i, a in enumerate(REFERENCE_ATTACKS)}
    wanted["_rank"] = wanted["attack"].map(rank)
    wanted = wanted.sort_values(["config", "original", "prune_sparsity", "setting", "_rank"],
                                ascending=[True, False, True, True, True], na_position="first", kind="stable")
    out = pd.DataFrame({
        "config": wanted["config"], "setting": wanted["setting"], "prune_sparsity": wanted["prune_sparsity"],
        "victim_test_acc": wanted["victim_test_acc"], "attack": wanted["attack"],
        "AUC [95% CI]": [ci_text(*v) for v in zip(wanted["auc"], wanted["auc_ci_low"], wanted["auc_ci_high"])],
        "TPR@0.1%FPR [95% CI]": [ci_text(*v) for v in zip(wanted["tpr_at_0.1pct_fpr"],
                                                           wanted["tpr_at_0.1pct_fpr_ci_low"],
                                                           wanted["tpr_at_0.1pct_fpr_ci_high"])],
        "TPR@0.01%FPR": wanted["tpr_at_0.01pct_fpr"], "references": wanted["n_references"],
        "n_nonmembers": wanted["n_nonmembers"], "note": wanted["n_nonmembers"].map(resolution_note)})
    return out[cols].reset_index(drop=True)


def iso_accuracy_panels(rows: pd.DataFrame) -> list[Panel]:
    """Leakage (AUC; TPR at 0.1 % FPR) against victim test accuracy, one line per attack over the settings
    (points labelled with the sparsity; 'orig' = unpruned): pruned and original models at equal utility."""
    panels = []
    for metric, label in (("auc", "attack AUC (%)"), ("tpr_at_0.1pct_fpr", "TPR at 0.1 % FPR (%)")):
        series = []
        for attack in REFERENCE_ATTACKS:
            g = rows[rows["attack"] == attack].sort_values("victim_test_acc")
            if g.empty or metric not in g:
                continue
            notes = ["orig" if o else f"{s:g}" for o, s in zip(g["original"], g["prune_sparsity"])]
            series.append(Series(attack, g["victim_test_acc"].to_numpy(float), g[metric].to_numpy(float),
                                 style=LINE, notes=notes))
        panels.append(Panel(f"{label} vs utility", TEST_ACC_LABEL, label, series))
    return panels


def fig_iso_accuracy(df: pd.DataFrame, out: Path) -> list[Entry]:
    entries = []
    rows = plain(df)[plain(df)["attack"].isin(REFERENCE_ATTACKS)]
    for config, g in rows.groupby("config", sort=False):
        if g["setting"].nunique() < 2:
            entries.append(skip("Reference attacks", f"iso-accuracy view for {config}", "fewer than 2 settings"))
            continue
        entries.append(figure("Reference attacks", out, f"iso_accuracy_{config}.png", iso_accuracy_panels(g),
                              f"Leakage vs test accuracy: {config}",
                              f"Iso-accuracy view for {config}: AUC and TPR at 0.1 % FPR of LiRA, RMIA, SAMIA "
                              "(and loss / mentr) against the victim's test accuracy across sparsities; compare "
                              "models at equal test accuracy, not equal sparsity.", ncols=2))
    return entries


def reference_report(df: pd.DataFrame, root: Path, out: Path) -> list[Entry]:
    """Issue 15's outputs: the original-vs-pruned table and the iso-accuracy view (fig_roc draws every attack)."""
    table = original_vs_pruned(df)
    notes = sorted({f"{c}: {n}" for c, n in zip(table["config"], table["note"]) if n})
    intro = ("Per config, the original (unpruned) model and each pruned one: victim test accuracy (%), and per "
             "attack the AUC and TPR at 0.1 % FPR (%) with 95 % bootstrap intervals (resampling target points), "
             "the TPR at 0.01 % FPR and the number of reference models (online: refs.py's; offline: the "
             "shadows). At FPR f a setting needs more than 1/f non-members (10,000 at 0.01 %); below that the "
             "figure is the TPR at FPR 0." + ("\n\nToo few non-members: " + "; ".join(notes) if notes else ""))
    md = per_config_markdown("Original vs pruned: reference-model attacks", intro, table.drop(columns="note"))
    return (write_table(out, "original_vs_pruned", table, "Original vs pruned per config: test accuracy, AUC and "
                        "TPR at 0.1 % FPR with 95 % CIs for LiRA, RMIA, SAMIA (and loss, mentr); which low-FPR "
                        "figures are resolvable.", ("original_vs_pruned.md", md))
            + fig_iso_accuracy(df, out))



# ----------------------------------------------------------------------------------------------- WeMem (NDSS '25)
WEMEM = "WeMem (iterative pruning)"
# WeMem's two headline attacks (its scripts run samia and the threshold family): SAMIA and mentr
PREMISE_ATTACKS = (proposed_result(), classic_result())


def iterative(df: pd.DataFrame) -> pd.Series:
    """Records of iteratively pruned victims: results schema 3 writes their prune_iter (None for one-shot)."""
    if "prune_iter" not in df:
        return pd.Series(False, index=df.index)
    return df["prune_iter"].notna()


def wemem_defense(row: pd.Series) -> str:
    """`base`, `ppb 4`, `slide_re s1-w15`: the defense with its argument and folder options."""
    found = {str(k).split(".", 1)[1]: v if isinstance(v, str) else float(v) for k, v in row.items()
             if str(k).startswith("defense_options.") and pd.notna(v)}  # a mode is a word ("artifact")
    order = [*OPTION_SHORT, *sorted(set(found) - set(OPTION_SHORT))]  # flag order (JSON keys come sorted)
    options = tuple((k, found[k]) for k in order if k in found)
    arg = f" {row['defend_arg']:g}" if pd.notna(row.get("defend_arg")) else ""
    suffix = f" {options_suffix(options)}" if options else ""
    return (row["defend"] or "base") + arg + suffix


def wemem_table(df: pd.DataFrame) -> pd.DataFrame:
    """WeMem's table: per iteratively pruned setting (undefended and each defense, adaptive or not), test
    accuracy, defense time and every attack's accuracy and AUC (%)."""
    index = ["config", "pruner_name", "prune_sparsity", "prune_iter", "defense", "adaptive", "victim_test_acc",
             "defense_seconds"]
    d = df[iterative(df) & ~unknown(df)]
    if d.empty:
        return pd.DataFrame(columns=index)
    d = d.assign(defense=[wemem_defense(r) for _, r in d.iterrows()])
    wide = d.set_index([*index, "attack"])[["paper_acc", "auc"]].unstack("attack")
    order = [a for a in result_order() if a in set(d["attack"])] + sorted(set(d["attack"]) - set(result_order()))
    wide = wide.reindex(columns=[(m, a) for a in order for m in ("paper_acc", "auc")])
    wide.columns = [f"{a} {'acc' if m == 'paper_acc' else 'AUC'}" for m, a in wide.columns]
    return wide.reset_index()


def premise_panel(rows: pd.DataFrame, sparsity: float, attacks: list[str]) -> Panel | None:
    """Bars of attack AUC: the original, each one-shot pruner and each iterative pruner at `sparsity`."""
    pruned = rows[~rows["original"] & np.isclose(rows["prune_sparsity"], sparsity)]
    groups = [("original", rows[rows["original"]])]
    for kind, part in (("one-shot", pruned[~iterative(pruned)]), ("iterative", pruned[iterative(pruned)])):
        groups += [(f"{p}\n({kind})", g) for p, g in part.groupby("pruner_name", sort=True)]
    if len(groups) < 3:
        return None
    series = [Series(a, range(len(groups)), [float(g.loc[g["attack"] == a, "auc"].iloc[-1])
                                             if (g["attack"] == a).any() else np.nan for _, g in groups], kind="bar")
              for a in attacks]
    return Panel(f"sparsity {sparsity:g}", "", "attack AUC (%)", series, xticklabels=[n for n, _ in groups])


def fig_wemem_premise(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    """WeMem's premise: iterative pruning leaks more than one-shot pruning at the same sparsity."""
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        rows = plain(cfg)
        it = rows[iterative(rows)]
        if it.empty:
            continue
        attacks = [a for a in dict.fromkeys([main_attack(rows, wanted), *PREMISE_ATTACKS]) if a in set(rows["attack"])]
        panels = [p for s in sorted(it["prune_sparsity"].unique()) if (p := premise_panel(rows, s, attacks))]
        what = f"premise figure for {config}"
        if not panels:
            entries.append(skip(WEMEM, what, "needs the original and a one-shot record at an iterative sparsity"))
            continue
        rounds = ", ".join(f"{int(r)}" for r in sorted(it["prune_iter"].unique()))
        entries.append(figure(WEMEM, out, f"wemem_premise_{config}.png", panels,
                              f"premise: {config}",
                              f"WeMem's premise on {config}: attack AUC of the original, one-shot and iterative "
                              f"pruning (undefended, shadows pruned alike) at equal sparsity. Iterative pruning "
                              f"fine-tunes prune_epochs in each of its {rounds} rounds, one-shot once, so the "
                              "total fine-tuning epochs differ by that factor.", ncols=2))
    return entries


def member_memscores(root: Path, config: str) -> np.ndarray | None:
    """The victim's training rows' mem-scores (memscore.py's per-pool table at the split's victim_train
    indices, the order mia.py lists members in), or None when either file is missing or unreadable."""
    scores = load_npz(root / "result" / config / "memscore" / "scores.npz", ["per_pool"])
    try:
        split = json.loads((root / "result" / config / "data_index.json").read_text())
    except (OSError, ValueError):
        return None
    if scores is None or "victim_train" not in split:
        return None
    rows = np.asarray(split["victim_train"], dtype=np.int64)
    return scores["per_pool"][rows] if rows.size and rows.max() < scores["per_pool"].size else None


def memscore_success(mem: np.ndarray, scores: np.ndarray, member: np.ndarray, bins: int = 5) -> Series | None:
    """Share of members the attack finds at 1 % FPR (threshold: the non-members' 99th percentile score) per
    mem-score quantile bin; x = the bin's mean mem-score. None when the lengths do not line up."""
    m = member.astype(bool)
    if m.sum() != mem.size or (~m).sum() == 0:
        return None
    found = scores[m] >= np.quantile(scores[~m], 0.99)
    finite = np.isfinite(mem)
    edges = np.unique(np.quantile(mem[finite], np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, mem[finite], side="right") - 1, 0, len(edges) - 2)
    x = [float(mem[finite][which == b].mean()) for b in range(len(edges) - 1)]
    y = [100 * float(found[finite][which == b].mean()) for b in range(len(edges) - 1)]
    return Series("", x, y, style=LINE)


def fig_memscore_success(df: pd.DataFrame, root: Path, out: Path, wanted: str | None) -> list[Entry]:
    """Do high-memorisation members leak most? Per config with mem-scores: the main attack's TPR at 1 % FPR
    among the victim's members, by mem-score bin, one line per undefended or WeMem-defended setting."""
    entries = []
    for config, cfg in df.groupby("config", sort=False):
        mem = member_memscores(root, str(config))
        attack = main_attack(cfg, wanted)
        if mem is None or attack is None:
            continue
        lines = []
        for _, row in cfg[(cfg["attack"] == attack) & ~unknown(cfg)].iterrows():
            saved = load_npz(resolve(root, row.get("scores_file")), ["scores", "member"])
            line = memscore_success(mem, saved["scores"], saved["member"]) if saved else None
            if line is not None:
                lines.append(dataclasses.replace(line, label=str(row["setting"])))
        if lines:
            panel = Panel(f"{attack}: members found at 1 % FPR", "member's mem-score (bin mean)",
                          "TPR at 1 % FPR (%)", lines)
            entries.append(figure(WEMEM, out, f"memscore_success_{config}.png", [panel],
                                  f"attack success vs mem-score: {config}",
                                  f"Do high-memorisation members leak most? {config}: the share of the victim's "
                                  f"members that {attack} finds at 1 % FPR (threshold: the 99th percentile of the "
                                  "non-members' scores), by quintile of the members' mem-scores.", ncols=1))
    return entries


def wemem_outputs(df: pd.DataFrame, out: Path, wanted: str | None) -> list[Entry]:
    """WeMem's table (CSV + Markdown) and premise figure; nothing when no record is iteratively pruned."""
    table = wemem_table(df)
    if table.empty:
        return []
    md = per_config_markdown("WeMem: iterative pruning and its defenses",
                             "Victim test accuracy, defense time (s: all rounds' fine-tuning with per-epoch "
                             "evaluation, WeMem's measure) and each attack's accuracy and AUC (%), per defense "
                             "(its argument and hyper-parameters); adaptive = shadows defended alike.", table)
    entries = [Entry(WEMEM, "wemem.csv", "WeMem's table per iteratively pruned setting and defense."),
               Entry(WEMEM, "wemem.md", "The same, per config (Markdown).")]
    table.to_csv(out / "wemem.csv", index=False)
    (out / "wemem.md").write_text(md)
    return entries + fig_wemem_premise(df, out, wanted)


# ----------------------------------------------------------------------------------------------- index + CLI
NAS_SECTION = "Architecture privacy (nas_privacy.py)"
SECTIONS = ("Tables", "Fig 1", "Figs 7-8", "Fig 9", "Fig 10", "Fig 12", "Figs 16-19", "ROC curves",
            "Reference attacks", WEMEM, NAS_SECTION)


def index_markdown(entries: list[Entry], notes: list[str], logdir: Path, n_records: int) -> str:
    lines = [f"# prune-mia report\n\nFrom {n_records} records under `{logdir}` (last record per config, setting "
             f"and attack). Attack accuracy is the paper's; accuracies, AUC and TPR are in %. {NUMBER_RULE}\n"]
    for section in SECTIONS:
        made = [e for e in entries if e.section == section and e.file]
        skipped = [e for e in entries if e.section == section and not e.file]
        if made or skipped:
            lines.append(f"## {section}\n")
            lines += [f"- [{e.file}]({e.file}): {e.text}" for e in made]
            lines += [f"- skipped: {e.text}" for e in skipped]
            lines.append("")
    if notes:
        lines += ["## Notes\n"] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def build_report(logdir: Path, out: Path, root: Path | None = None, attack: str | None = None) -> list[Entry]:
    """Everything report.py writes; returns the index entries."""
    df, notes = load_results(logdir)
    root = root if root is not None else logdir.resolve().parent
    if attack is not None and attack not in set(df.get("attack", ())):
        raise UserError(f"--attack {attack}: no such attack in the results",
                        f"present: {', '.join(sorted(set(df.get('attack', ()))))}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file", "pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    entries, n_nas = nas_report(logdir, root, out)
    if not df.empty:  # a log of nas_privacy.py runs alone has no pruning results
        entries += (write_tables(df, out, attack) + fig1(df, root, out) + fig7_8(df, out, attack)
                    + fig9(df, out, attack) + fig10(df, out) + fig12(df, out, attack) + fig12_matrix(df, out, attack)
                    + fig_defenses(df, out, attack)
                    + wemem_outputs(df, out, attack) + fig_memscore_success(df, root, out, attack)
                    + fig_roc(df, root, out) + reference_report(df, root, out))
    (out / "index.md").write_text(index_markdown(entries, notes, logdir, len(df) + n_nas))
    return entries


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Step 4: tables (CSV + Markdown) and figures (PNG) from the results "
                                            "of mia.py.")
    p.add_argument("logdir", type=Path, help="folder holding one <config>/results.jsonl per config (log/)")
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    p.add_argument("--root", type=Path, default=None,
                   help="folder mia.py ran in, against which scores_file paths resolve (default: LOGDIR's parent)")
    p.add_argument("--attack", default=None,
                   help="attack for Figs 7-9, 12, 16-19 (default: samia, else the one with the best mean accuracy)")
    args = p.parse_args(argv)
    entries = build_report(args.logdir, args.out, args.root, args.attack)
    figs = sum(1 for e in entries if e.file and e.file.endswith(".png"))
    skipped = sum(1 for e in entries if not e.file)
    print(f"report: {figs} figures, {skipped} skipped, tables and index in {args.out / 'index.md'}")


if __name__ == "__main__":
    run_main(main)
