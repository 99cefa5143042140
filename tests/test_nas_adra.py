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


def test_update_rank_equals_the_rank_of_a_finite_difference_jacobian() -> None:
    # An independent route to the Jacobian of Delta alpha w.r.t. the pixels: central differences in float64.
    from nas.search import arch_gradient

    torch.set_num_threads(1)
    space = SpaceConfig(P=3, C=2, activation="tanh", batchnorm=False)
    net = A.make_supernet(space, 1, 4, 0.25, seed=3)
    x, y = torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(4)) * 2 - 1, torch.tensor([1])
    net64, x64 = net.double(), x.double()
    h, cols = 1e-5, []
    for i in range(x.numel()):
        e = torch.zeros(x.numel(), dtype=torch.double)
        e[i] = h
        e = e.view_as(x64)
        cols.append(((arch_gradient(net64, x64 + e, y) - arch_gradient(net64, x64 - e, y)) / (2 * h)).detach())
    jac = torch.stack(cols, 1).numpy()
    s = np.linalg.svd(jac, compute_uv=False)
    fd_rank = int((s > s[0] * 1e-6).sum())
    rank = A.update_rank(A.make_supernet(space, 1, 4, 0.25, seed=3), x, y)
    assert rank == fd_rank
    # Each softmax row loses one degree of freedom and beta's row p has p + 1 live entries:
    # (8 - 1) * 3 + (0 + 1 + 2) = 24 >= 9 pixels, and the map is locally injective here.
    assert rank == 9


def test_the_quick_update_rank_is_short_of_the_pixels_and_pooling_makes_it_identifiable() -> None:
    # The audit's number: P 4 on 8x8 digits gives rank 31 for 64 pixels, so ADRA cannot succeed there by
    # construction; pooled to 4x4 (the quick slice's downsample 2) the rank reaches the 16 pixels.
    from pathlib import Path

    import torch.nn.functional as F

    import datasets

    torch.set_num_threads(1)
    pool = datasets.load_pool("digits", Path("data/datasets"), input_dim=1, num_cls=10)
    net = A.make_supernet(SpaceConfig(P=4, C=4, activation="elu", batchnorm=False), 1, 10, 0.25, seed=27)
    x, y = pool.x[:1], pool.y[:1]
    assert A.update_rank(net, x, y) == 31
    assert A.update_rank(net, F.avg_pool2d(x, 2), y) == 16
