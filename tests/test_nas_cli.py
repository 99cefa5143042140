"""nas_privacy.py as a user runs it: each mistake is one `error:` line and exit status 2.

One case runs the script in a subprocess (the real exit path); the rest call its `main` through the same
`cli.run_main` wrapper in-process, since each subprocess pays ~20 s of imports on the shared CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest

import nas_privacy
from conftest import run_script, write_config
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
        return write_config(tmp, "bad", json.load(f), **changes)


@pytest.mark.parametrize("changes,needle", [
    ({"space.activation": "swish"}, "bad value for 'space.activation' (allowed: relu or elu"),
    ({"space.primitives": ["sep_conv_3x3", "conv_7x7"]}, "bad value for 'space.primitives'"),
    ({"space.P": 0}, "bad value for 'space.P' (allowed: an integer >= 1 and <= 256)"),
    ({"split": {"theta": 0.5, "alpha": 0.3, "shadow_train": 0.1, "shadow_test": 0.1, "unseen": 0.1}}, "overlap"),
    ({"space.colour": 1}, "unknown key 'space.colour'"),
])
def test_bad_config_is_one_error_line(in_tmp, capsys, changes, needle) -> None:
    code, lines = _run(capsys, "search", "cpu", _cfg(in_tmp, **changes))
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines


@pytest.mark.parametrize("changes,needle", [
    # Before: each of these was accepted (a negative or NaN rate trained a NaN architecture saved as finished).
    ({"search.lr": -0.1}, "bad value for 'search.lr' (allowed: a finite number > 0 and <= 10)"),
    ({"search.arch_lr": float("nan")}, "bad value for 'search.arch_lr'"),
    ({"retrain.weight_decay": -1e-3}, "bad value for 'retrain.weight_decay' (allowed: a finite number >= 0"),
    ({"search.arch_weight_decay": float("inf")}, "bad value for 'search.arch_weight_decay'"),
    ({"adra.P": {"P": 4}}, "bad value for 'adra.P' (allowed: a non-empty list of integer >= 1 and <= 256 values)"),
    ({"adra.batch_sizes": []}, "bad value for 'adra.batch_sizes'"),
    ({"adra.grad_noise": [0.0, -1]}, "bad value for 'adra.grad_noise'"),
    ({"amia.eta": 0}, "bad value for 'amia.eta'"),
    ({"amia.searched_shadow": 1}, "bad value for 'amia.searched_shadow' (allowed: true or false)"),
    ({"space.primitives": ["none"]}, "holds only 'none'"),
    ({"space.primitives": ["skip_connect", "skip_connect"]}, "names an operation twice"),
    ({"search": [1, 2]}, "'search' must be an object"),
    ({"split": {"theta": 0.2, "alpha": 0.2}}, "needs the key 'split.shadow_train'"),
    ({"seed": True}, "bad value for 'seed'"),
])
def test_out_of_range_or_mistyped_keys_are_one_error_line(in_tmp, capsys, changes, needle) -> None:
    code, lines = _run(capsys, "search", "cpu", _cfg(in_tmp, **changes))
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: bad.json") and needle in lines[0], lines
    assert not (in_tmp / "result").exists()


@pytest.mark.parametrize("changes,needle", [
    ({"adra.downsample": [16]}, "adra.downsample 16 is larger than the 8-pixel images"),
    ({"adra.batch_sizes": [1, 4096]}, "adra.batch_sizes 4096 is more than the 359 images of D^alpha"),
])
def test_adra_settings_the_data_cannot_hold_are_refused_before_work(in_tmp, capsys, changes, needle) -> None:
    code, lines = _run(capsys, "adra", "cpu", _cfg(in_tmp, **changes))
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not (in_tmp / "log/bad/results.jsonl").exists()


def test_deep_nesting_is_one_error_line(in_tmp, capsys) -> None:
    (in_tmp / "deep.json").write_text('{"space": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, lines = _run(capsys, "search", "cpu", "deep.json")
    assert code == 2 and lines == ["error: deep.json is nested too deeply to be a config"], lines


@pytest.mark.parametrize("flags,needle", [
    (("--threads", "-1"), "argument --threads: must be an integer between 1 and 4,096, got -1"),
    (("--defense", "arch_l2", "--defense_arg", "nan"), "bad value for 'defense.arg'"),
    (("--defense", "arch_l2", "--defense_arg", "-1"), "bad value for 'defense.arg'"),
    (("--defense", "distill", "--defense_arg", "2"), "defense distill: bad argument 2"),
])
def test_bad_flags_are_refused_before_work(in_tmp, capsys, flags, needle) -> None:
    # Before: --threads -1 was a RuntimeError traceback and --defense_arg nan saved an all-NaN search.
    code, lines = _run(capsys, "search", "cpu", "config/nas_digits.json", *flags)
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not (in_tmp / "result").exists()


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
    assert code == 2 and len(lines) == 1 and "was searched with search.arch_lr 0.0003" in lines[0], lines
    (in_tmp / "result/bad/nas/none/target_genotype.json").unlink()  # a checkpoint alone is refused as well
    code, lines = _run(capsys, "search", "cpu", name)
    assert code == 2 and len(lines) == 1 and "made with other settings or rows" in lines[0], lines
    assert "search bad.json --overwrite" in lines[0]


def test_an_architecture_searched_under_other_settings_is_refused(in_tmp, capsys) -> None:
    # Before: amia retrained and attacked whatever target_genotype.json held, found under any settings.
    name = _cfg(in_tmp, **{"search.epochs": 1, "space.P": 1, "space.C": 2})
    assert _run(capsys, "search", "cpu", name)[0] == 0
    name = _cfg(in_tmp, **{"search.epochs": 1, "space.P": 1, "space.C": 2, "search.arch_lr": 0.01})
    code, lines = _run(capsys, "amia", "cpu", name)
    assert code == 2 and len(lines) == 1 and "target_genotype.json was searched with search.arch_lr" in lines[0], lines
    assert "--overwrite" in lines[0]
