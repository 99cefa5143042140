"""Step 1 end to end on the embedded digits data, and the user errors a first run meets."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_script

pytestmark = pytest.mark.e2e  # every test here runs step scripts (or other programs)


def test_pretrain_digits_end_to_end_then_skips(in_tmp: Path) -> None:
    args = ("cpu", "config/digits_columnfc.json", "--shadow_num", "2", "--epochs", "4", "--quiet")
    first = run_script("pretrain.py", *args, cwd=in_tmp)
    assert first.returncode == 0, first.stderr
    summaries = [line for line in first.stdout.splitlines() if "% accuracy" in line]
    assert [line.split()[0] for line in summaries] == ["victim_model", "shadow_model_0", "shadow_model_1"]
    root = in_tmp / "result" / "digits_columnfc"
    split = json.loads((root / "data_index.json").read_text())
    assert len(split["victim_train"]) == 403 and len(split["shadows"]) == 2
    ckpt = torch.load(root / "victim_model" / "best.pth", weights_only=True)
    assert {"epoch", "acc", "loss", "dev_acc", "state"} <= set(ckpt) and 1 <= ckpt["epoch"] <= 4
    assert ckpt["acc"] > 50  # 4 epochs of Adam on digits already beat chance (10%) by far
    log = (in_tmp / "log" / "digits_columnfc" / "pretrain.log").read_text()
    assert log.count("Epoch 0 Train:") == 1 and log.count("Epoch 0 Shadow Train:") == 2  # artifact prefixes
    again = run_script("pretrain.py", *args, cwd=in_tmp)
    assert again.returncode == 0 and "original: all 3 models up to date" in again.stdout
    assert torch.load(root / "victim_model" / "best.pth", weights_only=True)["acc"] == ckpt["acc"]


def test_missing_dataset_is_one_line_exit_2(in_tmp: Path) -> None:
    out = run_script("pretrain.py", "0", "config/cifar10_resnet18.json", cwd=in_tmp)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cifar-10" in lines[0].lower()
    assert "Traceback" not in out.stderr


def test_misspelt_config_key_is_one_line_exit_2(in_tmp: Path) -> None:
    cfg = json.loads((in_tmp / "config" / "digits_columnfc.json").read_text())
    cfg["epoch"] = cfg.pop("epochs")
    (in_tmp / "bad.json").write_text(json.dumps(cfg))
    out = run_script("pretrain.py", "cpu", "bad.json", cwd=in_tmp)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "unknown config key 'epoch'" in out.stderr


def _states(root: Path, names: list[str]) -> list[dict[str, torch.Tensor]]:
    return [torch.load(root / n / "best.pth", weights_only=True)["state"] for n in names]


def test_workers_train_the_same_models_as_one_process(in_tmp: Path) -> None:
    # One thread per model on both sides (2 threads // 2 workers), so even the float reduction order is
    # the same and the weights must be bit-identical: the workers only change where a model is trained.
    base = ("cpu", "config/digits_columnfc.json", "--shadow_num", "2", "--epochs", "3", "--quiet")
    names = ["victim_model", "shadow_model_0", "shadow_model_1"]
    one = run_script("pretrain.py", *base, "--threads", "1", cwd=in_tmp)
    assert one.returncode == 0, one.stderr
    sequential = _states(in_tmp / "result" / "digits_columnfc", names)
    two = run_script("pretrain.py", *base, "--threads", "2", "--workers", "2", "--overwrite", cwd=in_tmp)
    assert two.returncode == 0, two.stderr
    assert "3 models in 2 processes with 1 torch thread(s) each" in two.stdout
    assert sorted(line.split()[0] for line in two.stdout.splitlines() if "% accuracy" in line) == sorted(names)
    for a, b in zip(sequential, _states(in_tmp / "result" / "digits_columnfc", names)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failing_worker_is_one_line_exit_2_and_keeps_the_other_models(in_tmp: Path) -> None:
    base = ("cpu", "config/digits_columnfc.json", "--shadow_num", "2", "--epochs", "2", "--quiet")
    assert run_script("pretrain.py", *base, cwd=in_tmp).returncode == 0
    root = in_tmp / "result" / "digits_columnfc"
    # A checkpoint whose record passes the checks before any work but whose weights do not fit the model:
    # worker 0 prunes the victim, then meets the broken shadow 1; worker 1 prunes shadow 0.
    broken = torch.load(root / "shadow_model_1" / "best.pth", weights_only=True) | {"state": {}}
    torch.save(broken, root / "shadow_model_1" / "best.pth")
    out = run_script("prune.py", *base, "--pruner_name", "l1unstructure", "--prune_sparsity", "0.5",
                     "--prune_epochs", "1", "--workers", "2", cwd=in_tmp)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "shadow_model_1" in errors[0]
    assert (root / "l1unstructure_0.5_model" / "best.pth").exists()
    assert (root / "shadow_l1unstructure_0.5_model_0" / "best.pth").exists()
    assert not (root / "shadow_l1unstructure_0.5_model_1").exists()
    zero = run_script("pretrain.py", *base, "--workers", "0", cwd=in_tmp)
    assert zero.returncode == 2 and zero.stderr == "error: --workers must be between 1 and 1024, got 0\n"
