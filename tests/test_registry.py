"""One registry idiom: adding an attack or a defense is one class plus one `register_*` line, and the new
entry then runs end to end through the step scripts with no other change (README "How to add ...")."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

import mia
import prune
from attackers import ATTACKS, Attack, AttackInput, AttackResult
from attackers.features import true_class
from attackers.metrics import paper_accuracy
from conftest import ROOT, run_script
from core.errors import UserError
from core.registry import Registry
from defenses import DEFENSES, ArgSpec, Defense


class ToyAttack(Attack):
    """The README's example: the true-class confidence as the score, member iff above the shadows' median."""

    name = "toy_conf"
    artifact_lines = {"toy_conf": "Toy confidence attack accuracy {:.3f}"}

    def run(self, data: AttackInput) -> list[AttackResult]:
        scores = true_class(data.target_probs, data.target_labels)
        cut = np.median(true_class(data.shadow_probs, data.shadow_labels))
        decisions = (scores >= cut).astype(np.int64)
        return [AttackResult(self.name, scores, decisions, paper_accuracy(data.target_member, decisions,
                                                                          balanced=True))]


class LabelSmoothing(Defense):
    """The README's example defense: cross-entropy with label smoothing epsilon = --defend_arg."""

    name = "label_smoothing"
    log_suffix = " With LS"
    arg = ArgSpec("epsilon, the label-smoothing mass", 0.1, maximum=1.0)

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             epoch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=self.eps), logits, {}


FAST = ["--shadow_num", "1", "--epochs", "3", "--prune_epochs", "2", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(ROOT / "config", root / "config")
    out = run_script("pretrain.py", "cpu", "config/digits_columnfc.json", *FAST, cwd=root)
    assert out.returncode == 0, out.stderr
    return root


def run_in_process(monkeypatch: pytest.MonkeyPatch, work: Path, main, argv: list[str]) -> None:
    """A step's main() in this process, so entries registered here are visible to it."""
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["step", "cpu", "config/digits_columnfc.json", *argv, *FAST])
    main()


@pytest.mark.e2e
def test_a_registered_defense_runs_through_prune_py(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with DEFENSES.registered(LabelSmoothing):
        run_in_process(monkeypatch, work, prune.main, ["--prune_sparsity", "0.5", "--defend", "label_smoothing",
                                                       "--defend_arg", "0.2"])
    ckpt = torch.load(work / "result/digits_columnfc/l1unstructure_0.5_label_smoothing_0.2_model/best.pth",
                      weights_only=True)
    assert ckpt["defend"] == "label_smoothing" and ckpt["defend_arg"] == 0.2
    log = (work / "log/digits_columnfc/prune_l1unstructure_0.5_label_smoothing_0.2.log").read_text()
    assert "Epoch 0 Prune Train With LS" in log
    assert "label_smoothing" not in DEFENSES  # gone again after the block


@pytest.mark.e2e
def test_a_registered_attack_runs_through_mia_py(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ATTACKS.registered(ToyAttack):
        run_in_process(monkeypatch, work, mia.main, ["--original", "--attacks", "toy_conf"])
    records = [json.loads(line) for line in (work / "log/digits_columnfc/results.jsonl").read_text().splitlines()]
    toy = [r for r in records if r["attack"] == "toy_conf"]
    assert len(toy) == 1 and toy[0]["setting"] == "original"
    saved = np.load(work / toy[0]["scores_file"])
    assert toy[0]["auc"] == pytest.approx(100 * roc_auc_score(saved["member"], saved["scores"]))
    assert "Toy confidence attack accuracy" in (work / "log/digits_columnfc/mia_original.log").read_text()


def test_registry_rules() -> None:
    reg: Registry[type[Attack]] = Registry("attack")
    reg.register(ToyAttack)
    with pytest.raises(ValueError, match="twice"):
        reg.register(ToyAttack)
    with pytest.raises(UserError) as e:
        reg.get("toy")
    assert e.value.line() == "error: unknown attack 'toy' (valid: toy_conf)"
    assert reg.names() == ("toy_conf",) and list(reg) == [ToyAttack]
