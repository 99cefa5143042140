"""What every table and figure builder gets: the records, the results root, the output folder, the attack asked
for, and the per-sample files of a record, read through reporting/files.py. A file that exists but cannot be
used adds one note naming the record's line (`log/x/results.jsonl:12: ...`), shown in index.md and on stderr.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reporting import files
from reporting.records import SOURCE, Source

SCORE_KEYS = ("scores", "member")
FEATURE_KEYS = ("conf", "sens", "member")


@dataclass
class Report:
    df: pd.DataFrame           # the pruning study's records (records.normalize)
    root: Path                 # the folder mia.py ran in: every per-sample file is read from under it
    out: Path                  # --out: every file is written under it
    attack: str | None = None  # --attack
    nas: list[Source] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _noted: set[str] = field(default_factory=set)

    def note(self, row: pd.Series, problem: str) -> None:
        """One note per problem and record line, however many figures ask for the file."""
        line = f"{row.get(SOURCE) or row.get('config')}: {problem}, figure skipped"
        if line not in self._noted:
            self._noted.add(line)
            self.notes.append(line)

    def scores_path(self, row: pd.Series) -> Path | None:
        return files.within_root(self.root, row.get("scores_file"))

    def scores(self, row: pd.Series) -> dict[str, np.ndarray] | None:
        """The record's per-sample scores and membership (one each per target point, as many as it counts)."""
        recorded = row.get("scores_file")
        path = self.scores_path(row)
        if path is None:
            if isinstance(recorded, str) and recorded:
                self.note(row, f"scores_file {recorded!r} is outside the results root {self.root}")
            return None
        arrays, why = files.read_checked(path, SCORE_KEYS, files.target_count(row), f"scores file {recorded}")
        if why:
            self.note(row, why)
        return arrays

    def features(self, row: pd.Series) -> dict[str, np.ndarray] | None:
        """features.npz beside the record's scores file (mia.py writes both into result/<config>/mia/<setting>/),
        or in that folder when the record names no scores file."""
        scores = self.scores_path(row)
        path = files.within_root(self.root, str(scores.parent / "features.npz") if scores else
                                 f"result/{row['config']}/mia/{row['setting']}/features.npz")
        arrays, why = files.read_checked(path, FEATURE_KEYS, files.target_count(row), f"features file {path}")
        if why:
            self.note(row, why)
        return arrays
