"""Iterative pruning (docs/wemem.md): the round schedule, each round's masks against an independent argsort
computation from the weights entering that round, masks that never grow back, one Adam carried through the
rounds, last-epoch hand-over between rounds, the released best-dev model of the last round, and every
existing defense running in every round."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pruner
from core.errors import UserError
from core.training import SplitTensors, StepStats, TrainConfig, TrainHooks
from defenses import create_defense
from models import build_model


# --------------------------------------------------------------------------------------------- helpers
def small_data(n: int = 96, d: int = 12, c: int = 4, seed: int = 0) -> SplitTensors:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, c, generator=g)
    xs = [torch.randn(n, d, generator=g) for _ in range(3)]
    ys = [(x @ w + 0.8 * torch.randn(n, c, generator=g)).argmax(1) for x in xs]
    return SplitTensors(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2])


def mlp(d: int = 12, c: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("columnfc", c, d)  # Flatten, fc1 (1), fc2 (4), fc3 (7)


def cfg(epochs: int = 3) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=32, early_stop=1, progress=False)


def expected_round_mask(w: np.ndarray, old_mask: np.ndarray, s: float) -> np.ndarray:
    """Independent route: keep the old mask and drop the (int(n*s) - already pruned) smallest KEPT |w|."""
    n = w.size
    new = int(n * s) - int((old_mask == 0).sum())
    keep = old_mask.copy().reshape(-1)
    if new > 0:
        kept = np.flatnonzero(keep)
        order = kept[np.argsort(np.abs(w.reshape(-1)[kept]), kind="stable")]
        keep[order[:new]] = 0
    return keep.reshape(w.shape)


class Recorder(TrainHooks):
    """Plain training that records, per round (one setup call each): the masks and the weights the round
    starts with, every epoch's effective weights, the optimizer objects and the number of steps."""

    def __init__(self) -> None:
        self.rounds: list[dict] = []
        self.steps = 0
        self.optimizers: list[torch.optim.Optimizer] = []

    def setup(self, model, data, cfg, generator) -> None:
        self.model = model
        self.rounds.append({"masks": {k: v.clone() for k, v in pruner.bake(model)[1].items()},
                            "start": pruner.bake(model)[0], "epochs": []})

    def train_step(self, model, optimizer, x, y, epoch) -> StepStats:
        if not any(o is optimizer for o in self.optimizers):
            self.optimizers.append(optimizer)
        self.steps += 1
        return super().train_step(model, optimizer, x, y, epoch)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        self.rounds[-1]["epochs"].append(pruner.bake(self.model)[0])
        return {}


PRUNED = ("1.weight", "4.weight")  # iter_prunetxt's fc1, fc2 in the columnfc Sequential


# --------------------------------------------------------------------------------------------- schedule
@pytest.mark.parametrize("s,table", [(0.5, [0, .159, .293, .405, .5]), (0.6, [0, .205, .368, .497, .6]),
                                     (0.7, [0, .260, .452, .595, .7])])
def test_schedule_matches_wemem_table(s: float, table: list[float]) -> None:
    got = pruner.iterative_schedule(s, 5)
    assert np.allclose(got, table, atol=5e-4)
    assert got[0] == 0 and got[-1] == pytest.approx(s)
    # keep ratio shrinks by the same factor each round (nni: keep_ratio_once ** k)
    keep = 1 - np.array(got)
    assert np.allclose(keep[1:] / keep[:-1], (1 - s) ** 0.25)


@pytest.mark.parametrize("rounds", [1, 0, 2.5, True])
def test_schedule_needs_two_rounds(rounds: object) -> None:
    with pytest.raises(UserError):
        pruner.iterative_schedule(0.6, rounds)  # type: ignore[arg-type]


def test_names_validate_and_iter_prunetxt_targets_hidden_layers_only() -> None:
    for name in ("iter_pruning", "iter_prunetxt"):
        assert pruner.validate_pruner_name(name) == name
    assert set(pruner.compute_masks(mlp(), "iter_prunetxt", 0.5)) == set(PRUNED)
    assert set(pruner.compute_masks(mlp(), "iter_pruning", 0.5)) == {"1.weight", "4.weight", "7.weight"}
    with pytest.raises(UserError) as err:
        pruner.compute_masks(build_model("resnet18", 10, 3), "iter_prunetxt", 0.5, model_name="resnet18")
    assert "iter_pruning" in err.value.hint


def test_iter_pruning_covers_stem_shortcuts_and_classifier() -> None:
    model = build_model("resnet18", 10, 3)
    masks = pruner.compute_masks(model, "iter_pruning", 0.3)
    convs_and_linears = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert set(masks) == convs_and_linears
    assert any("shortcut" in k or "downsample" in k for k in masks)  # 1x1 shortcut convs are in
    for key, mask in masks.items():  # one-round masks from dense weights = int(n*s) zeros (no ties in floats)
        assert int((mask == 0).sum()) == int(mask.numel() * 0.3), key


def test_update_masks_refuses_to_revive_a_weight() -> None:
    model = mlp()
    pruner.update_masks(model, pruner.compute_masks(model, "iter_prunetxt", 0.5))
    revived = {k: torch.ones_like(v) for k, v in pruner.bake(model)[1].items()}
    with pytest.raises(RuntimeError, match="come back"):
        pruner.update_masks(model, revived)


def test_round_masks_from_weights_with_zero_count_kept() -> None:
    """k counts the already-pruned zeros (nni 2.3): round k ends with exactly int(n * s_k) zeros."""
    model = mlp()
    for s in pruner.iterative_schedule(0.6, 5):
        before = pruner.bake(model)
        masks = pruner.compute_masks(model, "iter_prunetxt", s)
        for key in PRUNED:
            old = before[1].get(key, torch.ones_like(before[0][key]))
            want = expected_round_mask(before[0][key].numpy(), old.numpy(), s)
            assert np.array_equal(masks[key].numpy(), want), key
            assert int((masks[key] == 0).sum()) == int(masks[key].numel() * s)
        pruner.update_masks(model, masks)
        with torch.no_grad():  # move the kept weights, as fine-tuning would, so rankings change between rounds
            for key in PRUNED:
                model.get_submodule(key.split(".")[0]).weight_orig.add_(0.05 * torch.randn(masks[key].shape))


# --------------------------------------------------------------------------------------------- driver
@pytest.fixture(scope="module")
def run() -> tuple:
    model, data, rec = mlp(), small_data(), Recorder()
    # Noise dev labels: the best dev epoch is then often not the last one, so the tests tell the two apart.
    data.dev_y = torch.randint(0, 4, data.dev_y.shape, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(3)
    train_cfg = TrainConfig(epochs=4, batch_size=32, early_stop=3, progress=False)
    result, logs = pruner.iterative_prune(model, data, train_cfg, 4, 0.6, "iter_prunetxt", lambda: rec,
                                          torch.Generator().manual_seed(1))
    return model, data, rec, result, logs


def test_each_round_starts_from_last_epoch_and_masks_follow_from_it(run: tuple) -> None:
    model, _, rec, _, logs = run
    schedule = pruner.iterative_schedule(0.6, 4)
    assert len(rec.rounds) == 4 and [r.target for r in logs] == schedule
    assert any(r.best_epoch < r.epochs_run for r in logs[:-1])  # so "last" and "best" differ somewhere
    for k in range(1, 4):
        prev, cur = rec.rounds[k - 1], rec.rounds[k]
        entering = prev["epochs"][-1]  # the LAST epoch of the previous round, not its best
        for key in PRUNED:
            want = expected_round_mask(entering[key].numpy(), prev["masks"][key].numpy(), schedule[k])
            assert np.array_equal(cur["masks"][key].numpy(), want), (k, key)
        for key, value in cur["start"].items():  # the round starts from those weights, newly masked ones zeroed
            mask = cur["masks"].get(key)
            assert torch.equal(value, entering[key] if mask is None else entering[key] * mask), (k, key)


def test_masked_weights_never_come_back(run: tuple) -> None:
    model, _, rec, _, _ = run
    final_state, final_masks = pruner.bake(model)
    for r in rec.rounds:
        for key in PRUNED:
            assert torch.all(final_masks[key][r["masks"][key] == 0] == 0)  # masks only shrink
            for state in r["epochs"]:
                assert torch.all(state[key][r["masks"][key] == 0] == 0)
        assert torch.all(final_state["7.weight"] != 0)  # the output layer is never pruned
    for key in PRUNED:
        assert int((final_state[key] == 0).sum()) == int(final_state[key].numel() * 0.6)


def test_adam_state_carries_across_rounds(run: tuple) -> None:
    model, data, rec, _, _ = run
    assert len(rec.optimizers) == 1  # one optimizer object in every round
    steps_per_epoch = -(-len(data.train_y) // 32)
    assert rec.steps == steps_per_epoch * sum(len(r["epochs"]) for r in rec.rounds)
    # the optimizer's own step counter saw them all: reach it through the parameters it holds
    opt = rec.optimizers[0]
    assert isinstance(opt, torch.optim.Adam)
    assert {int(opt.state[p]["step"]) for p in model.parameters()} == {rec.steps}


def test_released_model_is_best_dev_epoch_of_last_round(run: tuple) -> None:
    model, data, rec, result, logs = run
    last = rec.rounds[-1]["epochs"]
    best = last[result.best_epoch - 1]
    now = pruner.bake(model)[0]
    assert all(torch.equal(now[k], best[k]) for k in now)
    assert result.dev_acc == logs[-1].dev_acc
    assert result.extras["rounds_seconds"] == pytest.approx(sum(r.seconds for r in logs))
    for r in logs:
        assert r.sparsity["pruned_layers"] == pytest.approx(
            sum(int(n * r.target) for n in (256 * 12, 128 * 256)) / (256 * 12 + 128 * 256))


@pytest.mark.parametrize("defense", ["ppb", "relaxloss", "adv", "dp", "dpsgd"])
def test_every_existing_defense_runs_in_every_round(defense: str) -> None:
    model, data = mlp(), small_data(n=64)
    hooks = create_defense(defense, None)
    torch.manual_seed(0)
    result, logs = pruner.iterative_prune(model, data, cfg(epochs=2), 3, 0.5, "iter_pruning", lambda: hooks,
                                          torch.Generator().manual_seed(0))
    assert [r.round for r in logs] == [0, 1, 2] and all(r.epochs_run >= 1 for r in logs)
    assert pruner.measure_sparsity(model, "iter_pruning")["pruned_layers"] == pytest.approx(0.5, abs=1e-3)
    if defense == "dpsgd":  # one privacy ledger over all rounds: its steps are every round's steps
        steps = sum(h[2] for h in hooks.accountant.history)  # (sigma, q, steps)
        assert steps == sum(r.epochs_run for r in logs) * max(1, 64 // 32)
