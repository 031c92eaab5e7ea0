"""Tiny students for FPGA and edge targets."""
from __future__ import annotations

import torch.nn as nn

from edgekd.nets.registry import input_hw, register_net


def _conv_out(size: int, kernel: int) -> int:
    return size - kernel + 1


@register_net("cellsort-cnn", role="student")
def cellsort_cnn(num_classes: int, in_channels: int, input_size: int,
                 channels: int = 16, kernel: int = 3) -> nn.Module:
    """The FPGA cell-sorting study's student: 2×(Conv3×3 valid, ReLU, MaxPool2) + Linear.

    5,682 parameters for 2 classes at 1×48×48. Outputs logits (no softmax inside).
    """
    h, w = ((_conv_out(_conv_out(n, kernel) // 2, kernel) // 2) for n in input_hw(input_size))
    if min(h, w) < 1:
        raise ValueError(f"input_size {input_size} is too small for two conv+pool stages")
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, kernel),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * h * w, num_classes),
    )


@register_net("mlp", role="student")
def mlp(num_classes: int, in_channels: int, input_size: int,
        hidden: int = 32, pool: int = 4) -> nn.Module:
    """A small MLP on an average-pooled image (pool 4: 48×48 → 12×12 → hidden → C)."""
    hh, ww = input_hw(input_size)
    if pool < 1 or hh % pool or ww % pool:
        raise ValueError(f"pool {pool} must divide input_size {input_size}")
    n_in = in_channels * (hh // pool) * (ww // pool)
    layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
    layers += [nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)
