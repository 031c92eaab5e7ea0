"""FPGA figures for the run report: hls4ml latency/II/resources and first pixel to decision.

Glue between the exported students and :mod:`edgekd.profile.fpga_estimate` /
:mod:`edgekd.profile.first_pixel`. Every figure is labelled ``estimated`` unless a vendor
synthesis report in the project overrides it (then its source names the report).
"""
from __future__ import annotations

from dataclasses import dataclass
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

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def hls_figures(model: nn.Module, name: str, input_shape: tuple[int, int, int], cfg: HlsExportConfig,
                bits: int, project: Path | None = None,
                layer_reuse: dict[str, int] | None = None) -> tuple[FpgaFigures, LatencyResult]:
    """Estimate the hls4ml design that ``cfg`` describes (bits = the chosen total width;
    ``layer_reuse``: the per-layer reuse factors the project was written with)."""
    from edgekd.profile import fpga_estimate as fe
    from edgekd.profile.first_pixel import stream_first_pixel

    target = load_fpga(cfg.target)
    layers = fe.layers_from_torch(model, input_shape)
    base_rf = cfg.base_reuse_factor
    hcfg = fe.HlsConfig(io_type=cfg.io_type, strategy=cfg.strategy, reuse_factor=base_rf,
                        layer_reuse=dict(layer_reuse or {}), weight_bits=bits, act_bits=bits)
    first_pixel = None
    if cfg.io_type == "io_stream" and target.pixel_bus is not None:
        fp, est = stream_first_pixel(layers, hcfg, target, model=name)
        first_pixel = fp.first_pixel_to_decision_us
    else:
        est = fe.estimate_hls(layers, hcfg, target, model=name)
    if project is not None and project.is_dir():
        from edgekd.export.vendor_reports import read_reports

        vendor = read_reports(project)
        if vendor is not None:
            est = fe.estimate_with_vendor(est, vendor)
            first_pixel = None  # a vendor report times the design, not the pixel bus
    lat = fe.latency_result(est)
    fits = all(v <= 100.0 for v in est.percent().values())
    details: dict[str, Any] = {"reference_error": est.reference_error, "fits_part": fits}
    if not fits:
        # Tell the user which reuse factors would fit instead of leaving them to trial synthesis.
        from edgekd.errors import ConfigError
        from edgekd.profile.first_pixel import fastest_fitting_reuse

        try:
            rfs = fastest_fitting_reuse(layers, hcfg, target)
            trial = fe.estimate_hls(layers, fe.HlsConfig(**{**hcfg.__dict__, "layer_reuse": rfs}), target)
            if all(v <= 100.0 for v in trial.percent().values()):
                details["fitting_reuse_factors"] = rfs
            else:  # the search only trades DSPs; LUT-bound designs need fewer bits or a smaller student
                details["fitting_reuse_factors"] = ("none found by reuse alone (LUT-bound: "
                                                    f"{trial.percent().get('lut', 0):.0f} % LUT at {rfs})")
        except ConfigError as exc:
            details["fitting_reuse_factors"] = f"none found: {exc.what}"
    fig = FpgaFigures(
        model=name, target="fpga-hls", part=target.part, method="estimated",
        design=(f"hls4ml {cfg.io_type} {cfg.strategy} RF{base_rf}"
                + (f" (per layer {layer_reuse})" if layer_reuse else "") + f", {bits}-bit"),
        latency_cycles=est.latency_cycles, latency_us=est.latency_us, ii_cycles=est.ii_cycles,
        clock_mhz=est.clock_mhz, resources={"lut": est.lut, "ff": est.ff, "dsp": est.dsp, "bram_36k": est.bram_36k},
        percent=est.percent(), first_pixel_to_decision_us=first_pixel, source=est.source,
        details=details,
    )
    return fig, lat
