"""Teachers: compact ResNets that train on a couple of CPU cores in minutes."""
from __future__ import annotations

import torch
import torch.nn as nn

from edgekd.nets.registry import register_net


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetMini(nn.Module):
    """Stem → stages of BasicBlocks → global average pool (``features``) → ``fc``."""

    def __init__(self, num_classes: int, in_channels: int, widths: tuple[int, ...],
                 blocks: tuple[int, ...], stem_width: int, stem_stride: int, stage_strides: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
        )
        stages, cin = [], stem_width
        for w, n, stride in zip(widths, blocks, stage_strides):
            stage = [BasicBlock(cin, w, stride)] + [BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features = nn.Flatten()  # penultimate features: hook "features" for feature KD
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.pool(self.stages(self.stem(x)))))


@register_net("resnet-mini", role="teacher")
def resnet_mini(num_classes: int, in_channels: int, input_size: int,
                widths: tuple[int, ...] | list[int] = (24, 48, 96), blocks: tuple[int, ...] | list[int] = (1, 1, 1),
                stem_width: int = 16, stem_stride: int = 1,
                strides: tuple[int, ...] | list[int] | None = None) -> nn.Module:
    """Compact ResNet for 64×64 grayscale cells: full-resolution stem, then strided stages.

    By default the stem runs at the input resolution and each stage halves it; a strided
    stem (``stem_stride: 2``, ``strides: [1, 2, 2]``) trades that for speed.
    """
    widths, blocks = tuple(widths), tuple(blocks)
    if len(widths) != len(blocks) or not widths:
        raise ValueError("widths and blocks must be non-empty lists of the same length")
    strides = tuple(strides) if strides is not None else (2,) * len(widths)
    if len(strides) != len(widths):
        raise ValueError("strides must have one entry per stage")
    return ResNetMini(num_classes, in_channels, widths, blocks, stem_width, stem_stride, strides)
