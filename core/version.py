"""Which code this is: the project's version and, in a git checkout, its commit (docs/design.md §9.4).

No torch and nothing but the standard library, so every step (grid.py's --help included) can answer
`--version` and every record can carry the code that made it. The commit is `git rev-parse --short HEAD` of the
checkout this file lives in, with `-dirty` when tracked files have uncommitted changes, and "unknown" outside a
git checkout, without git, or when git does not answer within GIT_TIMEOUT seconds.
"""
from __future__ import annotations

import argparse
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VERSION = "0.4.0"  # pyproject.toml's [project] version (tests/test_version.py keeps them equal)
ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"
GIT_TIMEOUT = 5.0  # seconds per git call: a hung network filesystem must not hang a step
# What a record made before versions were recorded counts as (the first version to record them is 0.4.0).
BEFORE = "before 0.4.0"


def _git(root: Path, *args: str) -> str | None:
    try:
        # --no-optional-locks: `status` must not take the index lock, since many steps of a grid ask at once and
        # a user may be committing meanwhile
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT)
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit_of(root: Path) -> str:
    """The short commit of the checkout at `root`, `-dirty` when a tracked file differs from it (untracked
    files, e.g. results, do not count); "unknown" when `root` is not the top of a git checkout (a copy
    unpacked inside some other repository must not report that repository's commit) or git cannot tell."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return UNKNOWN
    head = _git(root, "rev-parse", "--short", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if not head or status is None:
        return UNKNOWN
    return head + ("-dirty" if status else "")


_CODE: dict[str, str] | None = None  # this process's code_version(), asked of git once


def code_version() -> dict[str, str]:
    """This code: {"prune_mia": VERSION, "commit": ...}, computed once per process."""
    global _CODE
    if _CODE is None:
        _CODE = {"prune_mia": VERSION, "commit": commit_of(ROOT)}
    return dict(_CODE)


def describe(code: Mapping[str, Any] | None = None) -> str:
    """`prune-mia 0.4.0 (commit abc1234)` for `code` (default: this code); a record without a version (made
    before versions were recorded) reads `prune-mia before 0.4.0`."""
    code = code_version() if code is None else code
    if not isinstance(code, Mapping) or not code.get("prune_mia"):
        return f"prune-mia {BEFORE}"
    return f"prune-mia {code['prune_mia']} (commit {code.get('commit') or UNKNOWN})"


class _VersionAction(argparse.Action):
    """`--version`: print `describe()` and exit 0 (argparse's own version action, with the git calls made only
    when the flag is given, not each time a parser is built)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the project's version and commit, then exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(describe())
        parser.exit()


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """`--version` on a step's parser (every step script calls this, or gets it from experiment.cli)."""
    parser.add_argument("--version", action=_VersionAction)
