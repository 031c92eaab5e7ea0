"""First pixel to decision: input arrival over the camera's pixel bus plus compute latency.

A frame grabber does not hand the network a finished image: pixels arrive over a bus of
``pixels_per_clock`` at ``clock_mhz`` (``hw/fpga/*.yaml: pixel_bus``). The figure a
cell-sorting experiment cares about — and the one the reference study measured, 14.5 µs
from the first pixel's valid signal to the result's valid signal — is therefore

* for a streaming design (hls4ml ``io_stream``): the layer schedule of
  :mod:`edgekd.profile.fpga_estimate` fed with the real arrival times, so computation
  overlaps arrival and whichever is slower sets the pace;
* for a fully parallel design (da4ml RTL, hls4ml ``io_parallel``): the arrival of the
  last pixel (every input is needed at once) plus the pipeline latency.

The figure is labelled with how its compute part was obtained (``estimated`` for the
hls4ml model, ``simulated`` for Verilator-checked RTL pipeline depth).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

from edgekd.errors import ConfigError
from edgekd.hwtargets import FpgaTarget, PixelBus
from edgekd.profile.fpga_estimate import (HlsConfig, HlsEstimate, HlsLayer, closest_reuse_factor, estimate_hls,
                                          valid_reuse_factor)

STUDY_FIRST_PIXEL_TO_DECISION_US = 14.5  # arXiv 2503.12622: first pixel valid → result valid, on its board


@dataclass
class FirstPixelResult:
    model: str
    target: str
    method: str  # estimated | simulated: how the compute part was obtained
    design: str  # "hls4ml io_stream", "da4ml RTL (fully parallel)", ...
    n_pixels: int
    pixels_per_clock: int
    bus_clock_mhz: float
    design_clock_mhz: float
    last_pixel_arrival_us: float
    compute_after_last_pixel_us: float
    first_pixel_to_decision_us: float
    details: dict[str, Any]

    def compare(self, reference_us: float = STUDY_FIRST_PIXEL_TO_DECISION_US) -> float:
        """Relative difference to a measured figure (the study's 14.5 µs by default)."""
        return (self.first_pixel_to_decision_us - reference_us) / reference_us

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bus(target: FpgaTarget) -> PixelBus:
    if target.pixel_bus is None:
        raise ConfigError(f"target '{target.name}' has no pixel_bus", where=f"hw/fpga/{target.name}.yaml",
                          fix="add pixel_bus: {pixels_per_clock, clock_mhz, bits_per_pixel}")
    return target.pixel_bus


def arrival_us(n_pixels: int, bus: PixelBus) -> tuple[float, float]:
    """(first, last) pixel arrival in µs after the first pixel's valid: one bus word per bus clock."""
    if n_pixels < 1:
        raise ConfigError("an image has at least one pixel", where="first_pixel")
    words = math.ceil(n_pixels / bus.pixels_per_clock)
    return 0.0, (words - 1) / bus.clock_mhz


def stream_first_pixel(layers: list[HlsLayer], cfg: HlsConfig, target: FpgaTarget, *,
                       model: str = "") -> tuple[FirstPixelResult, HlsEstimate]:
    """First pixel to decision of an hls4ml io_stream design fed by the target's pixel bus."""
    if cfg.io_type != "io_stream":
        raise ConfigError("stream_first_pixel models io_stream designs", where="first_pixel",
                          fix="use parallel_first_pixel for io_parallel or RTL designs")
    bus = _bus(target)
    n = layers[0].in_pixels
    first, last = arrival_us(n, bus)
    clk = cfg.clock_mhz or target.clock_mhz
    est = estimate_hls(layers, cfg, target, model=model, clock_mhz=clk, input_arrival=(first * clk, last * clk))
    # where the latency is data-dependent (Resource-strategy convolutions), the image's own run —
    # window pixels through the RF loop, the others not — rather than C synthesis's every-pixel bound;
    # its interval reaches up to that bound
    cycles = est.latency_expected_cycles if est.latency_expected_cycles is not None else est.latency_cycles
    total = cycles / clk
    lo, hi = est.intervals.get("latency_expected_cycles",
                               est.intervals.get("latency_cycles", [est.latency_cycles, est.latency_cycles]))
    res = FirstPixelResult(
        model=model, target=target.name, method="estimated", design=f"hls4ml io_stream ({cfg.strategy})",
        n_pixels=n, pixels_per_clock=bus.pixels_per_clock, bus_clock_mhz=bus.clock_mhz, design_clock_mhz=clk,
        last_pixel_arrival_us=last, compute_after_last_pixel_us=total - last, first_pixel_to_decision_us=total,
        details={"reuse_factors": {e.name: e.reuse_factor for e in est.layers if e.multipliers},
                 "ii_between_images_cycles": est.ii_cycles, "dsp": est.dsp, "part_dsp": target.resources.dsp,
                 "bottleneck": est.bottleneck or max(est.layers, key=lambda e: e.last_out - e.first_out).name,
                 # the calibrated compute pace's cross-validated 80 % interval, fed the same arrival
                 "first_pixel_to_decision_interval_us": [lo / clk, hi / clk], "coverage": est.coverage,
                 **({"csynth_latency_range_us": [c / clk for c in est.latency_range_cycles]}
                    if est.latency_range_cycles else {})})
    return res, est


def parallel_first_pixel(n_pixels: int, latency_cycles: int, target: FpgaTarget, *, model: str = "",
                         method: str = "simulated", design: str = "da4ml RTL (fully parallel)") -> FirstPixelResult:
    """First pixel to decision of a design that needs the whole image at once."""
    bus = _bus(target)
    _, last = arrival_us(n_pixels, bus)
    # one design clock to register the last bus word into the input vector
    compute = (latency_cycles + 1) / target.clock_mhz
    return FirstPixelResult(model=model, target=target.name, method=method, design=design, n_pixels=n_pixels,
                            pixels_per_clock=bus.pixels_per_clock, bus_clock_mhz=bus.clock_mhz,
                            design_clock_mhz=target.clock_mhz, last_pixel_arrival_us=last,
                            compute_after_last_pixel_us=compute, first_pixel_to_decision_us=last + compute,
                            details={"latency_cycles": latency_cycles})


def parallel_first_pixel_estimate(n_pixels: int, est: HlsEstimate, target: FpgaTarget, *, model: str = "",
                                  design: str = "hls4ml io_parallel") -> FirstPixelResult:
    """First pixel to decision of an estimated design that needs the whole image (hls4ml io_parallel),
    with the estimate's latency interval carried over (``details['first_pixel_to_decision_interval_us']``)."""
    fp = parallel_first_pixel(n_pixels, est.latency_cycles, target, model=model, method="estimated", design=design)
    lo, hi = est.intervals.get("latency_cycles", [est.latency_cycles] * 2)
    fp.details["first_pixel_to_decision_interval_us"] = [fp.last_pixel_arrival_us + (c + 1) / target.clock_mhz
                                                         for c in (lo, hi)]
    return fp


def fastest_fitting_reuse(layers: list[HlsLayer], cfg: HlsConfig, target: FpgaTarget,
                          candidates: int = 6) -> dict[str, int]:
    """Per-layer reuse factors with the lowest estimated latency whose DSPs fit the part.

    hls4ml users pick reuse factors by hand until synthesis fits; this searches the
    smallest ``candidates`` valid factors of every compute layer and about ``candidates``
    more on a doubling ladder up to the largest, with the calibrated estimator; a
    combination "fits" when the *upper end* of its DSP interval (80 %, cross-validated on
    real reports) is within the part. Latency is the image's own run where it is
    data-dependent (``latency_expected_cycles``), else the C-synthesis figure.
    """
    try:
        return _fastest_fitting_reuse(layers, cfg, target, candidates)
    except ConfigError:
        if candidates >= 12:
            raise
        return _fastest_fitting_reuse(layers, cfg, target, 12)  # wider search before giving up


def _fastest_fitting_reuse(layers: list[HlsLayer], cfg: HlsConfig, target: FpgaTarget,
                           candidates: int) -> dict[str, int]:
    compute = [l for l in layers if l.kind in ("dense", "conv1d", "conv2d")]
    options = []
    for l in compute:
        valid = [r for r in range(1, l.n_in * l.n_out + 1) if valid_reuse_factor(l.n_in, l.n_out, r)]
        # the smallest factors, plus a doubling ladder of larger ones: a layer that runs once per image
        # (a dense head) can trade most of its DSPs for a few cycles, which the smallest alone never reach
        ladder = sorted({min(valid, key=lambda r: abs(math.log(r) - k * math.log(2)))
                         for k in range(1, int(math.log2(valid[-1])) + 1)} - set(valid[:candidates]))
        step = max(1, math.ceil(len(ladder) / candidates))
        options.append(sorted(set(valid[:candidates]) | set(ladder[::step])))
    best: tuple[float, dict[str, int]] | None = None
    for combo in itertools.product(*options):
        rfs = {l.name: r for l, r in zip(compute, combo)}
        c = HlsConfig(**{**cfg.__dict__, "layer_reuse": rfs})
        est = estimate_hls(layers, c, target)
        lat = est.latency_expected_cycles if est.latency_expected_cycles is not None else est.latency_cycles
        if est.upper()["dsp"] <= target.resources.dsp and (best is None or lat < best[0]):
            best = (lat, rfs)
    if best is None:
        raise ConfigError("no reuse factors among the smallest candidates fit the part's DSPs (upper end of the "
                          "80 % interval)",
                          where=f"fpga-hls target {target.name}", fix="raise candidates or use a smaller student")
    return best[1]


def study_configuration(layers: list[HlsLayer], target: FpgaTarget) -> HlsConfig:
    """The study's likely hls4ml setup: io_stream, Resource, ap_fixed<16,6>, the part's clock,
    Vitis HLS, with the fastest reuse factors whose DSPs fit (the paper does not state them)."""
    cfg = HlsConfig(io_type="io_stream", strategy="Resource", reuse_factor=1, weight_bits=16, act_bits=16,
                    clock_mhz=target.clock_mhz, backend="Vitis")
    cfg.layer_reuse = fastest_fitting_reuse(layers, cfg, target)
    # record what hls4ml would actually use for each requested factor
    cfg.layer_reuse = {k: closest_reuse_factor(*(next((l.n_in, l.n_out) for l in layers if l.name == k)), v)
                       for k, v in cfg.layer_reuse.items()}
    return cfg
