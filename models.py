"""Victim architectures (docs/design.md §5): CIFAR variants of resnet18, vgg16bn and densenet121, and columnfc.

Every model is re-initialised as the artifact's BaseModel does: Xavier-normal Conv/Linear weights with zero
bias, and weight 1 / bias 0 for every *Norm layer. Attack models live with their attacks in attackers/.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.errors import UserError


def init_weights(model: nn.Module) -> nn.Module:
    """The artifact's BaseModel init, applied after construction so torchvision's own init is replaced."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif "Norm" in type(m).__name__ and getattr(m, "weight", None) is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def resnet18(num_cls: int, input_dim: int) -> nn.Module:
    """huyvnphan/PyTorch_CIFAR10 ResNet18: 3x3/1 stem, the 3x3/2 maxpool kept (32→16→16→8→4→2).

    The adaptive average pool lets the same network take 8x8 digits (8→4→4→2→1→1).
    """
    from torchvision.models import resnet18 as tv_resnet18  # here: importing torchvision costs ~2.5 s

    model = tv_resnet18(num_classes=num_cls)
    model.conv1 = nn.Conv2d(input_dim, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return model


def densenet121(num_cls: int, input_dim: int) -> nn.Module:
    """DenseNet-121 (growth 32, blocks 6/12/24/16, 64 stem features, bn_size 4) with a 3x3/1 stem conv."""
    from torchvision.models import DenseNet

    model = DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                     num_classes=num_cls)
    model.features.conv0 = nn.Conv2d(input_dim, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return model


VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                     512, 512, 512, "M", 512, 512, 512, "M")


class VGG16BN(nn.Module):
    """VGG16 with BatchNorm (config D), pooled to 1x1, and the 512-4096-4096-C classifier of the artifact."""

    def __init__(self, num_cls: int, input_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_dim
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.BatchNorm2d(int(v)),
                           nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(512, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, num_cls))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def columnfc(num_cls: int, input_dim: int) -> nn.Module:
    """The artifact's tabular model d-256-128-C with Dropout 0.1; Flatten lets it read 1x8x8 digits too."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(input_dim, 256), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(128, num_cls))


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet18": resnet18,
    "vgg16bn": VGG16BN,
    "densenet121": densenet121,
    "columnfc": columnfc,
}


def build_model(name: str, num_cls: int, input_dim: int) -> nn.Module:
    """A freshly initialised victim model; `input_dim` is channels for the CNNs, features for columnfc."""
    if name not in MODELS:
        raise UserError(f"unknown model_name '{name}'", "valid: " + ", ".join(MODELS))
    return init_weights(MODELS[name](num_cls, input_dim))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
