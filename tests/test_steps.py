"""Steps 2 and 3 end to end on digits, run as a user would run them (one pretrain shared by the module)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import pruner
from conftest import ROOT, run_script
from models import build_model

pytestmark = pytest.mark.e2e  # every test here runs step scripts (or other programs)

FAST = ("--shadow_num", "1", "--epochs", "3", "--prune_epochs", "2", "--attack_epochs", "2", "--quiet",
        "--threads", "1")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder where both quick digits configs have been pretrained once."""
    root = tmp_path_factory.mktemp("steps")
    shutil.copytree(ROOT / "config", root / "config")
    for cfg in ("digits_columnfc", "digits_resnet18"):
        out = run_script("pretrain.py", "cpu", f"config/{cfg}.json", *FAST, cwd=root)
        assert out.returncode == 0, out.stderr
    return root


def steps(work: Path, script: str, cfg: str, *args: str):
    return run_script(script, "cpu", f"config/{cfg}.json", *args, *FAST, cwd=work)


def one_error_line(out) -> str:
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("approach", ["l1structure", "slim"])  # l1unstructure: test_pruner + the MLP runs below
def test_saved_masks_are_the_rule_applied_to_the_pretrained_weights(work: Path, approach: str) -> None:
    out = steps(work, "prune.py", "digits_resnet18", "--pruner_name", approach, "--prune_sparsity", "0.5")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("of pruned layers") == 2  # one summary line per model
    root = work / "result" / "digits_resnet18"
    original = build_model("resnet18", 10, 1)
    original.load_state_dict(torch.load(root / "victim_model" / "best.pth", weights_only=True)["state"])
    expected = pruner.compute_masks(original, approach, 0.5)
    saved = torch.load(root / f"{approach}_0.5_model" / "best.pth", weights_only=True)
    assert set(saved["masks"]) == set(expected)
    for key, mask in expected.items():
        assert torch.equal(saved["masks"][key], mask), key
        assert torch.all(saved["state"][key][mask == 0] == 0), key   # exact zeros after fine-tuning
    assert not any(k.endswith(("_orig", "_mask")) for k in saved["state"])  # plain names
    assert abs(saved["sparsity"]["pruned_layers"] - 0.5) < 0.02


def test_structured_pruning_of_an_mlp_is_refused(work: Path) -> None:
    line = one_error_line(steps(work, "prune.py", "digits_columnfc", "--pruner_name", "l2structure"))
    assert "l2structure prunes Conv2d filters but model columnfc has none" in line


def test_unknown_defense_and_step_order_errors(work: Path, tmp_path: Path) -> None:
    assert "valid" in one_error_line(steps(work, "prune.py", "digits_columnfc", "--defend", "ppv"))
    shutil.copytree(ROOT / "config", tmp_path / "config")
    line = one_error_line(run_script("prune.py", "cpu", "config/digits_columnfc.json", cwd=tmp_path))
    assert "data_index.json not found: only pretrain.py makes the split" in line and "python pretrain.py" in line


def test_attacks_all_on_pruned_and_original_write_records(work: Path) -> None:
    assert steps(work, "prune.py", "digits_columnfc", "--prune_sparsity", "0.7").returncode == 0
    for extra in ((), ("--original",)):
        out = steps(work, "mia.py", "digits_columnfc", "--prune_sparsity", "0.7", "--attacks", "all", *extra)
        assert out.returncode == 0, out.stderr
        assert "SAMIA attack accuracy" in out.stdout and "TPR@1%" in out.stdout
    lines = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # all = every attack whose inputs exist: no refs.py references (no lira/rmia online) and 1 shadow (lira
    # offline needs 2), so of the reference attacks only rmia_offline and loss run
    attacks = {"samia", "conf", "xent", "entr", "mentr", "top1_conf", "hconf", "nn", "nn_top3", "nn_cls", "blindmi",
               "rmia_offline", "loss"}
    for original in (False, True):
        mine = [r for r in records if r["original"] is original]
        assert {r["attack"] for r in mine} == attacks and len(mine) == len(attacks)
        for r in mine:
            assert r["n_members"] == 403 and r["n_nonmembers"] == 405
            assert 0 <= r["auc"] <= 100 and r["victim_sparsity"] == pytest.approx(0.0 if original else 0.7, abs=0.01)
            assert (work / r["scores_file"]).is_file()
    rerun = steps(work, "mia.py", "digits_columnfc", "--prune_sparsity", "0.7", "--attacks", "all")
    assert "every usable requested attack is up to date" in rerun.stdout


def test_mia_errors_name_the_fix(work: Path) -> None:
    line = one_error_line(steps(work, "mia.py", "digits_columnfc", "--attacks", "samia,liar"))
    assert "liar" in line and "samia" in line and "blindmi" in line and "lira" in line  # lira: a family name
    line = one_error_line(steps(work, "mia.py", "digits_columnfc", "--attacks", "samia,lira"))
    assert "lira_online needs 16 reference models" in line and "refs.py" in line  # the family, its fix
    line = one_error_line(steps(work, "mia.py", "digits_columnfc", "--prune_sparsity", "0.9"))
    assert "l1unstructure_0.9_model" in line and "python prune.py" in line and "--prune_sparsity 0.9" in line


def test_sparsity_zero_on_either_side_of_an_unknown_setting_attack(work: Path) -> None:
    # Figs 12-13's sparsity-0 row and column: the original victim attacked with shadows pruned at 0.5, and the
    # 0.5 victim attacked with the original shadows; each under its own name, recorded with its sparsities.
    assert steps(work, "prune.py", "digits_columnfc", "--prune_sparsity", "0.5").returncode == 0
    runs = {"original_shadow_l1unstructure_0.5": ("--original", "--shadow_prune_sparsity", "0.5"),
            "l1unstructure_0.5_shadow_original": ("--prune_sparsity", "0.5", "--shadow_prune_sparsity", "0")}
    for name, extra in runs.items():
        out = steps(work, "mia.py", "digits_columnfc", *extra, "--attacks", "threshold")
        assert out.returncode == 0, out.stderr
        assert (work / "result" / "digits_columnfc" / "mia" / name / "mentr.npz").is_file()
    lines = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    records = {(r["setting"], r["attack"]): r for r in map(json.loads, lines)}
    first = records["original_shadow_l1unstructure_0.5", "mentr"]
    assert first["original"] and first["prune_sparsity"] is None
    assert (first["shadow_pruner_name"], first["shadow_prune_sparsity"]) == ("l1unstructure", 0.5)
    second = records["l1unstructure_0.5_shadow_original", "mentr"]
    assert not second["original"] and second["prune_sparsity"] == 0.5
    assert (second["shadow_pruner_name"], second["shadow_prune_sparsity"]) == (None, 0.0)
    for bad in (("--original", "--defend", "ppb"), ("--prune_sparsity", "0.5", "--shadow_prune_sparsity", "0",
                                                   "--shadow_pruner_name", "slim")):
        one_error_line(steps(work, "mia.py", "digits_columnfc", *bad))


@pytest.mark.parametrize("defense, arg", [("ppb", "4"), ("adv", "2"), ("dp", "0.1"), ("dpsgd", "1"),
                                          ("relaxloss", "1")])
def test_each_defense_runs_adaptive_and_not(work: Path, defense: str, arg: str) -> None:
    common = ("--prune_sparsity", "0.6", "--attacks", "threshold")
    for extra in ((), ("--defend", defense, "--defend_arg", arg)):  # the undefended run is skipped after the first
        out = steps(work, "prune.py", "digits_columnfc", "--prune_sparsity", "0.6", *extra)
        assert out.returncode == 0, out.stderr
    if defense == "dpsgd":
        assert "epsilon" in out.stdout
    for adaptive in ((), ("--adaptive",)):
        out = steps(work, "mia.py", "digits_columnfc", *common, "--defend", defense, "--defend_arg", arg, *adaptive)
        assert out.returncode == 0, out.stderr
    lines = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    mine = [r for r in records if r["defend"] == defense]
    assert {r["adaptive"] for r in mine} == {False, True} and all(r["defend_arg"] == float(arg) for r in mine)
    folder = work / "result" / "digits_columnfc" / f"l1unstructure_0.6_{defense}_{float(arg)}_model"
    assert folder.is_dir()
    if defense == "dpsgd":  # epsilon over every step run (Opacus' RDP accountant, fed independently), recorded
        from opacus.accountants import RDPAccountant
        ckpt = torch.load(folder / "best.pth", weights_only=False)
        extras = ckpt["extras"]
        assert extras["dp_steps"] == ckpt["epochs_run"] * (403 // 128)  # 403 training rows, batches of 128
        accountant = RDPAccountant()
        accountant.history = [(1.0, 128 / 403, extras["dp_steps"])]
        assert extras["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-6)
        assert f"epsilon {extras['epsilon']:.2f} (rdp, all {extras['dp_steps']} steps)" in out.stdout + \
            (work / "log" / "digits_columnfc" / "prune_l1unstructure_0.6_dpsgd_1.0.log").read_text()
        for r in mine:
            assert (r["epsilon"], r["delta"], r["dp_accountant"], r["dp_steps"]) == \
                (extras["epsilon"], 1e-5, "rdp", extras["dp_steps"])
            assert "without DP" in r["privacy_note"] and r["pruned_test_acc"] == ckpt["pruned_test_acc"]


@pytest.mark.parametrize("defense", ["dp", "adv"])
def test_artifact_modes_name_their_folders_and_records(work: Path, defense: str) -> None:
    """`--defense_mode artifact`: the artifact's dp ((403 // 128) x 3 config epochs draws per fine-tuning
    epoch) and adv (7 adversary steps, 1 classifier step per epoch) in their own folders and records."""
    common = ("--prune_sparsity", "0.6")
    assert steps(work, "prune.py", "digits_columnfc", *common).returncode == 0  # the non-adaptive shadows
    out = steps(work, "prune.py", "digits_columnfc", *common, "--defend", defense, "--defense_mode", "artifact")
    assert out.returncode == 0, out.stderr
    arg = {"dp": "0.1", "adv": "4.0"}[defense]
    folder = work / "result" / "digits_columnfc" / f"l1unstructure_0.6_{defense}_{arg}_artifact_model"
    ckpt = torch.load(folder / "best.pth", weights_only=False)
    extras, epochs = ckpt["extras"], ckpt["epochs_run"]
    assert extras["defense_mode"] == "artifact" and ckpt["defense_options"] == {"defense_mode": "artifact"}
    if defense == "dp":
        assert extras["dp_steps"] == epochs * (403 // 128) * 3 and extras["dp_lr"] == 1e-3  # FAST: epochs 3
    else:
        assert (extras["adversary_steps"], extras["classifier_steps"]) == (7 * epochs, epochs)
    out = steps(work, "mia.py", "digits_columnfc", *common, "--attacks", "threshold", "--defend", defense,
                "--defense_mode", "artifact")
    assert out.returncode == 0, out.stderr
    lines = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    record = [json.loads(line) for line in lines][-1]
    assert record["setting"] == f"l1unstructure_0.6_{defense}_{arg}_artifact" and record["defense_mode"] == "artifact"
    line = one_error_line(steps(work, "prune.py", "digits_columnfc", *common, "--defend", "ppb", "--defense_mode",
                                "artifact"))
    assert "--defense_mode artifact does not apply to ppb" in line
