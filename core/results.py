"""The results schema: one `AttackRecord` per (setting, attack), the contract between mia.py, which appends
them to log/<config>/results.jsonl, and report.py, which reads them back (docs/design.md §8).

The JSON layout is flat, one object per line, keys as the field names below (some metric names keep their
dotted spelling, e.g. `tpr_at_0.1pct_fpr`). Version 1 records (before the `version` key existed) have the
same keys, so they load unchanged; version 1 and 2 records lack version 3's low-FPR, interval and
reference-count fields (None); keys this version does not know are kept in `extra`, not dropped.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.storage import append_jsonl

SCHEMA_VERSION = 4  # 2: the version key; 3: TPR at 0.01 %, bootstrap CIs, references; WeMem's settings;
# 4: provenance (the output id, settings fingerprint and parents); epsilon over every DP-SGD step run
# (version 3's was the best epoch's) with its accountant, the private fine-tuning's steps and privacy
# note, the defense mode, and the test accuracy before / right after pruning
# field name -> JSON key, where the JSON key is not a Python identifier
JSON_NAMES = {"tpr_at_0_1pct_fpr": "tpr_at_0.1pct_fpr", "tpr_at_0_01pct_fpr": "tpr_at_0.01pct_fpr",
              "tpr_at_0_1pct_fpr_ci_low": "tpr_at_0.1pct_fpr_ci_low",
              "tpr_at_0_1pct_fpr_ci_high": "tpr_at_0.1pct_fpr_ci_high"}
FIELD_NAMES = {v: k for k, v in JSON_NAMES.items()}
# Settings of a reconstruction attack (nas_privacy.py's ADRA): a success rate and an MSE, no membership accuracy.
RECONSTRUCTION_SETTINGS = ("nas_adra",)


@dataclass
class AttackRecord:
    """Everything about one attack result: what was attacked, the victim's numbers, the attack's metrics
    (percentages), and where and how it was computed."""

    # what was attacked (the setting)
    config: str
    setting: str
    attack: str
    dataset_name: str | None = None
    model_name: str | None = None
    original: bool | None = None
    pruner_name: str | None = None
    prune_sparsity: float | None = None
    defend: str = ""
    defend_arg: float | None = None
    adaptive: bool = False
    shadow_prefix: str | None = None
    shadow_pruner_name: str | None = None
    shadow_prune_sparsity: float | None = None
    shadow_num: int | None = None
    seed: int | None = None
    split: dict[str, float] | None = None
    attack_epochs: int | None = None
    sensitivity: dict[str, float] | None = None
    # the victim model
    victim_train_acc: float | None = None
    victim_test_acc: float | None = None
    victim_sparsity: float | None = None
    victim_sparsity_pruned_layers: float | None = None
    confidence_gap: float | None = None
    sensitivity_gap: float | None = None
    generalization_gap: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    # the attack's metrics (attackers/metrics.py), in %
    paper_acc: float | None = None          # what the artifact printed (balanced for the threshold family)
    acc: float | None = None                # plain accuracy of the hard decisions
    balanced_acc: float | None = None       # (TPR + TNR) / 2
    auc: float | None = None                # ROC AUC of the scores
    tpr_at_1pct_fpr: float | None = None    # largest TPR with FPR <= 1 %
    tpr_at_0_1pct_fpr: float | None = None  # ... <= 0.1 %: resolvable with > 1,000 non-members
    n_members: int | None = None            # target points the victim trained on
    n_nonmembers: int | None = None         # target points it never saw
    # version 3: the lowest FPR, 95 % bootstrap intervals (n_bootstrap resamples of the target points) and
    # the number of reference models the attack used (None: an attack without references)
    tpr_at_0_01pct_fpr: float | None = None
    auc_ci_low: float | None = None
    auc_ci_high: float | None = None
    tpr_at_0_1pct_fpr_ci_low: float | None = None
    tpr_at_0_1pct_fpr_ci_high: float | None = None
    n_bootstrap: int | None = None
    n_references: int | None = None
    # provenance
    attack_seconds: float | None = None
    feature_seconds: float | None = None
    scores_file: str | None = None
    time: str | None = None
    versions: dict[str, str] | None = None
    # WeMem (NDSS '25; version 3): the victim's defense hyper-parameters beyond defend_arg (stride, width,
    # mem_thre, weight_decay_mem), its fine-tuning time as WeMem measures it (all rounds, preparation
    # excluded), its iterative rounds (None: one-shot), and the data split scheme
    defense_options: dict[str, float] | None = None
    defense_seconds: float | None = None
    prune_iter: int | None = None
    split_scheme: str | None = None
    # version 4: `epsilon` covers every private step run (the checkpoint was chosen after all of them), by
    # `dp_accountant` ("rdp" / "prv") over `dp_steps` steps; `privacy_note` says what it does not cover;
    # `defense_mode` "fixed" / "artifact" (dp, adv); the victim's test accuracy before pruning and right
    # after it (one-shot), so the fine-tuning's recovery is victim_test_acc - pruned_test_acc
    dp_accountant: str | None = None
    dp_steps: int | None = None
    privacy_note: str | None = None
    defense_mode: str | None = None
    pretrained_test_acc: float | None = None
    pruned_test_acc: float | None = None
    # version 4: what produced the record (provenance.py): the output id its scores file carries (the record
    # commits it), the fingerprint of the attack's effective settings, the model_ids of the models it used
    provenance: dict[str, Any] | None = None
    version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {JSON_NAMES.get(k, k): v for k, v in dataclasses.asdict(self).items() if k != "extra"}
        return self.extra | out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttackRecord:
        """A record of any version; ValueError naming every key a report needs that `data` lacks."""
        missing = cls.missing_keys(data)
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {FIELD_NAMES.get(k, k): v for k, v in data.items() if FIELD_NAMES.get(k, k) in names}
        extra = {k: v for k, v in data.items() if FIELD_NAMES.get(k, k) not in names}
        known.setdefault("version", 1)  # written before the schema had a version
        return cls(**known, extra=extra)

    @staticmethod
    def missing_keys(data: dict[str, Any]) -> list[str]:
        """What a report needs: the setting, the attack and its accuracy, and a pruned model's pruner and
        sparsity (an original has neither)."""
        wanted = ["config", "setting", "attack"]
        if data.get("setting") not in RECONSTRUCTION_SETTINGS:
            wanted.append("paper_acc")
        if not (data.get("original") or data.get("setting") == "original"):
            wanted += ["pruner_name", "prune_sparsity"]
        return [k for k in wanted if data.get(k) is None]

    @property
    def is_original(self) -> bool:
        return bool(self.original) or self.setting == "original"


def append_record(path: Path, record: AttackRecord) -> None:
    append_jsonl(path, record.to_json())


def read_records(path: Path) -> tuple[list[AttackRecord], list[str]]:
    """Every usable record of one results.jsonl in file order, and a note for each line skipped."""
    records: list[AttackRecord] = []
    notes: list[str] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise UserError(f"{path} is unreadable ({e.strerror})") from None
    for number, raw in enumerate(lines, 1):
        try:  # line by line: one damaged byte costs its own record, not the file (nor a silent U+FFFD)
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            notes.append(f"{path}:{number}: not UTF-8 text (byte {e.start}), skipped")
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = AttackRecord.from_json(data if isinstance(data, dict) else {})
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            notes.append(f"{path}:{number}: {'not valid JSON' if isinstance(e, json.JSONDecodeError) else e}, skipped")
            continue
        records.append(record)
    return records, notes


def committed_outputs(path: Path) -> set[str]:
    """The output ids (provenance.model_id) that the records of one results.jsonl commit: an attack's scores
    count as done only when a record names them (mia.result_done). Unreadable lines commit nothing."""
    ids: set[str] = set()
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return ids
    except OSError as e:
        raise UserError(f"{path} is unreadable ({e.strerror})") from None
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:  # a cut line, or bytes that are not UTF-8
            continue
        made = data.get("provenance") if isinstance(data, dict) else None
        if isinstance(made, dict) and isinstance(made.get("model_id"), str):
            ids.add(made["model_id"])
    return ids
