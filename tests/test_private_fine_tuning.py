"""Private fine-tuning recovers what pruning cost: the synthetic_purchase_columnfc victim, pretrained
and pruned (l1unstructure 0.6) by the step functions themselves, fine-tuned under dp's and dpsgd's defaults.

With the artifact's optimiser (lr 1e-3, no momentum) both left the pruned victim where pruning left it
(dev 62.67 -> 62.67, test 62.67): recovery 0 of the 2.37 test points pruning cost."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from core.config_schema import load_config
from core.setting import ModelSetting
from defenses import DefenseOptions
from experiment import Experiment, RunOptions, open_experiment
from pretrain import train_original
from prune import prune_one

pytestmark = pytest.mark.e2e  # every test here pretrains and prunes through the step functions

CONFIG = ROOT / "config" / "synthetic_purchase_columnfc.json"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Experiment]:
    """The config's victim, pretrained once (the steps write result/ and log/ under the cwd)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("private"))
        threads = torch.get_num_threads()
        cfg = load_config(str(CONFIG), {"shadow_num": 1})
        exp = open_experiment(RunOptions(str(CONFIG), device="cpu", quiet=True, threads=1), cfg, "test.log",
                              make_split=True)
        train_original(exp, None)
        yield exp
        torch.set_num_threads(threads)


# dpsgd at 1-2 s an epoch here gets 2 fine-tuning epochs (its best dev epoch in the full run is the second);
# dp, 0.1 s an epoch, runs the config's 25 with early stopping as prune.py does.
@pytest.mark.parametrize("defense, arg, epochs", [("dp", 0.1, None), ("dpsgd", 1.0, 2)])
def test_default_private_fine_tuning_recovers_half_of_what_pruning_cost(experiment: Experiment, defense: str,
                                                                         arg: float, epochs: int | None) -> None:
    exp = dataclasses.replace(experiment, cfg=dataclasses.replace(experiment.cfg, prune_epochs=epochs)) \
        if epochs else experiment
    setting = ModelSetting("l1unstructure", 0.6, defense, arg)
    prune_one(exp, None, setting, DefenseOptions(config_epochs=exp.cfg.epochs))
    ckpt = torch.load(Path(exp.checkpoint_path(setting, None)), weights_only=False)
    r = ckpt["recovery"]
    assert r["pretrained_test_acc"] == pytest.approx(65.04, abs=0.01)  # the pipeline's victim
    assert r["lost"] > 2 and r["pruned_test_acc"] == ckpt["pruned_test_acc"]
    assert r["fine_tuned_test_acc"] == ckpt["acc"] and r["recovered"] == r["fine_tuned_test_acc"] - r["pruned_test_acc"]
    assert r["recovered"] >= r["lost"] / 2
    assert ckpt["extras"]["dp_steps"] == ckpt["epochs_run"] * (1350 // 128)
    log = (exp.logs / "test.log").read_text()
    assert f"recovered {r['recovered']:.2f} of {r['lost']:.2f} test points lost to pruning" in log
