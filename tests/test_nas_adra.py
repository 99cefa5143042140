"""ADRA recovers a planted input from its exact architecture update, and not from noise."""
from __future__ import annotations

import numpy as np
import torch

from nas import adra as A
from nas.supernet import SpaceConfig

PRIMS = ("sep_conv_3x3", "dil_conv_3x3", "avg_pool_3x3", "skip_connect")


def _attack(delta_from_noise: bool) -> tuple[float, float]:
    torch.set_num_threads(1)
    space = SpaceConfig(P=4, C=4, activation="elu", primitives=PRIMS, batchnorm=False)
    net = A.make_supernet(space, 1, 4, 0.25, seed=1)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 2, 2, generator=g) * 2 - 1   # 4 unknown pixels, 32 architecture values
    delta = A.victim_update(net, x, torch.tensor([3]), eta=0.1)
    if delta_from_noise:
        delta = torch.randn(delta.shape, generator=g) * delta.norm() / delta.numel() ** 0.5
    best = min((A.reconstruct(net, delta, 0.1, tuple(x.shape), 4, 100, g) for _ in range(2)), key=lambda r: r[2])
    _, mse = A.best_match(best[0], x)
    return float(mse[0]), best[2]


def test_adra_b1_elu_recovers_a_planted_input() -> None:
    mse, match = _attack(False)
    assert match < 1e-5
    assert mse < 1e-3   # pixels in [-1, 1]: a random guess is ~0.67


def test_adra_fails_when_delta_alpha_is_noise() -> None:
    mse, match = _attack(True)
    assert match > 1e-2  # no input explains a noise update
    assert mse > 0.05


def test_best_match_assignment_and_psnr_by_hand() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]]).view(2, 1, 1, 2)
    x_hat = torch.tensor([[1.0, 0.8], [0.0, 0.2]]).view(2, 1, 1, 2)
    cols, mse = A.best_match(x_hat, x)
    assert cols.tolist() == [1, 0]
    np.testing.assert_allclose(mse, [0.02, 0.02], rtol=1e-6)
    np.testing.assert_allclose(A.psnr(np.array([0.01]), 2.0), [10 * np.log10(400)])
    assert A.is_success(np.array([0.01, 0.01]), np.array([True, False]), 2.0, 20.0).tolist() == [True, False]
