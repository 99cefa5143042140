"""ensemble.fit_ensemble: K models at once equal training.fit on each model alone, bit for bit on the CPU
(float32 and float64): columnfc, a small CNN, a CNN with BatchNorm. The last test shows why experiment/ensemble.py
needs its own vmap rules: vmap's linear rounds differently from the model alone."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from core.training import FitResult, SplitTensors, TrainConfig, fit
from experiment import ensemble
from experiment.ensemble import fit_ensemble
from models import build_model

FEATURES, CLASSES = 12, 3


def _data(seed: int, noise_labels: bool) -> SplitTensors:
    """Rows labelled by a random linear teacher (learnable), or by coin flips (dev accuracy stalls)."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(FEATURES, CLASSES, generator=g, dtype=torch.float64)
    parts = []
    for n in (150, 60, 60):  # 150 train rows in batches of 32: the last batch has 22
        x = torch.randn(n, FEATURES, generator=g, dtype=torch.float64)
        y = torch.randint(0, CLASSES, (n,), generator=g) if noise_labels else (x @ teacher).argmax(1)
        parts += [x, y]
    return SplitTensors(*parts)


def _as(data: SplitTensors, dtype: torch.dtype) -> SplitTensors:
    return SplitTensors(data.train_x.to(dtype), data.train_y, data.dev_x.to(dtype), data.dev_y,
                        data.test_x.to(dtype), data.test_y)


def _columnfc() -> nn.Module:
    return build_model("columnfc", CLASSES, FEATURES)


def _models(seeds: list[int], make: Callable[[], nn.Module] = _columnfc, dtype: torch.dtype = torch.float64
            ) -> tuple[list[torch.nn.Module], list[torch.Generator]]:
    """Each model built under its seed; its dropout generator continues torch's global RNG from there."""
    models, dropout_gens = [], []
    for s in seeds:
        torch.manual_seed(s)
        models.append(make().to(dtype))
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
        dropout_gens.append(g)
    return models, dropout_gens


def _alone_and_together(make: Callable[[], nn.Module], seeds: list[int], datas: list[SplitTensors],
                        cfg: TrainConfig, dtype: torch.dtype) -> tuple[list[FitResult], list[FitResult],
                                                                        list[nn.Module]]:
    datas = [_as(d, dtype) for d in datas]
    alone = []
    for s, data in zip(seeds, datas):
        torch.manual_seed(s)
        alone.append(fit(make().to(dtype), data, cfg, generator=torch.Generator().manual_seed(s + 10)))
    models, dropout_gens = _models(seeds, make, dtype)
    together = fit_ensemble(models, datas, cfg, [torch.Generator().manual_seed(s + 10) for s in seeds],
                            dropout_gens)
    return alone, together, models


def _assert_bitwise(alone: list[FitResult], together: list[FitResult], models: list[nn.Module]) -> None:
    for a, b, model in zip(alone, together, models):
        assert (b.best_epoch, b.epochs_run) == (a.best_epoch, a.epochs_run)
        assert (b.train_acc, b.dev_acc, b.test_acc, b.test_loss) == (a.train_acc, a.dev_acc, a.test_acc, a.test_loss)
        assert list(b.state) == list(a.state)
        for key in a.state:
            assert torch.equal(b.state[key], a.state[key]), key
            assert torch.equal(model.state_dict()[key], b.state[key])  # the model holds its best weights
        assert set(b.checkpoint()) == set(a.checkpoint())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_ensemble_equals_each_model_trained_alone_bit_for_bit(optimizer: str, dtype: torch.dtype) -> None:
    datas = [_data(100, False), _data(101, False), _data(102, True)]
    cfg = TrainConfig(epochs=9, batch_size=32, early_stop=2, optimizer=optimizer, lr=0.01, progress=False)
    alone, together, models = _alone_and_together(_columnfc, [1, 2, 3], datas, cfg, dtype)
    runs = [r.epochs_run for r in alone]
    assert len(set(runs)) > 1 and min(runs) < cfg.epochs, runs  # models stop at different epochs
    _assert_bitwise(alone, together, models)


def test_dropout_masks_come_from_each_models_own_generator() -> None:
    """Same weights and data, different dropout generators: the models must end differently."""
    seeds = [5, 5]
    datas = [_data(100, False)] * 2
    cfg = TrainConfig(epochs=1, batch_size=32, early_stop=5, lr=0.01, progress=False)
    models, gens = _models(seeds)
    gens[1] = torch.Generator().manual_seed(99)
    out = fit_ensemble(models, datas, cfg, [torch.Generator().manual_seed(0) for _ in seeds], gens)
    assert not torch.equal(out[0].state["1.weight"], out[1].state["1.weight"])


class SmallConvBN(nn.Module):
    """Conv + BatchNorm + dropout: exercises stacked running statistics (ResNet18 is too slow for a test)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.2),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 3, 4))  # the 12 features as a 3x4 image


class SmallCNN(nn.Module):
    """Two convolutions (one strided, no padding), dropout, pooling, a linear head; no BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 2, stride=(1, 2)),
                                 nn.ReLU(), nn.Dropout(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 3, 4))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("make", [SmallCNN, SmallConvBN])
def test_cnns_equal_training_alone_bit_for_bit_in_float32(make: Callable[[], nn.Module], optimizer: str) -> None:
    cfg = TrainConfig(epochs=4, batch_size=32, early_stop=1, lr=0.01, optimizer=optimizer, progress=False)
    alone, together, models = _alone_and_together(make, [7, 8], [_data(200, False), _data(201, True)], cfg,
                                                  torch.float32)
    if make is SmallConvBN:  # the running statistics were trained (and are equal below)
        assert all(a.state["net.1.num_batches_tracked"].item() > 0 for a in alone)
        assert all(a.state["net.1.running_mean"].abs().sum() > 0 for a in alone)
    _assert_bitwise(alone, together, models)


def test_mismatched_inputs_are_refused() -> None:
    cfg = TrainConfig(epochs=1, progress=False)
    g = [torch.Generator()]
    models, gens = _models([1, 2])
    with pytest.raises(ValueError, match="one data split"):
        fit_ensemble(models, [_data(0, False)], cfg, g, gens)
    short = _data(0, False)
    short = SplitTensors(short.train_x[:100], short.train_y[:100], short.dev_x, short.dev_y, short.test_x,
                         short.test_y)
    with pytest.raises(ValueError, match="same number of training rows"):
        fit_ensemble(models, [_data(0, False), short], cfg, g * 2, gens)


def test_vmaps_own_linear_rounds_differently_from_the_model_alone() -> None:
    """Why experiment/ensemble.py has its own vmap rules: vmap turns F.linear into a batched matmul plus a separate
    bias add, the model alone folds the bias into addmm; in float32 they differ in the last bits (a
    minimal case, measured: 128 x 256 -> 128 with non-zero bias), ensemble's rule equals addmm exactly."""
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 128, 256, generator=g), torch.randn(2, 128, 256, generator=g), torch.randn(2, 128,
                                                                                                         generator=g)
    alone = torch.stack([torch.addmm(b[k], x[k], w[k].t()) for k in range(2)])
    assert not torch.equal(vmap(F.linear)(x, w, b), alone)
    assert torch.equal(vmap(ensemble._linear)(x, w, b), alone)
