"""Bit-exact hls4ml firmware from a quantization-aware (Brevitas) student, through QONNX.

Path: ``brevitas.export.export_qonnx`` → qonnx cleanup, channels-last, Gemm→MatMul →
``hls4ml.converters.convert_from_onnx_model``. hls4ml infers every type from the QONNX
``Quant`` nodes (power-of-two scales become ``ap_fixed`` types with ``RND_CONV``/``SAT``);
edgekd only pins the input type to the input quantizer's grid and each bias type to the exact
integers of its accumulator grid (a quantized bias's ``Quant`` node is folded into its constant
first: hls4ml's precision inference cannot read it; absent biases get a 1-bit zero so they do
not widen the accumulators). The compiled C simulation is then
compared with :mod:`edgekd.export.intref` on every check input: the artifact is
deployable only when **every** output is bit-identical.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from edgekd.config.schema import HlsExportConfig
from edgekd.errors import EdgekdError, ToolMissingError
from edgekd.export import intref
from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.hwtargets import load_fpga
from edgekd.runs.atomic import replace_dir, write_json, write_text

PROJECT = "edgekd_student"


def _brevitas_nn():
    try:
        import brevitas.nn as qnn
    except ImportError:
        raise ToolMissingError("brevitas is not installed", where="export.hls",
                               fix="pip install brevitas==0.13.4") from None
    return qnn


def _refuse(name: str, what: str, fix: str) -> None:
    raise EdgekdError(f"layer '{name}': {what}", where=f"model layer {name}", fix=fix)


def check_qat_supported(model: nn.Module) -> None:
    """Refuse, before any conversion, what the bit-exact QONNX → hls4ml path cannot do.

    Names the layer, the reason and a workaround. ``model`` is the firmware part.
    """
    qnn = _brevitas_nn()
    inside: list[str] = []
    for name, mod in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in inside):
            continue
        if type(mod).__module__.startswith("brevitas.nn"):
            inside.append(name)
        if isinstance(mod, (qnn.QuantConv2d, qnn.QuantConv1d)):
            if isinstance(mod.padding, str):
                _refuse(name, f"padding='{mod.padding}' is not supported by hls4ml",
                        "use explicit integer padding, e.g. padding=1 for a 3×3 kernel")
            if mod.groups != 1:
                _refuse(name, f"groups={mod.groups} (grouped/depthwise convolution) is not supported by hls4ml's "
                        "QONNX frontend", "use groups=1, or split the layer into separate convolutions")
            if any(d != 1 for d in mod.dilation):
                _refuse(name, f"dilation={tuple(mod.dilation)} is not supported by hls4ml",
                        "use dilation=1 (a larger kernel covers the same field)")
        if isinstance(mod, (qnn.QuantConv2d, qnn.QuantConv1d, qnn.QuantLinear)):
            if mod.bias is not None and not intref.bias_on_accumulator_grid(mod):
                _refuse(name, "a float bias (or one not quantized on the input × weight scale) is not on the "
                        "accumulator's fixed-point grid, so the firmware could not match the model bit for bit",
                        "build the student with `bias: quantized` (Int32Bias) or `bias: false`")
            if mod.weight_quant.is_quant_enabled is False:
                _refuse(name, "weights are not quantized", "give the layer a weight quantizer "
                        "(Int8WeightPerTensorFixedPoint)")
            qw = mod.quant_weight()
            intref._exponent(qw.scale, name)  # per-channel or non power-of-two scales are refused here
        elif isinstance(mod, (qnn.QuantIdentity, qnn.QuantReLU)):
            intref._exponent(mod.act_quant.scale(), name)
        elif isinstance(mod, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            _refuse(name, f"float {type(mod).__name__} in a quantized student: its output is not on a fixed grid",
                    "use the Brevitas QuantConv2d/QuantLinear twin (arch cellsort-cnn-q / mlp-q)")
        elif isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            _refuse(name, "average pooling divides by the window size, which the bit-exact path does not model",
                    "pool before the input quantizer (float preprocessing, as mlp-q does) or use MaxPool2d")
        elif isinstance(mod, nn.MaxPool2d):
            k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
            s = mod.stride if isinstance(mod.stride, int) else mod.stride[0]
            if s != k or mod.padding not in (0, (0, 0)) or mod.dilation not in (1, (1, 1)) or mod.ceil_mode:
                _refuse(name, "only MaxPool2d(k) with stride k, no padding/dilation/ceil_mode is supported",
                        "use MaxPool2d(k)")
        elif type(mod).__module__.startswith("brevitas.nn"):
            if not isinstance(mod, (qnn.QuantConv2d, qnn.QuantLinear, qnn.QuantIdentity, qnn.QuantReLU)):
                _refuse(name, f"{type(mod).__name__} is not supported by the bit-exact FPGA path",
                        "use QuantIdentity/QuantConv2d/QuantLinear/QuantReLU")
        elif not list(mod.children()) and not isinstance(mod, (nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout)):
            _refuse(name, f"{type(mod).__name__} is not supported by the bit-exact FPGA path",
                    "use Conv/Linear/ReLU/MaxPool2d/Flatten layers")


def _imports():
    if shutil.which("g++") is None:
        raise ToolMissingError("g++ is not installed; the hls4ml C simulation cannot be compiled",
                               where="export.hls", fix="install it (apt-get install g++) or disable export.hls")
    try:
        import hls4ml  # noqa: F401
        import onnxoptimizer  # noqa: F401  (qonnx cleanup needs it)
        import qonnx  # noqa: F401
        from brevitas.export import export_qonnx  # noqa: F401
    except ImportError as exc:
        raise ToolMissingError(f"the QONNX → hls4ml path needs {exc.name}", where="export.hls",
                               fix="pip install hls4ml==1.3.0 qonnx==1.0.0 onnxoptimizer brevitas==0.13.4") from None


def to_qonnx(model: nn.Module, input_shape: tuple[int, ...], path: Path):
    """Export QONNX and run the qonnx passes hls4ml needs; returns the qonnx ModelWrapper."""
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    path.parent.mkdir(parents=True, exist_ok=True)
    # dynamo=False: the dynamo exporter's graph of a bias-free model breaks GemmToMatMul
    export_qonnx(model.eval(), input_t=torch.zeros((1, *input_shape)), export_path=str(path), dynamo=False)
    mw = _fold_bias_quants(cleanup_model(ModelWrapper(str(path))))
    mw = mw.transform(ConvertToChannelsLastAndClean())
    mw = mw.transform(GemmToMatMul())
    mw = cleanup_model(mw)
    mw.save(str(path.with_suffix(".clean.onnx")))
    return mw


def _fold_bias_quants(mw):
    """Replace each ``Quant`` node on a Conv/Gemm bias by its (exact, on-grid) constant.

    Brevitas exports a quantized bias as a Quant node over constants; hls4ml's precision
    inference cannot take it, so edgekd folds it and pins the bias type itself (``hls_config``).
    """
    from qonnx.custom_op.general.quant import quant

    for node in [n for n in mw.graph.node if n.op_type == "Quant"]:
        consumers = mw.find_consumers(node.output[0]) or []
        is_bias = consumers and all(c.op_type in ("Conv", "Gemm") and list(c.input)[2:3] == [node.output[0]]
                                    for c in consumers)
        vals = [mw.get_initializer(i) for i in node.input]
        if not is_bias or any(v is None for v in vals):
            continue
        attrs = {a.name: a for a in node.attribute}
        signed = bool(attrs["signed"].i) if "signed" in attrs else True
        narrow = bool(attrs["narrow"].i) if "narrow" in attrs else False
        mode = attrs["rounding_mode"].s.decode() if "rounding_mode" in attrs else "ROUND"
        folded = quant(*vals, signed=signed, narrow=narrow, rounding_mode=mode).astype(np.float32)
        mw.set_initializer(node.output[0], folded)
        mw.graph.node.remove(node)
    return mw


def _bias_types(im: intref.IntModel) -> list[str]:
    """Per weighted layer, in order: the narrowest fixed type holding its integer biases exactly."""
    out = []
    for lay in (l for l in im.layers if l.kind in ("conv", "linear")):
        if lay.bias is None or not np.any(lay.bias):
            out.append("fixed<1,1>")  # none: a 1-bit zero keeps the inferred accumulators minimal
        else:
            bits = int(np.abs(lay.bias).max()).bit_length() + 1
            out.append(f"fixed<{bits},{bits + lay.acc_exp}>")
    return out


def hls_config(mw, im: intref.IntModel, cfg: HlsExportConfig,
               reuse_in_order: list[int] | None = None) -> dict[str, Any]:
    """hls4ml config: every type 'auto' (inferred from the Quant nodes) except input and biases;
    ``reuse_in_order``: one reuse factor per weighted layer, in graph order (``reuse_factor: auto``)."""
    import hls4ml

    hc = hls4ml.utils.config.config_from_onnx_model(
        mw, granularity="name", backend=cfg.backend, default_precision="fixed<32,16>",
        default_reuse_factor=cfg.base_reuse_factor)
    hc["Model"]["Strategy"] = cfg.strategy
    hc["Model"]["ReuseFactor"] = cfg.base_reuse_factor
    inp = mw.graph.input[0].name
    # the firmware's input port has exactly the input quantizer's grid (the contract)
    hc["LayerName"][inp] = {"Precision": {"result": im.input_spec.ap_type()}}
    weighted = [n.name for n in mw.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    types = _bias_types(im)
    if len(weighted) != len(types):
        raise EdgekdError(f"the QONNX graph has {len(weighted)} weighted layers, the student {len(types)}",
                          where="export.hls (QONNX → hls4ml)", fix="report this model to the edgekd developers")
    if reuse_in_order is not None and len(reuse_in_order) != len(weighted):
        raise EdgekdError(f"{len(reuse_in_order)} reuse factors for {len(weighted)} weighted layers",
                          where="export.hls (QONNX → hls4ml)", fix="report this model to the edgekd developers")
    for i, (lname, bias_t) in enumerate(zip(weighted, types)):
        # the bias's integers on the accumulator grid, exactly (hls4ml widens the accumulator for it)
        hc["LayerName"][lname].setdefault("Precision", {})["bias"] = bias_t
        if reuse_in_order is not None:
            hc["LayerName"][lname]["ReuseFactor"] = int(reuse_in_order[i])
    return hc


def layer_types(hm) -> list[dict[str, Any]]:
    """The types hls4ml chose, per layer (for the artifact's metadata)."""
    out = []
    for name, layer in hm.graph.items():
        out.append({"layer": name, "class": layer.class_name,
                    **{k: str(v.precision) for k, v in layer.types.items() if not k.startswith("table")}})
    return out


def write_readme(project: Path, *, backend: str, io_type: str, part: str, clock_mhz: float,
                 contract: dict[str, Any], bits: dict[str, Any], fidelity: FidelityRecord | None) -> Path:
    """The build hand-off: how to synthesize the project with the vendor tool."""
    tool = "vitis_hls" if backend == "Vitis" else "vivado_hls"
    lines = [
        f"# {PROJECT}: hls4ml firmware written by edgekd", "",
        f"Backend **{backend}**, `{io_type}`, part `{part}` at {clock_mhz:g} MHz.", "",
        "## Build", "",
        f"Needs AMD/Xilinx {'Vitis HLS' if backend == 'Vitis' else 'Vivado HLS'} on PATH (`{tool}`).", "",
        "```sh", f"cd {project.name}",
        f"{tool} -f build_prj.tcl \"reset=1 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=0\"",
        "```", "",
        "or from Python: `edgekd.export.vendor_reports.run_vendor_build(path)` (checks the exit status and parses",
        f"`{PROJECT}_prj/solution1/syn/report/{PROJECT}_csynth.xml`: latency cycles, II, LUT/FF/DSP/BRAM).", "",
        "`build_prj.tcl` and `firmware/` are hls4ml's; `tb_data/` holds the test bench data.", "",
        "## Input contract", "",
        f"- firmware input type: `{contract['firmware_type']}` (codes {contract['code_range'][0]}.."
        f"{contract['code_range'][1]}, scale {contract['scale']:g})",
        f"- {contract['rule']}",
    ]
    if "pixel_to_code" in contract:
        lines.append("- uint8 pixel → code table: `pixel_to_code` in the `.fidelity.json` next to this folder")
    if "preprocess" in contract:
        lines.append(f"- preprocessing before the firmware: {contract['preprocess']}")
    lines += ["", "## Bit widths (weight / activation)", ""]
    lines += [f"- {k}: {v['weight']} / {v['act']}" for k, v in bits.items()]
    if fidelity is not None:
        lines += ["", "## Fidelity", "", f"C simulation vs integer reference: {fidelity.summary()}"]
    path = project / "README.md"
    write_text(path, "\n".join(lines) + "\n")
    return path


def _compile(hm, project: Path, csim_opt: str | None) -> None:
    """``hm.compile()``, optionally with another g++ optimisation level for the C simulation."""
    if csim_opt is None:
        hm.compile()
        return
    if csim_opt not in ("-O0", "-O1", "-O2", "-O3", "-Os"):
        raise EdgekdError(f"csim_opt must be a g++ -O flag, got {csim_opt!r}", where="export.hls")
    hm.write()
    script = project / "build_lib.sh"
    text = script.read_text()
    if 'CFLAGS="-O3 -fPIC"' not in text:
        raise EdgekdError("hls4ml's build_lib.sh changed; cannot set the C-simulation optimisation level",
                          where=str(script), fix="leave csim_opt unset")
    script.write_text(text.replace('CFLAGS="-O3 -fPIC"', f'CFLAGS="{csim_opt} -fPIC"'))
    hm._compile()  # hls4ml checks build_lib.sh's exit status and raises on failure


def _build(fw: nn.Module, input_shape: tuple[int, ...], work: Path, im: intref.IntModel, cfg: HlsExportConfig,
           fpga, csim_opt: str | None, layer_reuse: dict[str, int] | None):
    """QONNX export, hls4ml conversion and the compiled C simulation, in ``work``; returns hls4ml's model."""
    import hls4ml

    mw = to_qonnx(fw, input_shape, work / "model.qonnx.onnx")
    hc = hls_config(mw, im, cfg, list(layer_reuse.values()) if layer_reuse else None)
    hm = hls4ml.converters.convert_from_onnx_model(
        mw, hls_config=hc, output_dir=str(work), backend=cfg.backend, io_type=cfg.io_type,
        part=fpga.part, clock_period=fpga.clock_period_ns, project_name=PROJECT)
    _compile(hm, work, csim_opt)
    return hm


def export_qat_and_check(model: nn.Module, name: str, x_check: torch.Tensor, out_dir: Path,
                         cfg: HlsExportConfig, *, mean: float | None = None, std: float | None = None,
                         inputs_desc: str = "held-out images", csim_opt: str | None = None,
                         layer_reuse: dict[str, int] | None = None,
                         log: Callable[[str], None] = print) -> Artifact:
    """Write ``out_dir/<name>-hls-<io>``: QAT student → QONNX → hls4ml; C-sim must equal the integer reference.

    ``x_check`` are normalised float inputs (as the student sees them); they are quantized
    exactly as the firmware will receive them. ``mean``/``std`` put the uint8 pixel → code
    table into the input contract. The fidelity is exact: every output bit-identical.
    ``csim_opt`` (e.g. ``"-O0"``) replaces the ``-O3`` of the C-simulation library build:
    the fully unrolled io_parallel C++ of a real CNN takes minutes to optimise; the
    source, and so the checked arithmetic, is unchanged. ``layer_reuse`` (insertion order = the
    weighted layers' order, e.g. from :func:`qat_fitted_reuse`) sets per-layer reuse factors.
    """
    from edgekd.nets.quant import firmware_part, float_preprocess

    fw = firmware_part(model).eval()
    check_qat_supported(fw)
    _imports()
    fpga = load_fpga(cfg.target)
    pre = float_preprocess(model)
    with torch.no_grad():
        x_fw = pre(x_check) if pre is not None else x_check
    im = intref.extract(fw)
    codes = im.quantize_input(x_fw)
    ref = im.run_float(codes)
    x_in = np.ascontiguousarray((codes.astype(np.float64) * 2.0 ** im.input_spec.exp).astype(np.float32))
    with torch.no_grad():
        brev = model(x_check).double().numpy()
    brevitas_gap = float(np.abs(brev - ref).max())  # float32 rounding in Brevitas only

    tag = cfg.io_type.replace("io_", "")
    final = out_dir / f"{name}-hls-{tag}"
    work = out_dir / f".{name}-hls-{tag}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    input_shape = tuple(x_fw.shape[1:])
    t0 = time.perf_counter()
    try:
        hm = _build(fw, input_shape, work, im, cfg, fpga, csim_opt, layer_reuse)
    except EdgekdError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as a failed artifact
        shutil.rmtree(work, ignore_errors=True)
        return Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}-qonnx", final, None,
                        error=f"QONNX → hls4ml conversion/compile failed: {exc}")
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = np.asarray(hm.predict(x_in), dtype=np.float64).reshape(ref.shape)
    csim_s = time.perf_counter() - t0
    fid = FidelityRecord.compare(out, ref, reference="integer reference (edgekd.export.intref)",
                                 inputs=inputs_desc, exact=True,
                                 notes=f"{cfg.backend} {cfg.io_type}; inputs quantized to the firmware contract")
    log(f"  hls4ml-qonnx {name} {cfg.io_type}: {fid.summary()} (compile {compile_s:.1f}s, C-sim {csim_s:.1f}s)")
    bits = {k: {"weight": v.weight, "act": v.act} for k, v in getattr(model, "bits", {}).items()}
    # a pixel → code table only holds when the firmware input is the normalised image itself
    contract = intref.input_contract(im, mean=mean if pre is None else None, std=std if pre is None else None,
                                     input_shape=input_shape,
                                     preprocess=f"{pre} on the normalised image, in float" if pre is not None else None)
    replace_dir(work, final)
    write_readme(final, backend=cfg.backend, io_type=cfg.io_type, part=fpga.part, clock_mhz=fpga.clock_mhz,
                 contract=contract, bits=bits, fidelity=fid)
    meta = {
        "backend": cfg.backend, "io_type": cfg.io_type, "strategy": cfg.strategy, "reuse_factor": cfg.reuse_factor,
        "layer_reuse": dict(layer_reuse or {}), "part": fpga.part, "clock_mhz": fpga.clock_mhz,
        "precision_mode": "from-quantizers",
        "bits": bits, "layer_types": layer_types(hm), "output_type": im.output_type(codes),
        "input_contract": contract, "brevitas_vs_intref_max_abs": brevitas_gap,
        "compile_s": round(compile_s, 2), "csim_s": round(csim_s, 2), "csim_opt": csim_opt or "-O3",
        "qonnx": "model.qonnx.onnx (as exported), model.qonnx.clean.onnx (after qonnx passes)",
    }
    art = Artifact(name, "fpga-hls", f"hls4ml-{cfg.backend.lower()}-qonnx", final, fid, metadata=meta)
    write_json(out_dir / f"{name}-hls-{tag}.fidelity.json", art.to_dict())
    return art


def qat_fitted_reuse(twin: nn.Module, input_shape: tuple[int, ...], cfg: HlsExportConfig,
                     bits: int) -> dict[str, int]:
    """``reuse_factor: auto`` for a QAT student: one factor per weighted layer of its float twin
    (same shapes), in order: the fastest whose estimated DSPs (upper end of the calibrated 80 %
    interval) fit the part at ``bits``; reuse 1 everywhere where that already fits or nothing does."""
    from edgekd.export.hls import fitted_reuse_factors
    from edgekd.profile.fpga_estimate import layers_from_torch

    chosen = fitted_reuse_factors(twin, input_shape, cfg, bits)
    compute = [l.name for l in layers_from_torch(twin, tuple(input_shape)) if l.kind in ("dense", "conv1d", "conv2d")]
    return {name: int(chosen.get(name, 1)) for name in compute}
