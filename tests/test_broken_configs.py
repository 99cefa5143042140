"""A corpus of broken configs, each refused by every step script with one `error:` line and exit status 2,
before any work (no traceback, no result folder). Run in-process (main() under cli.run_main) so the 60-odd
configs x 4 scripts cost one import instead of 240 Python starts."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

import memscore
import mia
import pretrain
import prune
from experiment.cli import run_main

GOOD = {"dataset_name": "digits", "model_name": "columnfc", "epochs": 2, "num_cls": 10, "input_dim": 64}
BIG = 10 ** 30


def drop(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


# name -> the file's content: a dict (written as JSON, NaN / Infinity as JSON's non-standard literals) or bytes
CORPUS: dict[str, dict | bytes] = {
    "unknown_key": GOOD | {"colour": "blue"},
    "misspelt_epochs": drop("epochs") | {"epoch": 2},
    **{f"missing_{k}": drop(k) for k in GOOD},
    "lr_string": GOOD | {"lr": "fast"}, "lr_zero": GOOD | {"lr": 0}, "lr_negative": GOOD | {"lr": -0.1},
    "lr_infinity": GOOD | {"lr": float("inf")}, "lr_nan": GOOD | {"lr": float("nan")}, "lr_1e300": GOOD | {"lr": 1e300},
    "wd_negative": GOOD | {"weight_decay": -1}, "wd_huge": GOOD | {"weight_decay": 1e300},
    "epochs_zero": GOOD | {"epochs": 0}, "epochs_float_huge": GOOD | {"epochs": 1e30},
    "epochs_int_huge": GOOD | {"epochs": BIG},
    "epochs_fraction": GOOD | {"epochs": 2.5}, "epochs_bool": GOOD | {"epochs": True},
    "num_cls_one": GOOD | {"num_cls": 1}, "num_cls_huge": GOOD | {"num_cls": 10 ** 9},
    "input_dim_zero": GOOD | {"input_dim": 0}, "input_dim_huge": GOOD | {"input_dim": 10 ** 12},
    "batch_zero": GOOD | {"batch_size": 0}, "batch_string": GOOD | {"batch_size": "128"},
    "early_stop_negative": GOOD | {"early_stop": -1}, "shadow_zero": GOOD | {"shadow_num": 0},
    "shadow_huge": GOOD | {"shadow_num": 10 ** 6}, "seed_negative": GOOD | {"seed": -1},
    "seed_2_32": GOOD | {"seed": 2 ** 32}, "prune_epochs_negative": GOOD | {"prune_epochs": -3},
    "optimizer_unknown": GOOD | {"optimizer": "adamw"}, "optimizer_number": GOOD | {"optimizer": 5},
    "data_root_empty": GOOD | {"data_root": ""}, "data_root_number": GOOD | {"data_root": 7},
    "split_not_object": GOOD | {"split": 0.5}, "split_unknown_part": GOOD | {"split": {"holdout": 0.1}},
    "split_victim_above_one": GOOD | {"split": {"victim": 1.5}},
    "split_not_summing": GOOD | {"split": {"train": 0.5, "dev": 0.1, "test": 0.5}},
    "split_dev_zero": GOOD | {"split": {"train": 0.5, "dev": 0.0, "test": 0.5}},
    "sens_n_zero": GOOD | {"sensitivity": {"n": 0}}, "sens_n_fraction": GOOD | {"sensitivity": {"n": 2.5}},
    "sens_n_huge": GOOD | {"sensitivity": {"n": 10 ** 9}}, "sens_eps_negative": GOOD | {"sensitivity": {"eps": -1}},
    "sens_eps_infinity": GOOD | {"sensitivity": {"eps": float("inf")}},
    "attack_epochs_zero": GOOD | {"attack_epochs": 0}, "attack_lr_zero": GOOD | {"attack_lr": 0},
    "attack_lr_huge": GOOD | {"attack_lr": 1e300},
    "split_scheme_unknown": GOOD | {"split_scheme": "random"}, "prune_iter_one": GOOD | {"prune_iter": 1},
    "memscore_fraction_one": GOOD | {"memscore": {"fraction": 1.0}},
    "dataset_unknown": GOOD | {"dataset_name": "cifar11"}, "model_unknown": GOOD | {"model_name": "resnet19"},
    "columnfc_input_dim_1": GOOD | {"input_dim": 1},           # digits accepts 1 (channels), the MLP does not
    "resnet18_input_dim_64": GOOD | {"model_name": "resnet18"},  # digits accepts 64 (features), a CNN does not
    "num_cls_mismatch": GOOD | {"num_cls": 12},
    # within the schema's bounds, but not what the data hold: refused by the data / model checks, not run
    "num_cls_at_bound": GOOD | {"num_cls": 100_000}, "input_dim_at_bound": GOOD | {"input_dim": 10_000_000},
    "attack_lr_infinity": GOOD | {"attack_lr": float("inf")}, "wd_infinity": GOOD | {"weight_decay": float("inf")},
    "not_an_object": b"[1, 2, 3]",
    "empty_file": b"",
    "truncated": b'{"dataset_name": "digits", "epochs": ',
    "non_utf8": b'{"dataset_name": "digits\xff"}',
    "utf16": json.dumps(GOOD).encode("utf-16"),
    "deeply_nested": b'{"split": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "duplicate_key": b'{"dataset_name": "digits", "model_name": "columnfc", "epochs": 2, "epochs": 3, '
                     b'"num_cls": 10, "input_dim": 64}',
}
STEPS = {"pretrain": pretrain.main, "prune": prune.main, "mia": mia.main, "memscore": memscore.main}


def test_the_corpus_is_large() -> None:
    assert len(CORPUS) >= 50


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_step_refuses_a_broken_config_with_one_line(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    content = CORPUS[name]
    path = tmp_path / f"{name}.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    start = time.perf_counter()
    for step, main in STEPS.items():
        monkeypatch.setattr(sys, "argv", [step, "cpu", str(path), "--quiet", "--threads", "1"])
        with pytest.raises(SystemExit) as e:
            run_main(main)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), (step, err)
    assert not (tmp_path / "result").exists() or not any((tmp_path / "result").rglob("best.pth"))
    # refused before any work: input_dim 10^7 once built a 10 GB columnfc just to list its layers (88 s)
    assert time.perf_counter() - start < 30
