"""nas_privacy.py as a user runs it: each mistake is one `error:` line and exit status 2.

One case runs the script in a subprocess (the real exit path); the rest call its `main` through the same
`cli.run_main` wrapper in-process, since each subprocess pays ~20 s of imports on the shared CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest

import nas_privacy
from conftest import run_script
from experiment.cli import run_main


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of `python nas_privacy.py ARGV` run in this process."""
    try:
        run_main(lambda: nas_privacy.main(list(argv)))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


def _cfg(tmp, **changes) -> str:
    with open("config/nas_digits.json") as f:
        cfg = json.load(f)
    for key, value in changes.items():
        section, _, sub = key.partition(".")
        if sub:
            cfg[section][sub] = value
        else:
            cfg[section] = value
    (tmp / "bad.json").write_text(json.dumps(cfg))
    return "bad.json"


@pytest.mark.parametrize("changes,needle", [
    ({"space.activation": "swish"}, "unknown activation 'swish'"),
    ({"space.primitives": ["sep_conv_3x3", "conv_7x7"]}, "unknown operation 'conv_7x7'"),
    ({"space.P": 0}, "P must be >= 1"),
    ({"split": {"theta": 0.5, "alpha": 0.3, "shadow_train": 0.1, "shadow_test": 0.1, "unseen": 0.1}}, "overlap"),
    ({"space.colour": 1}, "unknown key 'space.colour'"),
])
def test_bad_config_is_one_error_line(in_tmp, capsys, changes, needle) -> None:
    code, lines = _run(capsys, "search", "cpu", _cfg(in_tmp, **changes))
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines


def test_bad_flag_is_one_error_line(in_tmp, capsys) -> None:
    code, lines = _run(capsys, "search", "cpu", "config/nas_digits.json", "--threads", "two")
    assert code == 2 and len(lines) == 1 and "--threads: invalid int value" in lines[0], lines


@pytest.mark.e2e
def test_unknown_subcommand(in_tmp) -> None:
    r = run_script("nas_privacy.py", "prune", "cpu", "config/nas_digits.json", cwd=in_tmp, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: unknown subcommand 'prune' (use one of: search, amia, adra)"]


def test_search_checkpoint_from_another_config_is_refused(in_tmp, capsys) -> None:
    name = _cfg(in_tmp, **{"search.epochs": 1, "space.P": 1, "space.C": 2})
    code, lines = _run(capsys, "search", "cpu", name)
    assert code == 0, lines
    g = json.loads((in_tmp / "result/bad/nas/none/target_genotype.json").read_text())
    assert g["P"] == 1 and len(g["ops"]) == 1 and g["ops"][0] != "none"
    idx = json.loads((in_tmp / "result/bad/nas/data_index.json").read_text())
    assert len(np.concatenate([idx[k] for k in idx])) == len(set(sum(idx.values(), [])))
    name = _cfg(in_tmp, **{"search.epochs": 2, "space.P": 1, "space.C": 2, "search.arch_lr": 0.01})
    code, lines = _run(capsys, "search", "cpu", name)
    assert code == 2 and len(lines) == 1 and "made by another config" in lines[0], lines


def test_an_architecture_searched_under_other_settings_is_refused(in_tmp, capsys) -> None:
    # Before: amia retrained and attacked whatever target_genotype.json held, found under any settings.
    name = _cfg(in_tmp, **{"search.epochs": 1, "space.P": 1, "space.C": 2})
    assert _run(capsys, "search", "cpu", name)[0] == 0
    name = _cfg(in_tmp, **{"search.epochs": 1, "space.P": 1, "space.C": 2, "search.arch_lr": 0.01})
    code, lines = _run(capsys, "amia", "cpu", name)
    assert code == 2 and len(lines) == 1 and "target_genotype.json was searched with search.arch_lr" in lines[0], lines
    assert "--overwrite" in lines[0]
