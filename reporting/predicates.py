"""What kind of record a row is (defended, unknown setting, plain, iteratively pruned) and which attack a figure
shows: the questions every table and figure asks of the flat records."""
from __future__ import annotations

import numpy as np
import pandas as pd

from attackers import proposed_result


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


def iterative(df: pd.DataFrame) -> pd.Series:
    """Records of iteratively pruned victims: results schema 3 writes their prune_iter (None for one-shot)."""
    if "prune_iter" not in df:
        return pd.Series(False, index=df.index)
    return df["prune_iter"].notna()


def main_attack(df: pd.DataFrame, wanted: str | None = None) -> str | None:
    """`wanted` if given, else samia (the paper's), else the attack with the highest mean attack accuracy."""
    attacks = set(df["attack"])
    if wanted is not None:
        return wanted if wanted in attacks else None
    if proposed_result() in attacks:
        return proposed_result()
    return str(df.groupby("attack")["paper_acc"].mean().idxmax()) if len(df) else None
