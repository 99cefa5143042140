"""The one exception type for mistakes a user can cause (bad config, missing data, wrong step order).

The scripts catch it at the top and print `error: <what> (<hint>)` on stderr with exit status 2 and no
traceback; anything else is a bug and keeps its traceback. The message is always ONE line, whatever it
quotes: text taken from a library's own error (pandas' parser errors span lines, numpy's shape errors too)
or from a file has its line breaks collapsed here, so no caller has to remember to.
"""
from __future__ import annotations

import re

_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")


def one_line(text: str) -> str:
    """`text` with every run of line breaks (and the blanks around them) replaced by ' / '."""
    return _BREAKS.sub(" / ", str(text).strip())


class UserError(Exception):
    def __init__(self, what: str, hint: str | None = None) -> None:
        what, hint = one_line(what), one_line(hint) if hint else None
        super().__init__(what + (f" ({hint})" if hint else ""))
        self.what = what
        self.hint = hint

    def line(self) -> str:
        return f"error: {one_line(str(self))}"
