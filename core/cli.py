"""The command line's error path, without torch: a parser whose mistakes are one `error:` line with exit status 2,
number flags checked against their range while parsing, and the entry-point wrapper every step runs through.

experiment/cli.py builds the steps' flags on top of this; grid.py and bench.py use it directly, so
`python grid.py --help` answers without importing torch (tests/test_grid.py checks it).
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from core.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors, so they print as our one `error:` line with exit status 2.

    once=True also refuses an option given twice (argparse keeps the last one without a word, so
    `--profile quick --profile paper` would run the paper grid); options that collect (append, count) are
    exempt."""

    def __init__(self, *args: Any, once: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.once = once

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}", f"see python {self.prog} --help")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        if self.once:
            self._refuse_repeats(sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(args, namespace)

    def _refuse_repeats(self, args: list[str]) -> None:
        seen: dict[str, str] = {}
        for word in args:
            if word == "--":
                break
            if not word.startswith("--"):
                continue
            name = word.split("=", 1)[0]
            action = self._option_string_actions.get(name)
            if action is None and self.allow_abbrev:  # argparse's unique-prefix rule
                found = {a for s, a in self._option_string_actions.items() if s.startswith(name)}
                action = found.pop() if len(found) == 1 else None
            if action is None or isinstance(action, (argparse._AppendAction, argparse._CountAction)):
                continue  # unknown options are argparse's own error
            if action.dest in seen:
                self.error(f"{seen[action.dest]} given twice (give each option once)")
            seen[action.dest] = action.option_strings[-1]


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An int / float flag type accepting only finite values in [low, high]; argparse reports a refusal as
    `argument --flag: ...`, one error line, before any work."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} between "
                                             f"{_show(low)} and {_show(high)}, got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


def _show(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def run_main(main: Callable[[], None]) -> None:
    """Entry point wrapper: a UserError is one line on stderr and exit 2; Ctrl-C exits 130 quietly. A step that
    reused outputs made by other code ends with one note saying so (core/provenance.py's REUSE; a run that never
    loaded provenance reused nothing, and grid.py must start without numpy, so it is looked up, not imported)."""
    try:
        main()
        provenance = sys.modules.get("core.provenance")
        note = provenance.REUSE.note() if provenance is not None else None
        if note is not None:
            logging.getLogger("prune_mia").info(note)
    except UserError as e:
        print(e.line(), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted (finished models are kept; rerun to resume)", file=sys.stderr)
        sys.exit(130)
