"""Tiny students for FPGA and edge targets."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from edgekd.nets.registry import input_hw, register_net


def _conv_out(size: int, kernel: int, stride: int = 1) -> int:
    return (size - kernel) // stride + 1


def _pair(v, what: str) -> tuple[int, int]:
    """An int (both stages) or a list of two ints (per stage), each ≥ 1."""
    vals = (v, v) if isinstance(v, int) and not isinstance(v, bool) else tuple(v) if isinstance(v, (list, tuple)) else ()
    if len(vals) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in vals):
        raise ValueError(f"{what} must be a positive int or a list of two positive ints, got {v!r}")
    return vals


@dataclass(frozen=True)
class CnnShape:
    """The two conv stages of the cellsort CNN family and the size they leave for the classifier."""

    channels: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pool: tuple[int, int]
    pool_in: int
    out_hw: tuple[int, int]

    @property
    def features(self) -> int:
        return self.channels[1] * self.out_hw[0] * self.out_hw[1]


def cnn_shape(input_size, channels=16, kernel=3, stride=1, pool=2, pool_in: int = 1) -> CnnShape:
    """Validate the family's parameters and compute the classifier's input size."""
    ch, ks, st, pl = (_pair(channels, "channels"), _pair(kernel, "kernel"), _pair(stride, "stride"),
                      _pair(pool, "pool"))
    if not isinstance(pool_in, int) or isinstance(pool_in, bool) or pool_in < 1:
        raise ValueError(f"pool_in must be a positive int, got {pool_in!r}")
    hw = []
    for n in input_hw(input_size):
        n //= pool_in
        for k, s_, p in zip(ks, st, pl):
            n = _conv_out(n, k, s_) // p if n >= k else 0
        hw.append(n)
    if min(hw) < 1:
        raise ValueError(f"input_size {input_size} is too small for pool_in {pool_in}, kernels {ks}, strides {st} "
                         f"and pools {pl}")
    return CnnShape(ch, ks, st, pl, pool_in, (hw[0], hw[1]))


@register_net("cellsort-cnn", role="student")
def cellsort_cnn(num_classes: int, in_channels: int, input_size: int, channels=16, kernel=3, stride=1, pool=2,
                 pool_in: int = 1, bias: bool = True) -> nn.Module:
    """The FPGA cell-sorting study's student: 2×(Conv valid, ReLU, MaxPool) + Linear.

    5,682 parameters for 2 classes at 1×48×48 with the defaults (16 channels, 3×3, stride 1,
    pool 2). ``channels``/``kernel``/``stride``/``pool`` take an int or one value per stage;
    ``pool_in`` > 1 average-pools the input first (an early-downsampling front end).
    Outputs logits (no softmax inside).
    """
    sh = cnn_shape(input_size, channels, kernel, stride, pool, pool_in)
    layers: list[nn.Module] = [nn.AvgPool2d(pool_in)] if pool_in > 1 else []
    cin = in_channels
    for c, k, s_, p in zip(sh.channels, sh.kernel, sh.stride, sh.pool):
        layers += [nn.Conv2d(cin, c, k, stride=s_, bias=bias), nn.ReLU(), nn.MaxPool2d(p) if p > 1 else nn.Identity()]
        cin = c
    layers += [nn.Flatten(), nn.Linear(sh.features, num_classes, bias=bias)]
    return nn.Sequential(*layers)


@register_net("dwsep-cnn", role="student")
def dwsep_cnn(num_classes: int, in_channels: int, input_size: int, width: int = 16, blocks: int = 2,
              stem_stride: int = 2) -> nn.Module:
    """A depthwise-separable CNN (MobileNet-style): a 3×3 stem, ``blocks`` × (depthwise 3×3,
    pointwise 1×1, ReLU, MaxPool 2), global average pool, Linear. For CPU/GPU targets (the
    fixed-point FPGA paths do not implement grouped convolutions)."""
    h, w = input_hw(input_size)
    if min(h, w) // stem_stride // (2 ** blocks) < 1 or width < 1 or blocks < 1 or stem_stride < 1:
        raise ValueError(f"input_size {input_size} is too small for stem_stride {stem_stride} and {blocks} blocks "
                         f"(or width/blocks/stem_stride < 1)")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, width, 1), nn.ReLU(),
                   nn.MaxPool2d(2)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)


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
