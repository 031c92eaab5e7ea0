"""QAT student → QONNX → hls4ml: refusals before conversion, bit-exact C simulation."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

import edgekd.nets.quant as quant  # noqa: F401  (registration)
from edgekd.config.schema import HlsExportConfig, NormalizeConfig
from edgekd.distill.trainer import seed_everything
from edgekd.errors import EdgekdError
from edgekd.export import intref
from edgekd.nets import create_net


def _calibrated(model, x, steps=3):
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()


@pytest.fixture(scope="module")
def cells16():
    from edgekd.data import synthetic
    from edgekd.data.views import make_view

    x, _ = synthetic.generate(160, seed=21, classes=(0, 1))
    return make_view(x, 16, NormalizeConfig())


def _q(arch="cellsort-cnn-q", **params):
    seed_everything(0)
    if arch == "cellsort-cnn-q":
        params.setdefault("channels", 4)
    return create_net(arch, num_classes=2, in_channels=1, input_size=16, params=params)


def _qseq(*layers):
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFixedPoint

    return nn.Sequential(qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True), *layers)


def test_refuses_unsupported_before_conversion():
    import brevitas.nn as qnn
    from brevitas.quant import Int8WeightPerTensorFixedPoint as W
    from brevitas.quant import Int16Bias
    from edgekd.export.qonnx_hls import check_qat_supported

    cases = [
        (qnn.QuantConv2d(1, 2, 3, padding="same", weight_quant=W, bias=False), "padding='same'", "explicit integer"),
        (qnn.QuantConv2d(2, 2, 3, groups=2, weight_quant=W, bias=False), "groups=2", "groups=1"),
        (qnn.QuantConv2d(1, 2, 3, dilation=2, weight_quant=W, bias=False), "dilation=\\(2, 2\\)", "dilation=1"),
        (qnn.QuantConv2d(1, 2, 3, weight_quant=W, bias=True), "float bias", "bias: quantized"),
        (nn.Conv2d(1, 2, 3, bias=False), "float Conv2d", "QuantConv2d"),
        (nn.AvgPool2d(2), "average pooling", "MaxPool2d"),
        (nn.GELU(), "GELU", "ReLU"),
    ]
    for layer, reason, fix in cases:
        with pytest.raises(EdgekdError, match=reason) as ei:
            check_qat_supported(_qseq(layer))
        assert "layer '1'" in str(ei.value) and ei.value.fix and fix.replace("\\", "") in ei.value.fix
    # non power-of-two (float) scales cannot be fixed point
    from brevitas.quant import Int8WeightPerTensorFloat

    with pytest.raises(EdgekdError, match="not a power of two"):
        check_qat_supported(_qseq(qnn.QuantConv2d(1, 2, 3, weight_quant=Int8WeightPerTensorFloat, bias=False)))
    check_qat_supported(quant.firmware_part(_q()))  # the registry's QAT students pass
    check_qat_supported(quant.firmware_part(_q(bias="quantized")))
    # a bias on the accumulator grid (input × weight scale) is exact in firmware
    check_qat_supported(_qseq(qnn.QuantConv2d(1, 2, 3, weight_quant=W, bias=True, bias_quant=Int16Bias)))


def test_refusal_happens_before_any_file_is_written(tmp_path, cells16):
    from edgekd.export.qonnx_hls import export_qat_and_check

    m = _calibrated(_q(bias=True), cells16)
    with pytest.raises(EdgekdError, match="layer 'conv1'"):
        export_qat_and_check(m, "q", cells16, tmp_path, HlsExportConfig(), log=lambda s: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.hls
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_qat_cnn_csim_is_bit_exact(tmp_path, cells16, io_type):
    from edgekd.export.qonnx_hls import export_qat_and_check

    m = _calibrated(_q(weight_bits=4, act_bits=4, layer_bits={"conv1": {"weight": 6}, "fc": 8}, bias="quantized"),
                    cells16)
    with torch.no_grad():  # biases large enough to move decisions
        for mod in m.modules():
            if getattr(mod, "bias", None) is not None:
                mod.bias.normal_(0, 0.5)
    norm = NormalizeConfig()
    cfg = HlsExportConfig(io_type=io_type, backend="Vitis", strategy="Latency", reuse_factor=1)
    # per-layer reuse factors, in layer order (what reuse_factor: auto chooses); the arithmetic is unchanged
    reuse = {"conv1": 1, "conv2": 2, "fc": 2} if io_type == "io_stream" else None
    art = export_qat_and_check(m, "q", cells16, tmp_path, cfg, mean=norm.mean, std=norm.std, layer_reuse=reuse,
                               log=lambda s: None)
    assert art.deployable, art.error or art.fidelity.summary()
    f = art.fidelity
    assert f.exact_match_rate == 1.0 and f.max_abs_diff == 0.0 and f.n_inputs == len(cells16)
    assert f.reference.startswith("integer reference")
    # the reference is not trivial: outputs differ between inputs
    im = intref.extract(quant.firmware_part(m))
    assert len(np.unique(im.run_float(im.quantize_input(cells16)), axis=0)) > 10
    proj = tmp_path / f"q-hls-{io_type[3:]}"
    for f_ in ("build_prj.tcl", "README.md", "firmware/edgekd_student.cpp", "model.qonnx.onnx"):
        assert (proj / f_).exists(), f_
    assert "vitis_hls -f build_prj.tcl" in (proj / "README.md").read_text()
    md = art.metadata
    assert md["input_contract"]["firmware_type"] == im.input_spec.ap_type()
    assert len(md["input_contract"]["pixel_to_code"]) == 256
    types = {lt["layer"]: lt for lt in md["layer_types"]}
    # precisions come from the quantizers: 4-bit unsigned activations, 6-bit conv1 weights
    assert any(lt.get("result_t", "").startswith("ufixed<4,") for lt in types.values())
    assert any(lt.get("weight_t", "").startswith("fixed<6,") for lt in types.values())
    # every bias is pinned to its exact integers on the accumulator grid, none to the 1-bit placeholder
    bias_t = [lt["bias_t"] for lt in types.values() if "bias_t" in lt]
    assert len(bias_t) == 3 and not any(t.startswith("fixed<1,1") for t in bias_t)
    if reuse:
        from edgekd.profile.hls_project import read_project

        got = [l.reuse_factor for l in read_project(proj).layers if l.kind in ("dense", "conv2d")]
        assert got == [1, 2, 2] and md["layer_reuse"] == reuse
    rec = json.loads((tmp_path / f"q-hls-{io_type[3:]}.fidelity.json").read_text())
    assert rec["status"] == "ok" and rec["fidelity"]["exact_match_rate"] == 1.0
    assert not list(tmp_path.glob(".q-hls*"))


@pytest.mark.hls
def test_qat_mlp_vivado_backend_bit_exact(tmp_path, cells16):
    from edgekd.export.qonnx_hls import export_qat_and_check

    m = _calibrated(_q("mlp-q", hidden=8, pool=2, weight_bits=3, act_bits=5), cells16)
    cfg = HlsExportConfig(io_type="io_parallel", backend="Vivado", strategy="Resource", reuse_factor=4)
    # -O1 instead of hls4ml's -O3 for the C-simulation library: same C++, same bits
    art = export_qat_and_check(m, "m", cells16, tmp_path, cfg, csim_opt="-O1", log=lambda s: None)
    assert art.deployable and art.fidelity.exact_match_rate == 1.0, art.error
    assert 'CFLAGS="-O1 -fPIC"' in (art.path / "build_lib.sh").read_text() and art.metadata["csim_opt"] == "-O1"
    assert art.format == "hls4ml-vivado-qonnx" and art.metadata["strategy"] == "Resource"
    assert "vivado_hls -f build_prj.tcl" in (art.path / "README.md").read_text()
    assert "AvgPool2d" in art.metadata["input_contract"]["preprocess"]


@pytest.mark.hls
def test_float_student_precision_search(tmp_path, cells16):
    from edgekd.export.hls import search_precision

    seed_everything(3)
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=16, params={"channels": 4})
    # a briefly trained student (real decision margins, both classes predicted), on labels that
    # only depend on the images: brightness above the median
    y = (cells16.mean((1, 2, 3)) > cells16.mean((1, 2, 3)).median()).long()
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(cells16), y).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        ref = m(cells16).argmax(1)
    assert 0.2 < float(ref.float().mean()) < 0.8
    cfg = HlsExportConfig(io_type="io_stream", min_agreement=0.98)
    art = search_precision(m, "f", cells16[:100], cells16[100:], tmp_path, cfg, log=lambda s: None)
    assert art.deployable, art.error or art.fidelity.summary()
    assert art.fidelity.argmax_agreement >= 0.98
    layers = {lp["module"]: lp for lp in art.metadata["layers"]}
    assert set(layers) == {"0", "1", "2", "3", "4", "5", "6", "7"}
    bits = art.metadata["bits"]
    assert all(1 <= b <= 24 for b in bits.values())
    assert sum(bits.values()) < 16 * len(bits)  # fewer bits than the blanket ap_fixed<16,6>
    assert layers["0"]["weight"].startswith("fixed<") and layers["2"]["result"] == layers["1"]["result"]
    assert art.metadata["search"]["emulated_agreement_calib"] >= 0.98
