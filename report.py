"""Step 4: turn log/*/results.jsonl into tables (CSV + Markdown) and figures (PNG).

    python report.py LOGDIR [--out report/] [--root DIR] [--attack NAME]

Reads every LOGDIR/*/results.jsonl that mia.py (and nas_privacy.py) appended to, keeps the LAST record per
(config, setting, attack) (reruns with --overwrite append again), and writes into --out the tables and figures
that reporting/index.py's BUILDERS make, with index.md naming each file in one sentence, what was skipped and
why, and which code versions produced the records. Per-sample files (scores_file in the records, features.npz
beside it) are read from under the folder mia.py ran in, by default LOGDIR's parent (--root overrides); a path
leading out of it is not read. A record or a file that cannot be used is skipped with one line naming it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from core.errors import UserError
from core.version import add_version_flag
from experiment.cli import Parser, run_main
from reporting import build_report


def main(argv: list[str] | None = None) -> None:
    p = Parser(description="Step 4: tables (CSV + Markdown) and figures (PNG) from the results of mia.py.")
    p.add_argument("logdir", type=Path, help="folder holding one <config>/results.jsonl per config (log/)")
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    p.add_argument("--root", type=Path, default=None,
                   help="folder mia.py ran in, under which scores_file paths resolve (default: LOGDIR's parent)")
    p.add_argument("--attack", default=None,
                   help="attack for Figs 7-9, 12, 16-19 (default: samia, else the one with the best mean accuracy)")
    add_version_flag(p)
    args = p.parse_args(argv)
    try:
        built = build_report(args.logdir, args.out, args.root, args.attack)
    except OSError as e:  # reads are checked file by file; this is a write refused (permissions, a full disk)
        raise UserError(f"cannot write {e.filename or args.out}: {e.strerror or e}",
                        "pass an --out folder you can write to") from None
    for note in built.notes:
        print(f"report: {note}", file=sys.stderr)
    figs = sum(1 for e in built.entries if e.file and e.file.endswith(".png"))
    skipped = sum(1 for e in built.entries if not e.file)
    print(f"report: {figs} figures, {skipped} skipped, {len(built.notes)} notes, tables and index in "
          f"{args.out / 'index.md'}")


if __name__ == "__main__":
    run_main(main)
