"""The reference-model attacks' outputs (LiRA, RMIA and the loss baseline beside SAMIA and mentr): the
original-vs-pruned table with bootstrap intervals and what its low-FPR figures can resolve, and the
iso-accuracy view (leakage against test accuracy). paper.fig_roc draws their ROC curves with every attack."""
from __future__ import annotations

from typing import Any

import pandas as pd

from attackers import comparison_results, metrics
from reporting.context import Report
from reporting.markdown import Entry, per_config_markdown, skip, write_table
from reporting.palette import attack_style
from reporting.paper import TEST_ACC_LABEL
from reporting.plotting import Panel, Series, figure
from reporting.predicates import plain

SECTION = "Reference attacks"
# The reference-model attacks and the paper's SAMIA, in this order, where present.
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
                                 style=attack_style(attack).line(), notes=notes))
        panels.append(Panel(f"{label} vs utility", TEST_ACC_LABEL, label, series))
    return panels


def fig_iso_accuracy(r: Report) -> list[Entry]:
    entries = []
    rows = plain(r.df)[plain(r.df)["attack"].isin(REFERENCE_ATTACKS)]
    for config, g in rows.groupby("config", sort=False):
        if g["setting"].nunique() < 2:
            entries.append(skip(SECTION, f"iso-accuracy view for {config}", "fewer than 2 settings"))
            continue
        entries.append(figure(SECTION, r.out, f"iso_accuracy_{config}.png", iso_accuracy_panels(g),
                              f"Leakage vs test accuracy: {config}",
                              f"Iso-accuracy view for {config}: AUC and TPR at 0.1 % FPR of LiRA, RMIA, SAMIA "
                              "(and loss / mentr) against the victim's test accuracy across sparsities; compare "
                              "models at equal test accuracy, not equal sparsity.", ncols=2))
    return entries


def original_vs_pruned_table(r: Report) -> list[Entry]:
    """original_vs_pruned.csv / .md (the ROC figures draw every attack: paper.fig_roc)."""
    table = original_vs_pruned(r.df)
    notes = sorted({f"{c}: {n}" for c, n in zip(table["config"], table["note"]) if n})
    intro = ("Per config, the original (unpruned) model and each pruned one: victim test accuracy (%), and per "
             "attack the AUC and TPR at 0.1 % FPR (%) with 95 % bootstrap intervals (resampling target points), "
             "the TPR at 0.01 % FPR and the number of reference models (online: refs.py's; offline: the "
             "shadows). At FPR f a setting needs more than 1/f non-members (10,000 at 0.01 %); below that the "
             "figure is the TPR at FPR 0." + ("\n\nToo few non-members: " + "; ".join(notes) if notes else ""))
    md = per_config_markdown("Original vs pruned: reference-model attacks", intro, table.drop(columns="note"))
    return write_table(r.out, "original_vs_pruned", table, "Original vs pruned per config: test accuracy, AUC and "
                       "TPR at 0.1 % FPR with 95 % CIs for LiRA, RMIA, SAMIA (and loss, mentr); which low-FPR "
                       "figures are resolvable.", ("original_vs_pruned.md", md))
