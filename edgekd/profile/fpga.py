"""FPGA figures for the run report: hls4ml latency/II/resources and first pixel to decision.

Glue between the exported students and :mod:`edgekd.profile.fpga_estimate` /
:mod:`edgekd.profile.first_pixel`. Every figure is labelled ``estimated`` unless a vendor
synthesis report in the project overrides it (then its source names the report).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch.nn as nn

from edgekd.config.schema import HlsExportConfig
from edgekd.hwtargets import load_fpga
from edgekd.profile.result import LatencyResult


@dataclass
class FpgaFigures:
    """One student on one FPGA design: what the report's FPGA table shows."""

    model: str
    target: str  # fpga-hls | fpga-rtl
    part: str
    method: str  # estimated | simulated
    design: str
    latency_cycles: int
    latency_us: float
    ii_cycles: int
    clock_mhz: float
    resources: dict[str, int]
    percent: dict[str, float]
    first_pixel_to_decision_us: float | None
    source: str
    details: dict[str, Any]
    # figure → [low, high]: the cross-validated interval of each estimated figure (empty when
    # measured, simulated or read from a vendor report); keys latency_cycles, latency_us,
    # ii_cycles, lut, ff, dsp, bram_36k, first_pixel_to_decision_us
    intervals: dict[str, list[float]] = field(default_factory=dict)
    coverage: float | None = None  # of the intervals (0.8)

    def interval_text(self, key: str, fmt: str = ",.0f", unit: str = "") -> str:
        """``4,480 cycles [3,700–5,600], 80 %``; the bare value when the figure has no interval."""
        v = {"latency_cycles": self.latency_cycles, "latency_us": self.latency_us, "ii_cycles": self.ii_cycles,
             "first_pixel_to_decision_us": self.first_pixel_to_decision_us, **self.resources}.get(key)
        if v is None:
            return "–"
        u = f" {unit}" if unit else ""
        if key not in self.intervals or self.coverage is None:
            return f"{v:{fmt}}{u}"
        lo, hi = self.intervals[key]
        return f"{v:{fmt}}{u} [{lo:{fmt}}–{hi:{fmt}}], {100 * self.coverage:.0f} %"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def hls_figures(model: nn.Module, name: str, input_shape: tuple[int, int, int], cfg: HlsExportConfig,
                bits: int, project: Path | None = None,
                layer_reuse: dict[str, int] | None = None) -> tuple[FpgaFigures, LatencyResult]:
    """Estimate the hls4ml design that ``cfg`` describes (bits = the chosen total width;
    ``layer_reuse``: the per-layer reuse factors the project was written with)."""
    from edgekd.profile import fpga_estimate as fe

    target = load_fpga(cfg.target)
    layers = fe.layers_from_torch(model, input_shape)
    from edgekd.export.hls import weight_digits

    weight_digits(model, layers, bits, cfg.precision)  # a written project's own weights replace these below
    base_rf = cfg.base_reuse_factor
    hcfg = fe.HlsConfig(io_type=cfg.io_type, strategy=cfg.strategy, reuse_factor=base_rf,
                        layer_reuse=dict(layer_reuse or {}), weight_bits=bits, act_bits=bits, backend=cfg.backend)
    if project is not None and (project / "firmware" / "parameters.h").is_file():
        # the generated project's own layer configs (reuse factors hls4ml actually used, strategy, widths)
        from edgekd.profile.hls_project import read_project

        try:
            layers = _project_layers(read_project(project).layers, layers)
        except Exception:  # noqa: BLE001 - an unreadable project falls back to the model's layers
            pass
    est, first_pixel, fp_iv = _estimate_and_first_pixel(layers, hcfg, target, name, input_shape)
    intervals = {k: list(v) for k, v in est.intervals.items()}
    if "latency_cycles" in intervals:
        intervals["latency_us"] = [c / est.clock_mhz for c in intervals["latency_cycles"]]
    if fp_iv is not None:
        intervals["first_pixel_to_decision_us"] = list(fp_iv)
    vendor = None
    if project is not None and project.is_dir():
        from edgekd.export.vendor_reports import read_reports

        vendor = read_reports(project)
        if vendor is not None:
            est = fe.estimate_with_vendor(est, vendor)
            first_pixel = None  # a vendor report times the design, not the pixel bus
            intervals = {}
    lat = fe.latency_result(est)
    fits = est.fits() if vendor is None else all(v <= 100.0 for v in est.percent().values())
    details: dict[str, Any] = {"fits_part": fits,
                               "fits_part_rule": ("upper end of the 80 % interval of every resource"
                                                  if vendor is None else "vendor report"),
                               "percent_upper": est.percent_upper() if vendor is None else est.percent(),
                               "structural": est.structural, "bottleneck": est.bottleneck}
    if vendor is None and est.latency_range_cycles:
        # C synthesis would report a data-dependent min–max; latency_cycles is its max
        details["latency_range_cycles"] = list(est.latency_range_cycles)
        details["latency_expected_cycles"] = est.latency_expected_cycles
    if not fits:
        details.update(_reuse_hint(layers, hcfg, target, est, cfg, layer_reuse if vendor is None else None))
    fig = FpgaFigures(
        model=name, target="fpga-hls", part=target.part, method="estimated",
        design=(f"hls4ml {cfg.backend} {cfg.io_type} {cfg.strategy} RF{base_rf}"
                + (f" (per layer {layer_reuse})" if layer_reuse else "") + f", {bits}-bit"),
        latency_cycles=est.latency_cycles, latency_us=est.latency_us, ii_cycles=est.ii_cycles,
        clock_mhz=est.clock_mhz, resources={"lut": est.lut, "ff": est.ff, "dsp": est.dsp, "bram_36k": est.bram_36k},
        percent=est.percent(), first_pixel_to_decision_us=first_pixel, source=est.source,
        details=details, intervals=intervals, coverage=est.coverage if intervals else None,
    )
    return fig, lat


def _estimate_and_first_pixel(layers: list[Any], hcfg: Any, target: Any, name: str,
                              input_shape: tuple[int, int, int]) -> tuple[Any, float | None, list[float] | None]:
    """The calibrated estimate, and the first pixel to decision over the target's pixel bus (µs) with its
    interval where the target has one."""
    from edgekd.profile import fpga_estimate as fe
    from edgekd.profile.first_pixel import parallel_first_pixel_estimate, stream_first_pixel

    if hcfg.io_type == "io_stream" and target.pixel_bus is not None:
        fp, est = stream_first_pixel(layers, hcfg, target, model=name)
        return est, fp.first_pixel_to_decision_us, fp.details.get("first_pixel_to_decision_interval_us")
    est = fe.estimate_hls(layers, hcfg, target, model=name)
    if target.pixel_bus is None:
        return est, None, None
    # io_parallel waits for the last pixel, then computes
    fp = parallel_first_pixel_estimate(int(math.prod(input_shape)), est, target, model=name)
    return est, fp.first_pixel_to_decision_us, fp.details["first_pixel_to_decision_interval_us"]


def _reuse_hint(layers: list[Any], hcfg: Any, target: Any, est: Any, cfg: HlsExportConfig,
                layer_reuse: dict[str, int] | None) -> dict[str, Any]:
    """For a design over the part: the reuse factors whose DSPs fit, and what they leave over the part.

    hls4ml users pick reuse factors by hand until synthesis fits; this tells them instead of
    leaving them to trial synthesis. A design written with ``reuse_factor: auto`` already has
    the fastest such factors, so its own are the answer (the search is not run twice).
    """
    from edgekd.errors import ConfigError
    from edgekd.profile import fpga_estimate as fe
    from edgekd.profile.first_pixel import fastest_fitting_reuse

    out: dict[str, Any] = {}
    if cfg.reuse_factor == "auto" and layer_reuse and est.upper()["dsp"] <= target.resources.dsp:
        rfs, trial = dict(layer_reuse), est
    else:
        # a layer's own reuse factor (read from the project) would override every candidate: search without
        free = [replace(l, reuse_factor=None) for l in layers]
        try:
            rfs = fastest_fitting_reuse(free, hcfg, target)
        except ConfigError as exc:
            return {"fitting_reuse_factors": f"none found: {exc.what}"}
        trial = fe.estimate_hls(free, fe.HlsConfig(**{**hcfg.__dict__, "layer_reuse": rfs}), target)
    out["fitting_reuse_factors"] = rfs  # the fastest whose DSP interval's upper end fits
    if not trial.fits():  # the search only trades DSPs; the rest needs fewer bits or a smaller student
        over = {k: round(v) for k, v in trial.percent_upper().items() if v > 100}
        out["reuse_alone_insufficient"] = (f"at these reuse factors the upper ends still exceed the "
                                           f"part: {over} (% of the part)")
    return out


def _project_layers(project_layers: list[Any], model_layers: list[Any]) -> list[Any]:
    """The model's layer list with what the generated project says about each compute layer
    (reuse factor, strategy, weight and activation widths, the weights' CSD digits, a distributed-arithmetic
    layer's adders), matched in order; the model's list when they disagree."""
    pc = [l for l in project_layers if l.kind in ("dense", "conv1d", "conv2d")]
    mc = [l for l in model_layers if l.kind in ("dense", "conv1d", "conv2d")]
    if len(pc) != len(mc) or any(a.kind != b.kind for a, b in zip(pc, mc)):
        return model_layers
    for p, m in zip(pc, mc):
        m.reuse_factor = p.reuse_factor or m.reuse_factor
        m.strategy = p.strategy or m.strategy
        m.weight_bits = p.weight_bits or m.weight_bits
        m.n_zeros = p.n_zeros
        m.data_bits, m.result_bits = p.data_bits or m.data_bits, p.result_bits or m.result_bits
        m.weight_csd = p.weight_csd or m.weight_csd
        m.da_adders, m.da_adder_bits = p.da_adders, p.da_adder_bits  # a distributed-arithmetic layer's graph
    return model_layers
