"""A torchvision-style ResNet (``torchvision.models.resnet``, the names timm's ResNet keeps too):
``conv1``/``bn1`` stem, ``layer1..4`` of ``BasicBlock`` (``conv1/bn1/conv2/bn2``) or
``Bottleneck`` (``conv1..3``/``bn1..3``, stride in the 3x3: "ResNet v1.5"), a ``downsample``
``Sequential(conv1x1, bn)`` where the shape changes, and an ``fc`` head.

Computes what transformers' ``ResNetForImageClassification`` computes (same stem, stride
placement and shortcut rule); only the names and the module nesting differ. The widths are
parameters so a test can build it tiny (torchvision fixes them at 64..512).
"""
from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv(cout, cout, 3), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, cout: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        width = cout // self.expansion
        self.conv1, self.bn1 = _conv(cin, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, cout, 1), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    def __init__(self, block: str = "basic", depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem: int = 8,
                 num_classes: int = 5):
        super().__init__()
        kind = BasicBlock if block == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = stem
        for s, (depth, cout) in enumerate(zip(depths, widths), start=1):
            stride = 1 if s == 1 else 2
            blocks = []
            for b in range(depth):
                st = stride if b == 0 else 1
                down = None
                if st != 1 or cin != cout:
                    down = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=st, bias=False), nn.BatchNorm2d(cout))
                blocks.append(kind(cin, cout, st, down))
                cin = cout
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(1, 5):
            x = getattr(self, f"layer{s}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(**kwargs) -> ResNet:
    """Model-definition entry point (``tests.zoo.resnet:resnet``)."""
    return ResNet(**kwargs)
