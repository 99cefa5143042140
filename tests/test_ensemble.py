"""ensemble.fit_ensemble: K columnfc models at once equal training.fit on each model alone.

Not bit for bit: a vmapped nn.Linear runs as one batched matmul plus bias, the single model's as addmm
(bias folded into the GEMM), which rounds differently once the bias is non-zero (the first step, zero
biases, IS bitwise equal; checked below). In float64 the paths agree to ~1e-15 relative after 9 epochs
and take the same early-stopping decisions; the test asserts that."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ensemble import fit_ensemble
from models import build_model
from training import SplitTensors, TrainConfig, fit

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


def _models(seeds: list[int]) -> tuple[list[torch.nn.Module], list[torch.Generator]]:
    """Each model built under its seed; its dropout generator continues torch's global RNG from there."""
    models, dropout_gens = [], []
    for s in seeds:
        torch.manual_seed(s)
        models.append(build_model("columnfc", CLASSES, FEATURES).double())
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
        dropout_gens.append(g)
    return models, dropout_gens


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_ensemble_equals_each_model_trained_alone(optimizer: str) -> None:
    seeds, shuffle_seeds = [1, 2, 3], [10, 11, 12]
    datas = [_data(100, False), _data(101, False), _data(102, True)]
    cfg = TrainConfig(epochs=9, batch_size=32, early_stop=2, optimizer=optimizer, lr=0.01, progress=False)

    alone = []
    for s, gs, data in zip(seeds, shuffle_seeds, datas):
        torch.manual_seed(s)
        model = build_model("columnfc", CLASSES, FEATURES).double()
        alone.append(fit(model, data, cfg, generator=torch.Generator().manual_seed(gs)))

    models, dropout_gens = _models(seeds)
    together = fit_ensemble(models, datas, cfg, [torch.Generator().manual_seed(gs) for gs in shuffle_seeds],
                            dropout_gens)

    runs = [r.epochs_run for r in alone]
    assert len(set(runs)) > 1 and min(runs) < cfg.epochs, runs  # models stop at different epochs
    for a, b, model in zip(alone, together, models):
        assert (b.best_epoch, b.epochs_run) == (a.best_epoch, a.epochs_run)
        assert (b.train_acc, b.dev_acc, b.test_acc) == (a.train_acc, a.dev_acc, a.test_acc)
        assert b.test_loss == pytest.approx(a.test_loss, rel=1e-12)
        assert list(b.state) == list(a.state)
        for key in a.state:
            torch.testing.assert_close(b.state[key], a.state[key], rtol=1e-12, atol=1e-14, msg=key)
            assert torch.equal(model.state_dict()[key], b.state[key])  # the model holds its best weights
        assert set(b.checkpoint()) == set(a.checkpoint())


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


def test_batchnorm_models_equal_training_alone_in_float64() -> None:
    cfg = TrainConfig(epochs=4, batch_size=32, early_stop=1, lr=0.01, progress=False)
    datas = [_data(200, False), _data(201, True)]
    alone = []
    for s, data in zip([7, 8], datas):
        torch.manual_seed(s)
        alone.append(fit(SmallConvBN().double(), data, cfg, generator=torch.Generator().manual_seed(s)))
    models, gens = [], []
    for s in [7, 8]:
        torch.manual_seed(s)
        models.append(SmallConvBN().double())
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
        gens.append(g)
    together = fit_ensemble(models, datas, cfg, [torch.Generator().manual_seed(s) for s in [7, 8]], gens)
    for a, b in zip(alone, together):
        assert (b.best_epoch, b.epochs_run, b.dev_acc, b.test_acc) == (a.best_epoch, a.epochs_run, a.dev_acc,
                                                                     a.test_acc)
        assert "net.1.running_mean" in a.state and a.state["net.1.num_batches_tracked"].item() > 0
        # atol 1e-12: the conv bias before BatchNorm has a gradient that is rounding noise (BN removes the
        # bias), which Adam normalises to full-size steps; measured differences 1e-14 (that bias and the
        # running mean it feeds), 1e-16 everywhere else
        for key in a.state:
            torch.testing.assert_close(b.state[key], a.state[key], rtol=1e-12, atol=1e-12, msg=key)


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


def test_first_step_is_bit_for_bit_in_float32() -> None:
    """With zero biases (the init) batched matmul + bias and addmm round alike: one step is bitwise equal."""
    data = _data(100, False)
    data = SplitTensors(data.train_x[:32].float(), data.train_y[:32], data.dev_x.float(), data.dev_y,
                        data.test_x.float(), data.test_y)
    cfg = TrainConfig(epochs=1, batch_size=32, early_stop=5, lr=0.01, progress=False)
    torch.manual_seed(4)
    alone = fit(build_model("columnfc", CLASSES, FEATURES), data, cfg, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(4)
    model = build_model("columnfc", CLASSES, FEATURES)
    g = torch.Generator()
    g.set_state(torch.get_rng_state())
    (together,) = fit_ensemble([model], [data], cfg, [torch.Generator().manual_seed(0)], [g])
    for key in alone.state:
        assert torch.equal(together.state[key], alone.state[key]), key
