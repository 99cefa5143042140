"""refs.py and mia.py's reference attacks end to end on digits_columnfc, run as a user would."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import ROOT, run_script
from core import reference_splits
from core.results import SCHEMA_VERSION

pytestmark = pytest.mark.e2e  # every test here runs step scripts (or other programs)

FAST = ("--shadow_num", "2", "--epochs", "3", "--prune_epochs", "2", "--attack_epochs", "2", "--quiet",
        "--threads", "1", "--n_bootstrap", "50")
CFG = "config/digits_columnfc.json"
REF_ATTACKS = "lira_online,lira_offline,rmia_online,rmia_offline,loss"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pretrained digits_columnfc (victim + 2 shadows) and 2 original references, shared by the module."""
    root = tmp_path_factory.mktemp("refs")
    shutil.copytree(ROOT / "config", root / "config")
    for script, extra in (("pretrain.py", ()), ("refs.py", ("--original", "--ref_models", "2"))):
        out = run_script(script, "cpu", CFG, *extra, *FAST, cwd=root)
        assert out.returncode == 0, out.stderr
    return root


def step(work: Path, script: str, *args: str):
    return run_script(script, "cpu", CFG, *args, *FAST, cwd=work)


def one_error_line(out) -> str:
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def refs_dir(work: Path, name: str = "original") -> Path:
    return work / "result" / "digits_columnfc" / "refs" / name


def test_more_references_train_only_the_missing_ones_and_a_killed_run_resumes(work: Path) -> None:
    folder = refs_dir(work)
    before = {i: (folder / f"reference_model_{i}" / "best.pth").stat().st_mtime_ns for i in (0, 1)}
    out = step(work, "refs.py", "--original", "--ref_models", "4")
    assert out.returncode == 0, out.stderr
    assert "2 of 4 up to date, 2 to make" in out.stdout
    assert {i: (folder / f"reference_model_{i}" / "best.pth").stat().st_mtime_ns for i in (0, 1)} == before
    with np.load(folder / "membership.npz") as f:
        membership, population = f["membership"], f["population_indices"]
    assert membership.shape == (4, population.size)
    assert (membership.sum(axis=0) == 2).all()            # every point IN for exactly half of the 4
    assert (membership[0] == ~membership[1]).all()        # a complementary pair
    # the population: the victim's members and non-members and every pool point the victim never saw
    split = json.loads((work / "result" / "digits_columnfc" / "data_index.json").read_text())
    dev = set(split["victim_dev"])
    assert set(population.tolist()) == set(range(1797)) - dev
    # a run killed after reference 2 (its checkpoint never renamed into place) redoes only reference 3
    (folder / "reference_model_3" / "best.pth").unlink()
    out = step(work, "refs.py", "--original", "--ref_models", "4")
    assert out.returncode == 0, out.stderr
    assert "3 of 4 up to date, 1 to make" in out.stdout and "reference_model_3: done" in out.stdout


def test_reference_attacks_record_the_new_fields(work: Path) -> None:
    out = step(work, "refs.py", "--original", "--ref_models", "4")
    assert out.returncode == 0, out.stderr
    out = step(work, "mia.py", "--original", "--ref_models", "4", "--attacks", REF_ATTACKS, "--overwrite")
    assert out.returncode == 0, out.stderr
    lines = (work / "log" / "digits_columnfc" / "results.jsonl").read_text().splitlines()
    records = {r["attack"]: r for r in map(json.loads, lines[-5:])}
    assert set(records) == set(REF_ATTACKS.split(","))
    assert records["lira_online"]["n_references"] == 4 and records["rmia_online"]["n_references"] == 4
    assert records["lira_offline"]["n_references"] == 2  # the two shadows
    mia_dir = work / "result" / "digits_columnfc" / "mia" / "original"
    for name, r in records.items():
        assert r["version"] == SCHEMA_VERSION and r["n_bootstrap"] == 50
        assert r["auc_ci_low"] <= r["auc"] <= r["auc_ci_high"]
        assert r["tpr_at_0.1pct_fpr_ci_low"] <= r["tpr_at_0.1pct_fpr_ci_high"]
        assert r["tpr_at_0.01pct_fpr"] <= r["tpr_at_0.1pct_fpr"] <= r["tpr_at_1pct_fpr"]
        with np.load(mia_dir / f"{name}.npz") as f:   # the AUC by an independent route
            assert r["auc"] == pytest.approx(100 * roc_auc_score(f["member"], f["scores"]), abs=1e-9)
    with np.load(mia_dir / "references_online.npz") as f:
        assert f["reference_stats"].shape == (808, 4) and f["reference_in"].shape == (808, 4)
        assert (f["reference_in"].sum(axis=1) == 2).all()    # each target IN for 2 of the 4 references
        assert (f["population_ref_in"].sum(axis=1) == 2).all()
        assert f["member"].sum() == 403
    with np.load(mia_dir / "references_offline.npz") as f:
        assert not f["reference_in"].any()                   # the shadows never saw a target
        assert not f["population_ref_in"].all(axis=1).any()  # every z has an OUT shadow


def test_too_few_references_or_an_unknown_variant_is_one_error_line(work: Path) -> None:
    line = one_error_line(step(work, "mia.py", "--original", "--ref_models", "2", "--attacks", "lira_online"))
    assert "at least 4" in line
    line = one_error_line(step(work, "mia.py", "--original", "--ref_models", "8", "--attacks", "rmia_online"))
    assert "needs 8 reference models" in line and "refs.py" in line
    assert "unknown attack" in one_error_line(step(work, "mia.py", "--original", "--attacks", "lira_both"))


def test_all_skips_only_the_online_attacks_without_references(work: Path) -> None:
    from attackers import ATTACKS
    online = {a.name for a in ATTACKS if a.reference_set == "online"}
    assert online == {"lira_online", "rmia_online"}
    out = step(work, "mia.py", "--original", "--ref_models", "64", "--attacks", "all")
    assert out.returncode == 0, out.stderr
    skipped = {line.split(":")[0] for line in out.stdout.splitlines() if "skipped under --attacks all" in line}
    assert skipped == online
    again = step(work, "mia.py", "--original", "--ref_models", "64", "--attacks", "all")  # all = what can run
    assert "every usable requested attack is up to date" in again.stdout


def test_references_of_another_setting_or_split_are_refused(work: Path) -> None:
    out = step(work, "prune.py", "--prune_sparsity", "0.6")
    assert out.returncode == 0, out.stderr
    pruned = refs_dir(work, "l1unstructure_0.6")
    shutil.copytree(refs_dir(work), pruned, dirs_exist_ok=True)   # original references posing as pruned ones
    line = one_error_line(step(work, "mia.py", "--prune_sparsity", "0.6", "--ref_models", "4",
                               "--attacks", "lira_online"))
    assert "reference_model_0/best.pth holds a original output where this run needs a pruned one" in line
    shutil.rmtree(pruned)
    # a membership file made for another population (another split) is refused before any training
    folder = refs_dir(work)
    with np.load(folder / "membership.npz") as f:
        saved = dict(f)
    other = saved["population_indices"][::-1].copy()
    seed = int(saved["seed"])
    reference_splits.save_reference_membership(folder / "membership.npz", saved["membership"], other, seed)
    try:
        line = one_error_line(step(work, "refs.py", "--original", "--ref_models", "4"))
        assert "another population or seed" in line
    finally:
        reference_splits.save_reference_membership(folder / "membership.npz", saved["membership"],
                                             saved["population_indices"], int(saved["seed"]))
