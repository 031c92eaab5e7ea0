"""Pure-integer reference of a quantization-aware student: what the firmware must output.

A Brevitas student with power-of-two scales is a fixed-point circuit. This module reads
its integer weights and scale exponents once (:func:`extract`) and evaluates it with
integer arithmetic only (:func:`IntModel.run`): every tensor is an ``int64`` array ``q``
with an exponent ``e`` meaning ``q · 2^e``. Re-quantization is an arithmetic shift with
round-half-to-even (``torch.round`` in Brevitas, ``RND_CONV`` in ``ap_fixed``) and
saturation. The result is the bit-exact expected output of the hls4ml firmware.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import EdgekdError

# float64 matmul is exact while every partial sum stays below 2^53 (checked per layer):
# BLAS speed with integer results.
_EXACT_F64 = 2 ** 53


def _exponent(scale: Any, where: str) -> int:
    s = np.asarray(torch.as_tensor(scale).detach().cpu().double().numpy()).reshape(-1)
    if len(np.unique(s)) != 1:
        raise EdgekdError("per-channel scales are not supported by the fixed-point firmware", where=where,
                          fix="use a per-tensor power-of-two quantizer (Int8WeightPerTensorFixedPoint)")
    e = math.log2(float(s[0]))
    if e != round(e):
        raise EdgekdError(f"scale {float(s[0])!r} is not a power of two", where=where,
                          fix="use *FixedPoint quantizers (power-of-two scales) for FPGA export")
    return int(round(e))


@dataclass
class QuantSpec:
    """A signed/unsigned integer grid ``q · 2^exp`` with ``bits`` bits."""

    exp: int
    bits: int
    signed: bool
    narrow: bool = False

    @property
    def lo(self) -> int:
        return (-(2 ** (self.bits - 1)) + int(self.narrow)) if self.signed else 0

    @property
    def hi(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1

    def ap_type(self) -> str:
        """The matching hls4ml type, e.g. ``fixed<8,3,RND_CONV,SAT>``."""
        integer = self.bits + self.exp
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.bits},{integer},RND_CONV,{'SAT_SYM' if self.narrow else 'SAT'}>"


def requantize(q: np.ndarray, exp: int, spec: QuantSpec) -> np.ndarray:
    """``q · 2^exp`` → nearest (ties to even) integer on ``spec``'s grid, saturated."""
    q = np.asarray(q, dtype=np.int64)
    d = spec.exp - exp
    if d <= 0:
        out = q << (-d)
    else:
        fl = q >> d  # floor division by 2^d (arithmetic shift)
        rem = q - (fl << d)
        half = np.int64(1) << (d - 1)
        out = fl + ((rem > half) | ((rem == half) & ((fl & 1) == 1))).astype(np.int64)
    return np.clip(out, spec.lo, spec.hi)


@dataclass
class IntLayer:
    """One integer operation: kind in {quant, relu, conv, linear, maxpool, flatten}."""

    kind: str
    name: str
    spec: QuantSpec | None = None  # quant: the output grid
    relu: bool = False  # quant: ReLU before rounding (QuantReLU)
    weight: np.ndarray | None = None  # conv/linear: int64 weights
    w_exp: int = 0
    acc_exp: int = 0  # conv/linear: the accumulator's exponent (input exponent + w_exp)
    bias: np.ndarray | None = None  # conv/linear: int64 biases on the accumulator's grid (2^acc_exp)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kernel: int = 2


@dataclass
class IntModel:
    """The integer program of a quantized student, with its input grid."""

    input_spec: QuantSpec
    layers: list[IntLayer] = field(default_factory=list)

    def quantize_input(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Float (normalised) input → integer codes, as the input quantizer rounds it (float32 math)."""
        x = torch.as_tensor(x, dtype=torch.float32)
        q = torch.round(x / torch.tensor(2.0 ** self.input_spec.exp, dtype=torch.float32))
        return np.clip(q.numpy().astype(np.int64), self.input_spec.lo, self.input_spec.hi)

    def run(self, codes: np.ndarray) -> tuple[np.ndarray, int]:
        """Evaluate on integer input codes; returns (int64 outputs, exponent)."""
        q = np.asarray(codes, dtype=np.int64)
        if q.min(initial=0) < self.input_spec.lo or q.max(initial=0) > self.input_spec.hi:
            raise ValueError("input codes outside the input quantizer's range")
        e = self.input_spec.exp
        for layer in self.layers:
            q, e = _apply(layer, q, e)
        return q, e

    def run_float(self, codes: np.ndarray) -> np.ndarray:
        """Outputs as float64 (exact: ``q · 2^e``)."""
        q, e = self.run(codes)
        return q.astype(np.float64) * 2.0 ** e

    def output_type(self, codes: np.ndarray) -> str:
        """The narrowest signed fixed type holding every output seen on ``codes`` exactly."""
        q, e = self.run(codes)
        m = int(np.abs(q).max(initial=1))
        bits = m.bit_length() + 1
        return f"fixed<{bits},{bits + e}>"


def _matmul_exact(a: np.ndarray, w: np.ndarray, where: str) -> np.ndarray:
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(w).sum(axis=0).max(initial=0))
    if bound >= _EXACT_F64:
        raise EdgekdError(f"accumulator bound {bound:.3g} exceeds 2^53", where=where,
                          fix="use fewer bits or a smaller layer")
    return (a.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)


def _apply(layer: IntLayer, q: np.ndarray, e: int) -> tuple[np.ndarray, int]:
    if layer.kind == "quant":
        if layer.relu:
            q = np.maximum(q, 0)
        return requantize(q, e, layer.spec), layer.spec.exp
    if layer.kind == "relu":
        return np.maximum(q, 0), e
    if layer.kind == "flatten":
        return q.reshape(len(q), -1), e
    if layer.kind == "maxpool":
        k = layer.kernel
        n, c, h, w = q.shape
        ho, wo = h // k, w // k
        v = q[:, :, : ho * k, : wo * k].reshape(n, c, ho, k, wo, k)
        return v.max(axis=(3, 5)), e
    if layer.kind == "linear":
        acc = _matmul_exact(q, layer.weight.T, layer.name)
        return (acc if layer.bias is None else acc + layer.bias), e + layer.w_exp
    if layer.kind == "conv":
        w = layer.weight  # O, I, kh, kw
        ph, pw = layer.padding
        if ph or pw:
            q = np.pad(q, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # zero point is 0: zero pad is exact
        sh, sw = layer.stride
        o, i, kh, kw = w.shape
        win = np.lib.stride_tricks.sliding_window_view(q, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        n, _, ho, wo = win.shape[:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, i * kh * kw)
        acc = _matmul_exact(cols, w.reshape(o, -1).T, layer.name)
        if layer.bias is not None:
            acc = acc + layer.bias
        return acc.reshape(n, ho, wo, o).transpose(0, 3, 1, 2), e + layer.w_exp
    raise AssertionError(layer.kind)


def _act_spec(mod: nn.Module, name: str) -> QuantSpec:
    proxy = mod.act_quant
    bits = int(proxy.bit_width())
    return QuantSpec(_exponent(proxy.scale(), name), bits, bool(proxy.is_signed), bool(proxy.is_narrow_range))


def bias_on_accumulator_grid(mod: nn.Module) -> bool:
    """Whether a layer's bias (if any) is quantized with the input × weight scale, i.e. exact in firmware."""
    proxy = getattr(mod, "bias_quant", None)
    return bool(getattr(proxy, "is_quant_enabled", False)) and bool(getattr(proxy, "requires_input_scale", False))


def _int_bias(mod: nn.Module, name: str, acc_exp: int) -> np.ndarray | None:
    """The layer's bias as integers on its accumulator grid ``2^acc_exp`` (None without a bias).

    Only a bias quantized with the input scale × weight scale (Brevitas ``Int16Bias``/``Int32Bias``)
    is on that grid; Brevitas's own bias quantizer gives the integers (rounded and clipped as in
    training) on the grid of the input scale that reaches the layer × the weight scale.
    """
    if mod.bias is None:
        return None
    if not bias_on_accumulator_grid(mod):
        raise EdgekdError("a float bias is not on the accumulator's fixed-point grid, so the firmware could not "
                          "match the model bit for bit", where=name,
                          fix="build the student with bias: quantized (or bias: false)")
    # the quantizer Brevitas applies in forward, given the bias scale it computes there (input × weight)
    out, scale, _, _ = mod.bias_quant.tensor_quant(mod.bias.detach(), torch.tensor([2.0 ** acc_exp]))
    if _exponent(scale, name) != acc_exp:
        raise EdgekdError(f"bias scale {float(scale.reshape(-1)[0])!r} is not the accumulator's 2^{acc_exp}",
                          where=name, fix="quantize the bias with the input × weight scale (Int32Bias)")
    return np.rint((out.double() / 2.0 ** acc_exp).numpy()).astype(np.int64)


def _is_brevitas_layer(mod: nn.Module) -> bool:
    return type(mod).__module__.startswith("brevitas.nn")


@torch.no_grad()
def extract(model: nn.Module) -> IntModel:
    """Read integer weights and power-of-two exponents from a Brevitas student (eval mode).

    ``model`` is the firmware part (see :func:`edgekd.nets.quant.firmware_part`). Layers
    are taken in registration order, which is their execution order in a Sequential.
    """
    import brevitas.nn as qnn

    model = model.eval()
    layers: list[IntLayer] = []
    input_spec: QuantSpec | None = None
    seen_brevitas: set[str] = set()
    exp = 0  # the exponent of the tensor flowing into the next layer
    for name, mod in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in seen_brevitas):
            continue  # inside a Brevitas layer (its quantizer submodules)
        if _is_brevitas_layer(mod):
            seen_brevitas.add(name)
        elif list(mod.children()):
            continue  # a container
        if isinstance(mod, qnn.QuantIdentity) or isinstance(mod, qnn.QuantReLU):
            spec = _act_spec(mod, name)
            if input_spec is None and not layers:
                if isinstance(mod, qnn.QuantReLU):
                    raise EdgekdError("the first layer must be an input quantizer", where=name,
                                      fix="start the student with QuantIdentity")
                input_spec, exp = spec, spec.exp
                continue
            layers.append(IntLayer("quant", name, spec=spec, relu=isinstance(mod, qnn.QuantReLU)))
            exp = spec.exp
        elif isinstance(mod, (qnn.QuantConv2d, qnn.QuantLinear)):
            qw = mod.quant_weight()
            w = np.rint(qw.int().double().numpy()).astype(np.int64)
            w_exp = _exponent(qw.scale, name)
            lay = IntLayer("conv" if isinstance(mod, qnn.QuantConv2d) else "linear", name, weight=w,
                           w_exp=w_exp, acc_exp=exp + w_exp, bias=_int_bias(mod, name, exp + w_exp))
            exp += w_exp
            if lay.kind == "conv":
                lay.stride = tuple(mod.stride)
                lay.padding = tuple(mod.padding)
            layers.append(lay)
        elif isinstance(mod, nn.ReLU):
            layers.append(IntLayer("relu", name))
        elif isinstance(mod, nn.MaxPool2d):
            k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
            s = mod.stride if isinstance(mod.stride, int) else mod.stride[0]
            if s != k or mod.padding not in (0, (0, 0)):
                raise EdgekdError("only non-overlapping unpadded max pooling is supported", where=name,
                                  fix="use MaxPool2d(k) with stride k")
            layers.append(IntLayer("maxpool", name, kernel=k))
        elif isinstance(mod, nn.Flatten):
            layers.append(IntLayer("flatten", name))
        elif isinstance(mod, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise EdgekdError(f"layer type {type(mod).__name__} has no integer reference", where=name,
                              fix="use QuantIdentity/QuantConv2d/QuantLinear/QuantReLU/ReLU/MaxPool2d/Flatten")
    if input_spec is None:
        raise EdgekdError("no input quantizer found", where="model", fix="start the student with QuantIdentity")
    return IntModel(input_spec, layers)


def input_contract(im: IntModel, *, mean: float | None = None, std: float | None = None,
                   input_shape: tuple[int, ...] | None = None, preprocess: str | None = None) -> dict[str, Any]:
    """How the firmware expects its input, for the artifact's metadata.

    With ``mean``/``std`` (the recipe's normalisation) it includes the full table
    uint8 pixel → input code, so a camera pipeline can feed the firmware without floats.
    """
    s = im.input_spec
    c: dict[str, Any] = {
        "firmware_type": s.ap_type(), "code_bits": s.bits, "code_signed": s.signed,
        "code_range": [s.lo, s.hi], "scale": 2.0 ** s.exp,
        "rule": "code = clip(round_half_even(x / scale), lo, hi); firmware input = code * scale",
        "layout": "NCHW into the C simulation (hls4ml transposes to channels-last internally)",
    }
    if input_shape is not None:
        c["shape"] = list(input_shape)
    if preprocess:
        c["preprocess"] = preprocess
    if mean is not None and std is not None:
        x = (np.arange(256, dtype=np.float32) / np.float32(255.0) - np.float32(mean)) / np.float32(std)
        c["x"] = "(pixel/255 - mean)/std, computed in float32"
        c["mean"], c["std"] = mean, std
        c["pixel_to_code"] = im.quantize_input(x).tolist()
    return c
