"""ADRA (§3, eqs. 4-5): rebuild training inputs from one architecture update Delta alpha = alpha_t2 - alpha_t1.

The victim takes one SGD step on the architecture with a batch of B samples: Delta alpha = -eta * grad_alpha L.
The attacker holds a supernet of the same space whose weights it cannot see, so they are theta ~ U(-0.25, 0.25)
(Appendix A); `attacker_theta = "same"` gives it the victim's draw of those weights (the step is taken at the
search's start, from that initialisation), "independent" a fresh draw. It optimises B dummy inputs and soft
labels so that their mean architecture gradient matches -Delta alpha / eta in squared L2 (normalised by
||Delta alpha||^2), differentiating the gradient again through the supernet (create_graph), with L-BFGS as DLG.

Scored per true sample against its best match in the batch (optimal one-to-one assignment, scipy):
MSE in the normalised data scale and PSNR over the pool's value range. Success (our precise "recognisable"):
PSNR >= psnr_threshold dB AND a classifier trained on real data (columnfc on D^theta) gives the true class.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from nas.search import arch_gradient
from nas.supernet import SpaceConfig, SuperNet, uniform_weights_


@dataclass(frozen=True)
class AdraConfig:
    iterations: int = 100       # L-BFGS iterations per restart
    restarts: int = 2           # random dummy initialisations per attacked batch
    arch_lr: float = 0.1        # the victim's architecture SGD step eta
    theta_bound: float = 0.25   # theta ~ U(-bound, bound)
    attacker_theta: str = "same"
    grad_noise: float = 0.0     # defense (DP_SGD of §5): std of Gaussian noise added to Delta alpha
    psnr_threshold: float = 15.0


def make_supernet(space: SpaceConfig, in_ch: int, num_cls: int, bound: float, seed: int) -> SuperNet:
    """A supernet with theta ~ U(-bound, bound) and the search's initial alpha (a seeded draw)."""
    torch.manual_seed(seed)
    net = SuperNet(space, in_ch, num_cls)
    uniform_weights_(net, bound, torch.Generator().manual_seed(seed))
    return net.eval()


def victim_update(net: SuperNet, x: torch.Tensor, y: torch.Tensor, eta: float) -> torch.Tensor:
    """Delta alpha of one SGD architecture step on the batch (x, y): -eta * grad."""
    return -eta * arch_gradient(net, x, y).detach()


def reconstruct(net: SuperNet, delta: torch.Tensor, eta: float, shape: tuple[int, ...], num_cls: int,
                iterations: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Eq. (5): dummy inputs X' (shape = (B, C, H, W)) and soft labels Y' whose gradient matches -delta/eta."""
    target = -delta / eta
    scale = (target * target).sum().clamp_min(1e-20)
    xd = (0.5 * torch.randn(shape, generator=generator)).requires_grad_(True)
    yd = torch.zeros(shape[0], num_cls).requires_grad_(True)
    opt = torch.optim.LBFGS([xd, yd], lr=1, max_iter=iterations, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        g = arch_gradient(net, xd, F.softmax(yd, 1), create_graph=True, soft=True)
        loss = ((g - target) ** 2).sum() / scale
        loss.backward()
        return loss

    opt.step(closure)
    g = arch_gradient(net, xd.detach(), F.softmax(yd.detach(), 1), soft=True)  # autograd.grad needs grad mode
    final = float(((g - target) ** 2).sum() / scale)
    return xd.detach(), F.softmax(yd.detach(), 1), final


def update_rank(net: SuperNet, x: torch.Tensor, y: torch.Tensor) -> int:
    """Rank of the Jacobian of the architecture gradient with respect to the batch's pixels, at the batch the
    victim stepped on, in float64 (float32's rounding hides singular values near its epsilon).

    Delta alpha is |alpha| + |beta| numbers, but each softmax row loses one degree of freedom and edges the
    mask hides none; when this rank is below the pixel count (B x C x H x W), the map from pixels to Delta
    alpha is not injective even locally: a manifold of other batches gives the same update, so no optimiser
    can tell the true one from them (P 4 on 8x8 digits: rank 31 for 64 pixels).
    """
    net64 = copy.deepcopy(net).double()
    jac = torch.autograd.functional.jacobian(lambda v: arch_gradient(net64, v, y, create_graph=True), x.double())
    return int(torch.linalg.matrix_rank(jac.reshape(-1, x.numel())))


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Images average-pooled by `factor` (1: unchanged): fewer pixels for the same architecture update."""
    return F.avg_pool2d(x, factor) if factor > 1 else x


def best_match(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per true sample, (index of its reconstruction, MSE) under the one-to-one assignment of least total MSE."""
    cost = ((x[:, None] - x_hat[None]) ** 2).flatten(2).mean(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    order = np.argsort(rows)
    return cols[order], cost[rows, cols][order]


def psnr(mse: np.ndarray, value_range: float) -> np.ndarray:
    return 10.0 * np.log10(value_range ** 2 / np.maximum(mse, 1e-12))


def is_success(mse: np.ndarray, recognised: np.ndarray, value_range: float, threshold: float) -> np.ndarray:
    """The documented criterion: PSNR >= threshold and the real-data classifier names the true class."""
    return (psnr(mse, value_range) >= threshold) & recognised
