"""An explicit integer description of a quantized network, and its exact numpy forward pass.

This is the contract between a quantized student (Brevitas, or anything with
power-of-two scales) and the RTL path (:mod:`edgekd.export.rtl`): integer weights and
biases, integer activations, and requantization by a power-of-two shift with a stated
rounding and saturation. Every value is an integer; the real value of a tensor is its
integer times a power of two that the description records (``scale_exp``) but the
hardware never needs.

:meth:`IntNet.forward` is the reference the Verilator emulator must match bit for bit.
It uses Python/numpy ``int64`` arithmetic only, so it cannot round differently from the
design it checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np

from edgekd.errors import EdgekdError

Rounding = Literal["floor", "half_up", "half_even"]
ROUNDINGS: tuple[str, ...] = ("floor", "half_up", "half_even")


@dataclass
class IntConv2d:
    """Valid (unpadded) 2-D convolution, stride 1: ``acc = Σ x·w + bias`` in integers."""

    weight: np.ndarray  # (C_out, C_in, k, k) integers
    bias: np.ndarray | None = None  # (C_out,) integers on the accumulator's grid
    name: str = "conv"


@dataclass
class IntDense:
    """Fully connected layer on a flat vector: ``acc = W @ x + bias``."""

    weight: np.ndarray  # (n_out, n_in) integers
    bias: np.ndarray | None = None  # (n_out,) integers on the accumulator's grid
    name: str = "dense"


@dataclass
class IntRequant:
    """Activation quantizer: optional ReLU, shift right by ``shift`` with ``rounding``, clip to ``bits``.

    ``y = clip(R(max(acc, 0) / 2**shift), lo, hi)``; a negative shift is an exact left
    shift. ``lo, hi`` are the range of a ``bits``-bit signed or unsigned integer
    (saturation, as Brevitas' quantizers and ``ap_fixed<..., AP_SAT>`` do).
    """

    shift: int
    bits: int
    signed: bool = False
    relu: bool = True
    rounding: Rounding = "half_even"
    name: str = "act"


@dataclass
class IntMaxPool2d:
    """Non-overlapping max pool (stride = size); trailing rows/columns dropped like PyTorch."""

    size: int = 2
    name: str = "pool"


@dataclass
class IntFlatten:
    """(C, H, W) → (C·H·W,) in C-major order, like ``torch.nn.Flatten`` on NCHW."""

    name: str = "flatten"


IntLayer = Union[IntConv2d, IntDense, IntRequant, IntMaxPool2d, IntFlatten]


@dataclass
class IntNet:
    """A quantized network as integers: the input grid, the layers, the output's scale.

    ``input_bits``/``input_signed`` say which integer codes the firmware accepts;
    ``input_scale_exp`` is the power of two that turns a code into the model's real input
    (``x_real = code * 2**input_scale_exp``) and ``output_scale_exp`` the same for the
    output. Both are metadata for users: the design computes on codes.
    """

    name: str
    input_shape: tuple[int, ...]  # (C, H, W) or (N,)
    input_bits: int
    input_signed: bool
    layers: list[IntLayer]
    input_scale_exp: int = 0
    output_scale_exp: int = 0
    notes: str = ""
    metadata: dict = field(default_factory=dict)

    # ---- validation -------------------------------------------------------------------
    def validate(self) -> None:
        """Check shapes, integer-ness and settings, naming the offending layer."""
        if not 1 <= self.input_bits <= 32:
            raise EdgekdError(f"input_bits {self.input_bits} outside [1, 32]", where=f"intnet {self.name}: input")
        shape = tuple(self.input_shape)
        for i, layer in enumerate(self.layers):
            where = f"intnet {self.name}: layer {i} ({layer.name})"
            if isinstance(layer, (IntConv2d, IntDense)):
                w = np.asarray(layer.weight)
                if not np.issubdtype(w.dtype, np.integer) and not np.array_equal(w, np.round(w)):
                    raise EdgekdError("weights are not integers", where=where,
                                      fix="pass integer codes (the quantizer's int()), not real values")
                if layer.bias is not None:
                    b = np.asarray(layer.bias)
                    if b.shape != (w.shape[0],) or not np.array_equal(b, np.round(b)):
                        raise EdgekdError(f"bias must be {w.shape[0]} integers on the accumulator grid, "
                                          f"got shape {b.shape}", where=where)
            if isinstance(layer, IntConv2d):
                w = np.asarray(layer.weight)
                if len(shape) != 3 or w.ndim != 4 or w.shape[1] != shape[0] or w.shape[2] != w.shape[3]:
                    raise EdgekdError(f"conv weight {w.shape} does not fit input {shape}", where=where)
                k = w.shape[2]
                if shape[1] < k or shape[2] < k:
                    raise EdgekdError(f"kernel {k} larger than input {shape}", where=where)
                shape = (w.shape[0], shape[1] - k + 1, shape[2] - k + 1)
            elif isinstance(layer, IntDense):
                w = np.asarray(layer.weight)
                if len(shape) != 1 or w.ndim != 2 or w.shape[1] != shape[0]:
                    raise EdgekdError(f"dense weight {w.shape} does not fit input {shape}", where=where,
                                      fix="insert IntFlatten before a dense layer on an image")
                shape = (w.shape[0],)
            elif isinstance(layer, IntRequant):
                if layer.rounding not in ROUNDINGS:
                    raise EdgekdError(f"rounding '{layer.rounding}' unknown", where=where,
                                      fix=f"use one of {ROUNDINGS}")
                if not 1 <= layer.bits <= 32:
                    raise EdgekdError(f"bits {layer.bits} outside [1, 32]", where=where)
            elif isinstance(layer, IntMaxPool2d):
                if len(shape) != 3 or layer.size < 1 or shape[1] < layer.size or shape[2] < layer.size:
                    raise EdgekdError(f"pool {layer.size} does not fit input {shape}", where=where)
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
            elif isinstance(layer, IntFlatten):
                shape = (int(np.prod(shape)),)
            else:
                raise EdgekdError(f"unknown layer type {type(layer).__name__}", where=where)

    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every layer (after validation)."""
        out, shape = [], tuple(self.input_shape)
        for layer in self.layers:
            if isinstance(layer, IntConv2d):
                k = layer.weight.shape[2]
                shape = (layer.weight.shape[0], shape[1] - k + 1, shape[2] - k + 1)
            elif isinstance(layer, IntDense):
                shape = (layer.weight.shape[0],)
            elif isinstance(layer, IntMaxPool2d):
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
            elif isinstance(layer, IntFlatten):
                shape = (int(np.prod(shape)),)
            out.append(shape)
        return out

    @property
    def output_size(self) -> int:
        return int(np.prod(self.shapes()[-1])) if self.layers else int(np.prod(self.input_shape))

    def input_range(self) -> tuple[int, int]:
        return int_range(self.input_bits, self.input_signed)

    def macs(self) -> int:
        """Multiply-accumulates per inference (for reports and estimates)."""
        total, shape = 0, tuple(self.input_shape)
        for layer, out in zip(self.layers, self.shapes()):
            if isinstance(layer, IntConv2d):
                total += int(np.prod(out)) * int(np.prod(layer.weight.shape[1:]))
            elif isinstance(layer, IntDense):
                total += int(layer.weight.size)
            shape = out
        return total

    # ---- the reference ----------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Exact integer forward pass of a batch ``(n, *input_shape)`` → ``(n, output_size)`` int64."""
        x = np.asarray(x)
        if x.shape[1:] != tuple(self.input_shape):
            raise EdgekdError(f"input batch shape {x.shape[1:]} != network input {tuple(self.input_shape)}",
                              where=f"intnet {self.name}")
        if not np.array_equal(x, np.round(x)):
            raise EdgekdError("inputs are not integer codes", where=f"intnet {self.name}",
                              fix="quantize the inputs with the input quantizer first")
        lo, hi = self.input_range()
        if x.min(initial=lo) < lo or x.max(initial=hi) > hi:
            raise EdgekdError(f"input codes outside [{lo}, {hi}] ({self.input_bits}-bit)", where=f"intnet {self.name}")
        a = x.astype(np.int64)
        for layer in self.layers:
            a = _apply(layer, a)
        return a.reshape(len(a), -1)


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value of a ``bits``-bit integer."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def shift_round(acc: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """``acc / 2**shift`` rounded as stated, in exact integer arithmetic (int64)."""
    acc = np.asarray(acc, dtype=np.int64)
    if shift <= 0:
        return acc << (-shift)
    q = acc >> shift  # floor division by 2**shift (arithmetic shift)
    if rounding == "floor":
        return q
    rem = acc - (q << shift)  # in [0, 2**shift)
    half = 1 << (shift - 1)
    if rounding == "half_up":
        return q + (rem >= half)
    # half to even: ties go to the even neighbour (torch.round, ap_fixed AP_RND_CONV)
    return q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))


def _apply(layer: IntLayer, a: np.ndarray) -> np.ndarray:
    n = len(a)
    if isinstance(layer, IntConv2d):
        w = np.asarray(layer.weight, dtype=np.int64)
        co, ci, k, _ = w.shape
        _, _, h, wd = a.shape
        ho, wo = h - k + 1, wd - k + 1
        # im2col: (n, ho, wo, ci*k*k) patches times (ci*k*k, co) weights, all int64
        cols = np.empty((n, ho, wo, ci, k, k), dtype=np.int64)
        for di in range(k):
            for dj in range(k):
                cols[:, :, :, :, di, dj] = a[:, :, di:di + ho, dj:dj + wo].transpose(0, 2, 3, 1)
        out = cols.reshape(n, ho * wo, -1) @ w.reshape(co, -1).T
        if layer.bias is not None:
            out = out + np.asarray(layer.bias, dtype=np.int64)
        return out.transpose(0, 2, 1).reshape(n, co, ho, wo)
    if isinstance(layer, IntDense):
        out = a.reshape(n, -1) @ np.asarray(layer.weight, dtype=np.int64).T
        if layer.bias is not None:
            out = out + np.asarray(layer.bias, dtype=np.int64)
        return out
    if isinstance(layer, IntRequant):
        if layer.relu:
            a = np.maximum(a, 0)
        lo, hi = int_range(layer.bits, layer.signed)
        return np.clip(shift_round(a, layer.shift, layer.rounding), lo, hi)
    if isinstance(layer, IntMaxPool2d):
        p = layer.size
        c, h, w = a.shape[1:]
        ho, wo = h // p, w // p
        return a[:, :, :ho * p, :wo * p].reshape(n, c, ho, p, wo, p).max(axis=(3, 5))
    if isinstance(layer, IntFlatten):
        return a.reshape(n, -1)
    raise TypeError(type(layer).__name__)


def value_bounds(net: IntNet) -> list[tuple[int, int]]:
    """Interval arithmetic: integer ``(min, max)`` of every layer's input, for the tracer.

    Entry ``i`` bounds the values *entering* layer ``i``; the last entry bounds the output.
    """
    lo, hi = net.input_range()
    bounds = [(lo, hi)]
    for layer in net.layers:
        if isinstance(layer, (IntConv2d, IntDense)):
            w = np.asarray(layer.weight, dtype=np.int64).reshape(layer.weight.shape[0], -1)
            pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
            b = np.zeros(w.shape[0], np.int64) if layer.bias is None else np.asarray(layer.bias, np.int64)
            mx = pos.sum(1) * hi + neg.sum(1) * lo + b
            mn = pos.sum(1) * lo + neg.sum(1) * hi + b
            lo, hi = int(mn.min()), int(mx.max())
        elif isinstance(layer, IntRequant):
            if layer.relu:
                lo, hi = max(lo, 0), max(hi, 0)
            qlo, qhi = int_range(layer.bits, layer.signed)
            lo = int(np.clip(shift_round(np.array([lo]), layer.shift, "floor")[0], qlo, qhi))
            hi = int(np.clip(shift_round(np.array([hi]), layer.shift, "half_up")[0], qlo, qhi))
        bounds.append((lo, hi))
    return bounds


def from_intref(model: Any, input_shape: tuple[int, ...], name: str = "student") -> IntNet:
    """Adapter from :class:`edgekd.export.intref.IntModel` (a Brevitas student's integer program).

    Tracks the power-of-two exponent through the layers: a quantizer after an
    accumulator with exponent ``e`` becomes ``IntRequant(shift = spec.exp - e)`` with
    round-half-to-even (Brevitas' ``torch.round``) and saturation. Refuses what the RTL
    path does not implement (strides, padding, narrow-range quantizers) by layer name.
    """
    spec = model.input_spec
    if getattr(spec, "narrow", False):
        raise EdgekdError("narrow-range input quantizer is not supported by the RTL path", where=f"{name}: input",
                          fix="use a full-range input quantizer (narrow_range=False)")
    e = int(spec.exp)
    layers: list[IntLayer] = []
    for lay in model.layers:
        where = f"{name}: layer {lay.name}"
        if lay.kind == "conv":
            if tuple(lay.stride) != (1, 1) or tuple(lay.padding) != (0, 0):
                raise EdgekdError(f"stride {lay.stride} / padding {lay.padding} not supported by the RTL path",
                                  where=where, fix="use stride 1 and no padding (valid convolutions)")
            layers.append(IntConv2d(np.asarray(lay.weight, dtype=np.int64), lay.bias, lay.name))
            e += int(lay.w_exp)
        elif lay.kind == "linear":
            layers.append(IntDense(np.asarray(lay.weight, dtype=np.int64), lay.bias, lay.name))
            e += int(lay.w_exp)
        elif lay.kind == "quant":
            s = lay.spec
            if s.narrow:
                raise EdgekdError("narrow-range quantizer is not supported by the RTL path", where=where,
                                  fix="use a full-range quantizer (narrow_range=False)")
            layers.append(IntRequant(int(s.exp) - e, int(s.bits), bool(s.signed), bool(lay.relu), "half_even",
                                     lay.name))
            e = int(s.exp)
        elif lay.kind == "relu":
            # a plain ReLU on an accumulator: no rounding (shift 0); 32-bit clip is never reached
            layers.append(IntRequant(0, 32, True, True, "floor", lay.name))
        elif lay.kind == "maxpool":
            layers.append(IntMaxPool2d(int(lay.kernel), lay.name))
        elif lay.kind == "flatten":
            layers.append(IntFlatten(lay.name))
        else:
            raise EdgekdError(f"layer kind '{lay.kind}' is not supported by the RTL path", where=where)
    net = IntNet(name, tuple(input_shape), int(spec.bits), bool(spec.signed), layers, input_scale_exp=int(spec.exp),
                 output_scale_exp=e)
    net.validate()
    return net
