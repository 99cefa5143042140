"""The paper's candidate operations (Appendix A) and the DARTS mixed operation.

Every operation keeps the shape (C, H, W) of its input, so a node can mix them. Convolutions are
activation -> conv (-> BatchNorm without affine parameters, as DARTS searches), the activation coming first
as in DARTS' ReLUConvBN. One depthwise-separable stage per operation (DARTS stacks two for sep_conv): with
P up to 8 on a 2-core CPU, the second stage doubled the search time for no measured gain on digits.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.errors import UserError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation '{name}'", "valid: " + ", ".join(ACTIVATIONS))
    return ACTIVATIONS[name]()


class Zero(nn.Module):
    """The 'none' edge: contributes nothing, yet keeps the graph (its alpha still gets a gradient via softmax)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


class SepConv(nn.Sequential):
    """activation, depthwise k x k (dilation d), pointwise 1x1, optional BatchNorm; 'same' padding."""

    def __init__(self, c: int, k: int, dilation: int, act: str, bn: bool) -> None:
        pad = dilation * (k - 1) // 2
        layers = [make_activation(act), nn.Conv2d(c, c, k, padding=pad, dilation=dilation, groups=c),
                  nn.Conv2d(c, c, 1)]
        super().__init__(*layers, *([nn.BatchNorm2d(c, affine=False)] if bn else []))


def _pool(kind: str, c: int, bn: bool) -> nn.Module:
    pool = nn.MaxPool2d(3, 1, 1) if kind == "max" else nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if bn else pool


OPS: dict[str, Callable[[int, str, bool], nn.Module]] = {
    "sep_conv_3x3": lambda c, act, bn: SepConv(c, 3, 1, act, bn),
    "sep_conv_5x5": lambda c, act, bn: SepConv(c, 5, 1, act, bn),
    "dil_conv_3x3": lambda c, act, bn: SepConv(c, 3, 2, act, bn),
    "dil_conv_5x5": lambda c, act, bn: SepConv(c, 5, 2, act, bn),
    "max_pool_3x3": lambda c, act, bn: _pool("max", c, bn),
    "avg_pool_3x3": lambda c, act, bn: _pool("avg", c, bn),
    "skip_connect": lambda c, act, bn: nn.Identity(),
    "none": lambda c, act, bn: Zero(),
}
PRIMITIVES = tuple(OPS)


def make_op(name: str, c: int, act: str, bn: bool) -> nn.Module:
    if name not in OPS:
        raise UserError(f"unknown operation '{name}'", "valid: " + ", ".join(OPS))
    return OPS[name](c, act, bn)


class MixedOp(nn.Module):
    """DARTS' continuous relaxation: sum_i w_i * op_i(x), with w = softmax(alpha) given by the caller."""

    def __init__(self, c: int, primitives: tuple[str, ...], act: str, bn: bool) -> None:
        super().__init__()
        self.primitives = primitives
        self.ops = nn.ModuleList(make_op(p, c, act, bn) for p in primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))  # type: ignore[return-value]
