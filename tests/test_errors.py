"""The one error path: whatever a UserError quotes (a library's multi-line message, a file's text), the user
sees exactly one `error:` line on stderr and exit status 2."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UserError, one_line
from experiment.cli import run_main


def _stderr_of(capsys: pytest.CaptureFixture, main) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        run_main(main)
    return int(e.value.code), capsys.readouterr().err


def test_a_user_error_quoting_line_breaks_is_one_line(capsys: pytest.CaptureFixture) -> None:
    def main() -> None:
        raise UserError("bad table (ParserError: Error tokenizing data.\nC error: Expected 2 fields in line 3, "
                        "saw 4\n)", "hint one\r\nhint two\u2028end")
    code, err = _stderr_of(capsys, main)
    assert code == 2 and err.count("\n") == 1 and err.endswith("\n"), repr(err)
    assert err == ("error: bad table (ParserError: Error tokenizing data. / C error: Expected 2 fields in line 3, "
                   "saw 4 / ) (hint one / hint two / end)\n")


def test_one_line_keeps_a_trailing_slash_and_plain_text() -> None:
    assert one_line("missing result/x/") == "missing result/x/"
    assert one_line("\n  a\n\n  b \n") == "a / b"
    assert UserError("a\nb").what == "a / b" and UserError("a", "b\nc").hint == "b / c"


def test_a_pandas_parser_error_in_a_mem_score_csv_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # The audit's case: pandas' "Error tokenizing data" message ends in a newline, which split the line.
    from defenses import memscores

    path = tmp_path / "scores.csv"
    path.write_text(",0\n0,0.5\n1,0.25,7,7\n2,1\n")
    code, err = _stderr_of(capsys, lambda: memscores.read_wemem_csv(path, 3))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: mem-score CSV"), repr(err)
