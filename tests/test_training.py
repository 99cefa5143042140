"""The shared loop: the artifact's early stopping, best-weights keeping, hooks and determinism."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core import training
from core.errors import UserError
from core.training import SplitTensors, StepStats, TrainConfig, TrainHooks, fit


def tiny_data(n: int = 64, d: int = 5, seed: int = 0) -> SplitTensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3 * n, d, generator=g)
    y = (x[:, 0] > 0).long()
    return SplitTensors(x[:n], y[:n], x[n:2 * n], y[n:2 * n], x[2 * n:], y[2 * n:])


class CountingHooks(TrainHooks):
    """Each epoch sets the single weight to the epoch number, so the kept state says which epoch won."""

    def train_step(self, model, optimizer, x, y, epoch) -> StepStats:
        with torch.no_grad():
            model.weight.fill_(float(epoch + 1))
        return StepStats(torch.tensor(0.0), torch.tensor(0), len(y))


def scripted_dev(monkeypatch: pytest.MonkeyPatch, dev_accs: list[float]) -> None:
    """evaluate() is called for dev then test each epoch; dev follows the script, test mirrors it."""
    calls = iter(v for acc in dev_accs for v in ((acc, 1.0), (acc / 2, 2.0)))
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: next(calls))


def test_early_stop_after_more_than_patience_non_improving_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Best 30 at epoch 5 (1-based); ties do not count as gains; 6 stale epochs (> early_stop=5) stop
    # training at 0-based epoch 10, before the 40 that would have come next.
    scripted_dev(monkeypatch, [10, 20, 20, 15, 30, 30, 30, 30, 30, 30, 30, 40])
    model = nn.Linear(1, 1, bias=False)
    result = fit(model, tiny_data(), TrainConfig(epochs=12, early_stop=5, progress=False),
                 hooks=CountingHooks(), generator=torch.Generator().manual_seed(0))
    assert result.epochs_run == 11
    assert result.best_epoch == 5 and result.dev_acc == 30 and result.test_acc == 15
    assert result.state["weight"].item() == 5.0          # the weights of epoch 5, not the last epoch
    assert model.weight.item() == 5.0                    # and the model is left holding them


def test_early_stop_zero_runs_every_epoch_as_the_artifact(monkeypatch: pytest.MonkeyPatch) -> None:
    # The artifact counts stale epochs only `elif args.early_stop > 0`: with 0, dev accuracy falling for
    # four epochs after the best one (epoch 2, 1-based) does not stop training; all 6 epochs run.
    scripted_dev(monkeypatch, [50, 60, 40, 30, 20, 10])
    result = fit(nn.Linear(1, 1, bias=False), tiny_data(), TrainConfig(epochs=6, early_stop=0, progress=False),
                 hooks=CountingHooks(), generator=torch.Generator().manual_seed(0))
    assert (result.epochs_run, result.best_epoch) == (6, 2)
    assert result.state["weight"].item() == 2.0


def test_early_stop_one_stops_after_two_stale_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_dev(monkeypatch, [50, 40, 30, 60])
    result = fit(nn.Linear(1, 1, bias=False), tiny_data(), TrainConfig(epochs=4, early_stop=1, progress=False),
                 hooks=CountingHooks(), generator=torch.Generator().manual_seed(0))
    assert (result.epochs_run, result.best_epoch) == (3, 1)


class BatchSizes(TrainHooks):
    """Records the size of every batch train_step sees."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def train_step(self, model, optimizer, x, y, epoch) -> StepStats:
        self.sizes.append(len(y))
        return super().train_step(model, optimizer, x, y, epoch)


def test_a_trailing_batch_of_one_row_joins_the_previous_batch_and_batchnorm_trains() -> None:
    # 2 * 16 + 1 = 33 rows: batches 16 and 17 (not 16, 16, 1, which BatchNorm refuses in train mode);
    # every row is seen once per epoch.
    torch.manual_seed(0)
    data = tiny_data(n=33)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    hooks = BatchSizes()
    result = fit(model, data, TrainConfig(epochs=2, batch_size=16, early_stop=5, progress=False), hooks=hooks,
                 generator=torch.Generator().manual_seed(0))
    assert hooks.sizes == [16, 17, 16, 17] and result.epochs_run == 2
    assert [len(b) for b in training.split_batches(torch.arange(33), 16)] == [16, 17]
    assert [len(b) for b in training.split_batches(torch.arange(34), 16)] == [16, 16, 2]
    assert [len(b) for b in training.split_batches(torch.arange(1), 16)] == [1]
    merged = training.split_batches(torch.randperm(33, generator=torch.Generator().manual_seed(1)), 16)
    assert sorted(torch.cat(merged).tolist()) == list(range(33))


def test_training_that_diverges_to_nan_is_refused_and_returns_nothing() -> None:
    # SGD (momentum 0.9) at lr 10 on inputs of scale 1e3 overflows in the second epoch; before the check,
    # fit kept the NaN weights of the "best" epoch (argmax of NaN logits = class 0 gave a dev accuracy > 0).
    torch.manual_seed(0)
    data = tiny_data()
    data = SplitTensors(data.train_x * 1e3, data.train_y, data.dev_x * 1e3, data.dev_y, data.test_x, data.test_y)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(UserError, match="training of victim_model diverged at epoch 1: non-finite values in"):
        fit(model, data, TrainConfig(epochs=3, batch_size=16, optimizer="sgd", lr=10.0, progress=False),
            generator=torch.Generator().manual_seed(0), desc="victim_model")


def train_once(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    return fit(model, tiny_data(), TrainConfig(epochs=4, batch_size=16, progress=False),
               generator=torch.Generator().manual_seed(seed)).state


def test_reruns_are_bit_identical_on_cpu() -> None:
    a, b, c = train_once(3), train_once(3), train_once(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_learns_a_separable_problem() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    result = fit(model, tiny_data(n=256), TrainConfig(epochs=20, batch_size=32, lr=1e-2, progress=False),
                 generator=torch.Generator().manual_seed(0))
    assert result.dev_acc > 90


def test_loss_hook_extras_reach_the_log_line(caplog: pytest.LogCaptureFixture) -> None:
    class Extra(TrainHooks):
        log_suffix = " With TEST"

        def loss(self, model, x, y, epoch):
            loss, logits, _ = super().loss(model, x, y, epoch)
            return loss, logits, {"Loss2": torch.tensor(0.25)}
    import logging

    from core.storage import log
    log.propagate = True
    with caplog.at_level(logging.INFO, logger="prune_mia"):
        fit(nn.Linear(5, 2), tiny_data(), TrainConfig(epochs=1, progress=False), hooks=Extra(),
            generator=torch.Generator().manual_seed(0))
    line = next(r.message for r in caplog.records if "Train With TEST" in r.message)
    assert line.startswith("Epoch 0 Train With TEST: Accuracy ") and line.endswith(", Loss2 0.250")


def test_format_line_matches_artifact() -> None:
    assert training.format_line("Epoch 3 Train", 93.1234, 0.21549) == "Epoch 3 Train: Accuracy 93.123, Loss 0.215"
