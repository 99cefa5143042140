"""Architectures: the artifact's parameter counts and init, and the 8x8 digits inputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.errors import UserError
from models import build_model, count_parameters


def test_resnet18_parameter_count_matches_closed_form() -> None:
    # conv1 3*64*9; per BasicBlock two 3x3 convs + 2 BN (2 params per channel); downsample 1x1 conv + BN.
    def block(cin: int, cout: int, down: bool) -> int:
        n = cin * cout * 9 + cout * cout * 9 + 4 * cout
        return n + (cin * cout + 2 * cout if down else 0)
    expected = 3 * 64 * 9 + 2 * 64
    for cin, cout in ((64, 64), (64, 128), (128, 256), (256, 512)):
        expected += block(cin, cout, cin != cout) + block(cout, cout, False)
    expected += 512 * 10 + 10
    assert expected == 11_173_962  # the artifact's 11.17M
    assert count_parameters(build_model("resnet18", 10, 3)) == expected


def test_vgg16bn_parameter_count() -> None:
    cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    conv, cin = 0, 3
    for c in cfg:
        conv += cin * c * 9 + c + 2 * c
        cin = c
    linear = 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10
    assert round(conv / 1e6, 1) == 14.7 and round(linear / 1e6, 1) == 18.9  # reference §3
    assert count_parameters(build_model("vgg16bn", 10, 3)) == conv + linear


def test_densenet121_parameter_count_and_layers() -> None:
    model = build_model("densenet121", 10, 3)
    assert round(count_parameters(model) / 1e6, 2) == 6.96
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 120
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 121


@pytest.mark.parametrize("name, dim, shape", [("resnet18", 1, (2, 1, 8, 8)), ("columnfc", 64, (2, 1, 8, 8)),
                                              ("resnet18", 3, (2, 3, 32, 32)), ("columnfc", 600, (2, 600))])
def test_forward_shapes(name: str, dim: int, shape: tuple[int, ...]) -> None:
    assert build_model(name, 7, dim)(torch.randn(*shape)).shape == (2, 7)


def test_xavier_init_and_norm_init() -> None:
    torch.manual_seed(0)
    model = build_model("columnfc", 10, 600)
    first = model[1]
    # Xavier normal: std = sqrt(2 / (fan_in + fan_out)) = sqrt(2 / 856)
    assert abs(first.weight.std().item() - (2 / 856) ** 0.5) < 0.002
    assert torch.all(first.bias == 0)
    bn = build_model("resnet18", 10, 3).bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_unknown_model_is_a_user_error() -> None:
    with pytest.raises(UserError, match="valid: resnet18, vgg16bn, densenet121, columnfc"):
        build_model("vgg16", 10, 3)
