"""Start a student from another trained student of the same shape (QAT fine-tuning from float).

A quantization-aware student trained from scratch loses several points to its float twin;
started from the trained float student and fine-tuned, it keeps most of them. This module

* folds BatchNorm into the preceding convolution / linear layer (the firmware has no
  BatchNorm; :func:`fold_batchnorm`),
* copies the weight layers in order (convolutions and linear layers, float or Brevitas,
  matched by position and checked by shape; :func:`transfer_weights`), and
* runs the activation quantizers' statistics collection on real training images, so
  their power-of-two scales start where the float activations are
  (:func:`calibrate_activations`) instead of being learned during the first 300 steps.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from edgekd.errors import EdgekdError

_WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)  # Brevitas QuantConv2d / QuantLinear subclass these
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class TransferReport:
    layers: list[tuple[str, str]] = field(default_factory=list)  # (source layer, destination layer)
    folded_batchnorms: list[str] = field(default_factory=list)
    dropped_biases: list[str] = field(default_factory=list)  # destination has no bias (fixed-point firmware)
    calibration_batches: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.layers)} layers copied"]
        if self.folded_batchnorms:
            parts.append(f"BatchNorm folded into {', '.join(self.folded_batchnorms)}")
        if self.dropped_biases:
            parts.append(f"biases of {', '.join(self.dropped_biases)} dropped (the firmware has none)")
        if self.calibration_batches:
            parts.append(f"activation scales calibrated on {self.calibration_batches} batches")
        return "; ".join(parts)


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, _WEIGHT_LAYERS + _BN):
            out.append((name, mod))
    return out


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` with every BatchNorm folded into the weight layer just before it.

    "Just before" is registration order, which is execution order for the Sequential-style
    students edgekd builds; a BatchNorm with no weight layer before it is an error.
    """
    model = copy.deepcopy(model).eval()
    folded: list[str] = []
    prev: tuple[str, nn.Module] | None = None
    for name, mod in _leaves(model):
        if isinstance(mod, _BN):
            if prev is None or mod.num_features != prev[1].weight.shape[0]:
                raise EdgekdError("BatchNorm without a matching convolution/linear layer before it", where=name,
                                  fix="fold it by hand, or put it directly after a Conv2d/Linear")
            _fold_into(prev[1], mod)
            _replace(model, name, nn.Identity())
            folded.append(prev[0])
            prev = None
        else:
            prev = (name, mod)
    return model, folded


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    layer.weight.mul_(scale.reshape(-1, *([1] * (layer.weight.ndim - 1))))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(shift)
    layer.bias = nn.Parameter(bias * scale + shift)


def _replace(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new)


@torch.no_grad()
def transfer_weights(src: nn.Module, dst: nn.Module, *, where: str = "init") -> TransferReport:
    """Copy ``src``'s weight layers (BatchNorm folded) into ``dst``'s, in order, shapes checked."""
    src, folded = fold_batchnorm(src)
    s_layers = [(n, m) for n, m in _leaves(src) if isinstance(m, _WEIGHT_LAYERS)]
    d_layers = [(n, m) for n, m in _leaves(dst) if isinstance(m, _WEIGHT_LAYERS)]
    if len(s_layers) != len(d_layers):
        raise EdgekdError(f"the source has {len(s_layers)} convolution/linear layers, the student "
                          f"{len(d_layers)}", where=where,
                          fix="start a student only from a trained student of the same shape "
                              "(e.g. cellsort-cnn-q from cellsort-cnn with the same params)")
    rep = TransferReport(folded_batchnorms=folded)
    for (sn, sm), (dn, dm) in zip(s_layers, d_layers):
        if tuple(sm.weight.shape) != tuple(dm.weight.shape):
            raise EdgekdError(f"layer '{dn}' has weight shape {tuple(dm.weight.shape)}, the source's '{sn}' "
                              f"{tuple(sm.weight.shape)}", where=where, fix="use the same channels/kernel/hidden")
        dm.weight.copy_(sm.weight)
        if dm.bias is not None:
            dm.bias.copy_(sm.bias if sm.bias is not None else torch.zeros_like(dm.bias))
        elif sm.bias is not None and bool(sm.bias.abs().max() > 0):
            rep.dropped_biases.append(dn)
        rep.layers.append((sn, dn))
    return rep


def _stats_steps(model: nn.Module) -> int:
    """The most statistics-collection steps any activation quantizer still wants (0: none)."""
    steps = 0
    for mod in model.modules():  # brevitas' ParameterFromRuntimeStatsScaling
        need = getattr(mod, "collect_stats_steps", None)
        counter = getattr(mod, "counter", None)
        if isinstance(need, int) and isinstance(counter, int) and counter <= need:
            steps = max(steps, need - counter + 1)
    return steps


@torch.no_grad()
def calibrate_activations(model: nn.Module, images: torch.Tensor, *, batch_size: int = 64,
                          seed: int = 0, steps: int | None = None) -> int:
    """Run Brevitas' runtime-statistics collection on ``images`` (train mode, no gradients).

    ``steps`` shortens the quantizers' collection (Brevitas' default: 300 batches) to that
    many batches. Returns the number of batches run (0 when the model has no such quantizers).
    """
    if steps is not None:
        for mod in model.modules():
            if isinstance(getattr(mod, "collect_stats_steps", None), int) and getattr(mod, "counter", 0) == 0:
                mod.collect_stats_steps = max(int(steps) - 1, 1)
    steps = _stats_steps(model)
    if steps == 0 or len(images) == 0:
        return 0
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=g)
        model(images[idx])
    model.train(was_training)
    return steps


def init_from(dst: nn.Module, src: nn.Module, calibration_images: torch.Tensor | None = None, *,
              where: str = "init", seed: int = 0, calibration_steps: int | None = None) -> TransferReport:
    """Start ``dst`` from trained ``src``: weights copied, then activation scales calibrated."""
    rep = transfer_weights(src, dst, where=where)
    if calibration_images is not None:
        rep.calibration_batches = calibrate_activations(dst, calibration_images, seed=seed, steps=calibration_steps)
    return rep
