"""WeMem wired into the steps: iterative pruning and a WeMem defense through prune.py, the
adaptive attack through mia.py, run as a user would on digits_columnfc with tiny epochs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import datasets
import defenses
from conftest import ROOT, run_script
from core.results import SCHEMA_VERSION
from experiment import cli

FAST = ("--shadow_num", "1", "--epochs", "3", "--prune_epochs", "2", "--attack_epochs", "2", "--quiet",
        "--threads", "1")
ITER = ("--pruner_name", "iter_prunetxt", "--prune_sparsity", "0.6", "--prune_iter", "3")
WEMEM = ("--defend", "slide_ml2", "--stride", "1", "--width", "15", "--weight_decay_mem", "0.1")
DEFENDED = "iter_prunetxt_0.6_slide_ml2_s1-w15-thr0.6-wdm0.1"


def step(work: Path, script: str, *args: str):
    return run_script(script, "cpu", "config/digits_columnfc.json", *args, *FAST, cwd=work)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits_columnfc pretrained once, and the missing-mem-score error captured before memscore.py runs."""
    root = tmp_path_factory.mktemp("wemem_steps")
    shutil.copytree(ROOT / "config", root / "config")
    out = step(root, "pretrain.py")
    assert out.returncode == 0, out.stderr
    missing = step(root, "prune.py", *ITER, *WEMEM)
    (root / "missing.txt").write_text(json.dumps([missing.returncode, missing.stderr]))
    return root


@pytest.mark.e2e
def test_missing_mem_scores_is_one_error_line_naming_memscore(work: Path) -> None:
    rc, stderr = json.loads((work / "missing.txt").read_text())
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mem-scores ") and "Traceback" not in stderr
    assert "memscore.py" in lines[0] and "config/digits_columnfc.json" in lines[0]
    assert not (work / "result" / "digits_columnfc" / f"{DEFENDED}_model").exists()  # nothing trained


@pytest.mark.e2e
def test_iterative_prune_follows_the_schedule_round_by_round(work: Path) -> None:
    out = step(work, "prune.py", *ITER)
    assert out.returncode == 0, out.stderr
    schedule = [1 - 0.4 ** (k / 2) for k in range(3)]  # 1-(1-s)^(k/(R-1)), s = 0.6, R = 3
    ckpt = torch.load(work / "result" / "digits_columnfc" / "iter_prunetxt_0.6_model" / "best.pth",
                      weights_only=True)
    assert ckpt["prune_iter"] == 3 and np.allclose(ckpt["schedule"], schedule)
    # columnfc 64 -> fc1 (256 x 64) -> fc2 (128 x 256): round k leaves int(numel * s_k) zeros in each (no ties)
    fc1, fc2 = 256 * 64, 128 * 256
    for r, s in zip(ckpt["rounds"], schedule):
        assert r["sparsity"]["pruned_layers"] == pytest.approx((int(fc1 * s) + int(fc2 * s)) / (fc1 + fc2), abs=1e-6)
    for key, mask in ckpt["masks"].items():
        assert int((mask == 0).sum()) == int(mask.numel() * 0.6), key
        assert torch.all(ckpt["state"][key][mask == 0] == 0)
    assert out.stdout.count("Total Base defend time: ") == 2  # victim and shadow
    assert out.stdout.count("iter 2: target layer sparsity 0.6000") == 2


@pytest.mark.e2e
def test_wemem_defense_names_its_folder_and_is_attacked_adaptively(work: Path) -> None:
    assert step(work, "memscore.py", "--models", "3", "--memscore_epochs", "1").returncode == 0
    out = step(work, "prune.py", *ITER, *WEMEM)
    assert out.returncode == 0, out.stderr
    root = work / "result" / "digits_columnfc"
    assert (root / f"{DEFENDED}_model" / "best.pth").exists()
    assert (root / f"shadow_{DEFENDED}_model_0" / "best.pth").exists()
    assert out.stdout.count("Total slide_ml2 defend time: ") == 2
    ckpt = torch.load(root / f"{DEFENDED}_model" / "best.pth", weights_only=True)
    assert ckpt["defense_options"] == {"stride": 1, "width": 15, "mem_thre": 0.6, "weight_decay_mem": 0.1}
    assert ckpt["defense_seconds"] == pytest.approx(sum(r["seconds"] for r in ckpt["rounds"]))
    out = step(work, "mia.py", *ITER, *WEMEM, "--adaptive", "--attacks", "threshold")
    assert out.returncode == 0, out.stderr
    assert f"Load Pruned Shadow Model From result/digits_columnfc/shadow_{DEFENDED}_model_0" in out.stdout
    lines = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    mine = [r for r in records if r["setting"] == f"{DEFENDED}_adaptive"]
    assert mine and all(r["shadow_prefix"] == DEFENDED and r["defend"] == "slide_ml2" and r["defend_arg"] is None
                        and r["defense_seconds"] == pytest.approx(ckpt["defense_seconds"]) and r["prune_iter"] == 3
                        and r["defense_options"] == ckpt["defense_options"] and r["version"] == SCHEMA_VERSION
                        for r in mine)


def flags(*args: str):
    p = cli.base_parser("t")
    cli.add_setting_flags(p)
    return p.parse_args(["c.json", *args])


def test_every_wemem_hyper_parameter_names_the_folder() -> None:
    """Two runs that differ in one hyper-parameter never share a folder; unread options do not enter it."""
    base = ("--pruner_name", "iter_prunetxt", "--prune_sparsity", "0.6")
    names = {cli.setting_of(flags(*base, "--defend", "slide_ml2", *extra)).prefix
             for extra in [(), ("--stride", "2"), ("--width", "7"), ("--mem_thre", "0.5"),
                           ("--weight_decay_mem", "0.1")]}
    assert len(names) == 5
    assert cli.setting_of(flags(*base, "--defend", "slide_re", "--mem_thre", "0.1")).prefix == \
        "iter_prunetxt_0.6_slide_re_s50-w500"        # the window defense does not read mem_thre
    assert cli.setting_of(flags(*base, "--defend", "ml2")).prefix == "iter_prunetxt_0.6_ml2_thr0.6-wdm0.0005"
    assert cli.setting_of(flags(*base, "--defend", "ppb")).prefix == "iter_prunetxt_0.6_ppb_4.0"  # artifact's
    assert cli.setting_of(flags(*base, "--defend", "ppb", "--stride", "3")).prefix == "iter_prunetxt_0.6_ppb_4.0"
    setting = cli.setting_of(flags(*base, "--defend", "slide", "--width", "9"))
    assert cli.setting_of(flags(*setting.flags().split())) == setting  # flags() round-trips


def test_wemem_defenses_are_registry_entries_that_need_scores() -> None:
    for name in ("slide", "slide_re", "random", "ml2", "slide_ml2", "slide_re_ml2"):
        assert defenses.needs_mem_scores(name) and defenses.default_arg(name) is None
    assert not defenses.needs_mem_scores("ppb") and not defenses.needs_mem_scores("")
    with pytest.raises(defenses.base.UserError, match="takes no --defend_arg"):
        defenses.create_defense("ml2", 0.1, defenses.DefenseOptions())


def test_wemem_split_scheme_reaches_the_saved_split(tmp_path: Path) -> None:
    got = datasets.splits_for(1000, tmp_path / "s.json", scheme="wemem", n_train=800, seed=3, shadow_num=2,
                              victim=0.5, train=0.45, dev=0.1, test=0.45)
    assert got.same_as(datasets.make_wemem_splits(1000, 800, seed=3, shadow_num=2))
    assert datasets.load_splits(tmp_path / "s.json").same_as(got)
    assert datasets.splits_for(1000, tmp_path / "a.json", seed=3, shadow_num=2).same_as(
        datasets.make_splits(1000, seed=3, shadow_num=2))  # the default stays the artifact's
