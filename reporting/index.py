"""The report as a whole: every table and figure builder in index order (BUILDERS), index.md with one line per
file written or skipped, the notes about what was skipped and which code versions produced the records.

Adding a table or a figure is one function `(Report) -> list[Entry]` and one line in BUILDERS (README.md here).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.version import describe
from reporting import nas, paper, references, wemem
from reporting.context import Report
from reporting.markdown import NUMBER_RULE, Entry, fmt, write_text
from reporting.palette import PALETTE
from reporting.records import load


@dataclass(frozen=True)
class Build:
    """One builder of tables or figures; `reads` which records it is built from ("pruning": mia.py's, the
    flat DataFrame Report.df; "nas": nas_privacy.py's, Report.nas). It runs only when the log holds them."""

    make: Callable[[Report], list[Entry]]
    reads: str = "pruning"


BUILDERS: tuple[Build, ...] = (
    Build(paper.write_tables),
    Build(references.original_vs_pruned_table),
    Build(paper.fig1),
    Build(paper.fig7_8),
    Build(paper.fig9),
    Build(paper.fig10),
    Build(paper.fig12),
    Build(paper.fig12_matrix),
    Build(paper.fig_defenses),
    Build(paper.fig_roc),
    Build(references.fig_iso_accuracy),
    Build(wemem.wemem_tables),
    Build(wemem.fig_wemem_premise),
    Build(wemem.fig_memscore_success),
    Build(nas.nas_outputs, reads="nas"),
)


def code_label(versions: Any) -> str:
    """How index.md names the code of a record: `prune-mia 0.4.0 (commit 1a2b3c4-dirty)`, or `prune-mia before
    0.4.0` for a record made before records carried it (core/version.py's words)."""
    known = {k: v for k, v in versions.items() if isinstance(v, str) and v} if isinstance(versions, dict) else {}
    return fmt(describe(known), "")


def produced_by(r: Report) -> list[str]:
    """One line per code version with its record count (the records the report shows), newest-looking first."""
    none = [None] * len(r.df)
    codes = [code_label({"prune_mia": v, "commit": c}) for v, c in zip(r.df.get("versions.prune_mia", none),
                                                                       r.df.get("versions.commit", none))]
    codes += [code_label(s.record.versions) for s in r.nas]
    counts = Counter(codes)
    before = describe({})
    order = sorted(counts, key=lambda c: (c == before, c))
    return [f"- {c}: {counts[c]} record{'s' * (counts[c] != 1)}" for c in order]


def index_markdown(entries: list[Entry], r: Report, logdir: Path) -> str:
    n_records = len(r.df) + len(r.nas)
    lines = [f"# prune-mia report\n\nFrom {n_records} records under `{logdir}` (last record per config, setting "
             f"and attack). Attack accuracy is the paper's; accuracies, AUC and TPR are in %. {NUMBER_RULE}\n",
             "## Produced by\n", *produced_by(r), ""]
    for section in dict.fromkeys(e.section for e in entries):
        made = [e for e in entries if e.section == section and e.file]
        skipped = [e for e in entries if e.section == section and not e.file]
        lines.append(f"## {section}\n")
        lines += [f"- [{e.file}]({e.file}): {e.text}" for e in made]
        lines += [f"- skipped: {e.text}" for e in skipped]
        lines.append("")
    if r.notes:
        lines += ["## Notes\n"] + [f"- {fmt(n, '')}" for n in r.notes] + [""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Built:
    entries: list[Entry]
    notes: list[str]


def build_report(logdir: Path, out: Path, root: Path | None = None, attack: str | None = None) -> Built:
    """Everything report.py writes: the index entries and the notes about what was skipped."""
    loaded = load(logdir)
    df = loaded.df
    present = sorted(set(df.get("attack", ())))
    if attack is not None and attack not in present:
        raise UserError(f"--attack {attack!r}: no such attack in the results", f"present: {', '.join(present)}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file", "pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    r = Report(df, (root if root is not None else logdir.resolve().parent).resolve(), out, attack, loaded.nas,
               list(loaded.notes))
    PALETTE.prime(present)  # every attack of the report has its style before the first figure: they all agree
    entries: list[Entry] = []
    for build in BUILDERS:
        if (build.reads == "nas" and r.nas) or (build.reads == "pruning" and not df.empty):
            entries += build.make(r)
    write_text(out, "index.md", index_markdown(entries, r, logdir))
    return Built(entries, r.notes)
