"""Drawing panels of series into a PNG with matplotlib's own layout: constrained layout places the axes, their
titles, labels, colour bars and the legends (beside each panel, through bbox_to_anchor) on the canvas;
textwrap wraps titles and labels to the width their panel gives them.

One thing matplotlib does not do is kept here: moving point labels apart (matplotlib puts a text where it is
told and has no label-collision avoidance), so labels at one point and labels on a line stay readable.

`kept_figures()` hands every Figure a report draws to its caller (tests read the series back from the
matplotlib objects, never from the PNGs).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from reporting.markdown import Entry, output_path  # noqa: E402


@dataclass(frozen=True)
class Series:
    """One legend entry. kind: line (style decides markers / lines), hist (x = values), bar (x = slot
    index, y = heights), vline (x[0]), hline (y[0]), note (legend text only). notes label the points of
    a line one by one. A line without points is left out, legend entry included. `key` names the series
    across panels (its artists' gid; the label when empty): one key, one style."""

    label: str
    x: Sequence[float] = ()
    y: Sequence[float] = ()
    kind: str = "line"
    style: dict[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    key: str = ""


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
STAR = {"marker": "*", "markersize": 14, "linestyle": "none", "color": "black"}  # original / Basic / known
DIAMOND = {"marker": "D", "markersize": 8, "linestyle": "none", "color": "dimgray"}
REFERENCE_LINE = {"linestyle": "--", "color": "gray"}  # random guess
FIT_LINE = {"linestyle": ":", "color": "gray"}

PANEL_INCHES = (5.2, 4.2)  # one panel's axes and labels; the legend column is added to the width
DPI = 110
GLYPH = 0.6  # average glyph width in em of matplotlib's default font (DejaVu Sans), for wrapping estimates
LEGEND_FONT = 7


def literal(text: str) -> str:
    """Text drawn as written: a "$" would start mathtext, which can raise on what a record holds (record names
    are checked to hold none; labels made of other values pass here). The tick labels of log axes keep theirs."""
    return text.replace("$", r"\$")


def wrap(text: str, inches: float, size: float) -> str:
    """`text` wrapped at word boundaries to lines of about `inches` at font size `size` (points), literal."""
    return literal(textwrap.fill(text, max(8, int(inches * 72 / (GLYPH * size))), break_long_words=False))


def legend_inches(panel: Panel) -> float:
    """The width a panel's legend takes beside it: its longest label plus the handle and the padding."""
    chars = max((len(s.label) for s in panel.series), default=0)
    return (chars * GLYPH * LEGEND_FONT + 2 * LEGEND_FONT + 2.5 * LEGEND_FONT) / 72 + 0.1


def draw(ax: plt.Axes, panel: Panel, width: float) -> list[tuple[Annotation, float]]:
    """The panel's series, axes, title and legend (beside the axes, outside the data); returns the point
    labels with their marker's half size (points), which place_notes moves apart once the layout is final."""
    bars = [s for s in panel.series if s.kind == "bar"]
    bar_width = 0.8 / max(len(bars), 1)
    notes = []
    for s in panel.series:
        gid = s.key or s.label
        label = literal(s.label)
        if s.kind == "hist":
            artists = ax.hist(s.x, label=label, **({"histtype": "stepfilled", "alpha": 0.45} | s.style))[2]
        elif s.kind == "bar":
            offset = (bars.index(s) - (len(bars) - 1) / 2) * bar_width
            artists = ax.bar(np.asarray(s.x, float) + offset, s.y, bar_width, label=label, **s.style)
        elif s.kind == "vline":
            artists = [ax.axvline(s.x[0], label=label, **({"linestyle": "--"} | s.style))]
        elif s.kind == "hline":
            artists = [ax.axhline(s.y[0], label=label, **({"linestyle": "--", "color": "black"} | s.style))]
        elif s.kind == "note":
            artists = ax.plot([], [], " ", label=label)
        elif len(s.x):
            artists = ax.plot(s.x, s.y, label=label, **s.style)
            line = artists[0]
            # In the series' colour, so that a label tells which line it belongs to where lines meet.
            notes += [(ax.annotate(literal(note), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                                   color=line.get_color(), in_layout=False), line.get_markersize() / 2)
                      for x, y, note in zip(s.x, s.y, s.notes)]
        else:
            continue
        for artist in artists:
            artist.set_gid(gid)
    if panel.loglog:
        ax.set_xscale("log", nonpositive="mask")
        ax.set_yscale("log", nonpositive="mask")
    if panel.limits:
        ax.set_xlim(*panel.limits)
        ax.set_ylim(*panel.limits)
    if panel.xticklabels:
        ax.set_xticks(range(len(panel.xticklabels)), [literal(t) for t in panel.xticklabels])
    elif not panel.loglog:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.margins(x=0.08)
    room = width - 0.9  # the axes' width inside its tick labels and y label
    ax.set(title=wrap(panel.title, room, 12), xlabel=wrap(panel.xlabel, room, 10),
           ylabel=wrap(panel.ylabel, PANEL_INCHES[1] - 1.0, 10))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=LEGEND_FONT, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return notes


def compose(panels: Sequence[Panel], title: str, ncols: int = 3) -> Figure:
    """Panels in a grid under one title, each with its legend beside it, laid out by constrained layout; point
    labels moved apart once the layout is final."""
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    legend = max(legend_inches(p) for p in panels)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained", dpi=DPI,
                             figsize=((PANEL_INCHES[0] + legend) * ncols, PANEL_INCHES[1] * nrows))
    used = list(axes.flat)[:len(panels)]
    notes = [draw(ax, panel, PANEL_INCHES[0]) for ax, panel in zip(used, panels)]
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(wrap(title, fig.get_figwidth() - 0.4, 12))
    if any(notes):
        fig.draw_without_rendering()
        fig.set_layout_engine("none")  # freeze the layout: the point labels are placed against it
        renderer = fig.canvas.get_renderer()
        for ax, ax_notes in zip(used, notes):
            place_notes(ax, ax_notes, renderer)
    return fig


def note_offsets(half: float) -> list[tuple[float, float]]:
    """A point label's candidate offsets (points) around a marker of half size `half`: up-right first (the
    old fixed place, (4, 4) for the default marker), then the other corners, then further up and down; text
    on the left of the point is right-aligned to it. 7: about one 7-point text line below the point."""
    gap = half + 1
    return [(dx, dy) for dy in (gap, -gap - 7, gap + 10, -gap - 17, gap + 20, -gap - 27) for dx in (gap, -gap)]


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
    """A square of the marker's size around every drawn marker of the axes, in pixels (place_notes' obstacles)."""
    boxes = []
    for line in ax.get_lines():
        if line.get_marker() in ("None", "none", "", " ", None):
            continue
        half = renderer.points_to_pixels(line.get_markersize()) / 2
        xy = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
        boxes += [Bbox([[x - half, y - half], [x + half, y + half]]) for x, y in xy if np.isfinite([x, y]).all()]
    return boxes


_KEPT: list[dict[str, Figure]] = []


@contextmanager
def kept_figures() -> Iterator[dict[str, Figure]]:
    """Inside the block, every figure saved is also kept: file name (relative to --out) -> Figure."""
    kept: dict[str, Figure] = {}
    _KEPT.append(kept)
    try:
        yield kept
    finally:
        _KEPT.remove(kept)


def save(fig: Figure, out: Path, name: str) -> None:
    """The figure as out/name (PNG, Agg backend), handed to kept_figures() blocks, then closed."""
    fig.savefig(output_path(out, name), dpi=DPI)
    for kept in _KEPT:
        kept[name] = fig
    plt.close(fig)


def figure(section: str, out: Path, name: str, panels: Sequence[Panel], title: str, caption: str,
           ncols: int = 3) -> Entry:
    """compose(), saved as out/name; its index entry."""
    save(compose(panels, title, ncols), out, name)
    return Entry(section, name, caption)


def legend_note(label: str) -> Series:
    return Series(label, kind="note")
