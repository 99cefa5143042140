"""The results schema: version 3's and 4's new fields round-trip under their JSON names; older records still load;
the records commit attack outputs (committed_outputs)."""
from __future__ import annotations

from pathlib import Path

from core.results import SCHEMA_VERSION, AttackRecord, append_record, committed_outputs, read_records


def test_version_3_and_4_fields_round_trip_and_version_2_records_load() -> None:
    assert SCHEMA_VERSION == 5
    record = AttackRecord(config="c", setting="original", attack="lira_online", original=True, paper_acc=60.0,
                          tpr_at_0_01pct_fpr=0.5, tpr_at_0_1pct_fpr_ci_low=1.0, tpr_at_0_1pct_fpr_ci_high=4.0,
                          auc_ci_low=70.0, auc_ci_high=75.0, n_bootstrap=200, n_references=16,
                          epsilon=6.42, delta=1e-5, dp_accountant="rdp", dp_steps=70, privacy_note="note",
                          defense_mode="fixed", pretrained_test_acc=65.0, pruned_test_acc=62.7,
                          provenance={"model_id": "ab", "settings": "cd", "parents": {"victim": "ef"}})
    data = record.to_json()
    assert data["dp_accountant"] == "rdp" and data["dp_steps"] == 70 and data["pruned_test_acc"] == 62.7
    assert data["tpr_at_0.01pct_fpr"] == 0.5 and data["tpr_at_0.1pct_fpr_ci_high"] == 4.0
    assert "tpr_at_0_01pct_fpr" not in data
    assert AttackRecord.from_json(data) == record
    old = {"config": "c", "setting": "original", "attack": "samia", "original": True, "paper_acc": 55.0,
           "tpr_at_0.1pct_fpr": 2.0, "version": 2}
    loaded = AttackRecord.from_json(old)
    assert loaded.version == 2 and loaded.tpr_at_0_1pct_fpr == 2.0
    assert loaded.tpr_at_0_01pct_fpr is None and loaded.auc_ci_low is None and loaded.n_references is None
    assert loaded.dp_accountant is None and loaded.defense_mode is None
    assert loaded.extra == {}


def test_version_5_fields_round_trip_and_version_4_records_load_without_them() -> None:
    record = AttackRecord(config="nas", setting="nas_adra", attack="adra", original=True, arch_grad_rank=31,
                          unknowns=64)
    amia = AttackRecord(config="nas", setting="nas_amia_fixed_shadow", attack="ffn", original=True, paper_acc=51.0,
                        accuracy_cap=62.1, channel_bits=15.4)
    wemem = AttackRecord(config="c", setting="s", attack="samia", pruner_name="iter_prunetxt", prune_sparsity=0.6,
                         paper_acc=70.0, mem_score_tie_share=0.66, mem_score_unknown=12)
    for r in (record, amia, wemem):
        assert AttackRecord.from_json(r.to_json()) == r and r.to_json()["version"] == 5
    old = AttackRecord.from_json({"config": "nas", "setting": "nas_adra", "attack": "adra", "original": True,
                                  "version": 4})
    assert old.version == 4 and old.arch_grad_rank is None and old.accuracy_cap is None and old.extra == {}
    assert old.mem_score_tie_share is None


def test_a_line_with_a_byte_that_is_not_utf8_is_skipped_with_a_note(tmp_path: Path) -> None:
    # Before, the file was decoded with errors="replace": the damaged record loaded silently as attack 'sam\ufffdia'.
    path = tmp_path / "results.jsonl"
    good = b'{"config": "c", "setting": "original", "attack": "conf", "paper_acc": 60.0}'
    bad = b'{"config": "c", "setting": "original", "attack": "sam\xffia", "paper_acc": 70.0}'
    path.write_bytes(good + b"\n" + bad + b"\n" + good.replace(b'"conf"', b'"mentr"') + b"\n")
    records, notes = read_records(path)
    assert [r.attack for r in records] == ["conf", "mentr"]
    at = bad.index(b"\xff")
    assert notes == [f"{path}:2: not UTF-8 text (byte {at}), skipped"]


def test_committed_outputs_are_the_ids_that_readable_records_name(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    assert committed_outputs(path) == set()
    for output in ("a1", "b2"):
        append_record(path, AttackRecord(config="c", setting="original", attack="samia", original=True,
                                         paper_acc=50.0, provenance={"model_id": output}))
    append_record(path, AttackRecord(config="c", setting="original", attack="samia", original=True, paper_acc=50.0))
    with open(path, "ab") as f:  # a cut line and a line of bytes that are not UTF-8 commit nothing
        f.write(b'{"provenance": {"model_id": "c3"\n\xff\xfe{"provenance": {"model_id": "d4"}}\n')
    assert committed_outputs(path) == {"a1", "b2"}
