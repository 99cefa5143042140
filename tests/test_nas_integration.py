"""nas_privacy.py inside the project: its grid block, its records as AttackRecords, and its report section."""
from __future__ import annotations

from pathlib import Path

from core.results import AttackRecord, append_record, read_records
from launch.profiles import PAPER, QUICK, NasBlock
from launch.tasks import Task


def test_nas_block_runs_search_before_its_attacks_and_each_defense_in_order() -> None:
    cmds = NasBlock("n", defenses={"arch_l2": (0.01,), "distill": (0.5,)}).commands()
    assert cmds == [
        "python nas_privacy.py search config/n.json",
        "python nas_privacy.py amia config/n.json",
        "python nas_privacy.py adra config/n.json",
        "python nas_privacy.py search config/n.json --defense arch_l2 --defense_arg 0.01",
        "python nas_privacy.py amia config/n.json --defense arch_l2 --defense_arg 0.01",
        "python nas_privacy.py amia config/n.json --defense distill --defense_arg 0.5",  # reuses the plain search
    ]
    is_attack = lambda c: Task("t", c).is_attack
    assert [is_attack(c) for c in cmds] == [False, True, True, False, True, True]
    assert not is_attack("python prune.py config/c.json") and is_attack("python mia.py config/c.json --original")


def test_profiles_hold_the_nas_slice() -> None:
    assert [b.config for b in QUICK if isinstance(b, NasBlock)] == ["nas_digits"]
    paper = [c for b in PAPER if isinstance(b, NasBlock) for c in b.commands()]
    assert sum(c.startswith("python nas_privacy.py search") for c in paper) == 3 * (1 + 4)  # plain + 4 searched
    for block in QUICK + PAPER:
        block.check()


def _nas_records(log: Path) -> None:
    base = {"config": "nas_x", "dataset_name": "digits", "model_name": "darts", "original": True, "P": 4,
            "activation": "elu", "defense": "none"}
    for mset, acc in (("alpha", 51.0), ("theta", 55.0)):
        append_record(log / "nas_x" / "results.jsonl", AttackRecord.from_json(
            base | {"setting": "nas_amia_fixed_shadow", "attack": "ffn", "membership_set": mset, "paper_acc": acc,
                    "acc": acc, "auc": acc + 1, "attack_acc_2p1": 2 * acc / 100 - 1, "f1": 0.5}))
    append_record(log / "nas_x" / "results.jsonl", AttackRecord.from_json(
        base | {"setting": "nas_adra", "attack": "adra", "batch": 1, "grad_noise": 0.0, "sr": 25.0, "mse": 0.5}))


def test_records_round_trip_with_nas_keys_in_extra(tmp_path: Path) -> None:
    _nas_records(tmp_path)
    records, notes = read_records(tmp_path / "nas_x" / "results.jsonl")
    assert notes == [] and len(records) == 3  # ADRA needs no paper_acc
    assert records[0].extra["membership_set"] == "alpha" and records[0].paper_acc == 51.0
    assert records[2].extra["sr"] == 25.0 and records[2].paper_acc is None


def test_report_of_nas_records_alone(tmp_path: Path) -> None:
    from reporting import build_report

    _nas_records(tmp_path / "log")
    entries = build_report(tmp_path / "log", tmp_path / "out").entries
    assert [e.file for e in entries] == ["nas_amia.md", "nas_adra.md"]
    amia = (tmp_path / "out" / "nas_amia.md").read_text().splitlines()
    assert len(amia) == 8 and "| alpha | ffn | 0.020 | 0.500 | 51.0 | 52.0 |" in amia[6]  # the report's number rule
    index = (tmp_path / "out" / "index.md").read_text()
    assert "Architecture privacy" in index and "From 3 records" in index


def test_every_shipped_nas_config_is_valid() -> None:
    from nas import config as nas_config

    root = Path(__file__).resolve().parents[1] / "config"
    loaded = {p.stem: nas_config.load(p) for p in root.glob("nas_*.json")}
    assert {"nas_digits", "nas_digits_adra", "nas_mnist", "nas_cifar10", "nas_cifar100"} <= set(loaded)
    assert loaded["nas_digits_adra"].adra.P == (8,) and loaded["nas_digits_adra"].adra.batch_sizes == (1, 2)
