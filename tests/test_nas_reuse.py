"""nas_privacy.py's outputs are reused like every other step's: a finished search, AMIA or ADRA is skipped on a
rerun (its history, scores and records untouched), --overwrite redoes it, a resumed search keeps the epochs
before the kill, every attack saves what it computed (scores, reconstructions), an architecture edited by
hand is refused for what it is, and the hint of a stale split works as written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nas_privacy
from core.storage import read_npz
from experiment.cli import run_main

TINY = {"dataset_name": "digits", "num_cls": 10, "input_dim": 1, "seed": 7,
        "split": {"theta": 0.2, "alpha": 0.2, "shadow_train": 0.15, "shadow_test": 0.15, "unseen": 0.2,
                  "reference": 0.1},
        "space": {"P": 2, "C": 2, "activation": "elu"},
        "search": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.005},
        "retrain": {"epochs": 2}, "amia": {"attack_epochs": 3},
        "adra": {"P": [2], "C": 2, "activations": ["elu"], "trials": 1, "restarts": 1, "iterations": 2,
                 "downsample": [1, 4]}}
RESULTS = Path("log/tiny/results.jsonl")
NONE = Path("result/tiny/nas/none")


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[str], list[str]]:
    """(exit status, stdout lines, stderr lines) of `python nas_privacy.py ARGV --threads 1` in this process."""
    try:
        run_main(lambda: nas_privacy.main([*argv, "--threads", "1"]))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err.strip().splitlines()


def _write(tmp: Path, **changes) -> str:
    cfg = json.loads(json.dumps(TINY))
    for k, v in changes.items():
        section, _, sub = k.partition(".")
        if sub:
            cfg[section][sub] = v
        else:
            cfg[section] = v
    (tmp / "tiny.json").write_text(json.dumps(cfg))
    return "tiny.json"


def _records() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines()]


def test_finished_work_is_skipped_and_overwrite_redoes_it(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = _write(in_tmp)
    for sub in ("search", "amia", "adra"):
        code, _, err = _run(capsys, sub, "cpu", cfg)
        assert code == 0, err
    records = _records()
    amia = [r for r in records if r["setting"].startswith("nas_amia")]
    adra = [r for r in records if r["setting"] == "nas_adra"]
    assert len(amia) == 2 * 2 * 7 and len(adra) == 2   # 2 shadows x 2 membership sets x 7 attacks; 2 downsamplings
    history = json.loads((NONE / "target_alpha.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1]
    # Every attack's per-sample output is on disk with the record that commits it.
    for r in amia:
        saved = read_npz(Path(r["scores_file"]), ("scores", "decisions", "member"))
        assert len(saved["scores"]) == r["n_members"] + r["n_nonmembers"] and saved["member"].sum() == r["n_members"]
    for r in adra:
        saved = read_npz(Path(r["scores_file"]), ("originals", "reconstructions", "mse", "rank"))
        side = 8 // r["downsample"]
        assert saved["originals"].shape == (1, 1, 1, side, side) and saved["reconstructions"].shape == (1, 1, 1, side,
                                                                                                       side)
        assert r["unknowns"] == side * side and r["arch_grad_rank"] == int(saved["rank"].min())
        np.testing.assert_allclose(r["mse"], saved["mse"].mean(), rtol=1e-12)
    stamp = {p: p.stat().st_mtime_ns for p in (NONE / "target_alpha.json", NONE / "target_genotype.json",
                                              Path(amia[0]["scores_file"]), Path(adra[0]["scores_file"]))}
    # Before: the rerun searched 0 epochs and rewrote the history as empty, and AMIA / ADRA recomputed and
    # appended their 30 records again.
    for sub, needle in (("search", "up to date"), ("amia", "nothing to do"), ("adra", "nothing to do")):
        code, out, err = _run(capsys, sub, "cpu", cfg)
        assert code == 0 and any(needle in line for line in out), (out, err)
    assert len(_records()) == len(records)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert json.loads((NONE / "target_alpha.json").read_text())["history"] == history
    # --overwrite redoes each (a new search makes AMIA's outputs stale: their parent changed).
    assert _run(capsys, "adra", "cpu", cfg, "--overwrite")[0] == 0
    assert len(_records()) == len(records) + 2
    assert _run(capsys, "search", "cpu", cfg, "--overwrite")[0] == 0
    code, out, _ = _run(capsys, "amia", "cpu", cfg)
    assert code == 0 and any("target_architecture it was derived from was remade since" in line for line in out)
    assert len(_records()) == len(records) + 2 + 28


def test_a_resumed_search_keeps_the_history_of_the_killed_run(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    # The "killed" run: its checkpoint after epoch 1 of 3, as a kill between epochs leaves it.
    assert _run(capsys, "search", "cpu", _write(in_tmp, **{"search.epochs": 1}))[0] == 0
    (NONE / "target_genotype.json").unlink()
    import torch
    ckpt = torch.load(NONE / "target_search.pt", weights_only=True)
    full = _write(in_tmp, **{"search.epochs": 3})
    run = nas_privacy.Run(nas_privacy.parse(["search", "cpu", full, "--threads", "1"]))
    expected = run.search_expected("target")
    from core import provenance
    ckpt["fingerprint"] = provenance.fingerprint(expected.settings | {"split": expected.split})
    torch.save(ckpt, NONE / "target_search.pt")
    code, out, err = _run(capsys, "search", "cpu", full)
    assert code == 0 and any("Resuming search at epoch 1 of 3" in line for line in out), (out, err)
    # Before: the history held only the resumed epochs (1, 2).
    history = json.loads((NONE / "target_alpha.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]


@pytest.mark.parametrize("edit,needle", [
    (lambda g: g | {"ops": g["ops"][:1]}, "ops must list one of"),          # a truncated ops list (P 1 of 2)
    (lambda g: g | {"inputs": [[0], [0, 5]]}, "node 1 must read 2 distinct predecessors among 0..1"),
    (lambda g: g | {"C": 16}, "C 16 where the space has 2"),
    (lambda g: g | {"ops": ["none", g["ops"][1]]}, "ops must list one of"),
    (lambda g: g | {"ops": [("avg_pool_3x3" if op != "avg_pool_3x3" else "max_pool_3x3") for op in g["ops"]]},
     "edited after its search"),                                          # a valid genotype, not the one searched
])
def test_a_hand_edited_architecture_is_refused_for_what_it_is(in_tmp: Path, capsys: pytest.CaptureFixture,
                                                               edit, needle) -> None:
    cfg = _write(in_tmp)
    assert _run(capsys, "search", "cpu", cfg)[0] == 0
    path = NONE / "target_genotype.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    code, _, err = _run(capsys, "amia", "cpu", cfg)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: architecture") and needle in err[0], err
    assert not RESULTS.exists()


def test_the_stale_split_hint_works_as_written(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = _write(in_tmp)
    assert _run(capsys, "search", "cpu", cfg)[0] == 0
    cfg = _write(in_tmp, seed=8)
    code, _, err = _run(capsys, "amia", "cpu", cfg)
    assert code == 2 and len(err) == 1 and "disagrees with the config" in err[0], err
    hint = err[0].split("made from it: ")[1].rstrip(")")
    assert hint == "python nas_privacy.py search tiny.json --overwrite"
    # Before: the hint said `rerun search with --overwrite`, which failed on the same split check.
    code, _, err = _run(capsys, *hint.split()[2:], "--device", "cpu")
    assert code == 0, err
    assert _run(capsys, "amia", "cpu", cfg)[0] == 0


def test_an_empty_split_part_is_refused_before_work(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(capsys, "search", "cpu", _write(in_tmp, **{"split.unseen": 0.001}))
    assert code == 2 and len(err) == 1 and "split.unseen 0.001 of the 1797-sample pool is 1 rows" in err[0], err
    assert not Path("result/tiny/nas/none").exists()
