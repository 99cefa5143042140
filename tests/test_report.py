"""report.py: tables checked against numbers computed by hand, figures written, user errors are one line."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import report
from conftest import run_script

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASE: dict[str, Any] = {
    "config": "toy", "dataset_name": "digits", "model_name": "columnfc", "original": False, "defend": "",
    "defend_arg": None, "adaptive": False, "epsilon": None, "delta": None, "auc": 60.0, "acc": 60.0,
    "balanced_acc": 60.0, "tpr_at_1pct_fpr": 2.0, "tpr_at_0.1pct_fpr": 0.0, "n_members": 40,
    "n_nonmembers": 40, "seed": 7, "shadow_num": 5, "split": {"victim": 0.5, "train": 0.45, "dev": 0.1,
                                                             "test": 0.45},
    "sensitivity": {"n": 10, "eps": 0.001}, "versions": {"torch": "2.x"}, "victim_train_acc": 99.0}


def rec(setting: str, attack: str, acc: float, test_acc: float, pruner: str | None = None,
        sparsity: float | None = None, shadow: tuple[str, float] | None = None, gaps: tuple = (0.1, 0.01, 5.0),
        **extra: Any) -> dict[str, Any]:
    """One mia.py record; the shadows default to the victim's pruner and sparsity."""
    spruner, ssp = shadow if shadow else (pruner, sparsity)
    return BASE | {
        "setting": setting, "attack": attack, "paper_acc": acc, "victim_test_acc": test_acc,
        "original": pruner is None, "pruner_name": pruner, "prune_sparsity": sparsity,
        "shadow_pruner_name": spruner, "shadow_prune_sparsity": ssp, "confidence_gap": gaps[0],
        "sensitivity_gap": gaps[1], "generalization_gap": gaps[2],
        "scores_file": f"result/{BASE['config']}/mia/{setting}/{attack}.npz"} | extra


def defended(defend: str, arg: float, acc: float, test_acc: float, adaptive: bool = False, pruner: str =
             "l1unstructure", sparsity: float = 0.7, **extra: Any) -> dict[str, Any]:
    setting = f"{pruner}_{sparsity:g}_{defend}_{arg:g}" + ("_adaptive" if adaptive else "")
    return rec(setting, "samia", acc, test_acc, pruner, sparsity, defend=defend, defend_arg=arg,
               adaptive=adaptive, **extra)


L1 = ("l1unstructure", 0.7)
RECORDS = [
    rec("original", "samia", 60.0, 90.0, gaps=(0.05, 0.002, 2.0)),
    rec("original", "conf", 58.0, 90.0, gaps=(0.05, 0.002, 2.0)),
    rec("l1unstructure_0.5", "samia", 64.0, 89.0, *("l1unstructure", 0.5), gaps=(0.08, 0.004, 4.0)),
    rec("l1unstructure_0.5", "conf", 61.0, 89.0, *("l1unstructure", 0.5), gaps=(0.08, 0.004, 4.0)),
    rec("l1unstructure_0.5", "nn", 59.0, 89.0, *("l1unstructure", 0.5), gaps=(0.08, 0.004, 4.0)),
    rec("l1unstructure_0.7", "samia", 50.0, 88.0, *L1),  # replaced by the rerun below: dedup keeps the last
    rec("l1unstructure_0.7", "conf", 62.0, 88.0, *L1, gaps=(0.12, 0.006, 7.0)),
    rec("l1unstructure_0.7", "mentr", 63.0, 88.0, *L1, gaps=(0.12, 0.006, 7.0)),
    rec("slim_0.7", "samia", 66.0, 87.0, "slim", 0.7, gaps=(0.11, 0.003, 6.0)),
    rec("l1unstructure_0.7", "samia", 70.0, 88.0, *L1, gaps=(0.12, 0.006, 7.0)),
    # unknown settings (paper Table 1)
    rec("l1unstructure_0.7_shadow_l1unstructure_0.5", "samia", 63.0, 88.0, *L1, shadow=("l1unstructure", 0.5)),
    rec("l1unstructure_0.5_shadow_l1unstructure_0.7", "samia", 65.0, 89.0, "l1unstructure", 0.5,
        shadow=("l1unstructure", 0.7)),
    rec("slim_0.7_shadow_l1unstructure_0.5", "samia", 55.0, 87.0, "slim", 0.7, shadow=("l1unstructure", 0.5)),
    rec("slim_0.7_shadow_slim_0.5", "samia", 60.0, 87.0, "slim", 0.7, shadow=("slim", 0.5)),
    # defenses at l1unstructure 0.7, whose Basic is samia 70 % at test 88 % (75 % of 88 = 66)
    defended("ppb", 1, 60.0, 87.0),                  # kept
    defended("ppb", 4, 70.0, 66.0),                  # kept: exactly 75 % of Basic's accuracy, equal attack
    defended("ppb", 8, 55.0, 60.0),                  # dropped: test accuracy too low
    defended("ppb", 16, 72.0, 86.0),                 # dropped: attack higher than Basic's
    defended("adv", 2, 75.0, 65.0),                  # dropped: both
    defended("dpsgd", 1, 55.0, 80.0, epsilon=3.2),   # kept
    defended("ppb", 1, 68.0, 87.0, adaptive=True),   # kept
    defended("ppb", 1, 52.0, 85.0, pruner="slim", sparsity=0.5),  # no Basic at slim 0.5: rule not applied
]
OTHER = [rec("original", "conf", 51.0, 95.0) | {"config": "lonely", "scores_file": "nowhere/conf.npz"}]


def write_scores(root: Path, setting: str, attack: str, rng: np.random.Generator, shift: float) -> None:
    member = np.r_[np.ones(40), np.zeros(40)].astype(np.int64)
    scores = rng.normal(size=80) + shift * member
    folder = root / "result" / "toy" / "mia" / setting
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{attack}.npz", scores=scores, decisions=(scores > 0).astype(np.int64), member=member)
    np.savez(folder / "features.npz", conf=1 / (1 + np.exp(-scores)), sens=np.abs(rng.normal(size=80)) * 50,
             member=member, labels=rng.integers(0, 3, 80))


def make_logdir(root: Path, extra_lines: tuple[str, ...] = ()) -> Path:
    """root/log/{toy,lonely}/results.jsonl plus score files for two settings of toy (others missing)."""
    for config, records in (("toy", RECORDS), ("lonely", OTHER)):
        folder = root / "log" / config
        folder.mkdir(parents=True)
        lines = [json.dumps(r) for r in records] + list(extra_lines if config == "toy" else ())
        (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    for setting, shift in (("original", 0.5), ("l1unstructure_0.7", 1.5)):
        for attack in ("samia", "conf"):
            write_scores(root, setting, attack, rng, shift)
    return root / "log"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, list[str]]:
    bad = ("{not json", json.dumps({"config": "toy"}),
           json.dumps({"config": "toy", "setting": "slim_0.9", "attack": "nn", "paper_acc": 50.0}))
    logdir = make_logdir(tmp_path_factory.mktemp("tables"), bad)
    return report.load_results(logdir)


def row(df: pd.DataFrame, **eq: Any) -> pd.Series:
    mask = np.ones(len(df), bool)
    for k, v in eq.items():
        mask &= (df[k] == v).to_numpy()
    assert mask.sum() == 1, eq
    return df[mask].iloc[0]


def test_load_dedups_keeping_the_last_record_and_notes_bad_lines(results):
    df, notes = results
    assert len(df) == len(RECORDS) - 1 + len(OTHER)
    assert row(df, config="toy", setting="l1unstructure_0.7", attack="samia")["paper_acc"] == 70.0
    assert len(notes) == 3 and "not valid JSON" in notes[0] and "no setting, attack, paper_acc" in notes[1]
    assert "results.jsonl:25: no pruner_name, prune_sparsity" in notes[2]  # a pruned record needs both
    assert df.loc[df["original"], "setting"].eq("original").all()
    assert {"split.dev", "versions.torch"} <= set(df.columns)  # flat columns


def test_headline_keeps_main_attacks_with_their_numbers(results):
    head = report.headline_table(results[0])
    assert set(head["attack"]) <= {"samia", "conf", "mentr", "hconf", "blindmi"} and "nn" not in set(head["attack"])
    r = row(head, setting="l1unstructure_0.7", attack="samia")
    assert (r["victim_test_acc"], r["paper_acc"], r["auc"], r["tpr_at_1pct_fpr"]) == (88.0, 70.0, 60.0, 2.0)
    assert list(head.columns) == ["config", "setting", "attack", "victim_test_acc", "paper_acc", "auc",
                                  "tpr_at_1pct_fpr"]


def test_table1_loss_is_known_minus_unknown_over_known(results):
    t1 = report.table1(results[0])
    assert len(t1) == 4
    expected = {("l1unstructure", 0.7, "l1unstructure", 0.5): (70.0, 63.0),
                ("l1unstructure", 0.5, "l1unstructure", 0.7): (64.0, 65.0),
                ("slim", 0.7, "l1unstructure", 0.5): (66.0, 55.0),
                ("slim", 0.7, "slim", 0.5): (66.0, 60.0)}
    for (p, s, sp, ss), (known, unknown) in expected.items():
        r = row(t1, pruner_name=p, prune_sparsity=s, shadow_pruner_name=sp, shadow_prune_sparsity=ss)
        assert (r["known_acc"], r["unknown_acc"]) == (known, unknown)
        assert r["loss_pct"] == pytest.approx((known - unknown) / known * 100)
    summary = report.table1_summary(t1)
    s = row(summary, config="toy", attack="samia")
    assert s["n_pairs"] == 4
    assert s["mean_loss_pct"] == pytest.approx(np.mean([(k - u) / k * 100 for k, u in expected.values()]))


def test_defense_rule_keeps_and_drops_the_right_settings(results):
    trade = report.defense_tradeoff(results[0])
    assert len(trade) == 8 and set(trade["attack"]) == {"samia"}
    kept = {r.setting: (r.kept, r.reason) for r in trade.itertuples()}
    assert kept["l1unstructure_0.7_ppb_1"] == (True, "")
    assert kept["l1unstructure_0.7_ppb_4"] == (True, "")  # boundary: 66 = 0.75 * 88, attack equal to Basic's
    assert kept["l1unstructure_0.7_ppb_8"] == (False, "test acc < 75% of Basic's")
    assert kept["l1unstructure_0.7_ppb_16"] == (False, "attack acc > Basic's")
    assert kept["l1unstructure_0.7_adv_2"] == (False, "test acc < 75% of Basic's; attack acc > Basic's")
    assert kept["l1unstructure_0.7_dpsgd_1"] == (True, "")
    assert kept["l1unstructure_0.7_ppb_1_adaptive"] == (True, "")
    assert kept["slim_0.5_ppb_1"] == (True, "no Basic record: rule not applied")
    r = row(trade, setting="l1unstructure_0.7_dpsgd_1")
    assert (r["basic_test_acc"], r["basic_paper_acc"], r["epsilon"]) == (88.0, 70.0, 3.2)


def test_pearson_matches_numpy_and_is_in_the_fig9_legend(results):
    rows = report.plain(results[0])
    rows = rows[(rows["config"] == "toy") & (rows["attack"] == "samia")]
    x, y = rows["confidence_gap"].to_numpy(float), rows["paper_acc"].to_numpy(float)
    r = np.corrcoef(x, y)[0, 1]
    assert report.pearson(x, y) == pytest.approx(r)
    assert np.isnan(report.pearson([1.0, 2.0], [3.0, 4.0])) and np.isnan(report.pearson([1, 1, 1], [1, 2, 3]))
    labels = [s.label for s in report.gap_panel(rows, "confidence_gap", "gap").series]
    assert f"fit, Pearson r = {r:.3f} (n=4)" in labels


def test_main_attack_prefers_samia_then_the_strongest(results):
    df = results[0]
    assert report.main_attack(df) == "samia"
    assert report.main_attack(df[df["attack"] != "samia"]) == "mentr"  # mean 63 beats conf's and nn's
    assert report.main_attack(df, "nn") == "nn" and report.main_attack(df, "xent") is None


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("cli")
    make_logdir(root)
    done = run_script("report.py", "log", "--out", "out", cwd=root, timeout=120)
    return root / "out", done


@pytest.mark.e2e
def test_cli_writes_tables_figures_and_index(cli_report):
    out, done = cli_report
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    for name in ("all_results.csv", "headline.csv", "headline.md", "table1_unknown.csv", "table1.md",
                 "defense_tradeoff.csv", "defense_tradeoff.md", "index.md"):
        assert (out / name).stat().st_size > 0, name
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert {"fig1_divergence_toy.png", "fig7_acc_vs_testacc_toy.png", "fig8_acc_vs_sparsity_toy.png",
            "fig9_gaps_toy.png", "fig10_attacks_toy.png", "fig12_unknown_sparsity_toy.png",
            "defense_toy_l1unstructure_0.7_nonadaptive.png", "defense_toy_l1unstructure_0.7_adaptive.png",
            "defense_toy_slim_0.5_nonadaptive.png", "roc/toy/original.png", "roc/toy/l1unstructure_0.7.png"} \
        <= set(pngs)
    for p in pngs:
        assert (out / p).read_bytes()[:8] == PNG_MAGIC, p
    index = (out / "index.md").read_text()
    assert all(f"]({p})" in index for p in pngs)
    assert "skipped: Fig 1 for lonely" in index and "skipped: ROC for toy slim_0.7" in index
    assert "skipped: Figs 18-19 for toy slim 0.5 (adaptive)" in index
    assert "no scores for mentr" in index  # l1unstructure_0.7 has samia and conf scores only
    assert len(pd.read_csv(out / "all_results.csv")) == len(RECORDS) - 1 + len(OTHER)
    md = (out / "defense_tradeoff.md").read_text()
    assert "| kept |" in md.replace("kept | why dropped", "kept |") and "attack acc > Basic's" in md


@pytest.mark.e2e
def test_missing_logdir_is_one_error_line_exit_2(tmp_path: Path):
    done = run_script("report.py", "nolog", cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("layout", ["empty", "blank_results", "one_config_folder"])
def test_logdir_without_results_is_a_user_error(tmp_path: Path, layout: str, capsys: pytest.CaptureFixture):
    logdir = tmp_path / "log"
    logdir.mkdir()
    if layout == "blank_results":
        (logdir / "toy").mkdir()
        (logdir / "toy" / "results.jsonl").write_text("\n")
    if layout == "one_config_folder":
        (logdir / "results.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        report.run_main(lambda: report.main([str(logdir), "--out", str(tmp_path / "out")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- presentation
def test_markdown_numbers_follow_one_rule_per_column():
    table = pd.DataFrame({"attack": ["samia", "conf", "mentr"], "tpr_at_1pct_fpr": [1.489, 0.7444, 3.97],
                          "paper_acc": [87.66, 50.0, 100.0], "epsilon": [3.9712, np.nan, 0.5],
                          "prune_sparsity": [0.6, 0.9, 0.95], "defend_arg": [16.0, 0.1, np.nan], "n_pairs": [4, 2, 1]})
    cells = [line.split(" | ") for line in report.to_markdown(table).splitlines()[2:]]
    assert [c[1:6] for c in cells] == [["1.5", "87.7", "3.97", "0.6", "16"], ["0.7", "50.0", "", "0.9", "0.1"],
                                       ["4.0", "100.0", "0.50", "0.95", ""]]
    with pytest.raises(ValueError, match="no number format for column 'confidence_gap'"):
        report.to_markdown(pd.DataFrame({"confidence_gap": [0.1]}))


@pytest.mark.e2e
def test_every_percent_cell_of_the_markdown_tables_has_one_decimal(cli_report):
    out, done = cli_report
    assert done.returncode == 0, done.stderr
    for name in ("headline.md", "table1.md", "defense_tradeoff.md"):
        tables = [line for line in (out / name).read_text().splitlines() if line.startswith("| ")]
        header = None
        for line in tables:
            cells = line.strip("| ").split(" | ")
            if "(%)" in line:  # a header row starts each table
                header = cells
                continue
            for title, cell in zip(header, cells):
                if title.endswith("(%)") and cell:
                    assert re.fullmatch(r"-?\d+\.\d", cell), (name, title, cell)
        assert report.NUMBER_RULE in (out / name).read_text()
    assert report.NUMBER_RULE in (out / "index.md").read_text()


def boxes(fig: Any) -> dict[str, list[Any]]:
    """Window extents of what a reader reads: titles, axis labels, legends and point labels."""
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    texts = list(fig.texts) + [t for ax in axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    return {"texts": [t.get_window_extent(renderer) for t in texts if t.get_text()],
            "legends": [ax.get_legend().get_window_extent(renderer) for ax in axes],
            "axes": [ax.get_window_extent(renderer) for ax in axes],
            "notes": [[c.get_window_extent(renderer) for c in ax.texts] for ax in axes]}


def inside(inner: Any, outer: Any) -> bool:
    return outer.x0 - 0.5 <= inner.x0 and inner.x1 <= outer.x1 + 0.5 and outer.y0 - 0.5 <= inner.y0 and \
        inner.y1 <= outer.y1 + 0.5


LONG = "synthetic_purchase_columnfc"  # the quick profile's config: its titles overflowed a one-panel figure


def fig9_panels(df: pd.DataFrame) -> list[Any]:
    rows = report.plain(df)
    rows = rows[(rows["config"] == "toy") & (rows["attack"] == "samia")]
    return [report.gap_panel(rows, gap, label) for gap, label in report.GAPS]


def fig10_panels(df: pd.DataFrame) -> list[Any]:
    rows = report.plain(df[df["config"] == "toy"])
    reference = rows[rows["original"] & (rows["attack"] == "conf")]
    return [report.attack_bars(rows[~rows["original"]], p, reference) for p in ("l1unstructure", "slim")]


@pytest.mark.parametrize("panels, ncols", [(fig9_panels, 1), (fig9_panels, 2), (fig9_panels, 3),
                                           (fig10_panels, 1), (fig10_panels, 2)])
def test_titles_labels_and_legends_stay_on_the_canvas_and_off_the_data(results, panels, ncols):
    fig = report.compose(panels(results[0])[:ncols], f"{LONG}: attack comparison per pruning approach, original "
                                                     f"vs l1unstructure_0.9 (Fig 9 or 10 analogue)", ncols=ncols)
    try:
        b = boxes(fig)
        for box in b["texts"] + b["legends"]:
            assert inside(box, fig.bbox), (box, fig.bbox)
        for legend in b["legends"]:
            assert not any(legend.overlaps(ax) for ax in b["axes"])
    finally:
        report.plt.close(fig)


def test_point_labels_at_one_point_do_not_overlap(results):
    trade = report.defense_tradeoff(results[0])
    rows = trade[(trade["pruner_name"] == "l1unstructure") & (trade["attack"] == "samia") & ~trade["adaptive"]]
    twin = rows[rows["defend"] == "dpsgd"].assign(defend="dp")  # dp lands exactly where dpsgd does
    fig = report.compose([report.defense_panel(pd.concat([rows, twin]), rows, "non-adaptive samia attack")],
                         f"{LONG}: defenses at l1unstructure 0.7 (Figs 16-17 analogue)", ncols=1)
    try:
        b = boxes(fig)
        notes = b["notes"][0]
        assert len(notes) == 4  # ppb 1 and 4, dpsgd 1, dp 1 (the others are dropped by the rule)
        for i, one in enumerate(notes):
            assert inside(one, b["axes"][0])
            assert not any(one.overlaps(other) for other in notes[i + 1:])
        for box in b["texts"] + b["legends"]:
            assert inside(box, fig.bbox), (box, fig.bbox)
        shapes = {line.get_label(): (line.get_marker(), line.get_markersize()) for line in fig.axes[0].get_lines()}
        assert shapes["dp"] != shapes["dpsgd"]  # so that the marker drawn first still shows around the second
    finally:
        report.plt.close(fig)


def test_point_labels_keep_off_the_lines():
    """A line rising to the right runs through the old fixed up-right label of its lower point (Fig 7)."""
    up = report.Series("l1unstructure", [60.0, 65.0], [75.6, 86.8], style=report.LINE, notes=["0.9", "0.6"])
    star = report.Series("original", [65.0], [88.0], style=report.STAR)
    fig = report.compose([report.Panel("samia", "test acc", "attack acc", [up, star])], "Fig 7", ncols=1)
    try:
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        line = ax.get_lines()[0]
        path = line.get_transform().transform_path(line.get_path())
        for note in ax.texts:
            assert not path.intersects_bbox(note.get_window_extent(renderer), filled=False), note.get_text()
        assert ax.texts[0].xyann == (-4, 4)  # 0.9 moved up-left, beside the line
    finally:
        report.plt.close(fig)


def test_original_vs_pruned_table_orders_settings_and_says_what_is_unresolvable() -> None:
    import report
    from core.results import AttackRecord

    def rec(setting: str, attack: str, sparsity: float | None, auc: float, n0: int) -> AttackRecord:
        return AttackRecord(config="c", setting=setting, attack=attack, original=sparsity is None,
                            pruner_name=None if sparsity is None else "l1unstructure", prune_sparsity=sparsity,
                            paper_acc=50.0, auc=auc, auc_ci_low=auc - 2, auc_ci_high=auc + 3,
                            tpr_at_0_1pct_fpr=1.5, tpr_at_0_01pct_fpr=0.5, victim_test_acc=80.0,
                            n_nonmembers=n0, n_references=8 if attack.startswith(("lira", "rmia")) else None)
    df = report.normalize([rec("l1unstructure_0.6", "samia", 0.6, 60.0, 2000), rec("l1unstructure_0.6", "lira_online",
                           0.6, 70.0, 2000), rec("original", "lira_online", None, 65.0, 2000),
                           rec("original", "threshold_conf", None, 55.0, 2000)])
    t = report.original_vs_pruned(df)
    assert list(zip(t["setting"], t["attack"])) == [("original", "lira_online"), ("l1unstructure_0.6", "lira_online"),
                                                    ("l1unstructure_0.6", "samia")]
    assert t["AUC [95% CI]"].tolist() == ["65.0 [63.0, 68.0]", "70.0 [68.0, 73.0]", "60.0 [58.0, 63.0]"]
    assert t["TPR@0.1%FPR [95% CI]"].iloc[0] == "1.5"   # no interval recorded: the value alone
    assert t["references"].iloc[0] == 8
    # 2,000 non-members resolve 0.1 % (2 false positives) but not 0.01 % (0.2 of one)
    assert t["note"].iloc[0] == "2000 non-members: TPR at 0.01 % FPR is the TPR at FPR 0"
    assert report.resolution_note(20_000) == ""
    assert report.resolution_note(1000) == "1000 non-members: TPR at 0.1 % and 0.01 % FPR is the TPR at FPR 0"


# ------------------------------------------------------------------------------------------ Table 2, Figs 12-13
def split_rec(config: str, train: float, test: float, attack: str, auc: float, sparsity: float = 0.7
              ) -> dict[str, Any]:
    return rec(f"l1unstructure_{sparsity:g}", attack, 60.0, 80.0, "l1unstructure", sparsity, auc=auc) | {
        "config": config, "dataset_name": "cifar10", "model_name": "resnet18",
        "split": {"victim": 0.5, "train": train, "dev": 0.1, "test": test}}


def test_table2_is_auc_by_split_and_attack_for_configs_that_differ_in_their_split() -> None:
    records = [split_rec("c10", 0.45, 0.45, "samia", 75.5), split_rec("c10", 0.45, 0.45, "mentr", 70.0),
               split_rec("c10_split50_40", 0.5, 0.4, "samia", 72.7),
               split_rec("c10_split70_20", 0.7, 0.2, "samia", 72.7),
               split_rec("c10_split70_20", 0.7, 0.2, "samia", 99.0, sparsity=0.5),  # another sparsity: left out
               rec("original", "samia", 50.0, 80.0) | {"config": "digits"}]  # one split only: no Table 2 row
    df = report.normalize([report.AttackRecord.from_json(r) for r in records])
    t2 = report.table2(df)
    assert list(t2.columns) == ["dataset", "model", "split", "config", "samia AUC", "mentr AUC"]
    assert t2["split"].tolist() == ["45/45/10", "50/40/10", "70/20/10"]  # ordered by the train share
    assert t2["samia AUC"].tolist() == [75.5, 72.7, 72.7]
    assert t2["mentr AUC"].iloc[0] == 70.0 and t2["mentr AUC"].iloc[1:].isna().all()
    assert report.table2(df[df["config"] == "c10"]).empty  # one split: nothing to compare


MATRIX = [  # victim x shadow sparsity {0, 0.5} of l1unstructure, samia; 0 = unpruned
    rec("original", "samia", 60.0, 90.0, auc=61.0),
    rec("original_shadow_l1unstructure_0.5", "samia", 58.0, 90.0, auc=59.0) | {
        "shadow_pruner_name": "l1unstructure", "shadow_prune_sparsity": 0.5},
    rec("l1unstructure_0.5", "samia", 66.0, 89.0, "l1unstructure", 0.5, auc=67.0),
    rec("l1unstructure_0.5_shadow_original", "samia", 64.0, 89.0, "l1unstructure", 0.5, auc=65.0) | {
        "shadow_pruner_name": None, "shadow_prune_sparsity": 0.0},
    rec("slim_0.5_shadow_original", "samia", 10.0, 89.0, "slim", 0.5) | {  # another approach: not in the matrix
        "shadow_pruner_name": None, "shadow_prune_sparsity": 0.0},
]


def test_sparsity_matrix_cells_and_heatmap(tmp_path: Path) -> None:
    df = report.normalize([report.AttackRecord.from_json(r) for r in MATRIX])
    kinds = dict(zip(df["setting"], report.unknown(df)))
    assert kinds == {"original": False, "original_shadow_l1unstructure_0.5": True, "l1unstructure_0.5": False,
                     "l1unstructure_0.5_shadow_original": True, "slim_0.5_shadow_original": True}
    assert set(report.plain(df)["setting"]) == {"original", "l1unstructure_0.5"}  # the headline's rows
    assert report.table1(df).empty  # an unpruned side is Figs 12-13's, not a Table 1 draw
    for value, expected in (("paper_acc", [[60.0, 58.0], [64.0, 66.0]]), ("auc", [[61.0, 59.0], [65.0, 67.0]])):
        table = report.matrix_table(report.matrix_cells(df, "l1unstructure"), value)
        assert table.index.tolist() == table.columns.tolist() == [0.0, 0.5]  # victim rows, shadow columns
        assert table.to_numpy().tolist() == expected
    entries = report.fig12_matrix(df, tmp_path, None)
    assert [e.file for e in entries] == ["fig12_matrix_toy.png"]
    assert (tmp_path / "fig12_matrix_toy.png").read_bytes()[:8] == PNG_MAGIC
    assert report.fig12_matrix(df[df["setting"] == "original"], tmp_path, None)[0].file is None  # skipped


def test_a_cut_short_scores_file_skips_its_figure_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "samia.npz"
    np.savez(path, scores=np.arange(500.0), member=np.ones(500))
    data = path.read_bytes()
    assert report.load_npz(path, ["scores"])["scores"].size == 500
    path.write_bytes(data[:len(data) // 2])  # BadZipFile: the former (OSError, KeyError, ValueError) let it through
    assert report.load_npz(path, ["scores"]) is None



def test_artifact_mode_is_its_own_series_in_the_defense_figures(results):
    """dp as the artifact ran it (--defense_mode artifact) and our dp at the same sigma are two series, not
    two points of one line (Figs 16-19 compare them)."""
    trade = report.defense_tradeoff(results[0])
    assert trade["defense_mode"].isna().all()  # the fixture's records predate schema 4
    rows = trade[(trade["pruner_name"] == "l1unstructure") & (trade["attack"] == "samia") & ~trade["adaptive"]]
    ours = rows[rows["defend"] == "dpsgd"].assign(defend="dp", defense_mode="fixed")
    artifact = ours.assign(defense_mode="artifact", victim_test_acc=ours["victim_test_acc"] - 5)
    panel = report.defense_panel(pd.concat([ours, artifact]), rows, "non-adaptive samia attack")
    lines = {s.label: len(s.x) for s in panel.series}
    assert lines == {"dp": 1, "dp (artifact)": 1, "basic (no defense)": 1}
