"""``fpga-hls`` latency, II and resources *estimated* from hls4ml's scheduling rules.

No vendor tool runs here, and hls4ml itself has no pre-synthesis estimate. This module
models how hls4ml's generated HLS is scheduled, layer by layer, from the layer shapes,
the IO type, the strategy, the reuse factor (RF) and the clock:

io_parallel (every layer one pipelined function, called one after another)
  * dense, Latency strategy, RF 1: ``1 + ceil(log2(n_in) / a)`` cycles, ``a`` adder levels
    per cycle (2 at 5 ns, scaled with the period); II 1.
  * dense, Resource strategy (or RF > 1): ``RF + 5`` cycles (the MAC loop runs RF
    pipelined iterations; 5 = load, 3-stage DSP multiply, accumulate); II = RF.
  * activation 1 cycle; softmax 10 cycles (table exp, adder tree, table inverse).
  * design latency = sum of layers, II = the largest layer II.

io_stream (layers are DATAFLOW processes connected by FIFOs, one pixel — all its
channels — per stream word)
  * a conv layer consumes one input pixel every RF cycles (its kernel is one dense
    block reused across pixels) and emits an output ``depth`` cycles after the input
    pixel that completes a window; pooling and activations take one pixel per cycle.
  * a dense layer after Flatten reads one word per cycle and computes after the last one.
  * the design latency is when the last layer's result leaves, simulated here as a
    schedule of first/last pixel times through the chain (so upstream arrival limits,
    such as a camera's pixel bus, are honoured — see :mod:`edgekd.profile.first_pixel`);
    the II between images is the busiest layer's ``pixels × RF``.

Resources: one multiplier per ``n_mult / RF`` (a DSP when weights are wider than 10 bits,
else ~0.6·bw² LUTs), plus per-multiplier accumulator logic; BRAM for weights of
Resource-strategy layers with RF > 1. These are rough (±2×); latency and II are what the
model is for. Its error against published hls4ml synthesis results
(``hw/fpga/hls_reference_points.yaml``) is computed by :func:`reference_errors` and
reported with every estimate. When a vendor report is present, its numbers replace the
estimate (:func:`estimate_with_vendor`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml

from edgekd.errors import ConfigError, EdgekdError
from edgekd.hwtargets import HW_DIR, FpgaTarget
from edgekd.profile.result import LatencyResult

IoType = Literal["io_parallel", "io_stream"]
Strategy = Literal["Latency", "Resource"]
REFERENCE_POINTS = HW_DIR / "fpga" / "hls_reference_points.yaml"

MUL_STAGES = 3  # DSP48 multiply pipeline at ~200 MHz
RESOURCE_DEPTH = 5  # dense_resource: load + multiply + accumulate around the RF loop
ACT_CYCLES = 1
SOFTMAX_CYCLES = 10
DSP_MIN_BITS = 11  # Vivado maps narrower multiplications to LUTs


# ---- layers -----------------------------------------------------------------------------
@dataclass
class HlsLayer:
    """One layer as hls4ml sees it (channels-last shapes)."""

    name: str
    kind: str  # conv2d | conv1d | dense | pool | act | softmax | flatten
    in_shape: tuple[int, ...]  # (H, W, C), (L, C) or (N,)
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    reuse_factor: int | None = None  # None: the configuration's default
    stream_words: int | None = None  # io_stream words in (a flattened image stays one word per pixel)
    # facts read from a generated project (edgekd.profile.hls_project); None: the configuration's
    padding: int = 0
    kernel_w: int | None = None
    stride_w: int | None = None
    strategy: str | None = None  # latency | resource | distributed_arithmetic
    weight_bits: int | None = None
    accum_bits: int | None = None
    n_zeros: int = 0
    implementation: str | None = None
    pool_op: str | None = None
    activation: str | None = None
    # io_parallel convolutions: hls4ml's ``n_partitions`` (output pixels / ParallelizationFactor); None: one
    # pixel at a time (the default, n_partitions = output pixels)
    n_partitions: int | None = None
    # widths of the layer's input and output activation types (ap_fixed<W,I>: W), from the project's
    # defines.h and the types its top function passes; None: the design's default precision
    data_bits: int | None = None
    result_bits: int | None = None
    # the layer's nonzero weights, quantized to their type, counted by the nonzero digits of their canonical signed
    # digit form: [1, 2, 3, ≥ 4] (hls_project.weight_csd); None: the weights are not known
    weight_csd: tuple[int, int, int, int] | None = None
    # distributed arithmetic: the adders of the layer's generated adder graph and their bits
    # (edgekd.profile.da_codegen); None: not read
    da_adders: int | None = None
    da_adder_bits: int | None = None

    @property
    def n_in(self) -> int:
        """Length of one dot product (the dense block's n_in)."""
        if self.kind == "conv2d":
            return self.kernel * self.kernel * self.in_shape[-1]
        if self.kind == "conv1d":
            return self.kernel * self.in_shape[-1]
        if self.kind == "dense":
            return int(math.prod(self.in_shape))
        return 0

    @property
    def n_out(self) -> int:
        if self.kind in ("conv2d", "conv1d"):
            return self.out_shape[-1]
        if self.kind == "dense":
            return int(math.prod(self.out_shape))
        return 0

    @property
    def in_pixels(self) -> int:
        """Stream words into the layer (pixels for images, elements for vectors)."""
        if self.stream_words is not None:
            return self.stream_words
        return int(math.prod(self.in_shape[:-1])) if len(self.in_shape) > 1 else int(self.in_shape[0])


def layers_from_torch(model: Any, input_shape: tuple[int, int, int]) -> list[HlsLayer]:
    """hls4ml's view of a sequential PyTorch (or Brevitas) student with NCHW input ``(C, H, W)``."""
    import torch.nn as nn

    c, h, w = input_shape
    shape: tuple[int, ...] = (h, w, c)
    out: list[HlsLayer] = []
    words: int | None = None  # after Flatten, hls4ml's stream still carries one pixel per word
    mods = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    for name, m in mods:
        tname = type(m).__name__
        if isinstance(m, nn.Conv2d):
            k, s = m.kernel_size[0], m.stride[0]
            p = m.padding[0] if isinstance(m.padding, tuple) else 0
            if p:
                raise EdgekdError("padded convolutions are not modelled", where=f"layer {name}",
                                  fix="use valid (unpadded) convolutions")
            ho, wo = (shape[0] - k) // s + 1, (shape[1] - k) // s + 1
            new = (ho, wo, m.out_channels)
            out.append(HlsLayer(name, "conv2d", shape, new, k, s))
        elif isinstance(m, nn.Linear):
            new = (m.out_features,)
            out.append(HlsLayer(name, "dense", (int(math.prod(shape)),), new, stream_words=words))
            words = None
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            new = (shape[0] // k, shape[1] // k, shape[2])
            out.append(HlsLayer(name, "pool", shape, new, k, k))
        elif isinstance(m, nn.Flatten):
            new = (int(math.prod(shape)),)
            out.append(HlsLayer(name, "flatten", shape, new))
            words = int(math.prod(shape[:-1])) if len(shape) > 1 else None
        elif isinstance(m, nn.Softmax):
            new = shape
            out.append(HlsLayer(name, "softmax", shape, new))
        elif isinstance(m, (nn.ReLU,)) or tname in ("QuantReLU", "QuantIdentity"):
            new = shape
            out.append(HlsLayer(name, "act", shape, new))
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        elif tname.startswith("Quant") or tname.endswith("Quant") or "quant" in type(m).__module__:
            continue  # Brevitas quantizer internals
        else:
            raise EdgekdError(f"layer type {tname} is not modelled by the hls4ml estimate", where=f"layer {name}")
        shape = new
    return out


def layers_from_spec(spec: Iterable[dict[str, Any]]) -> list[HlsLayer]:
    """Layers from the compact form used in ``hls_reference_points.yaml``."""
    out: list[HlsLayer] = []
    for i, d in enumerate(spec):
        kind, name = d["kind"], d.get("name", f"l{i}")
        if kind == "dense":
            out.append(HlsLayer(name, "dense", (d["n_in"],), (d["n_out"],)))
        elif kind in ("act", "softmax"):
            out.append(HlsLayer(name, kind, (d["n"],), (d["n"],)))
        elif kind == "conv1d":
            lo = (d["length"] - d["kernel"]) // d.get("stride", 1) + 1
            out.append(HlsLayer(name, "conv1d", (d["length"], d["channels"]), (lo, d["filters"]), d["kernel"],
                                d.get("stride", 1)))
        elif kind == "conv2d":
            ho = (d["height"] - d["kernel"]) // d.get("stride", 1) + 1
            wo = (d["width"] - d["kernel"]) // d.get("stride", 1) + 1
            out.append(HlsLayer(name, "conv2d", (d["height"], d["width"], d["channels"]), (ho, wo, d["filters"]),
                                d["kernel"], d.get("stride", 1)))
        else:
            raise ConfigError(f"unknown layer kind '{kind}'", where=f"{REFERENCE_POINTS.name} layer {i}")
    return out


# ---- hls4ml's reuse-factor rules ------------------------------------------------------------
def valid_reuse_factor(n_in: int, n_out: int, rf: int) -> bool:
    """hls4ml's rule (FPGABackend._validate_reuse_factor), reproduced to predict its choice."""
    mult_limit = math.ceil(n_in * n_out / min(n_in, rf))
    ok = (mult_limit % n_out == 0) or rf >= n_in
    ok = ok and (rf % n_in == 0 or rf < n_in)
    return ok and (n_in * n_out) % rf == 0


def closest_reuse_factor(n_in: int, n_out: int, rf: int) -> int:
    """The reuse factor hls4ml will actually use when asked for ``rf`` (it silently substitutes)."""
    valid = [r for r in range(1, n_in * n_out + 1) if valid_reuse_factor(n_in, n_out, r)]
    return min(valid, key=lambda r: (abs(r - rf), r))


# ---- the model --------------------------------------------------------------------------
@dataclass
class HlsConfig:
    io_type: IoType = "io_stream"
    strategy: Strategy = "Resource"
    reuse_factor: int = 1
    layer_reuse: dict[str, int] = field(default_factory=dict)
    weight_bits: int = 16  # ap_fixed<16,6> everywhere by default
    act_bits: int = 16
    clock_mhz: float | None = None  # None: the target's
    backend: str = "Vitis"  # Vitis (Vitis HLS) | Vivado (Vivado HLS ≤ 2020.1): the calibration's tool family

    def validate(self) -> None:
        if self.io_type not in ("io_parallel", "io_stream"):
            raise ConfigError(f"io_type '{self.io_type}' unknown", where="fpga-hls", fix="io_parallel or io_stream")
        if self.strategy not in ("Latency", "Resource"):
            raise ConfigError(f"strategy '{self.strategy}' unknown", where="fpga-hls", fix="Latency or Resource")
        if self.reuse_factor < 1:
            raise ConfigError("reuse_factor must be ≥ 1", where="fpga-hls")


@dataclass
class LayerEstimate:
    name: str
    kind: str
    reuse_factor: int
    latency_cycles: int  # io_parallel: the layer's own; io_stream: depth after its last input
    ii_cycles: int  # io_parallel: between calls; io_stream: per input pixel
    multipliers: int
    first_out: float = 0.0  # io_stream schedule (cycles from the first input pixel)
    last_out: float = 0.0


@dataclass
class HlsEstimate:
    """Estimated latency, II and resources of an hls4ml design (method ``estimated``)."""

    model: str
    part: str
    clock_mhz: float
    io_type: str
    strategy: str
    latency_cycles: int
    ii_cycles: int
    lut: int
    ff: int
    dsp: int
    bram_36k: int
    layers: list[LayerEstimate]
    budget: dict[str, int] = field(default_factory=dict)
    source: str = "estimated: edgekd.profile.fpga_estimate (hls4ml scheduling model)"
    reference_error: dict[str, Any] = field(default_factory=dict)
    # cross-validated intervals: figure → [low, high] (same units), and their coverage
    intervals: dict[str, list[float]] = field(default_factory=dict)
    coverage: float = 0.0
    structural: dict[str, float] = field(default_factory=dict)  # the uncalibrated figures
    bottleneck: str = ""
    # where the design's latency is data-dependent (io_stream Resource convolutions: C synthesis
    # cannot bound how many pixels take the RF loop), the [min, max] C synthesis reports;
    # ``latency_cycles`` is its max, ``latency_expected_cycles`` the count of the actual image
    latency_range_cycles: list[int] = field(default_factory=list)
    latency_expected_cycles: int | None = None

    def latency_range_text(self) -> str:
        """``9,426–9,482 cycles (data-dependent)`` or '' when the latency is fixed."""
        if not self.latency_range_cycles:
            return ""
        lo, hi = self.latency_range_cycles
        return f"{lo:,}–{hi:,} cycles (data-dependent)"

    def upper(self) -> dict[str, float]:
        """Upper ends of the intervals (the figures 'fits the part' is judged on)."""
        vals = {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram_36k": self.bram_36k}
        return {k: (self.intervals[k][1] if k in self.intervals else v) for k, v in vals.items()}

    def percent_upper(self) -> dict[str, float]:
        up = self.upper()
        return {k: 100.0 * up[k] / v for k, v in self.budget.items() if v}

    def fits(self) -> bool:
        """Fits the part at the upper end of every resource interval."""
        return all(v <= 100.0 for v in self.percent_upper().values())

    def interval_text(self, key: str, unit: str = "") -> str:
        """``4,480 cycles [3,700–5,600], 80 %`` for one figure."""
        v = {"latency_cycles": self.latency_cycles, "ii_cycles": self.ii_cycles, "lut": self.lut, "ff": self.ff,
             "dsp": self.dsp, "bram_36k": self.bram_36k}[key]
        if key not in self.intervals:
            return f"{v:,}{' ' + unit if unit else ''}"
        lo, hi = self.intervals[key]
        return f"{v:,}{' ' + unit if unit else ''} [{lo:,.0f}–{hi:,.0f}], {100 * self.coverage:.0f} %"

    @property
    def latency_us(self) -> float:
        return self.latency_cycles / self.clock_mhz

    def percent(self) -> dict[str, float]:
        used = {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram_36k": self.bram_36k}
        return {k: 100.0 * used[k] / v for k, v in self.budget.items() if v}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_us"] = self.latency_us
        d["percent"] = self.percent()
        return d


def _adder_levels_per_cycle(clock_mhz: float) -> int:
    # ~2 16-bit adder levels fit a 5 ns cycle after the multiplier; scale with the period
    return max(1, round(2 * (1000.0 / clock_mhz) / 5.0))


def _block(layer: HlsLayer, rf: int, cfg: HlsConfig, clock_mhz: float) -> tuple[int, int]:
    """(latency, II) of one dense block (a dense layer, or one kernel application of a conv)."""
    if cfg.strategy == "Latency" and rf == 1:
        return 1 + math.ceil(math.log2(max(layer.n_in, 2)) / _adder_levels_per_cycle(clock_mhz)), 1
    return rf + RESOURCE_DEPTH, rf


def estimate_hls_v0(layers: list[HlsLayer], cfg: HlsConfig, target: FpgaTarget | None = None, *,
                    model: str = "", clock_mhz: float | None = None,
                    input_arrival: tuple[float, float] | None = None) -> HlsEstimate:
    """The first, uncalibrated scheduling model (kept to state how far off it was:
    ``tools/bench_fpga_calibration.py`` reports its errors next to the calibrated model's).

    ``input_arrival`` (io_stream only) is ``(first, last)`` input pixel arrival time in
    this design's clock cycles; by default the source keeps up with the first layer.
    """
    cfg.validate()
    clk = clock_mhz or cfg.clock_mhz or (target.clock_mhz if target else None)
    if clk is None:
        raise ConfigError("no clock given", where="fpga-hls", fix="pass a target or clock_mhz")
    ests: list[LayerEstimate] = []
    mults = 0
    bram = 0
    for layer in layers:
        rf = 1
        if layer.kind in ("dense", "conv1d", "conv2d"):
            want = layer.reuse_factor or cfg.layer_reuse.get(layer.name, cfg.reuse_factor)
            rf = closest_reuse_factor(layer.n_in, layer.n_out, want)
            lat, ii = _block(layer, rf, cfg, clk)
            m = math.ceil(layer.n_in * layer.n_out / rf)
            if cfg.io_type == "io_parallel" and layer.kind != "dense":
                m *= int(math.prod(layer.out_shape[:-1]))  # every output pixel has its own block
            mults += m
            if cfg.strategy == "Resource" and rf > 1:
                bram += math.ceil(layer.n_in * layer.n_out * cfg.weight_bits / 36864)
        elif layer.kind == "softmax":
            lat, ii, m = SOFTMAX_CYCLES, 1, 0
        elif layer.kind == "flatten":
            lat, ii, m = 0, 1, 0
        else:
            lat, ii, m = ACT_CYCLES, 1, 0
        ests.append(LayerEstimate(layer.name, layer.kind, rf, int(lat), int(ii), m))

    if cfg.io_type == "io_parallel":
        total = sum(e.latency_cycles for e in ests)
        ii_total = max(e.ii_cycles for e in ests)
    else:
        total, ii_total = _stream_schedule(layers, ests, input_arrival)

    use_dsp = max(cfg.weight_bits, cfg.act_bits) >= DSP_MIN_BITS
    dsp = mults if use_dsp else 0
    lut_mult = 0 if use_dsp else int(mults * 0.6 * cfg.weight_bits * cfg.act_bits)
    acc_bits = cfg.weight_bits + cfg.act_bits
    lut = lut_mult + int(mults * acc_bits * 1.0) + 500 * len(layers)
    ff = int(mults * acc_bits * 1.5) + 500 * len(layers)
    budget = {}
    if target is not None:
        r = target.resources
        budget = {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram_36k": r.bram_36k}
    return HlsEstimate(model=model, part=target.part if target else "", clock_mhz=clk, io_type=cfg.io_type,
                       strategy=cfg.strategy, latency_cycles=int(math.ceil(total)), ii_cycles=int(ii_total),
                       lut=lut, ff=ff, dsp=dsp, bram_36k=bram, layers=ests, budget=budget)


def _reuse_of(layers: list[HlsLayer], cfg: HlsConfig) -> dict[str, int]:
    """Layer name → the reuse factor hls4ml will use (the closest valid one to what is asked)."""
    reuse: dict[str, int] = {}
    for layer in layers:
        if layer.kind in ("dense", "conv1d", "conv2d"):
            want = layer.reuse_factor or cfg.layer_reuse.get(layer.name, cfg.reuse_factor)
            reuse[layer.name] = closest_reuse_factor(layer.n_in, layer.n_out, want)
    return reuse


@dataclass
class _Latency:
    """The calibrated latency, its interval and C synthesis's data-dependent range (io_stream Resource convs)."""

    value: float
    interval: tuple[float, float]
    range_cycles: list[int] = field(default_factory=list)
    expected: int | None = None
    expected_interval: list[float] | None = None


def _latency_fed(at: Any, lat: _Latency, structural_latency: float) -> _Latency:
    """io_stream fed at the input's arrival times: the calibrated pace (cycles per word) through the same
    schedule. ``at(scale)`` is the structural design with every process's pace scaled."""
    def reported(st: Any) -> float:  # what C synthesis would state: its max
        return st.latency_max if st.latency_max is not None else st.latency

    r = (1.0 + lat.value) / (1.0 + structural_latency)
    lo_r, hi_r = (1.0 + lat.interval[0]) / (1.0 + lat.value), (1.0 + lat.interval[1]) / (1.0 + lat.value)
    s_arr, s_lo, s_hi = at(r), at(r * lo_r), at(r * hi_r)
    out = _Latency(float(round(reported(s_arr))), (float(math.floor(reported(s_lo))), float(math.ceil(reported(s_hi)))))
    if s_arr.latency_min is not None:
        out.range_cycles, out.expected = [int(round(s_arr.latency_min)), int(out.value)], int(round(s_arr.latency))
        # the run of this image: from the low end of the expected count to C synthesis's upper bound
        out.expected_interval = [float(math.floor(s_lo.latency)), out.interval[1]]
    return out


def _latency_bounds(s: Any, lat: _Latency) -> _Latency:
    """The calibration's correction applied to both of C synthesis's bounds (no input arrival given)."""
    if s.latency_max is None or s.latency_min is None:
        return lat
    k = (1.0 + lat.value) / (1.0 + s.latency_max)
    lat.range_cycles = [int(round((1.0 + s.latency_min) * k - 1.0)), int(lat.value)]
    lat.expected = int(round((1.0 + s.latency) * k - 1.0))
    lat.expected_interval = [float(math.floor((1.0 + lat.expected) * (1.0 + lat.interval[0]) / (1.0 + lat.value)
                                              - 1.0)), lat.interval[1]]
    return lat


def estimate_hls(layers: list[HlsLayer], cfg: HlsConfig, target: FpgaTarget | None = None, *,
                 model: str = "", clock_mhz: float | None = None,
                 input_arrival: tuple[float, float] | None = None) -> HlsEstimate:
    """Latency (cycles), II and resources of hls4ml's design for ``layers``, calibrated on real
    synthesis reports (:mod:`edgekd.profile.fpga_calibration`), each with its cross-validated
    80 % interval.

    The structure comes from :func:`edgekd.profile.hls_model.structural` (what hls4ml's
    templates generate); the calibration corrects it per tool family, io_type and strategy.
    ``input_arrival`` (io_stream only) is ``(first, last)`` input pixel arrival time in this
    design's clock cycles; by default the source keeps up with the first layer.
    """
    from edgekd.profile import fpga_calibration as cal
    from edgekd.profile import hls_model

    cfg.validate()
    clk = clock_mhz or cfg.clock_mhz or (target.clock_mhz if target else None)
    if clk is None:
        raise ConfigError("no clock given", where="fpga-hls", fix="pass a target or clock_mhz")
    kw = dict(io_type=cfg.io_type, strategy=cfg.strategy, reuse=_reuse_of(layers, cfg),
              bits=max(cfg.weight_bits, cfg.act_bits), clock_mhz=clk,
              family="vivado" if cfg.backend.lower().startswith("vivado") else "vitis",
              speed=hls_model.speed_factor(target.part, target.speed_grade) if target else 1.0)
    s = hls_model.structural(layers, **kw)
    fit = cal.calibration()
    regime = cal.regime_of(layers, cfg.io_type)
    design = cal.Design(kw["family"], cfg.io_type, cfg.strategy, regime != "dense")
    feats = hls_model.features(s)
    figs = {m: fit.predict(m, feats[m], design) for m in cal.METRICS}
    ivs = {m: fit.interval(m, figs[m], regime=regime) for m in cal.METRICS}
    lat = _Latency(figs["latency"], ivs["latency"])
    if cfg.io_type == "io_stream" and input_arrival is not None:
        lat = _latency_fed(lambda scale: hls_model.structural(layers, arrival=input_arrival, scale=scale, **kw),
                           lat, feats["latency"])
    else:
        lat = _latency_bounds(s, lat)
    ests = [LayerEstimate(f.name, f.kind, f.reuse_factor, int(round(f.depth)), int(round(max(f.cycles_per_word, 1)))
                          if cfg.io_type == "io_stream" else int(round(f.ii)), f.multipliers, f.first_out, f.last_out)
            for f in s.layers]
    r_ = target.resources if target is not None else None
    budget = {"lut": r_.lut, "ff": r_.ff, "dsp": r_.dsp, "bram_36k": r_.bram_36k} if r_ is not None else {}
    return HlsEstimate(
        model=model, part=target.part if target else "", clock_mhz=clk, io_type=cfg.io_type, strategy=cfg.strategy,
        latency_cycles=int(lat.value), ii_cycles=int(max(figs["ii"], 1)), lut=int(figs["lut"]), ff=int(figs["ff"]),
        dsp=int(figs["dsp"]), bram_36k=int(math.ceil(figs["bram"] / 2)), layers=ests, budget=budget,
        source=(f"estimated: hls4ml structural model calibrated on {fit.n_records} synthesis reports from "
                f"{len(set(fit.groups))} sources ({cfg.backend} HLS family); intervals = leave-one-source-out 80 % "
                "error"),
        intervals={"latency_cycles": [lat.interval[0], lat.interval[1]], "ii_cycles": list(ivs["ii"]),
                   "lut": list(ivs["lut"]), "ff": list(ivs["ff"]), "dsp": list(ivs["dsp"]),
                   "bram_36k": [math.floor(ivs["bram"][0] / 2), math.ceil(ivs["bram"][1] / 2)],
                   **({"latency_expected_cycles": lat.expected_interval} if lat.expected_interval else {})},
        coverage=cal.COVERAGE, structural={k: float(v) for k, v in feats.items()}, bottleneck=s.bottleneck,
        latency_range_cycles=lat.range_cycles, latency_expected_cycles=lat.expected)


def _stream_schedule(layers: list[HlsLayer], ests: list[LayerEstimate],
                     arrival: tuple[float, float] | None) -> tuple[float, int]:
    """First/last output times of each DATAFLOW process; returns (latency, II between images)."""
    first, last = arrival if arrival is not None else (0.0, None)  # type: ignore[assignment]
    ii_images = 1
    for layer, e in zip(layers, ests):
        n = layer.in_pixels
        # a dense layer reads one word per cycle and then runs its RF loop; a conv takes a pixel per RF
        per_word = 1 if layer.kind == "dense" else e.ii_cycles
        if last is None:  # the source keeps pace with this layer
            last = first + (n - 1) * per_word
        busy = (n - 1) * per_word
        ii_images = max(ii_images, n * per_word, e.ii_cycles)
        done = max(last, first + busy)  # the last pixel is taken when it has arrived and the layer is free
        if layer.kind in ("conv2d", "conv1d", "pool"):
            k = layer.kernel
            width = layer.in_shape[1] if layer.kind != "conv1d" and len(layer.in_shape) == 3 else 1
            # the first window is complete after (k-1) full rows and k pixels of the k-th row
            idx = (k - 1) * width + (k - 1) if layer.kind != "conv1d" else k - 1
            frac = idx / max(n - 1, 1)
            t_first_in = first + frac * (done - first)
            e.first_out = t_first_in + e.latency_cycles
            e.last_out = done + e.latency_cycles
        elif layer.kind == "dense":
            e.first_out = e.last_out = done + e.latency_cycles  # needs every input
        else:  # activation, softmax, flatten: one word per cycle, pass-through
            e.first_out = first + e.latency_cycles
            e.last_out = done + e.latency_cycles
        first, last = e.first_out, e.last_out
    return float(last), int(ii_images)


# ---- vendor reports override ------------------------------------------------------------
def estimate_with_vendor(est: HlsEstimate, vendor: Any | None) -> HlsEstimate:
    """Replace estimated numbers by a parsed vendor report's (``edgekd.export.vendor_reports.SynthReport``).

    Only the fields the report has are replaced; ``source`` records where each came from.
    """
    if vendor is None:
        return est
    lat = getattr(vendor, "latency_max", None)
    ii = getattr(vendor, "interval_max", None)
    changed = []
    if lat is not None:
        est.latency_cycles, _ = int(lat), changed.append("latency")
    if ii is not None:
        est.ii_cycles, _ = int(ii), changed.append("II")
    for key in ("lut", "ff", "dsp"):
        v = getattr(vendor, key, None)
        if v is not None:
            setattr(est, key, int(v))
            changed.append(key)
    for key in ("bram", "bram_18k", "bram_36k"):
        v = getattr(vendor, key, None)
        if v is not None:
            est.bram_36k = int(math.ceil(v / 2)) if key == "bram_18k" else int(v)
            changed.append("bram")
            break
    clk = getattr(vendor, "target_clock_ns", None)
    if clk:
        est.clock_mhz = 1000.0 / float(clk)
    if changed:
        est.source = (f"vendor report {getattr(vendor, 'path', '')} ({getattr(vendor, 'tool_version', '') or 'HLS'}): "
                      f"{', '.join(changed)}; other figures estimated")
    return est


def latency_result(est: HlsEstimate) -> LatencyResult:
    """The estimate as a LatencyResult (method ``estimated``; a vendor C-synthesis report is also an estimate)."""
    us = est.latency_us
    return LatencyResult(
        model=est.model, target="fpga-hls", batch_size=1, method="estimated", p50_us=us, p90_us=us, p99_us=us,
        mean_us=us, min_us=us, throughput_per_s=est.clock_mhz * 1e6 / max(est.ii_cycles, 1), runs=1, warmup=0,
        timer=est.source,
        details={"latency_cycles": est.latency_cycles, "ii_cycles": est.ii_cycles, "clock_mhz": est.clock_mhz,
                 "io_type": est.io_type, "strategy": est.strategy, "part": est.part,
                 "resources": {"lut": est.lut, "ff": est.ff, "dsp": est.dsp, "bram_36k": est.bram_36k},
                 "percent": est.percent(), "reference_error": est.reference_error,
                 "intervals": est.intervals, "coverage": est.coverage,
                 **({"latency_range_cycles": est.latency_range_cycles,
                     "latency_expected_cycles": est.latency_expected_cycles} if est.latency_range_cycles else {})})


# ---- error against published results ----------------------------------------------------
@dataclass
class ReferenceError:
    id: str
    metric: str  # latency_cycles | ii_cycles
    reported: float  # mid-point of the reported min/max
    estimated: float
    source: str

    @property
    def rel_error(self) -> float:
        return (self.estimated - self.reported) / self.reported


def load_reference_points(path: str | Path = REFERENCE_POINTS) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        pts = yaml.safe_load(p.read_text())["points"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read reference points: {exc}", where=str(p)) from None
    for pt in pts:
        for key in ("id", "source", "io_type", "strategy", "reuse_factor", "clock_ns", "layers", "reported"):
            if key not in pt:
                raise ConfigError(f"reference point without '{key}'", where=f"{p.name}: {pt.get('id', '?')}")
    return pts


def reference_errors(path: str | Path = REFERENCE_POINTS) -> list[ReferenceError]:
    """The first (uncalibrated) model on the three points it was checked against before the
    calibration corpus existed; kept as a record. The calibrated estimator's error is the
    leave-one-source-out table of ``tools/bench_fpga_calibration.py``."""
    out: list[ReferenceError] = []
    for pt in load_reference_points(path):
        cfg = HlsConfig(io_type=pt["io_type"], strategy=pt["strategy"], reuse_factor=int(pt["reuse_factor"]),
                        weight_bits=int(pt.get("precision_bits", 16)), act_bits=int(pt.get("precision_bits", 16)))
        layers = layers_from_spec(pt["layers"])
        est = estimate_hls_v0(layers, cfg, clock_mhz=1000.0 / float(pt["clock_ns"]), model=pt["id"])
        if pt.get("scope", "design") == "dense_layers":
            lat = sum(e.latency_cycles for e in est.layers if e.kind == "dense")
        else:
            lat = est.latency_cycles
        rep = pt["reported"]
        if "latency_cycles" in rep:
            out.append(ReferenceError(pt["id"], "latency_cycles", sum(rep["latency_cycles"]) / 2, lat, pt["source"]))
        if "ii_cycles" in rep:
            out.append(ReferenceError(pt["id"], "ii_cycles", sum(rep["ii_cycles"]) / 2, est.ii_cycles, pt["source"]))
    return out


def error_summary(errors: list[ReferenceError]) -> dict[str, Any]:
    """Median and largest |relative error| over the reference points, per metric."""
    out: dict[str, Any] = {"n_points": len({e.id for e in errors})}
    for metric in ("latency_cycles", "ii_cycles"):
        errs = sorted(abs(e.rel_error) for e in errors if e.metric == metric)
        if errs:
            mid = len(errs) // 2
            med = errs[mid] if len(errs) % 2 else (errs[mid - 1] + errs[mid]) / 2
            out[metric] = {"n": len(errs), "median_abs_rel_error": med, "max_abs_rel_error": errs[-1]}
    return out
