"""Every figure of a report tells its series apart: read back from the matplotlib objects (not the PNGs) of a
report over records and score files covering every figure builder, many attacks and settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib import colors
from matplotlib.figure import Figure

from attackers import ATTACKS, result_order
from reporting import BUILDERS, build_report, palette
from reporting.plotting import kept_figures
from reporting_corpus import ATTACKS as CORPUS_ATTACKS
from reporting_corpus import CONFIG, nas_records, pruning_records, write_logdir

NO_LINE = ("None", "none", " ", "")


def line_style(line: Any) -> tuple[str, ...]:
    ls = line.get_linestyle()
    return ("line", colors.to_hex(line.get_color()), "none" if ls in NO_LINE else ls, str(line.get_marker()))


def patch_style(patch: Any) -> tuple[str, ...]:
    return ("patch", colors.to_hex(patch.get_facecolor()), patch.get_hatch() or "")


def series_of(fig: Figure) -> dict[str, set[tuple[str, ...]]]:
    """Series key (the artists' gid) -> the styles its artists are drawn with, over every panel of the figure;
    legend-only entries (no data) are not series."""
    found: dict[str, set[tuple[str, ...]]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid() and len(line.get_xdata()):
                found.setdefault(line.get_gid(), set()).add(line_style(line))
        for patch in ax.patches:
            if patch.get_gid():
                found.setdefault(patch.get_gid(), set()).add(patch_style(patch))
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Figure], Path]:
    root = tmp_path_factory.mktemp("figures")
    logdir = write_logdir(root)
    with kept_figures() as figures:
        built = build_report(logdir, root / "out")
    return built, figures, root / "out"


def test_every_figure_builder_draws(report):
    built, figures, out = report
    assert built.notes == []
    drawn = {e.file for e in built.entries if e.file and e.file.endswith(".png")} - {"nas_adra/nas_x_P4_elu_B1.png"}
    assert set(figures) == drawn  # every PNG drawn came back as a Figure
    expected = {f"{stem}_{CONFIG}.png" for stem in (
        "fig1_divergence", "fig7_acc_vs_testacc", "fig8_acc_vs_sparsity", "fig9_gaps", "fig10_attacks",
        "fig12_unknown_sparsity", "fig12_matrix", "iso_accuracy", "wemem_premise", "memscore_success")}
    expected |= {f"defense_{CONFIG}_l1unstructure_0.7_{k}.png" for k in ("nonadaptive", "adaptive")}
    expected |= {f"roc/{CONFIG}/original.png", f"roc/{CONFIG}/l1unstructure_0.7.png"}
    assert expected <= drawn
    # each builder that draws figures drew one here (the builders' list is the report's)
    figure_makers = {b.make.__name__ for b in BUILDERS if b.make.__name__.startswith("fig")}
    assert len(figure_makers) == 11 and (out / "nas_adra" / "nas_x_P4_elu_B1.png").is_file()


def test_no_two_series_of_a_figure_share_colour_line_style_and_marker(report):
    _, figures, _ = report
    for name, fig in figures.items():
        series = series_of(fig)
        for key, styles in series.items():
            assert len(styles) == 1, (name, key, styles)  # one key, one look in every panel
        looks = [next(iter(s)) for s in series.values()]
        clashes = {look for look in looks if looks.count(look) > 1}
        assert not clashes, (name, {k: s for k, s in series.items() if next(iter(s)) in clashes})


def test_the_figures_that_carry_many_series_carry_all_of_them(report):
    _, figures, _ = report
    roc = series_of(figures[f"roc/{CONFIG}/original.png"])
    assert set(CORPUS_ATTACKS) <= set(roc) and len(CORPUS_ATTACKS) == len(result_order()) + 6  # 22 attacks
    memscore = series_of(figures[f"memscore_success_{CONFIG}.png"])
    assert len(memscore) >= 15  # one line per setting attacked with samia
    bars = series_of(figures[f"fig10_attacks_{CONFIG}.png"])
    assert set(CORPUS_ATTACKS) <= set(bars)


def test_an_attack_looks_the_same_in_every_figure(report):
    _, figures, _ = report
    looks: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for fig in figures.values():
        for key, styles in series_of(fig).items():
            if key in CORPUS_ATTACKS:
                for style in styles:
                    looks.setdefault((key, style[0]), set()).add(style)
    assert {k for k, _ in looks} == set(CORPUS_ATTACKS)
    for (attack, kind), styles in looks.items():
        assert len(styles) == 1, (attack, kind, styles)
    lines = {a: next(iter(s)) for (a, kind), s in looks.items() if kind == "line"}
    bars = {a: next(iter(s)) for (a, kind), s in looks.items() if kind == "patch"}
    assert all(lines[a][1] == bars[a][1] for a in lines.keys() & bars.keys())  # one colour for lines and bars


def test_one_colour_per_attack_family_from_the_registry():
    """The family comes from the registry (its `family`, a shared name stem), and a family's members are
    shades of one colour: hue equal within a family, different between families."""
    fam = palette.registry_families()
    assert fam["xent"] == fam["hconf"] == "threshold" and fam["nn_top3"] == fam["nn_cls"] == "nn"
    assert fam["lira_online"] == fam["lira_offline"] == "lira" and fam["samia"] == "samia"
    assert palette.family_of("lira_online_fixed_variance") == "lira"
    every = {r for a in ATTACKS for r in a.results()}
    assert set(fam) >= every

    def hue(name: str) -> float:
        return round(float(colors.rgb_to_hsv(colors.to_rgb(palette.attack_style(name).color))[0]), 2)

    by_family: dict[str, set[float]] = {}
    for name in every:
        by_family.setdefault(fam[name], set()).add(hue(name))
    assert all(len(h) == 1 for h in by_family.values()), by_family
    firsts = [next(iter(h)) for h in by_family.values()]
    assert len(set(firsts)) == len(firsts)


def test_a_new_family_gets_its_own_styles_without_a_list_of_names():
    """A registry with more families than colours: every style still distinct (colour, line style, marker) and
    (colour, hatch), by the palette's rule alone."""
    p = palette.Palette()
    p.prime([f"new{i}_v{j}" for i in range(14) for j in range(3)])
    styles = list(p.styles.values())
    assert len({(s.color, s.linestyle, s.marker) for s in styles}) == len(styles)
    assert len({(s.color, s.hatch) for s in styles}) == len(styles)


def test_index_lists_the_code_versions_that_made_its_records(report):
    """index.md's "Produced by": each (version, commit) with its record count, records without as before 0.4.0,
    counted here from the corpus' own records."""
    _, _, out = report
    counts: dict[str, int] = {}
    for rec in pruning_records() + nas_records():
        v = rec["versions"]
        label = f"prune-mia {v['prune_mia']} (commit {v['commit']})" if "prune_mia" in v else "prune-mia before 0.4.0"
        counts[label] = counts.get(label, 0) + 1
    assert len(counts) == 3 and min(counts.values()) > 1
    text = (out / "index.md").read_text()
    listed = text.split("## Produced by\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    order = sorted(counts, key=lambda k: (k.endswith("before 0.4.0"), k))
    assert listed == [f"- {k}: {counts[k]} records" for k in order]
