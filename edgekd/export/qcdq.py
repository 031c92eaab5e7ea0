"""QCDQ ONNX of a Brevitas student for ONNX Runtime and TensorRT (explicit INT8 Q/DQ).

TensorRT builds INT8 engines only from explicit QuantizeLinear/DequantizeLinear pairs (on
TensorRT 11 there is no other way), and its ONNX parser accepts a narrow set of patterns:
signed INT8 everywhere, zero-points 0, per-channel weight scales on the output-channel
axis (0), per-tensor activation scales, a DequantizeLinear fed straight by its
QuantizeLinear or by an INT8 initializer (no Clip in between, which Brevitas emits for
narrow-range or sub-8-bit weights), and float biases. This module

* builds a TensorRT-compatible Brevitas *twin* of a float student (:func:`trt_twin`):
  every Conv/Linear gets an ``Int8ActPerTensorFloat`` input quantizer and an
  ``Int8WeightPerChannelFloat`` weight quantizer with ``narrow_range=False``, and the
  activation scales are calibrated on real images;
* exports any Brevitas module with ``export_onnx_qcdq`` (TorchScript exporter, opset 17),
  folds constants (keeping the weight DequantizeLinear nodes TensorRT needs), lowers the
  IR version to one JetPack 5/6 TensorRT parses, and checks the file with ``onnx.checker``
  (:func:`export_qcdq`);
* checks the graph itself against TensorRT's Q/DQ rules (:func:`check_qdq_graph`);
* compares ONNX Runtime with the Brevitas model on held-out images
  (:func:`export_and_check_qcdq`).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import EdgekdError
from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.runs.atomic import atomic_path, write_json

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 17
# TensorRT 8.5 (JetPack 5.1) ships an ONNX parser built against onnx 1.12, whose newest IR
# is 8; TensorRT 10.3 (JetPack 6) reads IR <= 10. IR 8 is therefore the version both read.
TARGET_IR_VERSION = 8
MAX_IR_VERSION = 9
# Tensor element types that exist only from IR 9 on (float8 e4m3/e5m2 variants, int4/uint4 and
# newer); a graph using them cannot be lowered to TARGET_IR_VERSION.
_NEW_IR_TYPES = frozenset(range(17, 32))
_INT8 = 3  # onnx.TensorProto.INT8
_UINT8 = 2  # onnx.TensorProto.UINT8
_FLOAT = 1
_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")
# Nodes never folded even when all their inputs are constant: a DequantizeLinear of an INT8
# initializer *is* TensorRT's INT8-weight pattern; folding it would turn the weights back
# into float and lose the quantization.
_KEEP_OPS = frozenset({"DequantizeLinear"})


# --------------------------------------------------------------------------------------
# Brevitas twin of a float student
# --------------------------------------------------------------------------------------

def trt_quantizers() -> tuple[type, type]:
    """The Brevitas (activation, weight) quantizers whose QCDQ export TensorRT accepts.

    Signed INT8 per-tensor activations; per-channel INT8 weights on the full [-128, 127]
    range (``narrow_range=False``: the narrow-range default puts a Clip between Q and DQ).
    """
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat

    class TrtInt8WeightPerChannelFloat(Int8WeightPerChannelFloat):
        narrow_range = False

    return Int8ActPerTensorFloat, TrtInt8WeightPerChannelFloat


def _quant_layer(layer: nn.Module, act_quant: type, weight_quant: type, where: str) -> nn.Module:
    """A Brevitas layer computing what ``layer`` computes, with its weights copied."""
    import brevitas.nn as qnn

    if isinstance(layer, nn.Conv2d):
        if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
            raise EdgekdError(
                f"Conv2d with padding={layer.padding!r}, padding_mode={layer.padding_mode!r} cannot be "
                "quantized for TensorRT", where=where,
                fix="use integer zero padding (e.g. padding=1 for a 3×3 'same' convolution)")
        q = qnn.QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                            padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                            bias=layer.bias is not None, weight_quant=weight_quant, input_quant=act_quant,
                            bias_quant=None, return_quant_tensor=False)
    elif isinstance(layer, nn.Linear):
        q = qnn.QuantLinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                            weight_quant=weight_quant, input_quant=act_quant, bias_quant=None,
                            return_quant_tensor=False)
    else:  # pragma: no cover - callers only pass Conv2d/Linear
        raise TypeError(type(layer).__name__)
    with torch.no_grad():
        q.weight.copy_(layer.weight)
        if layer.bias is not None:
            q.bias.copy_(layer.bias)
    return q


@dataclass
class TwinReport:
    """What :func:`trt_twin` quantized, what it left in float, and how it was calibrated."""

    quantized: list[str]
    float_layers: list[str]  # layers with parameters left in float (TensorRT runs them in FP32)
    calibration_images: int
    activation_quantizer: str = "Int8ActPerTensorFloat (signed, per tensor)"
    weight_quantizer: str = "Int8WeightPerChannelFloat (axis 0, narrow_range=False)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trt_twin(model: nn.Module, calib: torch.Tensor, *, batch_size: int = 256) -> tuple[nn.Module, TwinReport]:
    """A TensorRT-compatible Brevitas twin of the float ``model``, calibrated on ``calib``.

    Every ``nn.Conv2d`` and ``nn.Linear`` (found by module path, so any architecture built
    from modules works) becomes a Brevitas layer with a signed INT8 per-tensor input
    quantizer and per-channel INT8 weights; biases stay float. Activation scales are set
    from the statistics of ``calib`` (real, normalized images, N×C×H×W) in Brevitas'
    calibration mode. ``model`` itself is not modified.
    """
    from brevitas.graph.calibrate import calibration_mode

    if calib.ndim != 4 or len(calib) == 0:
        raise EdgekdError(f"calibration images must be a non-empty N×C×H×W tensor, got shape {tuple(calib.shape)}",
                          where="trt_twin", fix="pass real images from the training or validation split")
    act_q, w_q = trt_quantizers()
    twin = copy.deepcopy(model).eval()
    quantized: list[str] = []
    for name, mod in list(twin.named_modules()):
        for child_name, child in list(mod.named_children()):
            path = f"{name}.{child_name}" if name else child_name
            if type(child) in (nn.Conv2d, nn.Linear):
                setattr(mod, child_name, _quant_layer(child, act_q, w_q, where=path))
                quantized.append(path)
    if not quantized:
        raise EdgekdError("the model has no Conv2d or Linear layer to quantize", where="trt_twin",
                          fix="export it as FP32 ONNX only")
    float_layers = sorted({n.rsplit(".", 1)[0] for n, p in twin.named_parameters()
                           if not any(n.startswith(q + ".") for q in quantized)})
    with torch.no_grad(), calibration_mode(twin):
        for i in range(0, len(calib), batch_size):
            twin(calib[i : i + batch_size])
    twin.eval()
    return twin, TwinReport(quantized, float_layers, int(len(calib)))


def brevitas_forward(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Float outputs of a (Brevitas or plain) module, unwrapping QuantTensors."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            y = model.eval()(x[i : i + batch_size])
            outs.append((y.value if hasattr(y, "value") else y).float().numpy())
    return np.concatenate(outs)


# --------------------------------------------------------------------------------------
# Graph passes
# --------------------------------------------------------------------------------------

def fold_constants(model, keep_ops: frozenset[str] = _KEEP_OPS):
    """Fold every node whose inputs are all constants into an initializer (in place).

    ``Constant`` nodes become initializers, initializers listed as graph inputs are taken
    out of the inputs (so runtimes treat them as weights), nodes in ``keep_ops`` are kept
    (weight DequantizeLinear), and unused initializers are dropped. Evaluation uses ONNX's
    reference runtime, node by node, until nothing more folds. Returns ``model``.
    """
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    consts: dict[str, Any] = {i.name: i for i in g.initializer}
    # Constant nodes → initializers, so the folding below sees them.
    for node in [n for n in g.node if n.op_type == "Constant"]:
        val = ReferenceEvaluator(onnx.helper.make_model(
            onnx.helper.make_graph([node], "c", [], [onnx.helper.make_tensor_value_info(node.output[0], 0, None)]),
            opset_imports=model.opset_import)).run(None, {})[0]
        t = numpy_helper.from_array(np.asarray(val), node.output[0])
        g.initializer.append(t)
        consts[t.name] = t
        g.node.remove(node)
    changed = True
    while changed:
        changed = False
        for node in list(g.node):
            if node.op_type in keep_ops or not node.input:
                continue
            if not all((not i) or i in consts for i in node.input):
                continue
            sub_inputs = [i for i in node.input if i]
            sub = onnx.helper.make_model(
                onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_tensor_value_info(o, 0, None)
                                                             for o in node.output],
                                       initializer=[consts[i] for i in dict.fromkeys(sub_inputs)]),
                opset_imports=model.opset_import)
            vals = ReferenceEvaluator(sub).run(None, {})
            for name, val in zip(node.output, vals):
                t = numpy_helper.from_array(np.asarray(val), name)
                g.initializer.append(t)
                consts[name] = t
            g.node.remove(node)
            changed = True
    init_names = {i.name for i in g.initializer}
    for inp in [i for i in g.input if i.name in init_names]:
        g.input.remove(inp)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    return model


def lower_ir_version(model, target: int = TARGET_IR_VERSION):
    """Set the IR version to ``target`` when the graph uses no type newer than it (in place)."""
    if model.ir_version <= target:
        return model
    types = {i.data_type for i in model.graph.initializer}
    types |= {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output, *model.graph.value_info]}
    newer = sorted(types & _NEW_IR_TYPES)
    if newer:
        raise EdgekdError(f"the graph uses ONNX tensor types {newer} that need IR version {model.ir_version}",
                          where="QCDQ export",
                          fix="use 8-bit quantizers: TensorRT on JetPack 5/6 reads IR version <= 9")
    model.ir_version = target
    return model


# --------------------------------------------------------------------------------------
# TensorRT Q/DQ rules, checked on the graph
# --------------------------------------------------------------------------------------

@dataclass
class QdqGraphReport:
    """The result of :func:`check_qdq_graph`: counts and every rule the graph breaks."""

    opset: int
    ir_version: int
    n_quantize: int
    n_dequantize: int
    quantized_weights: list[str]  # weighted nodes whose weight comes through an INT8 DequantizeLinear
    float_weights: list[str]  # weighted nodes with float weights (TensorRT keeps them in FP32)
    quantized_inputs: list[str]  # weighted nodes whose activation input is dequantized INT8
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _producer_map(graph) -> dict[str, Any]:
    return {o: n for n in graph.node for o in n.output}


def _consumer_map(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _through_passthrough(name: str, producers: dict[str, Any]):
    """The node that really feeds ``name``, skipping ops TensorRT moves Q/DQ across."""
    node = producers.get(name)
    while node is not None and node.op_type in ("MaxPool", "Flatten", "Reshape", "Transpose", "Relu", "Identity"):
        node = producers.get(node.input[0])
    return node


def check_qdq_graph(model_or_path) -> QdqGraphReport:
    """Check a QDQ ONNX graph against the Q/DQ patterns TensorRT's parser accepts.

    Rules (each violation is one line in ``problems``, naming the node):
    opset 17 and IR version <= 9; every Q/DQ has an explicit INT8 zero-point equal to 0
    (an absent zero-point means UINT8, which TensorRT rejects) and a positive, finite float
    scale; activation scales are per tensor; per-channel scales use axis 0; a QuantizeLinear
    feeds only DequantizeLinear nodes; a DequantizeLinear is fed by a QuantizeLinear or an
    INT8 initializer directly (no Clip or other node between them); biases of weighted
    layers are float, not dequantized INT32.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producers = _producer_map(g)
    consumers = _consumer_map(g)
    problems: list[str] = []
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), -1)
    if opset != OPSET:
        problems.append(f"graph: opset {opset}, expected {OPSET}")
    if m.ir_version > MAX_IR_VERSION:
        problems.append(f"graph: IR version {m.ir_version} > {MAX_IR_VERSION} (JetPack 5/6 TensorRT cannot parse it)")

    qs = [n for n in g.node if n.op_type == "QuantizeLinear"]
    dqs = [n for n in g.node if n.op_type == "DequantizeLinear"]
    for n in qs + dqs:
        label = f"{n.op_type} '{n.name or n.output[0]}'"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if len(n.input) < 3 or not n.input[2]:
            problems.append(f"{label}: no zero-point input (defaults to UINT8; TensorRT needs INT8 with zero-point 0)")
            zp = None
        elif n.input[2] not in inits:
            problems.append(f"{label}: zero-point '{n.input[2]}' is not a constant")
            zp = None
        else:
            zp = inits[n.input[2]]
            if zp.data_type != _INT8:
                dt = onnx.TensorProto.DataType.Name(zp.data_type)
                problems.append(f"{label}: zero-point type {dt}, TensorRT accepts only signed INT8")
            if np.any(numpy_helper.to_array(zp) != 0):
                problems.append(f"{label}: non-zero zero-point (TensorRT supports symmetric quantization only)")
        scale = inits.get(n.input[1])
        if scale is None:
            problems.append(f"{label}: scale '{n.input[1]}' is not a constant")
            continue
        s = numpy_helper.to_array(scale)
        if scale.data_type != _FLOAT:
            problems.append(f"{label}: scale type {onnx.TensorProto.DataType.Name(scale.data_type)}, expected FLOAT")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            problems.append(f"{label}: scale must be positive and finite")
        per_channel = s.size > 1
        if per_channel and attrs.get("axis", 1) != 0:
            problems.append(f"{label}: per-channel axis {attrs.get('axis', 1)}, TensorRT needs axis 0 "
                            "(the output channel of Conv weights and of Gemm weights with transB=1)")
        is_weight = n.op_type == "DequantizeLinear" and n.input[0] in inits
        if per_channel and not is_weight:
            problems.append(f"{label}: per-channel scale on an activation; TensorRT needs per-tensor activation scales")
        if n.op_type == "QuantizeLinear":
            bad = [c.op_type for c in consumers.get(n.output[0], []) if c.op_type != "DequantizeLinear"]
            if bad:
                problems.append(f"{label}: feeds {bad}; a QuantizeLinear must feed DequantizeLinear nodes only")
        else:
            src = n.input[0]
            if src in inits:
                if inits[src].data_type != _INT8:
                    dt = onnx.TensorProto.DataType.Name(inits[src].data_type)
                    problems.append(f"{label}: dequantizes a {dt} constant; TensorRT needs INT8 weights "
                                    "(INT32 biases must stay float)")
            else:
                p = producers.get(src)
                if p is None or p.op_type != "QuantizeLinear":
                    what = "a graph input" if p is None else f"{p.op_type} '{p.name or p.output[0]}'"
                    problems.append(f"{label}: fed by {what}, not directly by a QuantizeLinear "
                                    "(a Clip between Q and DQ comes from narrow-range or sub-8-bit quantizers)")
    for n in g.node:
        if n.op_type == "Clip":
            p = producers.get(n.input[0])
            if p is not None and p.op_type == "QuantizeLinear":
                problems.append(f"Clip '{n.name or n.output[0]}': between QuantizeLinear and DequantizeLinear "
                                "(use weight_narrow_range=False and 8-bit quantizers)")

    q_w, f_w, q_in = [], [], []
    for n in g.node:
        if n.op_type not in _WEIGHTED_OPS or len(n.input) < 2:
            continue
        label = n.name or n.output[0]
        wsrc = producers.get(n.input[1])
        if wsrc is not None and wsrc.op_type == "DequantizeLinear" and wsrc.input[0] in inits:
            q_w.append(label)
        elif n.input[1] in inits:
            f_w.append(label)
        if n.op_type == "Gemm" and wsrc is not None and wsrc.op_type == "DequantizeLinear":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            axis = {a.name: onnx.helper.get_attribute_value(a) for a in wsrc.attribute}.get("axis", 1)
            scale = inits.get(wsrc.input[1])
            if scale is not None and numpy_helper.to_array(scale).size > 1 and attrs.get("transB", 0) != 1 \
                    and axis == 0:
                problems.append(f"Gemm '{label}': per-channel weight axis 0 with transB=0 is the input axis, "
                                "not the output channel")
        feed = _through_passthrough(n.input[0], producers)
        if feed is not None and feed.op_type == "DequantizeLinear":
            q_in.append(label)
        if len(n.input) > 2 and n.input[2]:
            bsrc = producers.get(n.input[2])
            if bsrc is not None and bsrc.op_type == "DequantizeLinear":
                problems.append(f"{n.op_type} '{label}': quantized bias; keep biases float (bias_quant=None)")
    return QdqGraphReport(opset, int(m.ir_version), len(qs), len(dqs), q_w, f_w, q_in, problems)


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------

def export_qcdq(model: nn.Module, example: torch.Tensor, path: Path, *, opset: int = OPSET,
                ir_version: int = TARGET_IR_VERSION) -> QdqGraphReport:
    """Write the Brevitas ``model`` as QCDQ ONNX at ``path`` and check its graph.

    TorchScript exporter (``dynamo=False``: the dynamo exporter does not handle Brevitas'
    export handlers), dynamic batch axis, then :func:`fold_constants`,
    :func:`lower_ir_version` and ``onnx.checker`` (full check). Atomic: a failed export
    leaves any previous file in place. Returns the TensorRT Q/DQ graph report; the caller
    decides whether its problems are fatal (:func:`export_and_check_qcdq` marks the artifact
    failed).
    """
    import onnx
    from brevitas.export import export_onnx_qcdq

    model = model.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx_qcdq(model, example[:1], export_path=str(tmp), dynamo=False, opset_version=opset,
                         input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                         dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        m = onnx.load(str(tmp))
        fold_constants(m)
        lower_ir_version(m, ir_version)
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, str(tmp))
        report = check_qdq_graph(m)
    return report


def ort_qdq_session(path: Path, *, int8_kernels: bool, threads: int = 1):
    """An ONNX Runtime CPU session for a QDQ file.

    ``int8_kernels=False`` disables graph optimizations, so every Q/DQ node runs as written:
    the ONNX semantics of the file, which must equal the Brevitas model up to float
    rounding. ``int8_kernels=True`` lets ONNX Runtime fuse Q/DQ into integer kernels
    (QLinearConv, QGemm), which is how TensorRT will run it too: requantizing in integer
    arithmetic moves values on a rounding boundary by one step.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if int8_kernels
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def export_and_check_qcdq(qmodel: nn.Module, name: str, x_check: torch.Tensor, out_dir: Path, *,
                          atol: float | None = None, min_int8_agreement: float = 0.99,
                          float_model: nn.Module | None = None, twin: TwinReport | None = None,
                          inputs_desc: str = "held-out images", filename: str | None = None) -> Artifact:
    """Export ``qmodel`` to ``out_dir/<name>.qdq.onnx``; compare ONNX Runtime with Brevitas.

    Two comparisons on ``x_check``, both against the Brevitas model:

    * the file's ONNX semantics (ONNX Runtime without graph optimizations) must match within
      ``atol`` (default: 0.5 % of the largest logit, at least 1e-4) and agree on the argmax
      for at least ``min_int8_agreement`` of the inputs — the artifact's fidelity record.
      Most inputs match to float rounding (the exact-match share is in the notes); the
      tolerance is for the few where ONNX Runtime's convolution, summing in another order,
      lands an activation on the other side of a rounding boundary (one quantization step);
      a wrong graph is off by far more;
    * ONNX Runtime's fused INT8 kernels (how an INT8 runtime such as TensorRT executes the
      graph) must agree on the argmax for at least ``min_int8_agreement`` of the inputs;
      their max difference is recorded as the tolerance scale for the on-device check.

    The artifact fails (never deployable) when the export raises, the graph breaks a
    TensorRT Q/DQ rule (:func:`check_qdq_graph`), or either comparison fails. With
    ``float_model`` the twin's agreement with the float student is recorded in the metadata
    (the cost of quantization, not an export error).
    """
    from edgekd.export.onnx import run_ort

    path = out_dir / (filename or f"{name}.qdq.onnx")
    try:
        report = export_qcdq(qmodel, x_check, path)
    except EdgekdError:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the artifact and fails the run
        return Artifact(name, "tensorrt", "onnx-qdq", path, None, error=f"QCDQ export failed: {exc}")
    ref = brevitas_forward(qmodel, x_check)
    out = run_ort(ort_qdq_session(path, int8_kernels=False), x_check.numpy())
    if atol is None:
        atol = max(1e-4, 5e-3 * float(np.abs(ref).max()))
    same = float((np.abs(out - ref).reshape(len(ref), -1).max(1) <= 1e-5).mean())
    fid = FidelityRecord.compare(out, ref, reference="brevitas fake-quantized model (cpu)",
                                 inputs=inputs_desc, max_abs=atol, min_agreement=min_int8_agreement,
                                 notes=f"ONNX Runtime CPU, graph optimizations off (Q/DQ as written); "
                                       f"{100 * same:.1f} % of inputs within 1e-5")
    out8 = run_ort(ort_qdq_session(path, int8_kernels=True), x_check.numpy())
    int8 = FidelityRecord.compare(out8, ref, reference="brevitas fake-quantized model (cpu)",
                                  inputs=inputs_desc, min_agreement=min_int8_agreement,
                                  notes="ONNX Runtime CPU INT8 kernels (QDQ fused, ORT_ENABLE_ALL)")
    meta: dict[str, Any] = {
        "opset": report.opset, "ir_version": report.ir_version, "input": INPUT_NAME, "output": OUTPUT_NAME,
        "input_shape": ["batch", *x_check.shape[1:]], "dtype": "float32", "precision": "int8 (explicit Q/DQ)",
        "qdq_graph": report.to_dict(), "int8_kernels": asdict(int8),
    }
    if twin is not None:
        meta["twin"] = twin.to_dict()
    if float_model is not None:
        f_out = brevitas_forward(float_model, x_check)
        meta["quantization_vs_float"] = {
            "argmax_agreement": float((f_out.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_diff": float(np.abs(f_out - ref).max()), "n_inputs": int(len(ref)),
        }
    errors = []
    if not report.ok:
        errors.append("QDQ graph breaks TensorRT rules: " + "; ".join(report.problems)
                      + " (use signed Int8ActPerTensorFloat activations and per-channel INT8 weights with "
                        "narrow_range=False, or pass the float student: trt_twin() makes a compatible copy)")
    if not int8.passed:
        errors.append(f"ONNX Runtime INT8 kernels disagree with Brevitas: {int8.summary()}")
    art = Artifact(name, "tensorrt", "onnx-qdq", path, fid, metadata=meta, error="; ".join(errors) or None)
    write_json(path.with_name(path.name + ".fidelity.json"), art.to_dict())
    return art


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OPSET", "QdqGraphReport", "TwinReport", "brevitas_forward",
           "check_qdq_graph", "export_and_check_qcdq", "export_qcdq", "fold_constants", "lower_ir_version", "ort_qdq_session",
           "trt_quantizers", "trt_twin"]
