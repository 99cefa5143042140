"""The one exception type for mistakes a user can cause (bad config, missing data, wrong step order).

The scripts catch it at the top and print `error: <what> (<hint>)` on stderr with exit status 2 and no
traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    def __init__(self, what: str, hint: str | None = None) -> None:
        super().__init__(what + (f" ({hint})" if hint else ""))
        self.what = what
        self.hint = hint

    def line(self) -> str:
        return f"error: {self}"
