"""The paper's tables as DataFrames: the headline, Table 1 (loss with unknown settings), Table 2 (AUC by data
split) and the defense trade-off with the paper's dropping rule. Each reads only the columns it needs before
it merges, so a record's extra keys (kept in all_results.csv) can never shadow a column a table makes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from attackers import headline_results, result_order
from reporting.predicates import defended, plain, unknown

KEEP_ACC_FRACTION = 0.75  # paper §6.3.2: drop defended settings below 75 % of Basic's test accuracy
TABLE2_SETTING = ("l1unstructure", 0.7)  # paper Table 2: CIFAR10 ResNet18, L1-unstructured at sparsity 0.7
SPLIT_PARTS = ("train", "test", "dev")     # the order of the paper's "Train(%) / Test(%) / Dev(%)"


def attack_rank(attacks: set[str] | Sequence[str]) -> list[str]:
    """The attacks in registry order, the ones the registry does not know after them, sorted."""
    order = result_order()
    return [a for a in order if a in set(attacks)] + sorted(set(attacks) - set(order))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r over the finite pairs; nan with fewer than 3 pairs or a constant variable."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


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
    shadows = ["shadow_pruner_name", "shadow_prune_sparsity"]
    cols = victim + shadows + ["known_acc", "unknown_acc", "loss_pct"]
    pruned_both = ~df["original"] & df["shadow_prune_sparsity"].ne(0)  # Table 1 draws among pruned settings
    unk = df.loc[unknown(df) & pruned_both, victim + shadows + ["paper_acc"]].rename(columns={"paper_acc":
                                                                                               "unknown_acc"})
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
    d = d[["dataset_name", "model_name", "config", "attack", "auc", *cols]]
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
    own = ["defend", "defense_mode", "defend_arg", "adaptive", "epsilon", "setting", "victim_test_acc", "paper_acc"]
    cols = ["config", "pruner_name", "prune_sparsity", "defend", "defense_mode", "defend_arg", "adaptive", "epsilon",
            "attack", "setting", "victim_test_acc", "paper_acc", "basic_test_acc", "basic_paper_acc", "kept", "reason"]
    d = df[defended(df) & ~unknown(df)]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.reindex(columns=on + own)  # defense_mode: None in records before schema 4
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
