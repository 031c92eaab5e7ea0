"""``tensorrt`` target: a Jetson deploy bundle, and the engine itself where TensorRT runs.

The bundle (one folder, copied to the device as is) holds

* ``<name>.fp32.onnx``, ``<name>.fp16.onnx`` (float16 inside, float32 I/O: TensorRT 11 has no
  FP16 builder flag, so FP16 must be in the graph) and ``<name>.int8.qdq.onnx`` (explicit
  Q/DQ from a Brevitas model, see :mod:`edgekd.export.qcdq`), all opset 17, IR 8,
  constant-folded, each checked with ONNX Runtime against its source model;
* ``build_engine.py`` (TensorRT 8.5 / 10 / 11 aware), ``check.py`` (golden check),
  ``bench.sh`` (trtexec timing with power mode and clocks recorded), ``trt_common.py``;
* ``golden.npz`` (real preprocessed inputs and the reference outputs) and ``metadata.json``
  (I/O, preprocessing, precisions and tolerances, optimization profile, the trtexec
  commands, the JetPack/TensorRT/CUDA each Jetson module is expected to run, SHA-256 of
  every file); ``README.md`` says what to run.

When ``tensorrt`` imports and a CUDA GPU is present, :func:`export_bundle` also builds the
engines on this host with the bundle's own ``build_engine.py``, runs ``check.py`` and times
them with ``bench.sh`` when trtexec exists: the same scripts a Jetson user runs. They run in
a copy beside the bundle (``<bundle>-host-build``), never in the folder copied to the device.
"""
from __future__ import annotations

import datetime as _dt
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import EdgekdError
from edgekd.export import qcdq
from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.profile.result import LatencyResult
from edgekd.runs.atomic import atomic_path, sha256_file, write_bytes, write_json, write_text

TEMPLATES = Path(__file__).resolve().parent / "trt_bundle"
TEMPLATE_FILES = ("build_engine.py", "check.py", "bench.sh", "trt_common.py")
BUNDLE_FORMAT = "edgekd-tensorrt-bundle/1"
PRECISIONS = ("int8", "fp16", "fp32")
DEFAULT_TARGETS = ("orin-nano-8gb", "orin-nx-16gb", "agx-orin-64gb", "agx-thor", "xavier-nx", "agx-xavier")
# Ops whose float inputs may all be turned into float16 without changing their meaning.
_FP16_SAFE_OPS = frozenset({
    "Conv", "ConvTranspose", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip", "MaxPool",
    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add", "Sub",
    "Mul", "Div", "BatchNormalization", "Concat", "Transpose", "Identity", "Softmax", "Squeeze", "Unsqueeze",
    "Pad", "ReduceMean"})


@dataclass
class BundleConfig:
    """Choices for one bundle; defaults fit the study's student (batch 1 latency first)."""

    precisions: tuple[str, ...] = PRECISIONS
    default_precision: str = "int8"
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 256
    workspace_mib: int = 1024
    targets: tuple[str, ...] = DEFAULT_TARGETS
    n_golden: int = 64
    n_calib: int = 512
    fp32_atol: float = 1e-4  # ONNX Runtime vs PyTorch, float32
    speed_runs: int = 300  # ONNX Runtime CPU timing of each ONNX file at export (0: skip)

    def validate(self) -> None:
        bad = sorted(set(self.precisions) - set(PRECISIONS))
        if bad or not self.precisions:
            raise EdgekdError(f"unknown precision(s) {bad or '[]'}", where="export.tensorrt.precisions",
                              fix=f"choose from {list(PRECISIONS)}")
        if self.default_precision not in self.precisions:
            raise EdgekdError(f"default precision '{self.default_precision}' is not built",
                              where="export.tensorrt.default_precision", fix=f"one of {list(self.precisions)}")
        if not (1 <= self.min_batch <= self.opt_batch <= self.max_batch):
            raise EdgekdError(f"batch profile min {self.min_batch} ≤ opt {self.opt_batch} ≤ max {self.max_batch} "
                              "does not hold", where="export.tensorrt")
        if self.n_golden < 1:
            raise EdgekdError("n_golden must be at least 1", where="export.tensorrt.n_golden")


@dataclass
class TensorRTBundle:
    """What :func:`export_bundle` wrote, checked, built and measured."""

    root: Path
    model: str
    artifacts: list[Artifact]
    metadata: dict[str, Any]
    message: str  # one line: where and how the engine is (or will be) built
    engines: dict[str, Path] = field(default_factory=dict)
    golden_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    latencies: list[LatencyResult] = field(default_factory=list)

    @property
    def deployable(self) -> bool:
        return all(a.deployable for a in self.artifacts)


def preprocessing_contract(*, size: int | tuple[int, int], channels: int, mean: float, std: float,
                           source: str = "uint8 image, 0-255") -> dict[str, Any]:
    """How a raw camera/sensor image becomes the engine input (written into metadata.json)."""
    hw = [size, size] if isinstance(size, int) else [int(size[0]), int(size[1])]  # [H, W]
    return {
        "source": source, "channels": channels, "layout": "NCHW", "dtype": "float32",
        "resize": {"to": hw, "method": "bilinear, antialias (torch.nn.functional.interpolate)",
                   "skip_if_already": hw},
        "formula": "x = (pixel / 255 - mean) / std", "mean": float(mean), "std": float(std),
    }


def tensorrt_status() -> tuple[bool, str]:
    """Whether engines can be built here: ``tensorrt`` imports and a CUDA GPU is visible."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError as exc:
        return False, f"tensorrt is not importable ({exc.__class__.__name__}: {exc})"
    if not torch.cuda.is_available():
        return False, f"tensorrt {trt.__version__} imports but no CUDA GPU is visible"
    return True, f"tensorrt {trt.__version__} on {torch.cuda.get_device_name(0)}"


# --------------------------------------------------------------------------------------
# ONNX files
# --------------------------------------------------------------------------------------

def to_fp16_onnx(model):
    """A copy of a float32 ONNX graph computing in float16, with float32 inputs and outputs.

    Float initializers become float16, a Cast follows each float input and precedes each
    output. Only ops in a known-safe list are accepted (an op like Resize keeps float32
    ``scales`` inputs and must not be converted blindly); anything else is refused by name.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    bad = sorted({n.op_type for n in g.node} - _FP16_SAFE_OPS)
    if bad:
        raise EdgekdError(f"cannot convert ops {bad} to FP16 safely", where="TensorRT bundle (fp16)",
                          fix="drop 'fp16' from export.tensorrt.precisions, or convert with ModelOpt AutoCast "
                              "on the device")
    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                                              init.name))
    casts_in, casts_out = [], []
    for inp in g.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        new = f"{inp.name}__fp16"
        for n in g.node:
            for k, x in enumerate(n.input):
                if x == inp.name:
                    n.input[k] = new
        casts_in.append(helper.make_node("Cast", [inp.name], [new], name=f"{inp.name}_to_fp16",
                                         to=TensorProto.FLOAT16))
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        new = f"{out.name}__fp16"
        for n in g.node:
            for k, x in enumerate(n.output):
                if x == out.name:
                    n.output[k] = new
            for k, x in enumerate(n.input):
                if x == out.name:
                    n.input[k] = new
        casts_out.append(helper.make_node("Cast", [new], [out.name], name=f"{out.name}_to_fp32",
                                          to=TensorProto.FLOAT))
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # float32 shapes/types of intermediates would now be wrong
    onnx.checker.check_model(m, full_check=True)
    return m


def _finish_onnx(path: Path) -> None:
    """Fold constants, lower the IR version and re-check an exported float ONNX file in place."""
    import onnx

    m = onnx.load(str(path))
    qcdq.fold_constants(m)
    qcdq.lower_ir_version(m)
    onnx.checker.check_model(m, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(m, str(tmp))


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    from edgekd.export.onnx import ort_session, run_ort

    return run_ort(ort_session(path), x)


def last_layer_step(qmodel: nn.Module) -> float | None:
    """How far one requantization step can move a logit: ``s · max|W|`` of the last quantized layer.

    ``s`` is the scale of that layer's INT8 input quantizer and ``W`` its dequantized weights.
    Another INT8 implementation (ONNX Runtime's fused kernels, TensorRT) computes the same
    integers except where a value lies on a rounding boundary, which it may round one step
    the other way; each such flip at the classifier's input moves a logit by at most this.
    None when the model has no Brevitas layer with an input quantizer (a user's own QAT model).
    """
    step = None
    for mod in qmodel.modules():
        if hasattr(mod, "input_quant") and hasattr(mod, "quant_weight"):
            try:
                s = float(mod.input_quant.scale())
                w = mod.quant_weight().value.detach().abs().max()
                step = s * float(w)
            except Exception:  # noqa: BLE001 - an input quantizer without a scale: not measurable
                step = None
    return step


# A TensorRT engine may round a few more boundary values the other way than ONNX Runtime did.
INT8_TOL_FACTOR = 4  # × ONNX Runtime's INT8-kernel error on the check images
INT8_MIN_FLIPS = 4  # and never fewer than this many one-step flips at the classifier input


def int8_tolerance(ort_int8_err: float, step: float | None, logit_scale: float) -> dict[str, Any]:
    """The INT8 golden tolerance, derived in units of one requantization flip (``step``).

    ``ort_int8_err`` is the largest difference between ONNX Runtime's fused INT8 kernels and
    the Brevitas reference on the check images: a measured sample of what a second INT8
    implementation does (it equals ``ort_int8_err / step`` worst-case flips). The tolerance
    allows ``INT8_TOL_FACTOR`` times that, and at least ``INT8_MIN_FLIPS`` flips, so an engine
    that happens to round a few more boundary values differently than ONNX Runtime did still
    passes (ONNX Runtime may match Brevitas exactly on a small check set: 4 × 0 would allow
    nothing). Real defects (a wrong scale, a dropped Q/DQ pair, per-tensor for per-channel
    weights) move logits by a sizeable fraction of their range, far above either bound.
    """
    floor = 1e-3 * logit_scale
    atol = max(floor, INT8_TOL_FACTOR * ort_int8_err, INT8_MIN_FLIPS * (step or 0.0))
    why = (f"max of {INT8_TOL_FACTOR}× ONNX Runtime's INT8-kernel error vs Brevitas ({ort_int8_err:.3g}), "
           f"{INT8_MIN_FLIPS} one-step requantization flips at the last layer's input")
    if step:
        why += (f" (one flip moves a logit by at most s·max|W| = {step:.3g}; ONNX Runtime's error is "
                f"{ort_int8_err / step:.1f} flips, the tolerance {atol / step:.1f})")
    else:
        why += " (not measurable for this model)"
    why += f", and 0.1 % of the logit range ({floor:.3g})"
    return {"atol": atol, "rtol": 0.0, "min_argmax_agreement": 1.0, "why": why,
            "derivation": {"ort_int8_max_abs_diff": ort_int8_err, "one_flip": step, "logit_scale": logit_scale,
                           "factor": INT8_TOL_FACTOR, "min_flips": INT8_MIN_FLIPS}}


def _margin(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 logit: how far each input is from an argmax flip."""
    s = np.sort(logits, axis=1)
    return s[:, -1] - s[:, -2]


def _select_golden(refs: list[np.ndarray], tols: list[float], n: int) -> np.ndarray:
    """Indices of ``n`` inputs whose argmax no tolerated error can flip (largest margins first)."""
    score = np.min(np.stack([_margin(r) / max(4 * t, 1e-12) for r, t in zip(refs, tols)]), axis=0)
    order = np.argsort(-score, kind="stable")
    return np.sort(order[:n])


def ort_cpu_speeds(files: dict[str, Path], example: np.ndarray, *, runs: int = 300) -> dict[str, Any]:
    """Each precision's ONNX file timed on ONNX Runtime's CPU provider: one thread, batch 1.

    Written into the bundle so nobody has to assume which precision is fastest: ONNX Runtime
    runs the Q/DQ graph with its own integer kernels, which on a CPU and a student this small
    are slower than FP32 (issue 16 measured 3.4-5×); TensorRT's INT8 tensor-core kernels are a
    different matter and are measured on the device with bench.sh.
    """
    from edgekd.profile.environment import capture
    from edgekd.profile.onnxruntime import profile_ort

    rows: dict[str, dict[str, Any]] = {}
    for p, path in files.items():
        r = profile_ort(path, p, example[:1], batch_size=1, runs=runs, warmup=max(10, runs // 10), threads=1)
        rows[p] = {"p50_us": round(r.p50_us, 1), "p90_us": round(r.p90_us, 1), "p99_us": round(r.p99_us, 1),
                   "file": path.name}
    import onnxruntime as ort

    env = capture()
    return {"runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
            "host": env.get("cpu") or env.get("os"), "threads": 1, "batch": 1, "runs": runs,
            "clock": "host", "precisions": rows, "fastest": min(rows, key=lambda k: rows[k]["p50_us"])}


def speed_statement(speeds: dict[str, Any]) -> str:
    """One sentence: which precision is fastest on ONNX Runtime CPU here, and what the Q/DQ file is for."""
    rows = speeds["precisions"]
    fast = speeds["fastest"]
    figures = ", ".join(f"{p} {v['p50_us']:,.1f} µs" for p, v in rows.items())
    text = (f"Measured at export with {speeds['runtime']} ({speeds['threads']} thread, batch {speeds['batch']}, "
            f"p50 of {speeds['runs']} runs): {figures}; fastest there: {fast}.")
    if "int8" in rows and fast != "int8":
        ratio = rows["int8"]["p50_us"] / rows[fast]["p50_us"]
        text += (f" The INT8 Q/DQ file is {ratio:.1f}× slower than {fast} on ONNX Runtime's CPU provider: it is "
                 "for TensorRT (INT8 kernels on the GPU/DLA), not a faster CPU model.")
    elif "int8" in rows:
        text += " The INT8 Q/DQ file is written for TensorRT; it happens to be fastest on this CPU too."
    return text + (" Which precision is fastest on the Jetson is measured there, not assumed: "
                   "bash bench.sh --precision int8|fp16|fp32.")


# --------------------------------------------------------------------------------------
# The bundle
# --------------------------------------------------------------------------------------

def export_bundle(model: nn.Module, name: str, *, x_calib: torch.Tensor, x_check: torch.Tensor, out_dir: Path,
                  preprocessing: dict[str, Any], class_names: list[str] | None = None,
                  qmodel: nn.Module | None = None, config: BundleConfig | None = None,
                  build: bool | None = None, inputs_desc: str = "held-out images",
                  log=None) -> TensorRTBundle:
    """Write the Jetson bundle for ``model`` into ``out_dir`` and check every file in it.

    ``model`` is the float student (PyTorch). ``qmodel`` is its INT8 Brevitas form (a QAT
    student); without it a TensorRT-compatible twin is made from ``model`` and calibrated
    on ``x_calib`` (real, preprocessed training images). ``x_check`` (held-out images)
    checks every ONNX file with ONNX Runtime and provides the golden inputs.
    ``build=None`` builds the engines here when :func:`tensorrt_status` allows; ``False``
    never builds. Returns the bundle; its ``message`` is the one line to show the user.
    """
    cfg = config or BundleConfig()
    cfg.validate()
    from edgekd.hwtargets import load_jetson

    jetsons = [load_jetson(t) for t in cfg.targets]  # fail on a bad target before writing anything
    log = log or (lambda msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x_check = x_check.float().contiguous()
    if x_check.ndim != 4 or len(x_check) == 0:
        raise EdgekdError(f"check images must be a non-empty N×C×H×W tensor, got {tuple(x_check.shape)}",
                          where="TensorRT bundle")
    with torch.no_grad():
        ref_float = model(x_check).float().numpy()
    artifacts: list[Artifact] = []
    files: dict[str, str] = {}
    onnx_names: dict[str, str] = {}

    # FP32 ONNX --------------------------------------------------------------------------
    from edgekd.export.onnx import export_onnx

    fp32 = out_dir / f"{name}.fp32.onnx"
    fp32_diff = 0.0
    try:
        export_onnx(model, x_check, fp32)
        _finish_onnx(fp32)
        out = _ort(fp32, x_check.numpy())
        fid = FidelityRecord.compare(out, ref_float, reference="pytorch float32 (cpu)", inputs=inputs_desc,
                                     max_abs=cfg.fp32_atol, min_agreement=1.0, notes="ONNX Runtime CPU")
        fp32_diff = fid.max_abs_diff
        artifacts.append(Artifact(name, "tensorrt", "onnx-fp32", fp32, fid, metadata={"precision": "fp32"}))
    except Exception as exc:  # noqa: BLE001 - recorded on the artifact and fails the run
        artifacts.append(Artifact(name, "tensorrt", "onnx-fp32", fp32, None, error=f"FP32 ONNX export failed: {exc}"))
    onnx_names["fp32"] = fp32.name

    # FP16 ONNX --------------------------------------------------------------------------
    fp16_diff = 0.0
    if "fp16" in cfg.precisions and artifacts[0].error is None:
        import onnx

        fp16 = out_dir / f"{name}.fp16.onnx"
        try:
            m16 = to_fp16_onnx(onnx.load(str(fp32)))
            with atomic_path(fp16) as tmp:
                onnx.save(m16, str(tmp))
            out = _ort(fp16, x_check.numpy())
            # float16 keeps 11 significant bits: allow 1 % of the logit scale, and never flip an argmax
            scale = float(np.abs(ref_float).max()) or 1.0
            fid = FidelityRecord.compare(out, ref_float, reference="pytorch float32 (cpu)", inputs=inputs_desc,
                                         max_abs=1e-2 * scale, min_agreement=0.99,
                                         notes="ONNX Runtime CPU, float16 graph")
            fp16_diff = fid.max_abs_diff
            artifacts.append(Artifact(name, "tensorrt", "onnx-fp16", fp16, fid, metadata={"precision": "fp16"}))
        except EdgekdError:
            raise
        except Exception as exc:  # noqa: BLE001
            artifacts.append(Artifact(name, "tensorrt", "onnx-fp16", fp16, None,
                                      error=f"FP16 ONNX conversion failed: {exc}"))
        onnx_names["fp16"] = fp16.name

    # INT8 QDQ ONNX ----------------------------------------------------------------------
    ref_int8 = None
    int8_diff = 0.0
    int8_step = None
    if "int8" in cfg.precisions:
        twin = None
        if qmodel is None:
            qmodel, twin = qcdq.trt_twin(model, x_calib[: cfg.n_calib])
            log(f"[tensorrt] INT8 twin of {name}: {len(twin.quantized)} layers quantized, calibrated on "
                f"{twin.calibration_images} images")
        art = qcdq.export_and_check_qcdq(qmodel, name, x_check, out_dir, float_model=model, twin=twin,
                                         inputs_desc=inputs_desc, filename=f"{name}.int8.qdq.onnx")
        artifacts.append(art)
        onnx_names["int8"] = art.path.name
        if art.fidelity is not None:
            ref_int8 = qcdq.brevitas_forward(qmodel, x_check)
            int8_diff = float(art.metadata["int8_kernels"]["max_abs_diff"])
            int8_step = last_layer_step(qmodel)

    # Tolerances and golden data ---------------------------------------------------------
    scale = float(np.abs(ref_float).max()) or 1.0
    tol = {
        "fp32": {"atol": max(1e-4, 10 * fp32_diff), "rtol": 1e-3, "min_argmax_agreement": 1.0,
                 "why": "float32 summation order; rtol leaves room for TF32 if the device forces it"},
        "fp16": {"atol": max(1e-3 * scale, 4 * fp16_diff), "rtol": 1e-2, "min_argmax_agreement": 1.0,
                 "why": "4× the float16 error ONNX Runtime showed on the check images"},
        "int8": int8_tolerance(int8_diff, int8_step, scale),
    }
    refs, tols = [ref_float], [tol["fp16"]["atol"] if "fp16" in cfg.precisions else tol["fp32"]["atol"]]
    if ref_int8 is not None:
        refs.append(ref_int8)
        tols.append(tol["int8"]["atol"])
    idx = _select_golden(refs, tols, min(cfg.n_golden, len(x_check)))
    golden = {"input": x_check.numpy()[idx].astype(np.float32), "output_float": ref_float[idx].astype(np.float32),
              "indices": idx.astype(np.int64)}
    if ref_int8 is not None:
        golden["output_int8"] = ref_int8[idx].astype(np.float32)
    golden_path = out_dir / "golden.npz"
    with atomic_path(golden_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **golden)

    # Scripts ------------------------------------------------------------------------------
    for f in TEMPLATE_FILES:
        write_bytes(out_dir / f, (TEMPLATES / f).read_bytes())
        (out_dir / f).chmod(0o755 if f.endswith((".sh", "build_engine.py", "check.py")) else 0o644)

    # Metadata -----------------------------------------------------------------------------
    precisions: dict[str, Any] = {}
    fmt_precision = {"onnx-fp32": "fp32", "onnx-fp16": "fp16", "onnx-qdq": "int8"}
    built = {fmt_precision[a.format]: a for a in artifacts}
    for p in cfg.precisions:
        if p not in onnx_names:
            continue
        precisions[p] = {
            "onnx_strongly_typed": onnx_names[p],
            "onnx_weakly_typed": onnx_names["int8"] if p == "int8" else onnx_names["fp32"],
            "weak_flags": {"int8": ["INT8"], "fp16": ["FP16"], "fp32": []}[p],
            "golden_output": "output_int8" if p == "int8" else "output_float",
            "reference": ("brevitas INT8 model (signed per-tensor activations, per-channel weights)" if p == "int8"
                          else "pytorch float32"),
            "tolerance": tol[p],
            "status": built[p].status if p in built else "missing",
        }
    import onnx

    io_shape = ["batch", *[int(d) for d in x_check.shape[1:]]]
    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "model": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgekd": _edgekd_version(), "onnx_opset": qcdq.OPSET, "onnx_ir_version": qcdq.TARGET_IR_VERSION,
        "inputs": [{"name": qcdq.INPUT_NAME, "shape": io_shape, "dtype": "float32", "layout": "NCHW"}],
        "outputs": [{"name": qcdq.OUTPUT_NAME, "shape": ["batch", int(ref_float.shape[1])], "dtype": "float32",
                     "meaning": "logits (no softmax)", "classes": class_names}],
        "preprocessing": preprocessing,
        "optimization_profile": {"input": qcdq.INPUT_NAME, "min_batch": cfg.min_batch, "opt_batch": cfg.opt_batch,
                                 "max_batch": cfg.max_batch},
        "workspace_mib": cfg.workspace_mib,
        "default_precision": cfg.default_precision,
        "precisions": precisions,
        "golden": {"file": golden_path.name, "n": int(len(idx)), "inputs": inputs_desc,
                   "selection": "largest top-1/top-2 logit margins, so no tolerated error can flip an argmax"},
        "targets": [_target_entry(j) for j in jetsons],
        "fidelity": {a.format: (a.fidelity.__dict__ if a.fidelity else None) for a in artifacts},
    }
    if cfg.speed_runs > 0:
        ok_files = {p: out_dir / precisions[p]["onnx_strongly_typed"] for p in precisions
                    if precisions[p]["status"] == "ok"}
        meta["onnxruntime_cpu_latency"] = ort_cpu_speeds(ok_files, x_check.numpy(), runs=cfg.speed_runs)
        meta["onnxruntime_cpu_latency"]["statement"] = speed_statement(meta["onnxruntime_cpu_latency"])
        log(f"[tensorrt] {name}: {meta['onnxruntime_cpu_latency']['statement']}")
    for p, info in precisions.items():
        for major in (8, 10, 11):
            info.setdefault("trtexec", {})[f"tensorrt{major}"] = " ".join(
                _trtexec_for(meta, p, major, cfg))
    for p in sorted(out_dir.iterdir()):
        if p.is_file() and p.name not in ("metadata.json",) and not p.name.startswith(".") and \
                (p.suffix in (".onnx", ".npz", ".py", ".sh")):
            files[p.name] = sha256_file(p)
    meta["files"] = files
    for a in artifacts:  # consistency: the file listed for each ONNX is the one checked
        if a.path.name in files:
            m = onnx.load(str(a.path))
            a.metadata.update({"sha256": files[a.path.name], "ir_version": int(m.ir_version)})
            speed = meta.get("onnxruntime_cpu_latency", {}).get("precisions", {}).get(fmt_precision.get(a.format))
            if speed is not None:
                a.metadata["onnxruntime_cpu_p50_us"] = speed["p50_us"]  # 1 thread, batch 1, this host
    write_json(out_dir / "metadata.json", meta)
    write_text(out_dir / "README.md", _readme(meta, jetsons))
    for a in artifacts:
        write_json(out_dir / f"{a.path.name}.artifact.json", a.to_dict())
    for p in out_dir.iterdir():  # atomic writes create 0600 files; the bundle is copied to a device
        if p.is_file() and p.name not in TEMPLATE_FILES:
            p.chmod(0o644)

    bundle = TensorRTBundle(out_dir, name, artifacts, meta, message="")
    ok, why = tensorrt_status()
    if build is None:
        build = ok
    if build and bundle.deployable:
        if not ok:
            raise EdgekdError(f"cannot build TensorRT engines here: {why}", where="export.tensorrt.build",
                              fix="build on the device: python3 build_engine.py in the bundle folder")
        build_here(bundle, log=log)
    else:
        first = jetsons[0].default_software if jetsons else None
        where = (f"on the Jetson (e.g. {jetsons[0].module}, JetPack {first.jetpack} / TensorRT {first.tensorrt})"
                 if first else "on the target device")
        reason = why if not build else "an artifact failed its check"
        bundle.message = (f"TensorRT bundle written to {out_dir} (engine not built here: {reason}); copy the folder "
                          f"and build {where}: python3 build_engine.py && python3 check.py && bash bench.sh")
    return bundle


def _edgekd_version() -> str:
    try:
        from importlib.metadata import version

        return version("edgekd")
    except Exception:  # noqa: BLE001 - metadata is informative only
        return "unknown"


def _target_entry(j) -> dict[str, Any]:
    sw = j.default_software
    return {
        "name": j.name, "module": j.module, "compute_capability": j.gpu.compute_capability,
        "dla_cores": j.dla_cores, "jetpack": sw.jetpack, "tensorrt": sw.tensorrt, "cuda": sw.cuda,
        "python": sw.python, "build": "strongly typed" if sw.tensorrt_major >= 10 else "weakly typed (TensorRT 8)",
        "also_supported": [{"jetpack": s.jetpack, "tensorrt": s.tensorrt, "cuda": s.cuda} for s in j.software[1:]],
    }


def _trtexec_for(meta: dict[str, Any], precision: str, major: int, cfg: BundleConfig) -> list[str]:
    """The trtexec build command, computed by the bundle's own build_engine.py plan (one source)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_edgekd_build_engine", TEMPLATES / "build_engine.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    saved = list(sys.path)
    try:
        spec.loader.exec_module(mod)  # the script puts its own folder on sys.path for trt_common
    finally:
        sys.path[:] = saved
    import argparse

    args = argparse.Namespace(precision=precision, min_batch=cfg.min_batch, opt_batch=cfg.opt_batch,
                              max_batch=cfg.max_batch, workspace_mib=cfg.workspace_mib,
                              engine=Path(mod.engine_name(meta, precision)), timing_cache=None, dla_core=None)
    return mod.trtexec_command(mod.build_plan(meta, args, major))


def _readme(meta: dict[str, Any], jetsons) -> str:
    rows = "\n".join(f"| {t['module']} | {t['compute_capability']} | {t['jetpack']} | {t['tensorrt']} | "
                     f"{t['cuda'] or '—'} | {t['dla_cores']} | {t['build']} |" for t in meta["targets"])
    prec = "\n".join(f"- `{p}`: `{v['onnx_strongly_typed']}` vs {v['reference']}, atol {v['tolerance']['atol']:.3g}, "
                     f"rtol {v['tolerance']['rtol']:.3g} ({v['status']})" for p, v in meta["precisions"].items())
    cmd = meta["precisions"][meta["default_precision"]]["trtexec"]
    speed = (meta["onnxruntime_cpu_latency"]["statement"] if "onnxruntime_cpu_latency" in meta else
             "Not measured at export. The INT8 Q/DQ file is for TensorRT; on ONNX Runtime's CPU provider it is "
             "typically slower than FP32. Measure each precision on the device: bash bench.sh --precision P.")
    inp = meta["inputs"][0]
    pre = meta["preprocessing"]
    return f"""# TensorRT bundle: {meta['model']}

Written by edgekd {meta['edgekd']} on {meta['created']}. Copy this folder to the device and run:

```
python3 build_engine.py          # builds {meta['default_precision']} (use --precision fp16|fp32|int8)
python3 check.py                 # engine vs golden outputs
bash bench.sh                    # trtexec timing; records nvpmodel and jetson_clocks
```

Engines depend on the GPU and the TensorRT version: build them on the device, never copy
them between devices. `check.py --backend onnxruntime` checks the ONNX files without a GPU.
Engines are written as `{meta['model']}.<precision>.engine`, each with a `.json` build record
(TensorRT version, GPU, optimization profile) that `bench.sh` reads for the batch limits;
`check.py` reads them from the engine. Timing caches are kept per GPU and TensorRT version
(`timing.sm<cc>.trt<version>.cache`).

Input `{inp['name']}`: float32 {inp['layout']} {inp['shape']}; {pre.get('formula', '')}
(mean {pre.get('mean')}, std {pre.get('std')}). Output `{meta['outputs'][0]['name']}`: logits.

## Precisions
{prec}

### Which precision is fastest where
{speed}

## Expected software
| module | compute capability | JetPack | TensorRT | CUDA | DLA cores | build |
|---|---|---|---|---|---|---|
{rows}

## Equivalent trtexec commands ({meta['default_precision']})
- TensorRT 10: `{cmd['tensorrt10']}`
- TensorRT 11: `{cmd['tensorrt11']}`
- TensorRT 8.5/8.6: `{cmd['tensorrt8']}`
"""


# --------------------------------------------------------------------------------------
# On a machine with TensorRT and a GPU
# --------------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise EdgekdError(f"{what} failed (exit {proc.returncode}): " + " | ".join(tail), where=str(cwd),
                          fix=f"rerun `{' '.join(cmd)}` in the bundle folder to see the full output")
    return proc


def host_build_dir(bundle_root: Path) -> Path:
    """Where engines built on this machine go: beside the bundle, never inside it.

    The bundle folder is what users copy to a Jetson; an engine built for this host's GPU
    and TensorRT would be useless (or rejected) there, and check/bench records would be
    mistaken for the device's.
    """
    bundle_root = Path(bundle_root)
    return bundle_root.parent / f"{bundle_root.name}-host-build"


def _fail_artifact(bundle: TensorRTBundle, onnx_name: str, error: str) -> None:
    for a in bundle.artifacts:
        if a.path.name == onnx_name:
            a.error = error


def _build_one(bundle: TensorRTBundle, work: Path, p: str, trtexec: str | None, bench_iterations: int,
               log) -> None:
    """Build, golden-check and time one precision in ``work``; a failure fails that artifact only."""
    import json

    from edgekd.profile.trtexec import latency_from_bench_dir

    info = bundle.metadata["precisions"][p]
    onnx_name = info["onnx_strongly_typed"]
    try:
        _run([sys.executable, "build_engine.py", "--precision", p], work, f"build_engine.py --precision {p}")
    except EdgekdError as exc:
        _fail_artifact(bundle, onnx_name, f"TensorRT engine build on this host failed: {exc.message}")
        log(f"[tensorrt] {p}: engine build failed; other precisions go on ({exc.what})")
        return
    bundle.engines[p] = work / _engine_name(bundle.metadata, p)
    proc = subprocess.run([sys.executable, "check.py", "--precision", p], cwd=work, capture_output=True, text=True)
    res_path = work / f"check-{p}-tensorrt.json"
    bundle.golden_checks[p] = (json.loads(res_path.read_text()) if res_path.is_file()
                               else {"passed": False, "error": proc.stderr.strip()})
    log(f"[tensorrt] {p}: {proc.stdout.strip() or proc.stderr.strip()}")
    if proc.returncode != 0:
        _fail_artifact(bundle, onnx_name, f"engine failed the golden check: {bundle.golden_checks[p]}")
        return
    if trtexec is None:
        return
    out = work / f"bench-{p}-b1"
    try:
        _run(["bash", "bench.sh", "--precision", p, "--no-clocks", "--out", str(out), "--trtexec", trtexec,
              "--iterations", str(bench_iterations)], work, f"bench.sh --precision {p}")
        bundle.latencies.append(latency_from_bench_dir(out, model=bundle.model))
    except EdgekdError as exc:  # timing failed: the engine itself passed its check, so only log it
        log(f"[tensorrt] {p}: not timed ({exc.what})")


def build_here(bundle: TensorRTBundle, *, log=None, bench_iterations: int = 2000,
               work_dir: Path | None = None) -> TensorRTBundle:
    """Build, golden-check and (with trtexec) time every precision with the bundle's own scripts.

    The scripts run on a copy of the bundle in ``work_dir`` (default :func:`host_build_dir`),
    so the bundle folder stays exactly what was exported. One precision failing marks that
    artifact failed; the others are still built.
    """
    log = log or (lambda msg: None)
    work = Path(work_dir) if work_dir is not None else host_build_dir(bundle.root)
    shutil.copytree(bundle.root, work, dirs_exist_ok=True)  # engines/caches already there are reused
    trtexec = shutil.which("trtexec") or ("/usr/src/tensorrt/bin/trtexec"
                                          if Path("/usr/src/tensorrt/bin/trtexec").exists() else None)
    for p in bundle.metadata["precisions"]:
        _build_one(bundle, work, p, trtexec, bench_iterations, log)
    _, why = tensorrt_status()
    failed = sorted(p for p in bundle.metadata["precisions"] if p not in bundle.engines)
    bundle.message = (f"{why}: engines built in {work} (kept out of the bundle folder {bundle.root}, which is "
                      f"what goes to the device) for {sorted(bundle.engines)}"
                      + (f"; build FAILED for {failed}" if failed else "") + "; golden check "
                      + (", ".join(f"{p}: {'pass' if r.get('passed') else 'FAIL'}"
                                   for p, r in bundle.golden_checks.items()) or "not run")
                      + ("" if trtexec else "; trtexec not found, not timed"))
    return bundle


def _engine_name(meta: dict[str, Any], precision: str) -> str:
    """``<model>.<precision>.engine``: the name the bundle's scripts use (trt_common.engine_name)."""
    return f"{meta['model']}.{precision}.engine"


__all__ = ["BundleConfig", "TensorRTBundle", "build_here", "export_bundle", "preprocessing_contract",
           "tensorrt_status", "to_fp16_onnx"]
