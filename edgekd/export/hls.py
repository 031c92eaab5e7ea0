"""hls4ml project from a float PyTorch student, precision chosen from observed ranges.

The C simulation hls4ml writes is compiled with g++ (``compile()``) and called from
Python: the very C++ that HLS would synthesize is what we check against PyTorch.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgekd.config.schema import HlsExportConfig
from edgekd.errors import EdgekdError, ToolMissingError
from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.hwtargets import load_fpga
from edgekd.runs.atomic import write_json

SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.BatchNorm2d,
             nn.BatchNorm1d, nn.Identity, nn.Dropout)


def check_supported(model: nn.Module) -> None:
    """Refuse layers or settings hls4ml cannot convert, before any conversion starts."""
    for name, mod in model.named_modules():
        if name == "" or isinstance(mod, (nn.Sequential, nn.ModuleList)):
            continue
        if not isinstance(mod, SUPPORTED):
            raise EdgekdError(f"layer '{name}' ({type(mod).__name__}) is not supported by the hls4ml export",
                              where=f"model layer {name}",
                              fix="use Conv2d/Linear/ReLU/MaxPool2d/AvgPool2d/Flatten/BatchNorm students")
        if isinstance(mod, nn.Conv2d):
            if mod.padding == "same" or (isinstance(mod.padding, str)):
                raise EdgekdError(f"layer '{name}': padding='{mod.padding}' is not supported by hls4ml",
                                  where=f"model layer {name}", fix="use explicit integer padding, e.g. padding=1")
            if mod.groups != 1 or mod.dilation != (1, 1):
                raise EdgekdError(f"layer '{name}': groups={mod.groups}, dilation={mod.dilation} unsupported",
                                  where=f"model layer {name}", fix="use groups=1 and dilation=1")


def _require_compiler() -> None:
    if shutil.which("g++") is None:
        raise ToolMissingError("g++ is not installed; the hls4ml C simulation cannot be compiled",
                               where="export.hls", fix="install it (apt-get install g++) or set export.hls.enabled: false")


def fx_names(model: nn.Module) -> dict[str, str]:
    """Module path → torch.fx node name, which is what hls4ml names each layer."""
    gm = torch.fx.symbolic_trace(model)
    return {str(n.target): n.name for n in gm.graph.nodes if n.op == "call_module"}


@torch.no_grad()
def observed_ranges(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """Max |output| of every leaf module over ``x`` (the calibration set)."""
    ranges: dict[str, float] = {}
    hooks = []
    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            def hook(_m, _i, out, name=name):
                ranges[name] = max(ranges.get(name, 0.0), float(out.detach().abs().max()))
            hooks.append(mod.register_forward_hook(hook))
    try:
        model.eval()
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        for h in hooks:
            h.remove()
    ranges["__input__"] = float(x.abs().max())
    return ranges


def int_bits(max_abs: float, margin: float = 1.25) -> int:
    """Integer bits of a signed fixed-point type (sign included) holding ±max_abs × margin."""
    v = max_abs * margin
    if v <= 0.5:
        return 1
    return max(1, math.ceil(math.log2(v)) + 1)


@dataclass
class LayerPrecision:
    layer: str
    module: str
    kind: str
    max_abs: float
    result: str
    weight: str | None = None
    bias: str | None = None


def choose_precisions(model: nn.Module, ranges: dict[str, float], width: int) -> tuple[str, list[LayerPrecision]]:
    """Per-layer fixed-point types: integer bits from observed ranges, the rest fractional."""
    def fixed(max_abs: float, w: int = width) -> str:
        i = int_bits(max_abs)
        return f"fixed<{w},{i},RND,SAT>"

    input_type = fixed(ranges["__input__"])
    names = fx_names(model)
    out: list[LayerPrecision] = []
    for path, mod in model.named_modules():
        if path not in names:
            continue
        lp = LayerPrecision(names[path], path, type(mod).__name__, ranges.get(path, 0.0), fixed(ranges.get(path, 1.0)))
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            lp.weight = fixed(float(mod.weight.detach().abs().max()), width)
            if mod.bias is not None:
                lp.bias = fixed(float(mod.bias.detach().abs().max()), width)
        out.append(lp)
    return input_type, out


def _hls_config(model: nn.Module, input_shape: tuple[int, ...], cfg: HlsExportConfig, width: int,
                ranges: dict[str, float]):
    import hls4ml

    default = "fixed<16,6>" if cfg.precision == "auto" else cfg.precision
    hc = hls4ml.utils.config_from_pytorch_model(
        model, input_shape=input_shape, granularity="name", backend=cfg.backend,
        default_precision=default, default_reuse_factor=cfg.reuse_factor, channels_last_conversion="full",
    )
    hc["Model"]["Strategy"] = cfg.strategy
    layers: list[LayerPrecision] = []
    if cfg.precision != "auto":
        # one blanket type, as the user asked: every result, weight and bias gets it
        for lcfg in hc["LayerName"].values():
            p = lcfg.setdefault("Precision", {})
            for key in ("result", "weight", "bias"):
                if key in p or key == "result":
                    p[key] = cfg.precision
    else:
        input_type, layers = choose_precisions(model, ranges, width)
        known = {lp.layer for lp in layers}
        for lname, lcfg in hc["LayerName"].items():
            if lname not in known:  # the input layer
                lcfg.setdefault("Precision", {})
                lcfg["Precision"] = {"result": input_type}
        for lp in layers:
            p = hc["LayerName"][lp.layer].setdefault("Precision", {})
            p["result"] = lp.result
            if lp.weight:
                p["weight"] = lp.weight
            if lp.bias:
                p["bias"] = lp.bias
            if "accum" in p:
                p["accum"] = "auto"
            if lp.kind == "ReLU" and "table" in p:
                p.pop("table")
    return hc, layers


def _convert(model, input_shape, cfg, width, ranges, out_dir: Path, clock_ns: float, part: str):
    import hls4ml

    hc, layers = _hls_config(model, input_shape, cfg, width, ranges)
    hm = hls4ml.converters.convert_from_pytorch_model(
        model, hls_config=hc, output_dir=str(out_dir), backend=cfg.backend, io_type=cfg.io_type,
        part=part, clock_period=clock_ns, project_name="edgekd_student",
    )
    hm.compile()
    return hm, hc, layers


def export_and_check(model: nn.Module, name: str, x_calib: torch.Tensor, x_check: torch.Tensor,
                     out_dir: Path, cfg: HlsExportConfig, *, inputs_desc: str = "held-out images",
                     log=print) -> Artifact:
    """Write an hls4ml project to ``out_dir/<name>-hls`` and check its C simulation.

    With ``precision: auto`` the total width starts at ``cfg.width`` and grows by 2 bits
    (up to 24) until the argmax agreement reaches ``cfg.min_agreement``.
    """
    check_supported(model)
    _require_compiler()
    try:
        import hls4ml  # noqa: F401
    except ImportError:
        raise ToolMissingError("hls4ml is not installed", where="export.hls",
                               fix="pip install hls4ml==1.3.0 (a core dependency of edgekd)") from None
    fpga = load_fpga(cfg.target)
    model = model.eval()
    input_shape = tuple(x_check.shape[1:])
    ranges = observed_ranges(model, x_calib)
    with torch.no_grad():
        ref = model(x_check).numpy()
    final = out_dir / f"{name}-hls"
    widths = [cfg.width] if cfg.precision != "auto" else list(range(cfg.width, 25, 2)) or [cfg.width]
    attempts: list[dict[str, Any]] = []
    best = None
    for w in widths:
        work = out_dir / f".{name}-hls-w{w}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.perf_counter()
        try:
            hm, hc, layers = _convert(model, input_shape, cfg, w, ranges, work, fpga.clock_period_ns, fpga.part)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed artifact
            shutil.rmtree(work, ignore_errors=True)
            return Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}", final, None,
                            error=f"hls4ml conversion/compile failed at width {w}: {exc}")
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = np.asarray(hm.predict(np.ascontiguousarray(x_check.numpy()))).reshape(ref.shape)
        sim_s = time.perf_counter() - t0
        fid = FidelityRecord.compare(out, ref, reference="pytorch float32 (cpu)", inputs=inputs_desc,
                                     min_agreement=cfg.min_agreement,
                                     notes=f"{cfg.io_type}, total width {w} bits, precision {cfg.precision}")
        attempts.append({"width": w, "agreement": fid.argmax_agreement, "max_abs_diff": fid.max_abs_diff,
                         "compile_s": round(compile_s, 2), "csim_s": round(sim_s, 2)})
        log(f"  hls4ml {name}: width {w}: {fid.summary()} (compile {compile_s:.1f}s, C-sim {sim_s:.1f}s)")
        if best is not None:
            shutil.rmtree(best[0], ignore_errors=True)
        best = (work, fid, layers, w)
        if fid.passed:
            break
    work, fid, layers, w = best
    # Replace any previous project only now, with a complete one.
    old = out_dir / f".{name}-hls.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    work.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    meta = {
        "backend": cfg.backend, "io_type": cfg.io_type, "strategy": cfg.strategy,
        "reuse_factor": cfg.reuse_factor, "part": fpga.part, "clock_mhz": fpga.clock_mhz,
        "precision_mode": cfg.precision, "total_width": w, "width_search": attempts,
        "layers": [asdict(lp) for lp in layers],
        "input_contract": "float input after normalisation (x/255 - mean)/std, NCHW; "
                          "the project converts to channels-last internally",
    }
    art = Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}", final, fid, metadata=meta)
    write_json(out_dir / f"{name}-hls.fidelity.json", art.to_dict())
    return art
