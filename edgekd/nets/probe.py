"""Check, before any training, that every model of a recipe can be built and run on its input.

A student whose input is too small for its layers, a negative width or a zero stride
fails here with the recipe key, not after the teacher has trained for twenty minutes.
"""
from __future__ import annotations

from typing import Any

import torch

from edgekd.errors import ConfigError

#: at most this many bytes for one profiled input batch (the inputs alone)
MAX_PROFILE_INPUT_BYTES = 2 << 30


def probe_net(arch: str, params: dict[str, Any], *, num_classes: int, in_channels: int,
              input_size: int | tuple[int, int], where: str) -> torch.nn.Module:
    """Build ``arch`` and run one zero image of ``input_size`` through it; a clear error if it cannot."""
    from edgekd.nets import create_net

    try:
        net = create_net(arch, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                         params=params, where=where)
    except (RuntimeError, ZeroDivisionError, OverflowError) as exc:
        raise ConfigError(f"cannot build '{arch}' with params {params}: {_first_line(exc)}", where=where,
                          fix="use positive widths, kernels and strides (see `edgekd list`)") from None
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(1, in_channels, h, w))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"'{arch}' cannot run on a {in_channels}×{h}×{w} input: "
                          f"{_first_line(exc)}", where=where,
                          fix="use a larger input size (data.student_size / data.teacher_size) or fewer "
                              "downsampling layers (pooling, strides)") from None
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ConfigError(f"'{arch}' outputs shape {tuple(out.shape)}, expected (1, {num_classes}) logits",
                          where=where, fix="the model must end in one logit per class")
    return net


def check_profile_batches(batch_sizes: list[int], sample_shape: tuple[int, ...], where: str) -> None:
    """Refuse a profile batch whose inputs alone would not fit in memory, before anything is trained."""
    per_sample = 4 * int(torch.Size(sample_shape).numel())
    worst = max(batch_sizes)
    if worst * per_sample > MAX_PROFILE_INPUT_BYTES:
        raise ConfigError(f"batch {worst:,} of {'×'.join(map(str, sample_shape))} inputs needs "
                          f"{worst * per_sample / 2**30:,.1f} GiB for the inputs alone", where=where,
                          fix=f"use batch sizes up to {MAX_PROFILE_INPUT_BYTES // per_sample:,}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
