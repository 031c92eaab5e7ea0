"""QCDQ ONNX for TensorRT: the Brevitas twin, the export, and the Q/DQ graph itself."""
import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from edgekd.config.schema import NormalizeConfig
from edgekd.data.views import make_view
from edgekd.errors import EdgekdError
from edgekd.export import qcdq
from edgekd.nets import create_net


@pytest.fixture(scope="module")
def trained(small_cells_module):
    """The study's student, briefly trained on real synthetic cells (so logits mean something)."""
    x, y = small_cells_module
    X = make_view(x, 48, NormalizeConfig())
    Y = torch.from_numpy(y).long()
    torch.manual_seed(0)
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(2):
        for i in range(0, 250, 50):
            loss = nn.functional.cross_entropy(m(X[i : i + 50]), Y[i : i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval(), X[:250], X[250:]


@pytest.fixture(scope="module")
def small_cells_module():
    from edgekd.data import synthetic

    return synthetic.generate(400, seed=5, classes=(0, 1))


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    m, calib, check = trained
    twin, rep = qcdq.trt_twin(m, calib)
    out = tmp_path_factory.mktemp("qdq")
    art = qcdq.export_and_check_qcdq(twin, "cnn", check, out, float_model=m, twin=rep)
    return twin, rep, art


def _inits(model):
    return {i.name: i for i in model.graph.initializer}


def test_twin_quantizes_every_conv_and_linear_and_leaves_float_model_alone(trained):
    m, calib, _ = trained
    before = {k: v.clone() for k, v in m.state_dict().items()}
    twin, rep = qcdq.trt_twin(m, calib)
    assert rep.quantized == ["0", "3", "7"] and rep.float_layers == [] and rep.calibration_images == 250
    assert type(m[0]) is nn.Conv2d and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    import brevitas.nn as qnn

    assert isinstance(twin[0], qnn.QuantConv2d) and isinstance(twin[7], qnn.QuantLinear)
    assert torch.equal(twin[3].weight, m[3].weight) and torch.equal(twin[7].bias, m[7].bias)
    # calibration set a real activation scale: the input range of these images over 127 steps
    scale = float(twin[0].input_quant.scale().detach())
    assert 0 < scale < 1 and scale * 127 == pytest.approx(float(calib.abs().max()), rel=0.3)


def test_qdq_graph_has_only_patterns_tensorrt_accepts(exported):
    _, _, art = exported
    m = onnx.load(str(art.path))
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == 8 and [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
    inits = _inits(m)
    producers = {o: n for n in m.graph.node for o in n.output}
    qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    dqs = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert len(qs) == 3 and len(dqs) == 6  # 3 activation Q/DQ pairs + 3 weight DQs
    for n in qs + dqs:
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any()
        assert (numpy_helper.to_array(inits[n.input[1]]) > 0).all()
    weight_dqs = [n for n in dqs if n.input[0] in inits]
    assert len(weight_dqs) == 3
    for n in weight_dqs:
        w = numpy_helper.to_array(inits[n.input[0]])
        assert inits[n.input[0]].data_type == TensorProto.INT8
        axis = {a.name: a.i for a in n.attribute}["axis"]
        assert axis == 0 and numpy_helper.to_array(inits[n.input[1]]).shape == (w.shape[0],)
        # every output channel uses its full INT8 range (the scale is per channel)
        assert (np.abs(w.astype(np.int32)).reshape(len(w), -1).max(1) >= 127).all()
    for n in dqs:
        if n.input[0] not in inits:
            assert producers[n.input[0]].op_type == "QuantizeLinear"  # no Clip between Q and DQ
            assert numpy_helper.to_array(inits[n.input[1]]).size == 1  # per-tensor activations
    assert not [n for n in m.graph.node if n.op_type == "Clip"]
    for n in m.graph.node:
        if n.op_type in ("Conv", "Gemm"):
            assert producers[n.input[1]].op_type == "DequantizeLinear"
            assert inits[n.input[2]].data_type == TensorProto.FLOAT  # float bias
    assert [i.name for i in m.graph.input] == ["input"]  # no initializer listed as an input
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    rep = qcdq.check_qdq_graph(art.path)
    assert rep.ok and rep.problems == [] and len(rep.quantized_weights) == 3 and len(rep.quantized_inputs) == 3


def test_onnx_runtime_matches_brevitas(exported, trained):
    twin, _, art = exported
    assert art.deployable and art.status == "ok" and art.target == "tensorrt"
    assert art.fidelity.passed and art.fidelity.argmax_agreement >= 0.99
    assert art.fidelity.thresholds["max_abs_diff"] <= 5e-3 * max(1.0, float(np.abs(qcdq.brevitas_forward(
        twin, trained[2])).max()))
    int8 = art.metadata["int8_kernels"]
    assert int8["passed"] and int8["argmax_agreement"] >= 0.99 and int8["max_abs_diff"] < 1e-2
    q = art.metadata["quantization_vs_float"]
    assert q["n_inputs"] == len(trained[2]) and q["argmax_agreement"] >= 0.95
    # the file on disk computes the Brevitas model, checked independently of the helper
    from edgekd.export.onnx import run_ort

    x = trained[2]
    out = run_ort(qcdq.ort_qdq_session(art.path, int8_kernels=False), x.numpy())
    per_input = np.abs(out - qcdq.brevitas_forward(twin, x)).max(1)
    # nearly every input matches to float rounding; the rest are one-step rounding-boundary cases
    assert (per_input <= 1e-5).mean() >= 0.9 and per_input.max() <= art.fidelity.thresholds["max_abs_diff"]
    assert (art.path.parent / "cnn.qdq.onnx.fidelity.json").is_file()


def _bad_model(weight_quant, act_quant):
    import brevitas.nn as qnn

    return nn.Sequential(
        qnn.QuantConv2d(1, 4, 3, weight_quant=weight_quant, input_quant=act_quant, return_quant_tensor=False),
        qnn.QuantReLU(act_quant=act_quant, return_quant_tensor=False), nn.Flatten(),
        qnn.QuantLinear(4 * 6 * 6, 2, weight_quant=weight_quant, input_quant=act_quant)).eval()


def test_checker_rejects_clip_between_q_and_dq_and_uint8(tmp_path):
    from brevitas.export import export_onnx_qcdq
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

    x = torch.randn(4, 1, 8, 8)
    # Brevitas' default per-channel weight quantizer is narrow range: its raw export has a Clip
    # between the INT8 weights and their DequantizeLinear ...
    model = _bad_model(Int8WeightPerChannelFloat, Int8ActPerTensorFloat)
    with torch.no_grad():
        model(x)
    export_onnx_qcdq(model, x[:1], export_path=str(tmp_path / "raw.onnx"), dynamo=False, opset_version=17)
    raw = onnx.load(str(tmp_path / "raw.onnx"))
    rep = qcdq.check_qdq_graph(raw)
    assert not rep.ok and any("Clip" in p for p in rep.problems)
    # ... which constant folding resolves exactly (clipped INT8 weights, range [-127, 127])
    folded = qcdq.fold_constants(raw)
    assert qcdq.check_qdq_graph(folded).ok
    assert not [n for n in folded.graph.node if n.op_type == "Clip"]

    class NarrowAct(Int8ActPerTensorFloat):
        narrow_range = True

    class Int4Act(Int8ActPerTensorFloat):
        bit_width = 4

    _, w = qcdq.trt_quantizers()
    # narrow-range or sub-8-bit activations keep a Clip between Q and DQ that no folding removes
    for act in (NarrowAct, Int4Act):
        rep = qcdq.export_qcdq(_bad_model(w, act), x, tmp_path / f"{act.__name__}.onnx")
        assert not rep.ok and any("Clip" in p for p in rep.problems), rep.problems
    # unsigned activations (the usual ReLU quantizer) give UINT8 zero-points
    rep = qcdq.export_qcdq(_bad_model(w, Uint8ActPerTensorFloat), x, tmp_path / "u.onnx")
    assert not rep.ok and any("UINT8" in p for p in rep.problems)


def _tiny_qdq(axis=0, zp=0, act_scale_shape=(), with_zp=True):
    """Q → DQ → Conv(DQ weights) with knobs for each TensorRT rule."""
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.int8), "w")
    ws = numpy_helper.from_array(np.full((2,), 0.1, np.float32), "ws")
    wz = numpy_helper.from_array(np.zeros((2,), np.int8), "wz")
    s = numpy_helper.from_array(np.full(act_scale_shape, 0.5, np.float32), "s")
    z = numpy_helper.from_array(np.full(act_scale_shape, zp, np.int8), "z")
    q_in = ["x", "s", "z"] if with_zp else ["x", "s"]
    nodes = [helper.make_node("QuantizeLinear", q_in, ["xq"], axis=1),
             helper.make_node("DequantizeLinear", [*q_in[:0], "xq", *q_in[1:]], ["xd"], axis=1),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=axis),
             helper.make_node("Conv", ["xd", "wd"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w, ws, wz, s, z])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("kwargs,expect", [
    ({}, None),
    ({"axis": 1}, "axis 1"),
    ({"zp": 3}, "non-zero zero-point"),
    ({"act_scale_shape": (2,)}, "per-channel scale on an activation"),
    ({"with_zp": False}, "no zero-point"),
])
def test_checker_rules_on_hand_made_graphs(kwargs, expect):
    rep = qcdq.check_qdq_graph(_tiny_qdq(**kwargs))
    if expect is None:
        assert rep.ok, rep.problems
        assert rep.quantized_weights == ["y"] and rep.quantized_inputs == ["y"]
    else:
        assert not rep.ok and any(expect in p for p in rep.problems), rep.problems


def test_checker_flags_opset_ir_and_quantized_bias():
    m = _tiny_qdq()
    m.ir_version = 10
    m.opset_import[0].version = 13
    b = numpy_helper.from_array(np.zeros(2, np.int32), "b")
    bs = numpy_helper.from_array(np.full((2,), 0.05, np.float32), "bs")
    bz = numpy_helper.from_array(np.zeros(2, np.int32), "bz")
    m.graph.initializer.extend([b, bs, bz])
    m.graph.node.insert(3, helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], axis=0))
    m.graph.node[-1].input.append("bd")
    probs = qcdq.check_qdq_graph(m).problems
    assert any("opset 13" in p for p in probs) and any("IR version 10" in p for p in probs)
    assert any("quantized bias" in p for p in probs) and any("INT32" in p or "zero-point type" in p for p in probs)


def test_fold_constants_keeps_weight_dq_and_drops_initializer_inputs():
    m = _tiny_qdq()
    # a constant sub-expression (scale computed as 0.25 * 2) and an initializer listed as an input
    m.graph.node.insert(0, helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(
        np.array(2.0, np.float32))))
    m.graph.node.insert(1, helper.make_node("Mul", ["quarter", "two"], ["s2"]))
    m.graph.initializer.append(numpy_helper.from_array(np.array(0.25, np.float32), "quarter"))
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[1] == "s":
            n.input[1] = "s2"
    m.graph.input.append(helper.make_tensor_value_info("w", TensorProto.INT8, [2, 1, 1, 1]))
    qcdq.fold_constants(m)
    ops = [n.op_type for n in m.graph.node]
    assert ops == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"]
    inits = _inits(m)
    assert float(numpy_helper.to_array(inits["s2"])) == 0.5 and "quarter" not in inits and "s" not in inits
    assert [i.name for i in m.graph.input] == ["x"]
    onnx.checker.check_model(m, full_check=True)
    assert qcdq.check_qdq_graph(m).ok


def test_lower_ir_version():
    m = _tiny_qdq()
    m.ir_version = 10
    assert qcdq.lower_ir_version(m).ir_version == 8
    m.ir_version = 10
    m.graph.initializer.append(helper.make_tensor("f8", TensorProto.FLOAT8E4M3FN, [1], [1.0]))
    with pytest.raises(EdgekdError, match="tensor types"):
        qcdq.lower_ir_version(m)


def test_twin_refuses_what_it_cannot_quantize():
    calib = torch.randn(4, 1, 8, 8)
    with pytest.raises(EdgekdError, match=r"(?s)^0: Conv2d with padding='same'.*padding=1"):
        qcdq.trt_twin(nn.Sequential(nn.Conv2d(1, 2, 3, padding="same")), calib)
    with pytest.raises(EdgekdError, match="no Conv2d or Linear"):
        qcdq.trt_twin(nn.Sequential(nn.ReLU()), calib)
    with pytest.raises(EdgekdError, match="N×C×H×W"):
        qcdq.trt_twin(nn.Sequential(nn.Conv2d(1, 2, 3)), torch.randn(8, 8))
    # a layer with parameters that is not Conv2d/Linear stays float and is reported
    _, rep = qcdq.trt_twin(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), calib)
    assert rep.quantized == ["0"] and rep.float_layers == ["1"]
