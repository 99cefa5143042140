"""Config validation, precedence, the generated flags, device parsing and the user-error path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.config_schema import load_config
from core.errors import UserError
from experiment import resolve_device
from experiment.cli import base_parser, parse, run_main

GOOD = {"dataset_name": "digits", "model_name": "columnfc", "epochs": 3, "num_cls": 10, "input_dim": 64}


def write(tmp_path: Path, data: object, name: str = "c.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_defaults_and_derived_values(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD, "my_exp.json"))
    assert (cfg.batch_size, cfg.early_stop, cfg.shadow_num, cfg.seed) == (128, 5, 5, 7)
    assert cfg.fine_tune_epochs == 1  # epochs // 2, the artifact's fine-tuning length
    assert cfg.split == {"victim": 0.5, "train": 0.45, "dev": 0.10, "test": 0.45}
    assert cfg.stem == "my_exp"


def test_precedence_cli_over_json_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD | {"batch_size": 64, "seed": 3})
    _, opts, cfg = parse(base_parser("t"), [str(path), "--seed", "11"])
    assert cfg.seed == 11 and cfg.batch_size == 64 and cfg.early_stop == 5
    assert opts.device is None


def test_partial_nested_keys_keep_other_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD | {"sensitivity": {"n": 4}}))
    assert cfg.sensitivity == {"n": 4, "eps": 1e-3}


@pytest.mark.parametrize("bad, key", [
    (GOOD | {"epoch": 3}, "epoch"),                       # misspelt key
    ({k: v for k, v in GOOD.items() if k != "num_cls"}, "num_cls"),
    (GOOD | {"lr": "fast"}, "lr"),
    (GOOD | {"epochs": 0}, "epochs"),
    (GOOD | {"batch_size": 12.5}, "batch_size"),
    (GOOD | {"optimizer": "adamw"}, "optimizer"),
    (GOOD | {"split": {"train": 0.5, "dev": 0.1, "test": 0.5}}, "split"),
    (GOOD | {"sensitivity": {"m": 10}}, "sensitivity.m"),
    (GOOD | {"early_stop": True}, "early_stop"),
])
def test_bad_configs_name_file_and_key(tmp_path: Path, bad: dict, key: str) -> None:
    path = write(tmp_path, bad)
    with pytest.raises(UserError) as e:
        load_config(path)
    assert str(path) in e.value.line() and f"'{key}'" in e.value.line()


def test_malformed_json_names_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="line 2"):
        load_config(write(tmp_path, '{"epochs": 3,\n oops}'))


def test_bad_cli_value_is_caught_like_a_bad_json_value(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="batch_size"):
        parse(base_parser("t"), [str(write(tmp_path, GOOD)), "--batch_size", "0"])


def test_device_forms() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("0")


def test_positional_device_and_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    _, opts, _ = parse(base_parser("t"), ["cpu", str(path)])
    assert opts.device == "cpu" and opts.config_path == str(path)
    with pytest.raises(UserError, match="device given twice"):
        parse(base_parser("t"), ["cpu", str(path), "--device", "cpu"])


def test_run_main_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture) -> None:
    def main() -> None:
        raise UserError("something is missing", "do this")
    with pytest.raises(SystemExit) as e:
        run_main(main)
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: something is missing (do this)\n"


def test_every_shipped_config_is_valid_and_vgg_is_fixed() -> None:
    root = Path(__file__).resolve().parents[1] / "config"
    configs = {p.stem: load_config(p) for p in root.glob("*.json") if not p.stem.startswith("nas_")}  # nas/config.py
    artifact = [f"{d}_{m}" for d in ("cifar10", "cifar100", "svhn", "chmnist") for m in ("resnet18", "vgg16", "dense")]
    assert set(artifact + ["location", "purchase", "texas100"]) <= set(configs)
    assert {configs[f"{d}_vgg16"].model_name for d in ("cifar10", "cifar100", "svhn", "chmnist")} == {"vgg16bn"}
    assert configs["chmnist_resnet18"].num_cls == 8 and configs["texas100"].input_dim == 6169


def test_help_shows_each_default_once_with_its_bounds(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        base_parser("t").parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(config default 7; an integer >= 0 and <= 2147483647)" in text  # --seed, from the schema
    assert "(default: None)" not in text and text.count("config default 128") == 1
    assert "--dataset_name" not in text  # keys that name the data and model stay JSON-only


@pytest.mark.parametrize("argv, what", [
    (["--seed", "abc"], "invalid int value"),          # argparse's own error, as our one line
    (["--lr", "inf"], "lr"),                           # not finite
    (["--seed", str(2 ** 32)], "seed"),                # numpy / sklearn seeds stop at 2^32
    (["--epochs", "1000000000000"], "epochs"),
])
def test_bad_flags_are_one_user_error(tmp_path: Path, argv: list[str], what: str) -> None:
    with pytest.raises(UserError, match=what):
        parse(base_parser("t"), [str(write(tmp_path, GOOD)), *argv])


def test_wemem_grid_configs_carry_wemem_settings(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1] / "config"
    grid = {f"wemem_{d}_{m}" for d in ("cifar10", "cifar100", "cinic10")
            for m in ("resnet18", "vgg16bn", "densenet121")}
    grid |= {f"wemem_{d}_columnfc" for d in ("location", "texas100", "purchase100")}
    configs = {p.stem: load_config(p) for p in root.glob("wemem_*.json")}
    assert set(configs) == grid
    for stem, c in configs.items():  # WeMem's scripts: its split, 5 rounds of 21 epochs
        assert (c.split_scheme, c.prune_iter, c.fine_tune_epochs, c.optimizer, c.lr, c.weight_decay, c.batch_size,
                c.early_stop, c.shadow_num, c.seed) == ("wemem", 5, 21, "adam", 1e-3, 5e-4, 128, 5, 5, 7), stem
        assert c.epochs == (50 if stem == "wemem_cinic10_densenet121" else 100)
    assert load_config(root / "cifar10_resnet18.json").split_scheme == "artifact"  # the default stays


@pytest.mark.parametrize("key,value", [("split_scheme", "nope"), ("prune_iter", 1), ("memscore", {"models": 1}),
                                       ("memscore", {"fraction": 1.0}), ("memscore", {"epochs": -1})])
def test_wemem_keys_are_validated(tmp_path: Path, key: str, value: object) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dataset_name": "digits", "model_name": "columnfc", "epochs": 1, "num_cls": 10,
                                "input_dim": 64, key: value}))
    with pytest.raises(UserError, match=key):
        load_config(path)
