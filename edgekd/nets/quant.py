"""Quantization-aware (Brevitas) twins of the registry's students.

Every scale is a power of two (``*PerTensorFixedPoint`` quantizers), so the trained
model is a fixed-point circuit: the FPGA firmware and :mod:`edgekd.export.intref` can
compute it exactly. ``bias`` chooses the layers' biases:

- ``False`` (default): none;
- ``"quantized"``: a bias rounded onto each layer's accumulator grid (Brevitas ``Int32Bias``:
  scale = input scale × weight scale, a power of two), so the firmware adds an exact integer;
  supported by the bit-exact hls4ml and RTL exports;
- ``True`` / ``"float"``: a float bias, for float targets (ONNX/TensorRT) only; refused by
  the bit-exact FPGA export (not on the accumulator's grid).

The network's input is the normalised image ``(pixel/255 - mean)/std`` as in every
edgekd student; the first quantizer (``inp``) rounds it onto a signed fixed-point grid.
That grid is the firmware's input contract: the export writes ``pixel → integer code``
into the artifact's metadata.

Layer names (keys of ``layer_bits``): ``inp`` (input), then per layer, e.g. ``conv1``,
``conv2``, ``fc`` for ``cellsort-cnn-q`` and ``fc1``, ``fc2`` for ``mlp-q``. A value is
an int (weights and activations) or ``{"weight": w, "act": a}``.

For the QCDQ ONNX path (TensorRT), ``weight_quant="int8-per-channel"`` and
``act_signed=True`` give per-channel INT8 weights and signed INT8 activations.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from edgekd.errors import ToolMissingError
from edgekd.nets.registry import input_hw, register_net

MIN_BITS, MAX_BITS = 2, 16
WEIGHT_QUANTS = ("fixed-point", "int8-per-channel")


def _brevitas():
    try:
        import brevitas.nn as qnn
        from brevitas import quant as bq
    except ImportError:
        raise ToolMissingError("brevitas is not installed; quantization-aware students need it",
                               where="nets.quant", fix="pip install brevitas==0.13.4") from None
    return qnn, bq


@dataclass(frozen=True)
class LayerBits:
    weight: int
    act: int


def resolve_bits(names: list[str], weight_bits: int, act_bits: int, input_bits: int,
                 layer_bits: dict[str, Any] | None) -> dict[str, LayerBits]:
    """Per-layer bit widths: defaults, then ``layer_bits`` overrides; validated."""
    out = {"inp": LayerBits(input_bits, input_bits)}
    out.update({n: LayerBits(weight_bits, act_bits) for n in names})
    for name, spec in (layer_bits or {}).items():
        if name not in out:
            raise ValueError(f"layer_bits: unknown layer '{name}' (layers: {list(out)})")
        if isinstance(spec, int) and not isinstance(spec, bool):
            out[name] = LayerBits(spec, spec)
        elif isinstance(spec, dict) and set(spec) <= {"weight", "act"}:
            out[name] = LayerBits(int(spec.get("weight", out[name].weight)), int(spec.get("act", out[name].act)))
        else:
            raise ValueError(f"layer_bits['{name}'] must be an int or {{weight: w, act: a}}, got {spec!r}")
    for name, lb in out.items():
        for kind, b in (("weight", lb.weight), ("act", lb.act)):
            if not MIN_BITS <= b <= MAX_BITS:
                raise ValueError(f"layer '{name}': {kind} bits {b} outside [{MIN_BITS}, {MAX_BITS}]")
    return out


class _Builder:
    """Makes Brevitas layers with the chosen quantizers; one place for the quantizer policy."""

    def __init__(self, bits: dict[str, LayerBits], weight_quant: str, act_signed: bool, bias: bool | str):
        if not (isinstance(bias, bool) or bias in ("float", "quantized")):
            raise ValueError(f"bias must be false, 'quantized' or 'float' (true), got {bias!r}")
        if weight_quant not in WEIGHT_QUANTS:
            raise ValueError(f"weight_quant must be one of {WEIGHT_QUANTS}, got {weight_quant!r}")
        if weight_quant == "int8-per-channel" and any(b.weight != 8 for k, b in bits.items() if k != "inp"):
            raise ValueError("weight_quant 'int8-per-channel' needs 8-bit weights everywhere")
        self.qnn, self.bq = _brevitas()
        self.bits, self.weight_quant, self.act_signed, self.bias = bits, weight_quant, act_signed, bias

    def _wq(self):
        if self.weight_quant == "int8-per-channel":
            # float per-channel scales: for INT8 QCDQ (TensorRT), not for the fixed-point FPGA path
            return self.bq.Int8WeightPerChannelFloat
        return self.bq.Int8WeightPerTensorFixedPoint

    def _bias_kw(self) -> dict[str, Any]:
        if self.bias == "quantized":
            # on the accumulator's grid (input scale × weight scale): an exact integer in firmware
            return {"bias": True, "bias_quant": self.bq.Int32Bias}
        return {"bias": bool(self.bias), "bias_quant": None}

    def input(self) -> nn.Module:
        b = self.bits["inp"].act
        return self.qnn.QuantIdentity(act_quant=self.bq.Int8ActPerTensorFixedPoint, bit_width=b,
                                      return_quant_tensor=True)

    def conv(self, name: str, cin: int, cout: int, k: int, stride: int = 1) -> nn.Module:
        return self.qnn.QuantConv2d(cin, cout, k, stride=stride, weight_quant=self._wq(),
                                    weight_bit_width=self.bits[name].weight,
                                    return_quant_tensor=False, **self._bias_kw())

    def linear(self, name: str, nin: int, nout: int) -> nn.Module:
        return self.qnn.QuantLinear(nin, nout, weight_quant=self._wq(), weight_bit_width=self.bits[name].weight,
                                    return_quant_tensor=False, **self._bias_kw())

    def relu(self, name: str) -> nn.Module:
        b = self.bits[name].act
        if self.act_signed:
            # ReLU then a signed quantizer: the grid TensorRT's symmetric INT8 expects
            return nn.Sequential(nn.ReLU(), self.qnn.QuantIdentity(act_quant=self.bq.Int8ActPerTensorFixedPoint,
                                                                   bit_width=b, return_quant_tensor=True))
        return self.qnn.QuantReLU(act_quant=self.bq.Uint8ActPerTensorFixedPoint, bit_width=b,
                                  return_quant_tensor=True)


class QuantStudent(nn.Sequential):
    """A Sequential of Brevitas layers; ``bits`` records each layer's widths for reports."""

    #: its firmware is integer arithmetic (targets ask this, never the class name)
    integer_firmware = True

    def __init__(self, layers: dict[str, nn.Module], bits: dict[str, LayerBits], *, arch: str,
                 float_pre: nn.Module | None = None):
        super().__init__()
        if float_pre is not None:
            self.add_module("pre", float_pre)
        for k, v in layers.items():
            self.add_module(k, v)
        self.bits = bits
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        # the trainer and losses want a plain tensor, not a QuantTensor
        return out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out


@register_net("cellsort-cnn-q", role="student")
def cellsort_cnn_q(num_classes: int, in_channels: int, input_size: int, channels=16, kernel=3, stride=1, pool=2,
                   pool_in: int = 1, weight_bits: int = 8, act_bits: int = 8, input_bits: int = 8,
                   layer_bits: dict[str, Any] | None = None, weight_quant: str = "fixed-point",
                   act_signed: bool = False, bias: bool | str = False) -> nn.Module:
    """Quantization-aware cellsort-cnn: power-of-two scales, per-layer bits (layers conv1, conv2, fc).

    Same shape parameters as ``cellsort-cnn``; ``pool_in`` > 1 average-pools the image in float
    before the firmware's input (the pooled, quantized image is the firmware's input, as for mlp-q).
    """
    from edgekd.nets.students import cnn_shape

    sh = cnn_shape(input_size, channels, kernel, stride, pool, pool_in)
    bits = resolve_bits(["conv1", "conv2", "fc"], weight_bits, act_bits, input_bits, layer_bits)
    b = _Builder(bits, weight_quant, act_signed, bias)
    layers: dict[str, nn.Module] = {"inp": b.input()}
    cin = in_channels
    for i, (c, k, s_, p) in enumerate(zip(sh.channels, sh.kernel, sh.stride, sh.pool), 1):
        layers[f"conv{i}"] = b.conv(f"conv{i}", cin, c, k, stride=s_)
        layers[f"relu{i}"] = b.relu(f"conv{i}")
        if p > 1:
            layers[f"pool{i}"] = nn.MaxPool2d(p)
        cin = c
    layers["flatten"] = nn.Flatten()
    layers["fc"] = b.linear("fc", sh.features, num_classes)
    return QuantStudent(layers, bits, arch="cellsort-cnn-q", float_pre=nn.AvgPool2d(pool_in) if pool_in > 1 else None)


@register_net("mlp-q", role="student")
def mlp_q(num_classes: int, in_channels: int, input_size: int, hidden: int = 32, pool: int = 4,
          weight_bits: int = 8, act_bits: int = 8, input_bits: int = 8,
          layer_bits: dict[str, Any] | None = None, weight_quant: str = "fixed-point",
          act_signed: bool = False, bias: bool | str = False) -> nn.Module:
    """Quantization-aware mlp (layers fc1, fc2); the average pool runs in float before the firmware input."""
    hh, ww = input_hw(input_size)
    if pool < 1 or hh % pool or ww % pool:
        raise ValueError(f"pool {pool} must divide input_size {input_size}")
    n_in = in_channels * (hh // pool) * (ww // pool)
    bits = resolve_bits(["fc1", "fc2"], weight_bits, act_bits, input_bits, layer_bits)
    b = _Builder(bits, weight_quant, act_signed, bias)
    layers = {"inp": b.input(), "flatten": nn.Flatten(), "fc1": b.linear("fc1", n_in, hidden),
              "relu1": b.relu("fc1"), "fc2": b.linear("fc2", hidden, num_classes)}
    # pooling is input preprocessing here: the firmware receives the pooled, quantized image
    return QuantStudent(layers, bits, arch="mlp-q", float_pre=nn.AvgPool2d(pool) if pool > 1 else None)


def firmware_part(model: QuantStudent) -> nn.Module:
    """The layers that become firmware: everything after the float preprocessing (``pre``)."""
    # keep the layer names: refusals and reports name layers as the recipe does
    return nn.Sequential(OrderedDict((n, m) for n, m in model.named_children() if n != "pre"))


def float_preprocess(model: QuantStudent) -> nn.Module | None:
    """The float preprocessing that runs before the firmware input (or None)."""
    return getattr(model, "pre", None)


#: parameters of the QAT factories that their float twins do not take
QUANT_ONLY_PARAMS = ("weight_bits", "act_bits", "input_bits", "layer_bits", "weight_quant", "act_signed", "bias")


def float_twin_spec(arch: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The float architecture (and parameters) with the same layer shapes as a QAT student."""
    if not arch.endswith("-q"):
        return arch, dict(params)
    return arch.removesuffix("-q"), {k: v for k, v in params.items() if k not in QUANT_ONLY_PARAMS}
