"""From a trained tiny student to a typed plan of fused stages, or one line saying why not.

The plan is what the code generator reads: a list of stages, each reading one activation
and writing one, with BatchNorm already folded into the weights:

* :class:`ConvStage` — Conv2d (+ folded BatchNorm2d) followed by any of ReLU / one pool /
  ReLU, computed directly at the pooled positions so the pre-pool map is never stored;
* :class:`PoolStage` — a pool with no convolution before it (e.g. the MLP's AvgPool on the image);
* :class:`DenseStage` — Linear (+ folded BatchNorm1d) (+ ReLU), on the flattened activation.

Activations are C×H×W in PyTorch's NCHW order, so Flatten is free. Anything else —
grouped or quantized convolutions, other activations, BatchNorm that does not follow a
conv or linear layer, a module whose ``forward`` is not a plain chain — yields an
:class:`Unsupported` with one line naming the layer and the reason; the generator never
guesses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn


@dataclass(frozen=True)
class Pool:
    """A max or average pool over a kh×kw window, stride (sh, sw), no padding, floor mode."""

    kind: str  # "max" | "avg"
    kh: int
    kw: int
    sh: int
    sw: int

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return (h - self.kh) // self.sh + 1, (w - self.kw) // self.sw + 1


@dataclass
class ConvStage:
    cin: int
    cout: int
    h: int  # input height and width
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int  # top/left padding (zeros); bottom/right padding follows from the output size
    pw: int
    dh: int
    dw: int
    oh: int  # conv output size (before the pool)
    ow: int
    weight: np.ndarray  # cout × cin × kh × kw, BatchNorm folded
    bias: np.ndarray  # cout
    relu_before_pool: bool = False
    pool: Pool | None = None
    relu_after_pool: bool = False
    source: str = ""  # the module paths this stage came from

    @property
    def out_shape(self) -> tuple[int, int, int]:
        ph, pw = self.pool.out_size(self.oh, self.ow) if self.pool else (self.oh, self.ow)
        return self.cout, ph, pw

    @property
    def macs(self) -> int:
        return self.cout * self.oh * self.ow * self.cin * self.kh * self.kw


@dataclass
class PoolStage:
    c: int
    h: int
    w: int
    pool: Pool
    relu_after: bool = False
    source: str = ""

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.c, *self.pool.out_size(self.h, self.w))

    macs = 0


@dataclass
class DenseStage:
    fin: int
    fout: int
    weight: np.ndarray  # fout × fin, BatchNorm folded
    bias: np.ndarray
    relu: bool = False
    source: str = ""

    @property
    def out_shape(self) -> tuple[int]:
        return (self.fout,)

    @property
    def macs(self) -> int:
        return self.fin * self.fout


Stage = ConvStage | PoolStage | DenseStage


@dataclass
class FusedPlan:
    """The whole student as stages, for one input shape (C, H, W)."""

    input_shape: tuple[int, int, int]
    stages: list[Stage]
    params: int  # parameters of the source model (before folding)
    notes: list[str] = field(default_factory=list)  # e.g. "BatchNorm2d '1' folded into conv '0'"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.stages[-1].out_shape

    @property
    def out_numel(self) -> int:
        return math.prod(self.out_shape)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.stages)

    def describe(self) -> list[str]:
        out = []
        for s in self.stages:
            if isinstance(s, ConvStage):
                post = ([" relu"] if s.relu_before_pool else []) + (
                    [f" {s.pool.kind}pool{s.pool.kh}x{s.pool.kw}/{s.pool.sh}"] if s.pool else []) + (
                    [" relu"] if s.relu_after_pool else [])
                out.append(f"conv {s.cin}->{s.cout} k{s.kh}x{s.kw} s{s.sh} p{s.ph} on {s.h}x{s.w}"
                           + "".join(post) + f" -> {s.out_shape}")
            elif isinstance(s, PoolStage):
                out.append(f"{s.pool.kind}pool{s.pool.kh}x{s.pool.kw}/{s.pool.sh} on {s.c}x{s.h}x{s.w}"
                           + (" relu" if s.relu_after else "") + f" -> {s.out_shape}")
            else:
                out.append(f"dense {s.fin}->{s.fout}" + (" relu" if s.relu else ""))
        return out


@dataclass(frozen=True)
class Unsupported:
    """Why the generator does not cover this model: one line, naming the layer."""

    reason: str
    layer: str = ""

    def __str__(self) -> str:
        return f"cuda-fused does not cover layer '{self.layer}': {self.reason}" if self.layer else \
            f"cuda-fused does not cover this model: {self.reason}"


class _NotCovered(Exception):
    def __init__(self, reason: str, layer: str = ""):
        super().__init__(reason)
        self.result = Unsupported(reason, layer)


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _chain(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The modules of a (nested) nn.Sequential in call order."""
    if not isinstance(model, nn.Sequential):
        raise _NotCovered(f"{type(model).__name__} is not an nn.Sequential chain (its forward could do anything)",
                          prefix or type(model).__name__)
    out: list[tuple[str, nn.Module]] = []
    for name, m in model.named_children():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(m, nn.Sequential):
            out += _chain(m, path)
        else:
            out.append((path, m))
    return out


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm (running statistics) into the preceding layer's weight and bias."""
    if bn.running_mean is None or bn.running_var is None:
        raise _NotCovered("BatchNorm without running statistics (track_running_stats=False) cannot be folded")
    var, mean = bn.running_var.detach().float(), bn.running_mean.detach().float()
    gamma = bn.weight.detach().float() if bn.affine else torch.ones_like(var)
    beta = bn.bias.detach().float() if bn.affine else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    w = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    return w, (bias - mean) * scale + beta


def _pool_of(path: str, m: nn.Module, h: int, w: int) -> Pool:
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        oh, ow = (m.output_size, m.output_size) if isinstance(m.output_size, int) else m.output_size
        oh, ow = oh or h, ow or w
        if h % oh or w % ow:
            raise _NotCovered(f"adaptive pool to {oh}x{ow} from {h}x{w} has unequal windows", path)
        kind = "max" if isinstance(m, nn.AdaptiveMaxPool2d) else "avg"
        return Pool(kind, h // oh, w // ow, h // oh, w // ow)
    kh, kw = _pair(m.kernel_size)
    sh, sw = _pair(m.stride if m.stride is not None else m.kernel_size)
    if any(_pair(m.padding)):
        raise _NotCovered("padded pooling is not generated", path)
    if m.ceil_mode:
        raise _NotCovered("ceil_mode pooling is not generated", path)
    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation) != (1, 1):
            raise _NotCovered("dilated max pooling is not generated", path)
        if m.return_indices:
            raise _NotCovered("max pooling that returns indices is not generated", path)
        kind = "max"
    else:
        if m.divisor_override is not None:
            raise _NotCovered("avg pooling with divisor_override is not generated", path)
        kind = "avg"
    if kh > h or kw > w:
        raise _NotCovered(f"pool window {kh}x{kw} is larger than its {h}x{w} input", path)
    return Pool(kind, kh, kw, sh, sw)


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_SKIP = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d)


def _to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy().copy()


def plan_model(model: nn.Module, input_shape: tuple[int, int, int]) -> FusedPlan | Unsupported:
    """The fused plan of ``model`` (eval semantics) for one image of ``input_shape`` = (C, H, W).

    Returns :class:`Unsupported` — never raises for an uncovered layer — so callers can print
    the one-line reason and fall back to another target.
    """
    try:
        return _plan(model, tuple(int(v) for v in input_shape))
    except _NotCovered as exc:
        return exc.result


def _plan(model: nn.Module, input_shape: tuple[int, int, int]) -> FusedPlan:
    if len(input_shape) != 3:
        raise _NotCovered(f"input must be one C×H×W image, got shape {input_shape}")
    chain = [(p, m) for p, m in _chain(model) if not isinstance(m, _SKIP)]
    params = sum(p.numel() for p in model.parameters())
    stages: list[Stage] = []
    notes: list[str] = []
    c, h, w = input_shape
    flat: int | None = None  # feature count once flattened
    i = 0
    with torch.no_grad():
        while i < len(chain):
            path, m = chain[i]
            nxt = chain[i + 1] if i + 1 < len(chain) else (None, None)
            if isinstance(m, nn.Conv2d):
                if flat is not None:
                    raise _NotCovered("Conv2d after Flatten", path)
                if m.groups != 1:
                    raise _NotCovered(f"grouped convolution (groups={m.groups}) is not generated", path)
                if m.padding_mode != "zeros":
                    raise _NotCovered(f"padding_mode '{m.padding_mode}' is not generated", path)
                if m.in_channels != c:
                    raise _NotCovered(f"expects {m.in_channels} input channels, the activation has {c}", path)
                if type(m) is not nn.Conv2d:
                    raise _NotCovered(f"{type(m).__name__} (a Conv2d subclass, e.g. quantized) is not generated", path)
                kh, kw = _pair(m.kernel_size)
                sh, sw = _pair(m.stride)
                dh, dw = _pair(m.dilation)
                if m.padding == "valid":
                    ph = pw = 0
                elif m.padding == "same":
                    ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
                else:
                    ph, pw = _pair(m.padding)
                if m.padding == "same":
                    oh, ow = h, w
                else:
                    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
                    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
                if oh < 1 or ow < 1:
                    raise _NotCovered(f"output would be empty ({oh}x{ow}) on a {h}x{w} input", path)
                wt = m.weight.detach().float()
                bs = m.bias.detach().float() if m.bias is not None else torch.zeros(m.out_channels)
                src = [path]
                if isinstance(nxt[1], nn.BatchNorm2d):
                    wt, bs = _fold_bn(wt, bs, nxt[1])
                    notes.append(f"BatchNorm2d '{nxt[0]}' folded into Conv2d '{path}'")
                    src.append(nxt[0])
                    i += 1
                st = ConvStage(c, m.out_channels, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow,
                               _to_np(wt), _to_np(bs))
                i += 1
                # post-ops: [ReLU] [pool] [ReLU], in the model's order
                if i < len(chain) and isinstance(chain[i][1], nn.ReLU):
                    st.relu_before_pool = True
                    src.append(chain[i][0])
                    i += 1
                if i < len(chain) and isinstance(chain[i][1], _POOLS):
                    st.pool = _pool_of(chain[i][0], chain[i][1], oh, ow)
                    src.append(chain[i][0])
                    i += 1
                    if i < len(chain) and isinstance(chain[i][1], nn.ReLU):
                        st.relu_after_pool = not st.relu_before_pool
                        src.append(chain[i][0])
                        i += 1
                st.source = ", ".join(src)
                stages.append(st)
                c, h, w = st.out_shape
                continue
            if isinstance(m, _POOLS):
                if flat is not None:
                    raise _NotCovered("pooling after Flatten", path)
                st = PoolStage(c, h, w, _pool_of(path, m, h, w), source=path)
                i += 1
                if i < len(chain) and isinstance(chain[i][1], nn.ReLU):
                    st.relu_after = True
                    st.source += ", " + chain[i][0]
                    i += 1
                stages.append(st)
                c, h, w = st.out_shape
                continue
            if isinstance(m, nn.Flatten):
                if flat is not None:
                    raise _NotCovered("a second Flatten", path)
                if m.start_dim != 1 or m.end_dim != -1:
                    raise _NotCovered(f"Flatten({m.start_dim}, {m.end_dim}) is not the batch-preserving flatten", path)
                flat = c * h * w
                i += 1
                continue
            if isinstance(m, nn.Linear):
                if flat is None:
                    if (h, w) == (1, 1):
                        raise _NotCovered("Linear on a 4-D activation (no Flatten before it)", path)
                    raise _NotCovered(f"Linear on a {c}x{h}x{w} activation acts on its last axis; "
                                      "put nn.Flatten() before it", path)
                if m.in_features != flat:
                    raise _NotCovered(f"expects {m.in_features} features, the activation has {flat}", path)
                if type(m) is not nn.Linear:
                    raise _NotCovered(f"{type(m).__name__} (a Linear subclass, e.g. quantized) is not generated", path)
                wt = m.weight.detach().float()
                bs = m.bias.detach().float() if m.bias is not None else torch.zeros(m.out_features)
                src = [path]
                i += 1
                if i < len(chain) and isinstance(chain[i][1], nn.BatchNorm1d):
                    wt, bs = _fold_bn(wt, bs, chain[i][1])
                    notes.append(f"BatchNorm1d '{chain[i][0]}' folded into Linear '{path}'")
                    src.append(chain[i][0])
                    i += 1
                st = DenseStage(m.in_features, m.out_features, _to_np(wt), _to_np(bs))
                if i < len(chain) and isinstance(chain[i][1], nn.ReLU):
                    st.relu = True
                    src.append(chain[i][0])
                    i += 1
                st.source = ", ".join(src)
                stages.append(st)
                flat = m.out_features
                continue
            if isinstance(m, nn.ReLU):
                raise _NotCovered("ReLU that does not follow a Conv2d, pool or Linear", path)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                raise _NotCovered(f"{type(m).__name__} that does not directly follow a Conv2d/Linear "
                                  "cannot be folded", path)
            raise _NotCovered(f"{type(m).__name__} is not generated (covered: Conv2d, BatchNorm folded into it, "
                              "ReLU, MaxPool2d, AvgPool2d, adaptive pools with equal windows, Flatten, Linear, "
                              "Dropout/Identity)", path)
    if not stages:
        raise _NotCovered("no Conv2d, pool or Linear layer to generate")
    return FusedPlan(input_shape, stages, params, notes)


__all__ = ["ConvStage", "DenseStage", "FusedPlan", "Pool", "PoolStage", "Stage", "Unsupported", "plan_model"]
