"""WeMem's outputs (NDSS '25, iterative pruning and its memorisation-aware defenses): its table per iteratively
pruned setting and defense, the premise figure (iterative vs one-shot pruning at equal sparsity) and attack
success by the members' mem-scores."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from attackers import classic_result, proposed_result
from core.setting import OPTION_SHORT, options_suffix
from reporting import files
from reporting.context import Report
from reporting.markdown import Entry, per_config_markdown, skip, write_table
from reporting.palette import Numbering, attack_style
from reporting.plotting import LINE, Panel, Series, figure
from reporting.predicates import iterative, main_attack, plain, unknown
from reporting.tables import attack_rank

SECTION = "WeMem (iterative pruning)"
# WeMem's two headline attacks (its scripts run samia and the threshold family): SAMIA and mentr
PREMISE_ATTACKS = (proposed_result(), classic_result())


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
    order = attack_rank(set(d["attack"]))
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
                                             if (g["attack"] == a).any() else np.nan for _, g in groups],
                     kind="bar", style=attack_style(a).bar()) for a in attacks]
    return Panel(f"sparsity {sparsity:g}", "", "attack AUC (%)", series, xticklabels=[n for n, _ in groups])


def fig_wemem_premise(r: Report) -> list[Entry]:
    """WeMem's premise: iterative pruning leaks more than one-shot pruning at the same sparsity."""
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        rows = plain(cfg)
        it = rows[iterative(rows)]
        if it.empty:
            continue
        attacks = [a for a in dict.fromkeys([main_attack(rows, r.attack), *PREMISE_ATTACKS])
                   if a in set(rows["attack"])]
        panels = [p for s in sorted(it["prune_sparsity"].unique()) if (p := premise_panel(rows, s, attacks))]
        what = f"premise figure for {config}"
        if not panels:
            entries.append(skip(SECTION, what, "needs the original and a one-shot record at an iterative sparsity"))
            continue
        rounds = ", ".join(f"{int(n)}" for n in sorted(it["prune_iter"].unique()))
        entries.append(figure(SECTION, r.out, f"wemem_premise_{config}.png", panels,
                              f"premise: {config}",
                              f"WeMem's premise on {config}: attack AUC of the original, one-shot and iterative "
                              f"pruning (undefended, shadows pruned alike) at equal sparsity. Iterative pruning "
                              f"fine-tunes prune_epochs in each of its {rounds} rounds, one-shot once, so the "
                              "total fine-tuning epochs differ by that factor.", ncols=2))
    return entries


def memscore_success(mem: np.ndarray, scores: np.ndarray, member: np.ndarray, bins: int = 5) -> Series | None:
    """Share of members the attack finds at 1 % FPR (threshold: the non-members' 99th percentile score) per
    mem-score quantile bin; x = the bin's mean mem-score. None when the lengths do not line up or no member
    has a mem-score estimate."""
    m = member.astype(bool)
    if m.sum() != mem.size or (~m).sum() == 0 or not np.isfinite(mem).any():
        return None
    found = scores[m] >= np.quantile(scores[~m], 0.99)
    finite = np.isfinite(mem)
    edges = np.unique(np.quantile(mem[finite], np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, mem[finite], side="right") - 1, 0, len(edges) - 2)
    x = [float(mem[finite][which == b].mean()) for b in range(len(edges) - 1)]
    y = [100 * float(found[finite][which == b].mean()) for b in range(len(edges) - 1)]
    return Series("", x, y, style=LINE)


def fig_memscore_success(r: Report) -> list[Entry]:
    """Do high-memorisation members leak most? Per config with mem-scores: the main attack's TPR at 1 % FPR
    among the victim's members, by mem-score bin, one line per undefended or WeMem-defended setting."""
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        mem, why = files.member_memscores(r.root, str(config))
        attack = main_attack(cfg, r.attack)
        if why:
            entries.append(skip(SECTION, f"mem-score figure for {config}", why))
        if mem is None or attack is None:
            continue
        lines, settings = [], Numbering()
        for _, row in cfg[(cfg["attack"] == attack) & ~unknown(cfg)].iterrows():
            saved = r.scores(row)
            line = memscore_success(mem, saved["scores"], saved["member"]) if saved else None
            if line is not None:
                setting = str(row["setting"])
                lines.append(dataclasses.replace(line, label=setting, style=settings.style(setting).line()))
        if lines:
            panel = Panel(f"{attack}: members found at 1 % FPR", "member's mem-score (bin mean)",
                          "TPR at 1 % FPR (%)", lines)
            entries.append(figure(SECTION, r.out, f"memscore_success_{config}.png", [panel],
                                  f"attack success vs mem-score: {config}",
                                  f"Do high-memorisation members leak most? {config}: the share of the victim's "
                                  f"members that {attack} finds at 1 % FPR (threshold: the 99th percentile of the "
                                  "non-members' scores), by quintile of the members' mem-scores.", ncols=1))
    return entries


def wemem_tables(r: Report) -> list[Entry]:
    """WeMem's table (CSV + Markdown); nothing when no record is iteratively pruned."""
    table = wemem_table(r.df)
    if table.empty:
        return []
    md = per_config_markdown("WeMem: iterative pruning and its defenses",
                             "Victim test accuracy, defense time (s: all rounds' fine-tuning with per-epoch "
                             "evaluation, WeMem's measure) and each attack's accuracy and AUC (%), per defense "
                             "(its argument and hyper-parameters); adaptive = shadows defended alike.", table)
    return write_table(r.out, "wemem", table, "WeMem's table per iteratively pruned setting and defense (the "
                       "Markdown per config).", ("wemem.md", md), section=SECTION)
