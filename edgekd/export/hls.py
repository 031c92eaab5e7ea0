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
from edgekd.errors import ConfigError, EdgekdError, ToolMissingError
from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.hwtargets import load_fpga
from edgekd.runs.atomic import replace_dir, write_json

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


def _require_hls4ml():
    """The g++ compiler and hls4ml itself, or a ToolMissingError naming the fix; returns hls4ml."""
    _require_compiler()
    try:
        import hls4ml
    except ImportError:
        raise ToolMissingError("hls4ml is not installed", where="export.hls",
                               fix="pip install hls4ml==1.3.0 (a core dependency of edgekd)") from None
    return hls4ml


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


def fixed_type(max_abs: float, width: int) -> str:
    """The hls4ml type ``precision: auto`` gives a value of magnitude up to ``max_abs`` at ``width`` bits."""
    return f"fixed<{width},{int_bits(max_abs)},RND,SAT>"


def choose_precisions(model: nn.Module, ranges: dict[str, float], width: int) -> tuple[str, list[LayerPrecision]]:
    """Per-layer fixed-point types: integer bits from observed ranges, the rest fractional."""
    def fixed(max_abs: float, w: int = width) -> str:
        return fixed_type(max_abs, w)

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


def weight_digits(model: nn.Module, layers: list[Any], width: int, precision: str = "auto") -> None:
    """Set each dense / conv layer's ``weight_csd`` (``fpga_estimate.HlsLayer``, in place) from the model's weights
    at the type the export gives them: ``precision`` where it is one blanket type, else :func:`fixed_type` of the
    largest weight, as :func:`choose_precisions` writes. So ``reuse_factor: auto`` and a run's FPGA figures bind
    DSPs by the weights' canonical-signed-digit counts, as the estimate of an exported project does
    (``hls_project.weight_csd``), not by the width rule alone."""
    from edgekd.profile.hls_project import weight_csd

    mods = dict(model.named_modules())
    for layer in layers:
        mod = mods.get(layer.name)
        if layer.kind not in ("dense", "conv1d", "conv2d") or not isinstance(mod, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            continue
        w = mod.weight.detach().float().flatten()
        t = fixed_type(float(w.abs().max()), width) if precision == "auto" else precision
        if not t.startswith("ap_"):  # hls4ml writes fixed<W,I,RND,SAT> as ap_fixed<W,I,AP_RND,AP_SAT>
            t = "ap_" + t.replace("RND", "AP_RND").replace("SAT", "AP_SAT")
        layer.weight_csd = weight_csd(w.tolist(), t)


def apply_precisions(hc: dict[str, Any], input_type: str, layers: list[LayerPrecision]) -> None:
    """Write per-layer fixed-point types into an hls4ml config (in place)."""
    known = {lp.layer for lp in layers}
    for lname, lcfg in hc["LayerName"].items():
        if lname not in known:  # the input layer
            lcfg["Precision"] = {"result": input_type}
    for lp in layers:
        p = hc["LayerName"][lp.layer].setdefault("Precision", {})
        p["result"] = lp.result
        if lp.weight:
            p["weight"] = lp.weight
        if lp.bias:
            p["bias"] = lp.bias
        if "accum" in p:
            p["accum"] = "auto"  # inferred from the input/weight types: no accumulator rounding
        if lp.kind == "ReLU" and "table" in p:
            p.pop("table")


def fitted_reuse_factors(model: nn.Module, input_shape: tuple[int, ...], cfg: HlsExportConfig,
                         bits: int) -> dict[str, int]:
    """``reuse_factor: auto``: module path → reuse factor, the fastest per-layer factors whose
    estimated DSPs (upper end of the calibrated 80 % interval) fit the target part at ``bits``
    (empty: reuse 1 everywhere already fits,
    or no factor among the candidates fits; the figures then say so)."""
    from edgekd.profile import fpga_estimate as fe
    from edgekd.profile.first_pixel import fastest_fitting_reuse

    target = load_fpga(cfg.target)
    layers = fe.layers_from_torch(model, tuple(input_shape))
    weight_digits(model, layers, bits, cfg.precision)
    hcfg = fe.HlsConfig(io_type=cfg.io_type, strategy=cfg.strategy, reuse_factor=1, weight_bits=bits, act_bits=bits,
                        backend=cfg.backend)
    if fe.estimate_hls(layers, hcfg, target).upper()["dsp"] <= target.resources.dsp:  # fits at the interval's top
        return {}
    try:
        rfs = fastest_fitting_reuse(layers, hcfg, target)
    except ConfigError:
        return {}
    return {k: v for k, v in rfs.items() if v > 1}


def _apply_reuse(hc: dict[str, Any], model: nn.Module, layer_reuse: dict[str, int]) -> None:
    """Write per-layer reuse factors (keyed by module path) into an hls4ml config."""
    names = fx_names(model)
    for path, rf in layer_reuse.items():
        hc["LayerName"][names[path]]["ReuseFactor"] = int(rf)


def _hls_config(model: nn.Module, input_shape: tuple[int, ...], cfg: HlsExportConfig, width: int,
                ranges: dict[str, float], layer_reuse: dict[str, int] | None = None):
    import hls4ml

    default = "fixed<16,6>" if cfg.precision == "auto" else cfg.precision
    hc = hls4ml.utils.config_from_pytorch_model(
        model, input_shape=input_shape, granularity="name", backend=cfg.backend,
        default_precision=default, default_reuse_factor=cfg.base_reuse_factor, channels_last_conversion="full",
    )
    hc["Model"]["Strategy"] = cfg.strategy
    _apply_reuse(hc, model, layer_reuse or {})
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
        apply_precisions(hc, input_type, layers)
    return hc, layers


def _convert(model, input_shape, cfg, width, ranges, out_dir: Path, clock_ns: float, part: str,
             layer_reuse: dict[str, int] | None = None):
    import hls4ml

    hc, layers = _hls_config(model, input_shape, cfg, width, ranges, layer_reuse)
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
    _require_hls4ml()
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
            reuse = fitted_reuse_factors(model, input_shape, cfg, w) if cfg.reuse_factor == "auto" else {}
            hm, hc, layers = _convert(model, input_shape, cfg, w, ranges, work, fpga.clock_period_ns, fpga.part,
                                      reuse)
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
        best = (work, fid, layers, w, reuse)
        if fid.passed:
            break
    work, fid, layers, w, reuse = best
    # Replace any previous project only now, with a complete one.
    replace_dir(work, final)
    meta = {
        "backend": cfg.backend, "io_type": cfg.io_type, "strategy": cfg.strategy,
        "reuse_factor": cfg.reuse_factor, "layer_reuse": reuse, "part": fpga.part, "clock_mhz": fpga.clock_mhz,
        "precision_mode": cfg.precision, "total_width": w, "width_search": attempts,
        "layers": [asdict(lp) for lp in layers],
        "input_contract": "float input after normalisation (x/255 - mean)/std, NCHW; "
                          "the project converts to channels-last internally",
    }
    art = Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}", final, fid, metadata=meta)
    write_json(out_dir / f"{name}-hls.fidelity.json", art.to_dict())
    return art


# ---------------------------------------------------------------------------------------
# Per-layer precision search (float students): fewest fractional bits per layer that keep
# the argmax agreement with PyTorch at or above the target.
# ---------------------------------------------------------------------------------------

@dataclass
class _Knob:
    """One searchable fixed-point type: integer bits fixed by the observed range, fraction searched."""

    module: str  # module path, or "__input__"
    what: str  # "result" | "weight"
    int_bits: int
    frac: int

    @property
    def type(self) -> str:
        return f"fixed<{self.int_bits + self.frac},{self.int_bits},RND,SAT>"


def _fake_fixed(v: torch.Tensor, int_bits: int, frac: int) -> torch.Tensor:
    """Emulate ``ap_fixed<I+F, I, AP_RND, AP_SAT>``: round half up to 2^-F, saturate."""
    step = 2.0 ** -frac
    lo, hi = -(2.0 ** (int_bits - 1)), 2.0 ** (int_bits - 1) - step
    return (torch.floor(v / step + 0.5) * step).clamp(lo, hi)


def _knobs(model: nn.Module, ranges: dict[str, float], start_frac: int) -> list[_Knob]:
    knobs = [_Knob("__input__", "result", int_bits(ranges["__input__"]), start_frac)]
    for path, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            knobs.append(_Knob(path, "weight", int_bits(float(mod.weight.detach().abs().max())), start_frac))
            knobs.append(_Knob(path, "result", int_bits(ranges.get(path, 1.0)), start_frac))
        elif isinstance(mod, (nn.ReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d)):
            knobs.append(_Knob(path, "result", int_bits(ranges.get(path, 1.0)), start_frac))
    return knobs


@torch.no_grad()
def _emulate(model: nn.Module, x: torch.Tensor, knobs: list[_Knob], batch_size: int = 512) -> torch.Tensor:
    """Model outputs with weights, inputs and the searched layer outputs rounded to their types.

    Max pooling and flatten keep their input's type (exact); accumulators are wide (hls4ml
    infers them), so this matches the firmware closely; the C simulation has the last word.
    """
    mods = dict(model.named_modules())
    saved: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    hooks = []
    kin = knobs[0]
    try:
        for k in knobs[1:]:
            m = mods[k.module]
            if k.what == "weight":
                saved[k.module] = (m.weight.data.clone(), None if m.bias is None else m.bias.data.clone())
                m.weight.data = _fake_fixed(m.weight.data, k.int_bits, k.frac)
            else:
                rk = k
                hooks.append(m.register_forward_hook(lambda _m, _i, out, rk=rk: _fake_fixed(out, rk.int_bits, rk.frac)))
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                    # bias gets the result's fraction (see _apply_knobs)
                    b = m.bias.data
                    m.bias.data = _fake_fixed(b, int_bits(float(b.abs().max())), rk.frac)
        model.eval()
        xq = _fake_fixed(x, kin.int_bits, kin.frac)
        return torch.cat([model(xq[i : i + batch_size]) for i in range(0, len(xq), batch_size)])
    finally:
        for h in hooks:
            h.remove()
        for path, (w, b) in saved.items():
            mods[path].weight.data = w
            if b is not None:
                mods[path].bias.data = b
        # biases quantized via result knobs are restored from the float copy held by weight knobs
        # (every Conv/Linear has both knobs, so ``saved`` covers them)


def _agreement(out: torch.Tensor, ref_arg: torch.Tensor) -> float:
    return float((out.argmax(1) == ref_arg).float().mean())


def _layer_report(model: nn.Module, knobs: list[_Knob], ranges: dict[str, float]) -> tuple[str, list[LayerPrecision]]:
    """Per fx layer: result/weight/bias types from the knobs (pool/flatten inherit their input's)."""
    names = fx_names(model)
    by = {(k.module, k.what): k for k in knobs}
    mods = dict(model.named_modules())
    prev = knobs[0].type
    out: list[LayerPrecision] = []
    for path, lname in names.items():
        mod = mods[path]
        res = by.get((path, "result"))
        result = res.type if res else prev
        lp = LayerPrecision(lname, path, type(mod).__name__, ranges.get(path, 0.0), result)
        if (path, "weight") in by:
            lp.weight = by[(path, "weight")].type
            if mod.bias is not None:
                bi = int_bits(float(mod.bias.detach().abs().max()))
                lp.bias = f"fixed<{bi + res.frac},{bi},RND,SAT>"
        out.append(lp)
        prev = result
    return knobs[0].type, out


def _hls_config_from_layers(model: nn.Module, input_shape: tuple[int, ...], cfg: HlsExportConfig,
                            input_type: str, layers: list[LayerPrecision]):
    import hls4ml

    hc = hls4ml.utils.config_from_pytorch_model(
        model, input_shape=input_shape, granularity="name", backend=cfg.backend,
        default_precision="fixed<16,6>", default_reuse_factor=cfg.base_reuse_factor, channels_last_conversion="full",
    )
    hc["Model"]["Strategy"] = cfg.strategy
    apply_precisions(hc, input_type, layers)
    return hc


def search_precision(model: nn.Module, name: str, x_calib: torch.Tensor, x_check: torch.Tensor, out_dir: Path,
                     cfg: HlsExportConfig, *, target: float | None = None, start_frac: int = 16,
                     guard_bits: int = 1, max_tries: int = 3, inputs_desc: str = "held-out images",
                     log=print) -> Artifact:
    """Fewest bits per layer reaching ``target`` argmax agreement (default ``cfg.min_agreement``).

    1. ranges observed on ``x_calib`` fix each type's integer bits (sign included, 25 % margin);
    2. greedy, layer by layer (input first): binary search of the fewest fractional bits for
       which a fixed-point emulation in PyTorch still agrees with the float model on
       ``x_calib`` at ``target``; then ``guard_bits`` more per type, because the calibration
       set cannot contain every near-tie of the check set;
    3. the chosen types are written into an hls4ml project whose compiled C simulation is
       checked on ``x_check``; if it falls short, every type gains one fractional bit
       (up to ``max_tries`` compiles).

    The artifact's metadata lists every layer's chosen types (``layers``) and the search.
    """
    check_supported(model)
    hls4ml = _require_hls4ml()
    target = cfg.min_agreement if target is None else target
    fpga = load_fpga(cfg.target)
    model = model.eval()
    ranges = observed_ranges(model, x_calib)
    with torch.no_grad():
        ref_calib = torch.cat([model(x_calib[i : i + 512]) for i in range(0, len(x_calib), 512)]).argmax(1)
        ref = model(x_check).numpy()
    knobs = _knobs(model, ranges, start_frac)
    t0 = time.perf_counter()
    if _agreement(_emulate(model, x_calib, knobs), ref_calib) < target:
        raise EdgekdError(f"even {start_frac} fractional bits everywhere miss {100 * target:.2f} % agreement",
                          where=f"export.hls ({name})", fix="lower min_agreement or raise start_frac")
    n_eval = 0
    for k in knobs:
        lo, hi = 0, k.frac  # hi is known good
        while lo < hi:
            mid = (lo + hi) // 2
            k.frac = mid
            n_eval += 1
            if _agreement(_emulate(model, x_calib, knobs), ref_calib) >= target:
                hi = mid
            else:
                lo = mid + 1
        k.frac = hi
    searched = {f"{k.module}.{k.what}": k.int_bits + k.frac for k in knobs}
    for k in knobs:
        k.frac += guard_bits
    emulated = _agreement(_emulate(model, x_calib, knobs), ref_calib)
    if emulated < target:
        # with only a few fractional bits agreement is not monotonic in the width: keep the verified types
        for k in knobs:
            k.frac -= guard_bits
        guard_bits = 0
        emulated = _agreement(_emulate(model, x_calib, knobs), ref_calib)
    search_s = time.perf_counter() - t0
    log(f"  precision search {name}: {n_eval} emulations in {search_s:.1f}s, emulated agreement "
        f"{100 * emulated:.2f} % on calibration; " + ", ".join(f"{k.module}.{k.what}={k.type}" for k in knobs))
    final = out_dir / f"{name}-hls"
    attempts: list[dict[str, Any]] = []
    work = fid = layers = None
    for extra in range(max_tries):
        if extra:
            for k in knobs:
                k.frac += 1
        input_type, layers = _layer_report(model, knobs, ranges)
        work = out_dir / f".{name}-hls-auto{extra}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        t1 = time.perf_counter()
        try:
            hc = _hls_config_from_layers(model, tuple(x_check.shape[1:]), cfg, input_type, layers)
            hm = hls4ml.converters.convert_from_pytorch_model(
                model, hls_config=hc, output_dir=str(work), backend=cfg.backend, io_type=cfg.io_type,
                part=fpga.part, clock_period=fpga.clock_period_ns, project_name="edgekd_student")
            hm.compile()
        except Exception as exc:  # noqa: BLE001 - recorded as a failed artifact
            shutil.rmtree(work, ignore_errors=True)
            return Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}", final, None,
                            error=f"hls4ml conversion/compile failed: {exc}")
        compile_s = time.perf_counter() - t1
        out = np.asarray(hm.predict(np.ascontiguousarray(x_check.numpy()))).reshape(ref.shape)
        fid = FidelityRecord.compare(out, ref, reference="pytorch float32 (cpu)", inputs=inputs_desc,
                                     min_agreement=target,
                                     notes=f"{cfg.io_type}, per-layer precision search (+{extra} bit retry)")
        attempts.append({"extra_frac_bits": extra, "agreement": fid.argmax_agreement,
                         "max_abs_diff": fid.max_abs_diff, "compile_s": round(compile_s, 2)})
        log(f"  hls4ml {name} (searched precision, +{extra}): {fid.summary()} (compile {compile_s:.1f}s)")
        if fid.passed or extra == max_tries - 1:
            break
        shutil.rmtree(work, ignore_errors=True)
    replace_dir(work, final)
    total_bits = {f"{k.module}.{k.what}": k.int_bits + k.frac for k in knobs}
    meta = {
        "backend": cfg.backend, "io_type": cfg.io_type, "strategy": cfg.strategy, "reuse_factor": cfg.reuse_factor,
        "part": fpga.part, "clock_mhz": fpga.clock_mhz, "precision_mode": "searched", "target_agreement": target,
        "layers": [asdict(lp) for lp in layers], "bits": total_bits,
        "search": {"emulations": n_eval, "bits_before_guard": searched, "guard_bits": guard_bits,
                   "seconds": round(search_s, 2), "emulated_agreement_calib": emulated,
                   "n_calib": int(len(x_calib)), "compiles": attempts},
        "input_contract": "float input after normalisation (x/255 - mean)/std, NCHW; "
                          f"firmware input type {knobs[0].type}",
    }
    art = Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}", final, fid, metadata=meta)
    write_json(out_dir / f"{name}-hls.fidelity.json", art.to_dict())
    return art
