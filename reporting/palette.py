"""How a figure tells its series apart: one colour per attack family, one shade, line style and marker per attack
within it, the same in every figure of a report; numbered styles for the other series (pruners, defenses,
settings). Within a figure no two series share colour, line style and marker (bars: colour and hatch).

An attack's family comes from the attack registry, never from a list of names here: a registered attack's
`family` (lira, rmia, label_only, ...), else the registered attack whose name its name extends (nn_top3 and
nn_cls join nn), else the first word its name shares with other registered attacks (release_lira and
release_nn form release), else its own name (samia, blindmi, loss; the threshold attack's six results are
one family). A name the registry does not know (an old record, lira_online_fixed_variance) joins the family
of the longest registered name it extends.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from matplotlib import colors

from attackers import ATTACKS

# Family colours: matplotlib's tab10 without its grey, which the reference lines (random guess, fits) use.
BASES = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
         "tab:cyan")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
# A family's k-th attack: the base colour mixed with white (> 0) or black (< 0) by this share, so the shades of
# one family stay apart and the first attack has the family's own colour.
SHADES = (0.0, 0.4, -0.35, -0.6, 0.55, -0.18, 0.22, -0.75)
DEFAULT_CYCLE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                 "tab:gray", "tab:olive", "tab:cyan")


@dataclass(frozen=True)
class Style:
    color: str  # '#rrggbb': equal colours compare equal
    linestyle: str
    marker: str
    hatch: str = ""

    def line(self) -> dict[str, Any]:
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker}

    def dots(self) -> dict[str, Any]:
        return {"color": self.color, "linestyle": "none", "marker": self.marker}

    def bar(self) -> dict[str, Any]:
        return {"color": self.color, "hatch": self.hatch, "edgecolor": "black" if self.hatch else self.color}


def shade(base: str, k: int) -> str:
    share = SHADES[k] if k < len(SHADES) else ((k * 0.37) % 1.5) - 0.65
    rgb = colors.to_rgb(base)
    toward = (1.0, 1.0, 1.0) if share > 0 else (0.0, 0.0, 0.0)
    return colors.to_hex([c + abs(share) * (t - c) for c, t in zip(rgb, toward)])


def registry_families() -> dict[str, str]:
    """Every registered result name -> its family, in registry order."""
    attacks = list(ATTACKS)
    names = {a.name for a in attacks}
    heads = Counter(n.split("_")[0] for n in names)
    out: dict[str, str] = {}
    for attack in attacks:
        head = attack.name.split("_")[0]
        grouped = head != attack.name and (head in names or heads[head] > 1)
        family = attack.family or (head if grouped else attack.name)
        for result in (attack.name, *attack.results()):
            out.setdefault(result, family)
    return out


def family_of(name: str, known: dict[str, str] | None = None) -> str:
    """The family of a result name: the registry's, else that of the longest registered name it extends."""
    known = registry_families() if known is None else known
    if name in known:
        return known[name]
    stems = [k for k in known if name.startswith(k + "_")]
    return known[max(stems, key=len)] if stems else name


class Palette:
    """Attack name -> Style. Registered attacks get theirs from the registry order alone, so they are the same
    in every report; other names are added in the order asked (a report asks for all of its attacks, sorted,
    before it draws: its figures agree)."""

    def __init__(self) -> None:
        self.known = registry_families()
        self.families: dict[str, list[str]] = {}
        self.styles: dict[str, Style] = {}
        for attack in ATTACKS:
            for result in attack.results():
                self.style(result)

    def style(self, name: str) -> Style:
        if name not in self.styles:
            family = family_of(name, self.known)
            members = self.families.setdefault(family, [])
            members.append(name)
            self.styles[name] = self._new(list(self.families).index(family), len(members) - 1)
        return self.styles[name]

    def _new(self, f: int, k: int) -> Style:
        """Family f's k-th style; families past the colours repeat them with other line styles, markers and
        hatches, and a style already taken moves on to the next marker and hatch."""
        lap = f // len(BASES)
        color = shade(BASES[f % len(BASES)], k)
        for step in range(len(MARKERS) * len(HATCHES)):
            style = Style(color, LINESTYLES[(k + lap) % len(LINESTYLES)], MARKERS[(k + lap + step) % len(MARKERS)],
                          HATCHES[(lap + step) % len(HATCHES)])
            taken = self.styles.values()
            if all((s.color, s.linestyle, s.marker) != (style.color, style.linestyle, style.marker)
                   and (s.color, s.hatch) != (style.color, style.hatch) for s in taken):
                return style
        raise AssertionError(f"no free style for family {f} member {k}")  # 60 steps: unreachable by construction

    def prime(self, names: Iterable[str]) -> None:
        for name in sorted(set(names)):
            self.style(name)


PALETTE = Palette()


def attack_style(name: str) -> Style:
    return PALETTE.style(name)


def numbered(i: int) -> Style:
    """The i-th of a figure's other series: tab10's colours against 7 markers, distinct for the first 70 (line
    styles take over after that)."""
    return Style(colors.to_hex(DEFAULT_CYCLE[i % len(DEFAULT_CYCLE)]), LINESTYLES[(i // 70) % len(LINESTYLES)],
                 MARKERS[i % 7], HATCHES[(i // 10) % len(HATCHES)])


class Numbering:
    """Name -> numbered() style: the given names first, in their order (a registry's: the same in every
    figure), others in the order asked."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.index = {n: i for i, n in enumerate(dict.fromkeys(names))}

    def style(self, name: str) -> Style:
        return numbered(self.index.setdefault(name, len(self.index)))
