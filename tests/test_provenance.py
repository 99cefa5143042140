"""A finished result is reused only when every setting that produced it matches (docs/design.md §9):
core/provenance.py's rules, the locked append, and the steps run as a user would on digits_columnfc."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, run_script
from core import provenance
from core.errors import UserError
from core.storage import append_jsonl

CONFIG = "config/digits_columnfc.json"
FAST = ("--shadow_num", "2", "--epochs", "3", "--prune_epochs", "2", "--attack_epochs", "2", "--quiet",
        "--threads", "1")
PRUNED = ("--pruner_name", "l1unstructure", "--prune_sparsity", "0.7")
ATTACKS = ("--attacks", "samia,threshold")


# ------------------------------------------------------------------------------------------ the pure rules
def test_settings_include_every_key_but_the_listed_ones() -> None:
    config = {"lr": 0.1, "epochs": 3, "attack_epochs": 9, "data_root": "/data", "stem": "x", "shadow_num": 5,
              "a_key_added_later": 1}
    options = {"amp": True, "fast": False, "threads": 4, "quiet": True, "workers": 2, "device": "cpu",
               "config_path": "c.json", "overwrite": True, "a_new_option": 3}
    model = provenance.effective_settings(config, options, "original")
    assert model == {"lr": 0.1, "epochs": 3, "a_key_added_later": 1, "amp": True, "fast": False, "a_new_option": 3}
    attack = provenance.effective_settings(config, options, "attack", attack_config={"alpha": 0.05})
    assert attack["shadow_num"] == 5 and "attack_epochs" not in attack and attack["attack_config"] == {"alpha": 0.05}


def test_first_difference_names_nested_keys_and_accepts_defaults_of_later_keys() -> None:
    recorded = {"lr": 0.1, "sensitivity": {"n": 10, "eps": 0.001}}
    assert provenance.first_difference(recorded, {"lr": 0.1, "sensitivity": {"n": 5, "eps": 0.001}}) == \
        ("sensitivity.n", 10, 5)
    # a key the record lacks matches only when the run asks for its default (what the old code did)
    assert provenance.first_difference(recorded, {"lr": 0.1, "new": 2}, {"new": 2}) is None
    assert provenance.first_difference(recorded, {"lr": 0.1, "new": 3}, {"new": 2}) == ("new", None, 3)


def test_a_split_hashes_its_boundaries_too() -> None:
    a, b, c = np.arange(5), np.arange(5, 8), np.arange(8, 10)
    assert provenance.rows_hash([a, b, c]) != provenance.rows_hash([np.arange(6), np.arange(6, 8), c])
    assert provenance.rows_hash([a, b, c]) == provenance.rows_hash([a.copy(), b.copy(), c.copy()])


def test_verify_refuses_a_split_or_setting_change_and_calls_a_remade_parent_stale() -> None:
    split = provenance.split_fingerprint(7, "artifact", {"victim": 0.5}, [np.arange(3)])
    record = provenance.new_record("pruned", {"lr": 0.01}, split, {"original": "aa"})
    same = provenance.Expected({"lr": 0.01}, split, {"original": "aa"})
    assert provenance.verify("m.pth", record, same, "rerun with --overwrite") is None
    with pytest.raises(UserError, match=r"m.pth was trained with lr 0.01, this run asks for 0.1 \(rerun with "):
        provenance.verify("m.pth", record, provenance.Expected({"lr": 0.1}, split, {"original": "aa"}),
                          "rerun with --overwrite", made="trained")
    other = provenance.split_fingerprint(8, "artifact", {"victim": 0.5}, [np.arange(3)])
    with pytest.raises(UserError, match="another split .seed 7, this run's split has 8.: its members changed"):
        provenance.verify("m.pth", record, provenance.Expected({"lr": 0.01}, other, {"original": "aa"}), "x")
    assert provenance.verify("m.pth", record, provenance.Expected({"lr": 0.01}, split, {"original": "bb"}),
                             "x") == "the original it was derived from was remade since"
    with pytest.raises(UserError, match="predates settings records"):
        provenance.verify("m.pth", {}, same, "x")
    assert record["model_id"] != provenance.new_record("pruned", {"lr": 0.01}, split)["model_id"]  # fresh ids


# ------------------------------------------------------------------------------------------ the locked append
SLOW_WRITER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b'{"writer": "slow", ')
open(sys.argv[2], "w").close()  # tell the test the half line is out
time.sleep(1.0)
os.write(fd, b'"n": 1}\\n')
"""


@pytest.mark.e2e
def test_an_append_waits_for_a_writer_in_the_middle_of_its_line(tmp_path: Path) -> None:
    # A writer holding the lock writes its line in two pieces (a large line, a network filesystem); an
    # append that ignored the lock would land inside that line and break both.
    path, started = tmp_path / "results.jsonl", tmp_path / "started"
    slow = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(path), str(started)])
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline and slow.poll() is None
            time.sleep(0.01)
        append_jsonl(path, {"writer": "fast"})
    finally:
        slow.wait(30)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"writer": "slow", "n": 1},
                                                                          {"writer": "fast"}]


APPENDER = """
import sys
from core.storage import append_jsonl
for i in range(150):
    append_jsonl(__import__("pathlib").Path(sys.argv[1]), {"who": sys.argv[2], "i": i, "pad": "x" * 20000})
"""


@pytest.mark.e2e
def test_two_processes_appending_at_once_leave_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    env = {"PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), who], env=env) for who in "ab"]
    assert [p.wait(120) for p in procs] == [0, 0]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((r["who"], r["i"]) for r in rows) == sorted((w, i) for w in "ab" for i in range(150))


# ------------------------------------------------------------------------------------------ the steps
def step(work: Path, script: str, *args: str):
    return run_script(script, "cpu", CONFIG, *FAST, *args, cwd=work)


def ok(out) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def refusal(out) -> str:
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def records(work: Path) -> list[dict]:
    path = work / "log" / "digits_columnfc" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Originals, a pruned model, a dpsgd-defended one; samia + threshold on the pruned victim, threshold on the
    defended and the original one."""
    root = tmp_path_factory.mktemp("made")
    shutil.copytree(ROOT / "config", root / "config")
    ok(step(root, "pretrain.py"))
    ok(step(root, "prune.py", *PRUNED))
    ok(step(root, "prune.py", *PRUNED, "--defend", "dpsgd"))
    ok(step(root, "mia.py", *PRUNED, *ATTACKS))
    ok(step(root, "mia.py", *PRUNED, "--defend", "dpsgd", "--attacks", "threshold"))
    ok(step(root, "mia.py", "--original", "--attacks", "threshold"))
    return root


@pytest.fixture
def work(made: Path, tmp_path: Path) -> Path:
    """A private copy of `made`, so a test may change, delete and retrain."""
    shutil.copytree(made, tmp_path / "w")
    return tmp_path / "w"


@pytest.mark.e2e
@pytest.mark.parametrize("script, flags, named", [
    ("mia.py", (*PRUNED, *ATTACKS, "--shadow_num", "1"), "shadow_num 2, this run asks for 1"),
    ("mia.py", (*PRUNED, *ATTACKS, "--attack_epochs", "3"), "attack_epochs 2, this run asks for 3"),
    ("mia.py", (*PRUNED, *ATTACKS, "--attack_lr", "0.01"), "attack_lr 0.001, this run asks for 0.01"),
    ("mia.py", (*PRUNED, "--defend", "dpsgd", "--attacks", "threshold", "--dp_clip", "2"),
     "defense_options.dp_clip 1, this run asks for 2"),
    ("prune.py", (*PRUNED, "--defend", "dpsgd", "--dp_delta", "1e-6"),
     "defense_options.dp_delta 1e-05, this run asks for 1e-06"),
    ("prune.py", (*PRUNED, "--prune_epochs", "3"), "prune_epochs 2, this run asks for 3"),
    ("pretrain.py", ("--lr", "0.01"), "lr 0.001, this run asks for 0.01"),
    ("pretrain.py", ("--epochs", "4"), "epochs 3, this run asks for 4"),
    ("mia.py", (*PRUNED, *ATTACKS, "--batch_size", "64"), "batch_size 128, this run asks for 64"),
])
def test_a_rerun_with_another_setting_is_refused_naming_it(made: Path, script: str, flags: tuple[str, ...],
                                                           named: str) -> None:
    # Today's bug: each of these skipped the finished output and reported the old number (exit 0).
    before = records(made)
    line = refusal(step(made, script, *flags))
    assert named in line and "--overwrite" in line, line
    assert records(made) == before


@pytest.mark.e2e
def test_sensitivity_settings_are_part_of_an_attack_output(work: Path) -> None:
    cfg = json.loads((work / CONFIG).read_text())
    (work / CONFIG).write_text(json.dumps(cfg | {"sensitivity": {"n": 5, "eps": 0.001}}))
    line = refusal(step(work, "mia.py", *PRUNED, *ATTACKS))
    assert "sensitivity.n 10, this run asks for 5" in line


@pytest.mark.e2e
def test_overwrite_replaces_the_old_number_with_the_new_settings(work: Path) -> None:
    ok(step(work, "mia.py", *PRUNED, "--attacks", "samia", "--shadow_num", "1", "--overwrite"))
    last = [r for r in records(work) if r["attack"] == "samia"][-1]
    assert last["shadow_num"] == 1
    assert "up to date" in ok(step(work, "mia.py", *PRUNED, "--attacks", "samia", "--shadow_num", "1"))


@pytest.mark.e2e
def test_a_retrained_original_makes_its_pruned_models_and_attacks_stale(work: Path) -> None:
    root = work / "result" / "digits_columnfc"
    shutil.rmtree(root / "victim_model")
    out = ok(step(work, "pretrain.py"))
    assert "original: 2 of 3 models up to date, 1 to make" in out
    out = ok(step(work, "prune.py", *PRUNED))
    assert "l1unstructure_0.7_model: the original it was derived from was remade since, so it is made again" in out
    assert "l1unstructure_0.7: 2 of 3 models up to date, 1 to make" in out
    n = len(records(work))
    out = ok(step(work, "mia.py", *PRUNED, *ATTACKS))
    assert "samia.npz: the victim it was derived from was remade since, so it is computed again" in out
    assert {r["attack"] for r in records(work)[n:]} == {"samia", "conf", "xent", "entr", "mentr", "top1_conf",
                                                        "hconf"}
    # untouched: the shadows' pruned models; the defended victim is stale and says so instead of being used
    assert "up to date" in ok(step(work, "mia.py", *PRUNED, *ATTACKS))
    line = refusal(step(work, "mia.py", *PRUNED, "--defend", "dpsgd", "--attacks", "threshold"))
    assert "l1unstructure_0.7_dpsgd_1.0_model/best.pth is out of date: the original it was derived from" in line
    assert "python prune.py" in line


@pytest.mark.e2e
def test_deleting_a_pruned_folder_remakes_exactly_it_and_its_attacks(work: Path) -> None:
    root = work / "result" / "digits_columnfc"
    shutil.rmtree(root / "shadow_l1unstructure_0.7_model_1")
    assert "original: all 3 models up to date" in ok(step(work, "pretrain.py"))
    assert "2 of 3 models up to date, 1 to make" in ok(step(work, "prune.py", *PRUNED))
    assert "up to date" in ok(step(work, "prune.py", *PRUNED, "--defend", "dpsgd"))
    out = ok(step(work, "mia.py", *PRUNED, *ATTACKS))
    assert "the shadow 1 it was derived from was remade since" in out
    # the defended victim's attack is a dependant too: its (undefended) shadows are the same pruned shadows
    out = ok(step(work, "mia.py", *PRUNED, "--defend", "dpsgd", "--attacks", "threshold"))
    assert "the shadow 1 it was derived from was remade since" in out
    assert "up to date" in ok(step(work, "mia.py", "--original", "--attacks", "threshold"))


@pytest.mark.e2e
def test_scores_without_their_record_are_not_done(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed between the scores and the results record: the scores alone do not count as done."""
    import mia
    monkeypatch.chdir(work)
    shutil.rmtree(work / "result" / "digits_columnfc" / "mia")

    def killed(*args, **kwargs) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(mia, "append_record", killed)
    monkeypatch.setattr(sys, "argv", ["mia.py", "cpu", CONFIG, *FAST, *PRUNED, "--attacks", "samia"])
    n = len(records(work))
    with pytest.raises(KeyboardInterrupt):
        mia.main()
    assert (work / "result" / "digits_columnfc" / "mia" / "l1unstructure_0.7" / "samia.npz").is_file()
    assert len(records(work)) == n
    out = ok(step(work, "mia.py", *PRUNED, "--attacks", "samia"))
    assert "no results.jsonl record names these scores" in out
    assert [r["attack"] for r in records(work)[n:]] == ["samia"]
    committed = records(work)[-1]["provenance"]["model_id"]
    npz = np.load(work / "result" / "digits_columnfc" / "mia" / "l1unstructure_0.7" / "samia.npz")
    assert json.loads(str(npz["provenance"]))["model_id"] == committed


@pytest.mark.e2e
def test_a_new_split_makes_every_later_step_refuse_the_old_members(work: Path) -> None:
    root = work / "result" / "digits_columnfc"
    old = json.loads((root / "data_index.json").read_text())
    ok(step(work, "pretrain.py", "--seed", "8", "--overwrite"))
    new = json.loads((root / "data_index.json").read_text())
    # why it matters: the seed-7 victim's members that are now non-members of the seed-8 victim
    assert len(set(old["victim_train"]) & set(new["victim_test"])) > 50
    for script, flags in (("prune.py", PRUNED), ("mia.py", (*PRUNED, *ATTACKS))):
        line = refusal(step(work, script, "--seed", "8", *flags))
        assert "was trained on another split (seed 7, this run's split has 8): its members changed" in line
    line = refusal(step(work, "mia.py", *PRUNED, *ATTACKS))  # the old seed no longer matches the split
    assert "data_index.json was made with seed 8, this run asks for 7" in line
    (root / "data_index.json").unlink()
    line = refusal(step(work, "prune.py", "--seed", "8", *PRUNED))
    assert "only pretrain.py makes the split" in line and "delete" not in line


@pytest.mark.e2e
def test_a_checkpoint_from_before_records_is_refused(work: Path) -> None:
    path = work / "result" / "digits_columnfc" / "l1unstructure_0.7_model" / "best.pth"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["provenance"]
    torch.save(ckpt, path)
    line = refusal(step(work, "prune.py", *PRUNED))
    assert "predates settings records" in line and "--overwrite" in line
    assert "predates settings records" in refusal(step(work, "mia.py", *PRUNED, *ATTACKS))
