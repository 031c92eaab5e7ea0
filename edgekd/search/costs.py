"""What a candidate costs on the search's target, with how each figure was obtained.

* ``fpga-hls``: the calibrated hls4ml estimator (shapes only, so before any training):
  first pixel to decision over the part's pixel bus and LUT/FF/DSP/BRAM with their
  cross-validated 80 % intervals — ``estimated``.
* ``fpga-rtl``: da4ml's size estimate and pipeline depth of the trained integer network
  (``estimated``); the chosen student is then built and run in Verilator by the target
  itself (``simulated``).
* ``onnxruntime`` / ``cpu-torch``: the candidate exported and timed at batch 1 (``measured``;
  latency does not depend on the weights, so it is measured before training).

The budget is judged on the *upper end* of an estimate's interval; the objectives use the
point figure.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, EdgekdError

SEARCH_TARGETS = ("fpga-hls", "fpga-rtl", "onnxruntime", "cpu-torch")
FPGA_RESOURCES = {"lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram_36k"}


@dataclass
class Cost:
    latency_us: float
    latency_label: str  # measured | simulated | estimated
    resources: dict[str, float]  # FPGA: fractions of the part (point); else {"params": n}
    upper: dict[str, float] = field(default_factory=dict)  # budget figures: upper ends of intervals
    latency_interval: list[float] | None = None
    resource_label: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def resource(self) -> float:
        """The resource objective: the largest fraction of the part (FPGA), else parameters."""
        vals = [v for k, v in self.resources.items() if k != "params"]
        return max(vals) if vals else float(self.resources.get("params", 0.0))

    def budget_figures(self, accuracy: float | None, on: str = "upper") -> dict[str, float | None]:
        if on == "point":
            return {"latency_us": self.latency_us, "accuracy": accuracy, **self.resources}
        lat = self.latency_interval[1] if self.latency_interval else self.latency_us
        return {"latency_us": lat, "accuracy": accuracy, **{k: self.upper.get(k, v) for k, v in self.resources.items()}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_target(target: str) -> None:
    if target not in SEARCH_TARGETS:
        raise ConfigError(f"search target '{target}' is not supported", where="--target",
                          fix=f"one of {', '.join(SEARCH_TARGETS)}")


def accepts(target: str, quantized: bool) -> str | None:
    """Why a family does not suit ``target`` (None when it does)."""
    if target.startswith("fpga") and not quantized:
        return "the FPGA searches take quantized (*-q) students: their firmware is checked bit for bit"
    if target in ("onnxruntime", "cpu-torch") and quantized:
        return "quantized (*-q) students are for the FPGA targets; search float families on CPU targets"
    return None


def _bits(model: nn.Module, knobs: dict[str, Any]) -> int:
    bits = getattr(model, "bits", None)
    if bits:
        return int(max(max(b.weight, b.act) for b in bits.values()))
    return int(knobs.get("width", 16))


def hls_cost(float_twin: nn.Module, model: nn.Module, input_shape: tuple[int, ...], knobs: dict[str, Any],
             recipe: Any) -> Cost:
    """Estimated hls4ml figures (no training needed: the estimator reads shapes)."""
    from edgekd.hwtargets import load_fpga
    from edgekd.profile import fpga_estimate as fe
    from edgekd.profile.first_pixel import fastest_fitting_reuse, parallel_first_pixel_estimate, stream_first_pixel

    h = recipe.export.hls
    target = load_fpga(knobs.get("part", h.target))
    bits = _bits(model, knobs)
    rf = knobs.get("reuse_factor", h.reuse_factor)
    cfg = fe.HlsConfig(io_type=knobs.get("io_type", h.io_type), strategy=knobs.get("strategy", h.strategy),
                       reuse_factor=1 if rf == "auto" else int(rf), weight_bits=bits, act_bits=bits,
                       backend=knobs.get("backend", h.backend))
    cfg.validate()
    layers = fe.layers_from_torch(float_twin, tuple(input_shape))
    if rf == "auto":
        try:
            cfg.layer_reuse = fastest_fitting_reuse(layers, cfg, target)
        except ConfigError:
            cfg.reuse_factor = 64  # nothing fits: report the design at a large factor (over budget)
    if cfg.io_type == "io_stream" and target.pixel_bus is not None:
        fp, est = stream_first_pixel(layers, cfg, target)
        lat, iv = fp.first_pixel_to_decision_us, fp.details.get("first_pixel_to_decision_interval_us")
    else:
        est = fe.estimate_hls(layers, cfg, target)
        fp = parallel_first_pixel_estimate(int(math.prod(input_shape)), est, target)
        lat, iv = fp.first_pixel_to_decision_us, fp.details["first_pixel_to_decision_interval_us"]
    part = {"lut": target.resources.lut, "ff": target.resources.ff, "dsp": target.resources.dsp,
            "bram_36k": target.resources.bram_36k}
    up = est.upper()
    point = {"lut": est.lut, "ff": est.ff, "dsp": est.dsp, "bram_36k": est.bram_36k}
    return Cost(latency_us=float(lat), latency_label="estimated", latency_interval=list(iv) if iv else None,
                resources={k: point[v] / part[v] for k, v in FPGA_RESOURCES.items() if part[v]},
                upper={k: up[v] / part[v] for k, v in FPGA_RESOURCES.items() if part[v]},
                resource_label=f"estimated: calibrated hls4ml model, 80 % intervals ({est.coverage:.0%} held-out "
                               "coverage)",
                details={"part": target.part, "io_type": cfg.io_type, "strategy": cfg.strategy,
                         "reuse": cfg.layer_reuse or cfg.reuse_factor, "bits": bits,
                         "last_pixel_arrival_us": fp.last_pixel_arrival_us, "ii_cycles": est.ii_cycles,
                         "bottleneck": est.bottleneck})


def rtl_cost(model: nn.Module, x: torch.Tensor, recipe: Any, *, generate: bool = True) -> Cost:
    """da4ml's estimate of the trained integer network: LUTs and pipeline depth (no Verilator)."""
    from edgekd.export import intref, rtl
    from edgekd.export.rtl_intnet import from_intref
    from edgekd.hwtargets import load_fpga
    from edgekd.nets.quant import firmware_part, float_preprocess
    from edgekd.profile.first_pixel import parallel_first_pixel

    cfg = recipe.export.rtl
    target = load_fpga(cfg.target)
    pre = float_preprocess(model)
    with torch.no_grad():
        x_fw = pre(x[:1]) if pre is not None else x[:1]
    im = intref.extract(firmware_part(model).eval())
    net = from_intref(im, tuple(x_fw.shape[1:]), "candidate")
    size = rtl.estimate_size(net, target)
    n_px = int(np.prod(x.shape[1:]))
    lut = size.lut / target.resources.lut
    if not size.fits or not generate:
        # does not fit (or not asked): the depth is not traced; report the arrival alone as a lower bound
        fp = parallel_first_pixel(n_px, 0, target, method="estimated")
        return Cost(latency_us=fp.first_pixel_to_decision_us, latency_label="estimated",
                    resources={"lut": lut, "dsp": 0.0, "bram": 0.0},  # FF: known once the design is traced
                    resource_label="estimated: da4ml", details={"fits": size.fits, "depth": "not traced"})
    with tempfile.TemporaryDirectory(prefix="edgekd-search-rtl-") as tmp:
        design, _ = rtl.generate(net, Path(tmp) / "rtl", target, latency_cutoff=cfg.latency_cutoff, size=size)
    fp = parallel_first_pixel(n_px, design.latency_cycles, target, method="estimated")
    return Cost(latency_us=fp.first_pixel_to_decision_us, latency_label="estimated",
                # da4ml maps every constant multiplication to LUT adders: no DSP, no BRAM
                resources={"lut": design.lut_estimate / target.resources.lut,
                           "ff": design.ff_estimate / target.resources.ff, "dsp": 0.0, "bram": 0.0},
                resource_label="estimated: da4ml (LUT); no DSP/BRAM in a fully parallel design",
                details={"latency_cycles": design.latency_cycles, "ff_bits": design.ff_estimate,
                         "last_pixel_arrival_us": fp.last_pixel_arrival_us})


def measured_cost(model: nn.Module, x: torch.Tensor, target: str, runs: int) -> Cost:
    """Batch-1 latency on this machine's CPU, 1 thread, by the target's own profiler."""
    from edgekd.nets.registry import count_parameters

    model = model.eval()
    ex = x[:1].contiguous()
    warmup = max(runs // 10, 5)
    if target == "onnxruntime":
        from edgekd.export.onnx import export_onnx
        from edgekd.profile.onnxruntime import profile_ort

        with tempfile.TemporaryDirectory(prefix="edgekd-search-ort-") as tmp:
            path = export_onnx(model, ex, Path(tmp) / "candidate.onnx")
            r = profile_ort(path, "candidate", ex.numpy(), batch_size=1, runs=runs, warmup=warmup, threads=1)
    else:
        from edgekd.profile.cpu_torch import profile_torch

        r = profile_torch(model, "candidate", ex, batch_size=1, runs=runs, warmup=warmup, threads=1)
    return Cost(latency_us=r.p50_us, latency_label=r.method, latency_interval=[r.min_us, r.p90_us],
                resources={"params": float(count_parameters(model))}, resource_label="parameters",
                details={"runs": runs, "p90_us": r.p90_us, "p99_us": r.p99_us, "batch": 1, "budget_on": "p90",
                         "threads": 1, "timer": r.timer})


def cost_error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, EdgekdError) else str(exc)
