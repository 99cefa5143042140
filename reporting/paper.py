"""The artifact paper's tables and figures (Yuan & Zhang, USENIX Security '22): the headline, Tables 1-2, the
defense trade-off, Figs 1, 7-10, 12-13, 16-19 and the log-log ROC curves of every attack."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import defenses
from attackers import baseline_result, headline_results, metrics
from pruner import PRUNERS
from reporting.context import Report
from reporting.markdown import (
    EPSILON_FORMAT,
    NUMBER_RULE,
    PERCENT_FORMAT,
    SETTING_FORMAT,
    Entry,
    per_config_markdown,
    skip,
    to_markdown,
    write_table,
)
from reporting.palette import Numbering, attack_style
from reporting.plotting import (
    DIAMOND,
    DPI,
    FIT_LINE,
    PANEL_INCHES,
    REFERENCE_LINE,
    STAR,
    Panel,
    Series,
    figure,
    legend_note,
    plt,
    save,
    wrap,
)
from reporting.predicates import defended, main_attack, plain, unknown
from reporting.records import SOURCE
from reporting.tables import (
    KEEP_ACC_FRACTION,
    TABLE2_SETTING,
    attack_rank,
    defense_tradeoff,
    headline_table,
    pearson,
    table1,
    table1_summary,
    table2,
)

ACC_LABEL = "attack accuracy (%)"
TEST_ACC_LABEL = "victim test accuracy (%)"
SPARSITY_LABEL = "sparsity (fraction of weights pruned)"
PRUNER_STYLES = Numbering(PRUNERS.names())      # one style per pruner in every figure
DEFENSE_STYLES = Numbering(d.name for d in defenses.DEFENSES)


# ----------------------------------------------------------------------------------------------- tables
def write_tables(r: Report) -> list[Entry]:
    df, out = r.df, r.out
    head = headline_table(df)
    t1 = table1(df)
    trade = defense_tradeoff(df)
    figure_attack = trade["config"].map(lambda c: defense_attack(trade, c, r.attack))
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
    return (write_table(out, "all_results", df.drop(columns=SOURCE), f"All {len(df)} records after keeping the "
                        "last per (config, setting, attack); nested keys flattened.")
            + write_table(out, "headline", head, "Per config and setting: test accuracy, attack accuracy, AUC "
                          "and TPR@1%FPR (%) of samia, mentr, conf, hconf and blindmi.", ("headline.md", md_head))
            + write_table(out, "table1_unknown", t1, "Paper Table 1 analogue: attack-accuracy loss (known - "
                          "unknown) / known in % with unknown pruner / sparsity; the Markdown adds the mean per "
                          "config and attack.", ("table1.md", md_t1))
            + write_table(out, "defense_tradeoff", trade, "Defended settings beside Basic with the paper's "
                          "dropping rule (kept, reason); the Markdown shows the figures' attack.",
                          ("defense_tradeoff.md", md_trade))
            + write_table2(df, r))


def write_table2(df: pd.DataFrame, r: Report) -> list[Entry]:
    """table2_split.csv / table2.md, or a skipped entry when no configs differ only in their split."""
    t2 = table2(df)
    if t2.empty:
        return [skip("Tables", "Table 2 (AUC by data split)", "no (dataset, model) with results under more than "
                     f"one split at {TABLE2_SETTING[0]} {TABLE2_SETTING[1]:g}")]
    head = [c for c in t2.columns if not c.endswith(" AUC") or c[:-4] in headline_results()]
    md = (f"# Table 2: attack AUC by data split\n\nPaper Table 2: {TABLE2_SETTING[0]} at sparsity "
          f"{TABLE2_SETTING[1]:g}; split = train / test / dev share of each half (%); AUC in %. The Markdown "
          f"shows the headline attacks, table2_split.csv every attack. {NUMBER_RULE}\n\n" + to_markdown(t2[head]))
    return write_table(r.out, "table2_split", t2, "Paper Table 2 analogue: attack AUC (%) per data split and attack "
                       f"({TABLE2_SETTING[0]} {TABLE2_SETTING[1]:g}).", ("table2.md", md))


# ----------------------------------------------------------------------------------------------- series helpers
def pruner_lines(rows: pd.DataFrame, x: str, dots: bool = False, annotate: bool = True) -> list[Series]:
    """One series per pruner over its sparsities (points labelled with the sparsity)."""
    out = []
    for pruner, g in rows[~rows["original"]].groupby("pruner_name", sort=True):
        g = g.sort_values("prune_sparsity")
        style = PRUNER_STYLES.style(str(pruner))
        notes = [f"{s:g}" for s in g["prune_sparsity"]] if annotate else []
        out.append(Series(str(pruner), g[x].to_numpy(float), g["paper_acc"].to_numpy(float),
                          style=style.dots() if dots else style.line(), notes=notes))
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


# ----------------------------------------------------------------------------------------------- Fig 1
def fig1_candidates(cfg: pd.DataFrame) -> pd.DataFrame:
    """Undefended pruned settings (one row each), the first registered pruner first (l1unstructure, the
    paper's Fig 1), then by sparsity from the highest."""
    pruned = plain(cfg)
    pruned = pruned[~pruned["original"]].drop_duplicates("setting")
    return pruned.assign(_l1=pruned["pruner_name"] == PRUNERS.names()[0]).sort_values(
        ["_l1", "prune_sparsity"], ascending=False, kind="stable")


def first_features(r: Report, rows: pd.DataFrame) -> tuple[pd.Series, dict[str, np.ndarray]] | None:
    """The first row whose features.npz loads, with its arrays."""
    for _, row in rows.iterrows():
        feats = r.features(row)
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
            series = [Series(f"{who} (n={int(mask.sum())})", values[mask], kind="hist", key=who,
                             style={"bins": bins, "color": color})
                      for who, mask, color in (("members", m, "tab:blue"), ("non-members", ~m, "tab:red"))]
            # 3 significant digits, zeros kept (0.500, 38.7): one rule for both scales (fraction, |Δp|/ε)
            series += [Series(f"{who} mean {f[key][mask].mean():#.3g}", [f[key][mask].mean()], kind="vline",
                              key=f"{who} mean", style={"color": color}) for who, mask, color in
                       (("members", m, "black"), ("non-members", ~m, "red"))]
            panels.append(Panel(f"{name}: {key}", label, "count (samples)", series))
    return [panels[i] for i in (0, 2, 1, 3)]  # rows: model; columns: confidence, sensitivity


def fig1(r: Report) -> list[Entry]:
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        original = first_features(r, cfg[cfg["original"]])
        pruned = first_features(r, fig1_candidates(cfg))
        if original is None or pruned is None:
            entries.append(skip("Fig 1", f"Fig 1 for {config}", "needs features.npz (beside the scores files) of "
                                "the original and of an undefended pruned setting"))
            continue
        setting = pruned[0]["setting"]
        entries.append(figure("Fig 1", r.out, f"fig1_divergence_{config}.png",
                              histogram_panels([("original", original[1]), (setting, pruned[1])]),
                              f"{config}: true-class confidence and sensitivity, original vs {setting}",
                              f"Paper Fig 1 analogue for {config}: member vs non-member histograms of true-class "
                              f"confidence and sensitivity, original vs {setting} (lines: means).", ncols=2))
    return entries


# ----------------------------------------------------------------------------------------------- Figs 7-9
def fig7_8(r: Report) -> list[Entry]:
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        rows = plain(cfg)
        attack = main_attack(rows, r.attack)
        pruned = rows[~rows["original"] & (rows["attack"] == attack)]
        if attack is None or pruned.empty:
            entries += [skip("Figs 7-8", f"Figs 7-8 for {config}", "no undefended pruned records"
                             + (f" with attack {r.attack}" if r.attack else ""))]
            continue
        star = ", original model as a star" if rows["original"].any() else " (no original record)"
        for name, x, xlabel, fig, caption, labelled in (
                ("fig7_acc_vs_testacc", "victim_test_acc", TEST_ACC_LABEL, "Fig 7", "victim test accuracy", True),
                ("fig8_acc_vs_sparsity", "prune_sparsity", SPARSITY_LABEL + "; original at 0", "Fig 8",
                 "sparsity", False)):
            series = pruner_lines(pruned, x, annotate=labelled) + original_points(rows, attack, x)
            panel = Panel(f"{attack} attack accuracy vs {caption}", xlabel, ACC_LABEL, series)
            entries.append(figure("Figs 7-8", r.out, f"{name}_{config}.png", [panel],
                                  f"{config}: privacy risk of pruning ({fig} analogue)",
                                  f"Paper {fig} analogue for {config}: {attack} attack accuracy vs {caption} per "
                                  f"pruner{' (labels: sparsity)' if labelled else ''}{star}."))
    return entries


GAPS = (("confidence_gap", "confidence gap (fraction, members − non-members)"),
        ("sensitivity_gap", "sensitivity gap (|Δp|/ε, members − non-members)"),
        ("generalization_gap", "generalization gap (%, train − test accuracy)"))


def gap_panel(rows: pd.DataFrame, gap: str, xlabel: str) -> Panel:
    """Scatter of attack accuracy against one gap per pruner plus the original, with a fit and Pearson r."""
    series = pruner_lines(rows, gap, dots=True, annotate=False) + [
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
        series.append(Series(f"fit, Pearson r = {r:.3f} (n={n})", xs, slope * xs + icept, style=FIT_LINE, key="fit"))
    return Panel(gap.replace("_", " "), xlabel, ACC_LABEL, series)


def fig9(r: Report) -> list[Entry]:
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        rows = plain(cfg)
        attack = main_attack(rows, r.attack)
        rows = rows[rows["attack"] == attack]
        if rows["paper_acc"].count() < 2:
            entries.append(skip("Fig 9", f"Fig 9 for {config}", "fewer than two undefended settings"))
            continue
        panels = [gap_panel(rows, gap, label) for gap, label in GAPS]
        entries.append(figure("Fig 9", r.out, f"fig9_gaps_{config}.png", panels,
                              f"{config}: gaps vs {attack} attack accuracy (Fig 9 analogue)",
                              f"Paper Fig 9 analogue for {config}: confidence, sensitivity and generalization gap "
                              f"vs {attack} attack accuracy over undefended settings, Pearson r in the legend."))
    return entries


# ----------------------------------------------------------------------------------------------- Fig 10
def attack_bars(rows: pd.DataFrame, pruner: str, reference: pd.DataFrame) -> Panel:
    """Grouped bars: one group per sparsity, one bar per attack; the original's conf accuracy as a line."""
    g = rows[rows["pruner_name"] == pruner]
    sparsities = sorted(g["prune_sparsity"].unique())
    attacks = attack_rank(set(g["attack"]))
    table = g.pivot_table(index="prune_sparsity", columns="attack", values="paper_acc").reindex(sparsities)
    series = [Series(a, range(len(sparsities)), table[a].to_numpy(float), kind="bar", style=attack_style(a).bar())
              for a in attacks]
    series += [Series(f"{row.attack} (original)", y=[row.paper_acc], kind="hline",
                      style={"linestyle": "--", "color": "black"} if i == 0 else attack_style(row.attack).line()
                      | {"linestyle": "--", "marker": "none"}) for i, row in enumerate(reference.itertuples())]
    return Panel(pruner, SPARSITY_LABEL, ACC_LABEL, series, xticklabels=[f"{s:g}" for s in sparsities])


def fig10(r: Report) -> list[Entry]:
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        rows = plain(cfg)
        pruned = rows[~rows["original"]]
        if pruned.empty:
            entries.append(skip("Fig 10", f"Fig 10 for {config}", "no undefended pruned records"))
            continue
        original = rows[rows["original"]]
        compare = baseline_result() if baseline_result() in set(original["attack"]) else main_attack(original)
        reference = original[original["attack"] == compare]
        panels = [attack_bars(pruned, p, reference) for p in sorted(pruned["pruner_name"].unique())]
        entries.append(figure("Fig 10", r.out, f"fig10_attacks_{config}.png", panels,
                              f"{config}: attack comparison per pruning approach (Fig 10 analogue)",
                              f"Paper Fig 10 analogue for {config}: attack accuracy of every attack per pruner and "
                              f"sparsity" + "".join(f"; dashed line: the original model under {a}"
                                                    for a in reference["attack"]) + ".", ncols=2))
    return entries


# ----------------------------------------------------------------------------------------------- Fig 12
def unknown_sparsity_panel(rows: pd.DataFrame, pruner: str) -> Panel:
    """Attack accuracy vs the shadows' sparsity, one line per victim sparsity; stars: matched shadows."""
    g = rows[rows["pruner_name"] == pruner]
    victims = Numbering()
    series = [Series(f"victim sparsity {sp:g}", v["shadow_prune_sparsity"].to_numpy(float),
                     v["paper_acc"].to_numpy(float), style=victims.style(f"{sp:g}").line())
              for sp, v in g.sort_values("shadow_prune_sparsity").groupby("prune_sparsity")]
    known = g[np.isclose(g["shadow_prune_sparsity"], g["prune_sparsity"])]
    series.append(Series("known sparsity (shadow = victim)", known["shadow_prune_sparsity"].to_numpy(float),
                         known["paper_acc"].to_numpy(float), style=STAR))
    return Panel(pruner, "shadow sparsity (fraction of weights pruned)", ACC_LABEL, series)


def fig12(r: Report) -> list[Entry]:
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        rows = cfg[~defended(cfg) & ~cfg["original"] & (cfg["shadow_pruner_name"] == cfg["pruner_name"])]
        attack = main_attack(rows, r.attack)
        rows = rows[rows["attack"] == attack]
        pruners = sorted(rows.loc[unknown(rows), "pruner_name"].unique())
        if not pruners:
            entries.append(skip("Fig 12", f"Fig 12 for {config}", "no attacks with shadows of another sparsity"))
            continue
        entries.append(figure("Fig 12", r.out, f"fig12_unknown_sparsity_{config}.png",
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
    return d.loc[ok, ["attack", "paper_acc", "auc"]].assign(victim_level=victim_level[ok].round(6),
                                                             shadow_level=shadow_level[ok].round(6))


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
    room = PANEL_INCHES[0] - 1.6  # the colour bar takes the rest of the panel
    ax.set(title=wrap(title, room, 12), xlabel=f"shadow {LEVEL}", ylabel=f"victim {LEVEL}")
    fig.colorbar(image, ax=ax, label=label)


def fig12_matrix(r: Report) -> list[Entry]:
    """Figs 12-13 analogue: per config, a heatmap of attack accuracy and AUC over victim x shadow sparsity per
    approach that has attacks off the diagonal."""
    entries = []
    for config, cfg in r.df.groupby("config", sort=False):
        cells = {p: matrix_cells(cfg, p) for p in sorted(cfg["pruner_name"].dropna().unique())}
        cells = {p: c for p, c in cells.items() if is_matrix(c)}
        pruners = list(cells)
        if not pruners:
            entries.append(skip("Fig 12", f"sparsity matrix for {config}", "no attacks with shadows of another "
                                "sparsity on more than one victim sparsity"))
            continue
        off = pd.concat([c[c["victim_level"] != c["shadow_level"]] for c in cells.values()])
        attack = main_attack(off, r.attack)
        if attack is None:
            entries.append(skip("Fig 12", f"sparsity matrix for {config}", f"no {r.attack} attacks off the diagonal"))
            continue
        name = f"fig12_matrix_{config}.png"
        fig, axes = plt.subplots(len(pruners), len(MATRIX_VALUES), squeeze=False, layout="constrained", dpi=DPI,
                                 figsize=(PANEL_INCHES[0] * len(MATRIX_VALUES), PANEL_INCHES[1] * len(pruners)))
        for row, pruner in zip(axes, pruners):
            rows = cells[pruner][cells[pruner]["attack"] == attack]
            for ax, (value, label) in zip(row, MATRIX_VALUES):
                draw_heatmap(fig, ax, matrix_table(rows, value), f"{pruner}: {label}", label)
        fig.suptitle(wrap(f"{config}: {attack} with unknown sparsity, victim x shadow (Figs 12-13 analogue)",
                          fig.get_figwidth() - 0.4, 12))
        save(fig, r.out, name)
        entries.append(Entry("Fig 12", name, f"Paper Figs 12-13 analogue for {config}: {attack} attack accuracy and "
                             "AUC (%) for each victim sparsity (rows) attacked with shadows of each sparsity "
                             "(columns), same approach; 0 = the unpruned model, the diagonal = the known setting, "
                             "blank = not run."))
    return entries


# ----------------------------------------------------------------------------------------------- Figs 16-19
def defense_attack(trade: pd.DataFrame, config: str, wanted: str | None) -> str | None:
    """The attack of a config's defense figures, chosen among its defended records."""
    return main_attack(trade[trade["config"] == config], wanted)


def defense_label(row: object) -> str:
    eps = getattr(row, "epsilon", np.nan)
    finite = isinstance(eps, float) and np.isfinite(eps)
    return f"{row.defend_arg:{SETTING_FORMAT}}" + (f" (ε={eps:{EPSILON_FORMAT}})" if finite else "")


def defense_series(row: object) -> str:
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
        # Largest marker first: where two defenses land on one point (dp and dpsgd did), the later smaller
        # marker leaves the earlier one's edge visible.
        style = DEFENSE_STYLES.style(str(defend)).line() | {"markersize": 9 - i % 4}
        series.append(Series(str(defend), g["victim_test_acc"].to_numpy(float), g["paper_acc"].to_numpy(float),
                             style=style, notes=[defense_label(r) for r in g.itertuples()]))
    b = basic.dropna(subset=["basic_paper_acc"]).head(1)
    series.append(Series("basic (no defense)", b["basic_test_acc"].to_numpy(float),
                         b["basic_paper_acc"].to_numpy(float), style=STAR))
    return Panel(title, TEST_ACC_LABEL, ACC_LABEL, series)


def fig_defenses(r: Report) -> list[Entry]:
    trade = defense_tradeoff(r.df)
    entries = []
    if trade.empty:
        return [skip("Figs 16-19", "defense figures", "no defended records")]
    for (config, pruner, sp), g in trade.groupby(["config", "pruner_name", "prune_sparsity"], sort=False):
        attack = defense_attack(trade, config, r.attack)
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
                "Figs 16-19", r.out, name, [panel], f"{config}: defenses at {pruner} {sp:g} ({fig} analogue)",
                f"Paper {fig} analogue for {config}, {pruner} {sp:g}: {kind} {attack} attack accuracy vs test "
                f"accuracy per defense (labels: argument), {basic}; {dropped} of {len(rows)} settings "
                f"dropped by the paper's rule (see defense_tradeoff.md)."))
    return entries


# ----------------------------------------------------------------------------------------------- ROC curves
def roc_series(r: Report, rows: pd.DataFrame) -> tuple[list[Series], list[str], int]:
    """Log-log ROC series per attack with a scores file; the attacks without one; the largest n_nonmembers."""
    series, missing, n = [], [], 0
    for _, row in rows.iterrows():
        z = r.scores(row)
        if z is None:
            missing.append(str(row["attack"]))
            continue
        fpr, tpr = metrics.roc_points(z["member"], z["scores"])
        n = max(n, int((~z["member"].astype(bool)).sum()))
        # markers spaced along the curve (a fraction of its length), not one per threshold
        style = attack_style(row["attack"]).line() | {"markevery": 0.1, "markersize": 4}
        series.append(Series(f"{row['attack']} (AUC {metrics.roc_auc(z['member'], z['scores']):.1f} %)", fpr, tpr,
                             style=style, key=str(row["attack"])))
    return series, missing, n


def fig_roc(r: Report) -> list[Entry]:
    entries = []
    # One log-log ROC per setting with every attack that saved scores (reference attacks included), down to
    # FPR 1/n: the smallest FPR n non-members can show.
    for (config, setting), rows in r.df.groupby(["config", "setting"], sort=False):
        series, missing, n = roc_series(r, rows)
        what = f"ROC for {config} {setting}"
        if not series:
            entries.append(skip("ROC curves", what, f"no score files under {r.root} (--root: the folder mia.py "
                                                     "ran in)"))
            continue
        lo = 1.0 / max(n, 1)  # no FPR below 1/n exists
        series.append(Series("random guess (TPR = FPR)", [lo, 1.0], [lo, 1.0], style=REFERENCE_LINE, key="random"))
        panel = Panel(f"{n} non-members, every attack", "false positive rate (fraction, log)",
                      "true positive rate (fraction, log)", series, loglog=True, limits=(lo, 1.0))
        note = f"; no scores for {', '.join(missing)}" if missing else ""
        entries.append(figure("ROC curves", r.out, f"roc/{config}/{setting}.png", [panel],
                              f"ROC (log-log): {config} {setting}",
                              f"Log-log ROC of every attack on {config} {setting}, from FPR 1/n = {lo:.2g} "
                              f"(n = {n} non-members){note}."))
    return entries
