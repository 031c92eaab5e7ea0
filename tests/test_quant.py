"""Quantization-aware students (Brevitas) and their pure-integer reference."""
import numpy as np
import pytest
import torch

import edgekd.nets.quant as quant  # noqa: F401  (registers cellsort-cnn-q, mlp-q)
from edgekd.config.schema import NormalizeConfig, TrainConfig
from edgekd.data import PairedViews
from edgekd.data.dataset import ImageSet
from edgekd.distill import CompositeLoss, accuracy, build_teacher_cache, predict_logits, train, TeacherSignal
from edgekd.distill.trainer import seed_everything
from edgekd.errors import ConfigError, EdgekdError
from edgekd.export import intref
from edgekd.nets import NETS, count_parameters, create_net


def _calibrated(model, x, steps=3):
    """A few train-mode passes: Brevitas activation quantizers collect their ranges."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()


def _q(arch="cellsort-cnn-q", size=16, **params):
    seed_everything(0)
    if arch == "cellsort-cnn-q":
        params.setdefault("channels", 4)
    return create_net(arch, num_classes=2, in_channels=1, input_size=size, params=params)


def test_registered_with_per_layer_bits():
    assert NETS["cellsort-cnn-q"].role == "student" and "layer_bits" in NETS["mlp-q"].param_names()
    m = _q(weight_bits=6, act_bits=4, layer_bits={"conv1": 2, "fc": {"weight": 8}})
    assert m.bits["conv1"] == quant.LayerBits(2, 2)
    assert m.bits["conv2"] == quant.LayerBits(6, 4)
    assert m.bits["fc"] == quant.LayerBits(8, 4)
    assert m.bits["inp"] == quant.LayerBits(8, 8)
    assert int(m.conv1.quant_weight().bit_width) == 2 and int(m.fc.quant_weight().bit_width) == 8
    assert int(m.relu2.act_quant.bit_width()) == 4
    with pytest.raises(ConfigError, match="unknown layer 'conv9'"):
        _q(layer_bits={"conv9": 4})
    with pytest.raises(ConfigError, match="outside"):
        _q(weight_bits=1)
    with pytest.raises(ConfigError, match="unknown parameter"):
        _q(bits=4)


def test_same_parameters_as_float_twin_without_biases():
    # the study's 5,682-parameter student, minus its 34 biases (off for exact export)
    fq = create_net("cellsort-cnn-q", num_classes=2, in_channels=1, input_size=48)
    ff = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    n_bias = sum(p.numel() for n, p in ff.named_parameters() if n.endswith("bias"))
    weights_q = sum(p.numel() for n, p in fq.named_parameters() if n.endswith(".weight") and p.dim() > 1)
    assert weights_q == count_parameters(ff) - n_bias == 5648


def test_weights_on_power_of_two_grid():
    x = torch.randn(64, 1, 16, 16)
    for bits in (8, 4, 2):
        m = _calibrated(_q(weight_bits=bits, act_bits=bits), x)
        for layer in (m.conv1, m.conv2, m.fc):
            qw = layer.quant_weight()
            e = np.log2(float(qw.scale.detach()))
            assert e == round(e)
            ints = qw.int()
            assert int(ints.abs().max()) <= 2 ** (bits - 1) - 1  # narrow range, symmetric
            assert torch.allclose(ints * qw.scale, qw.value)


def test_requantize_rounds_half_to_even_and_saturates():
    spec = intref.QuantSpec(exp=1, bits=4, signed=True)  # step 2, codes -8..7
    q = np.array([5, 6, 7, -5, -6, 3, 1, 40, -40])
    # 2.5→2, 3→3, 3.5→4, -2.5→-2, -3→-3, 1.5→2, 0.5→0, 20→7, -20→-8
    assert intref.requantize(q, 0, spec).tolist() == [2, 3, 4, -2, -3, 2, 0, 7, -8]
    # matches torch.round (what Brevitas uses) on the same values
    assert intref.requantize(q, 0, spec).tolist() == torch.round(torch.tensor(q) / 2).clamp(-8, 7).int().tolist()
    u = intref.QuantSpec(exp=-2, bits=3, signed=False)
    assert intref.requantize(np.array([1, 2, 9]), 0, u).tolist() == [4, 7, 7]  # shift left, saturate at 7
    assert intref.QuantSpec(-5, 8, True).ap_type() == "fixed<8,3,RND_CONV,SAT>"
    assert intref.QuantSpec(-4, 4, False).ap_type() == "ufixed<4,0,RND_CONV,SAT>"


@pytest.mark.parametrize("arch,bits,bias", [("cellsort-cnn-q", 8, False), ("cellsort-cnn-q", 4, False),
                                            ("cellsort-cnn-q", 2, False), ("mlp-q", 8, False), ("mlp-q", 3, False),
                                            ("cellsort-cnn-q", 8, "quantized"), ("cellsort-cnn-q", 4, "quantized"),
                                            ("mlp-q", 3, "quantized")])
def test_integer_reference_matches_brevitas(arch, bits, bias):
    x = torch.randn(128, 1, 16, 16) * 1.5
    m = _calibrated(_q(arch, weight_bits=bits, act_bits=bits, bias=bias), x)
    if bias:
        with torch.no_grad():  # biases large enough to move decisions (Brevitas initialises them small)
            for mod in m.modules():
                if getattr(mod, "bias", None) is not None:
                    mod.bias.normal_(0, 0.5)
    fw = quant.firmware_part(m)
    pre = quant.float_preprocess(m)
    im = intref.extract(fw)
    with torch.no_grad():
        y = m(x).double().numpy()
        xin = pre(x) if pre is not None else x
    out = im.run_float(im.quantize_input(xin))
    assert out.shape == y.shape
    # Brevitas computes in float32; its sums of small integers are exact at these sizes
    assert np.abs(out - y).max() <= 1e-6 * max(1.0, np.abs(y).max())
    assert (out.argmax(1) == y.argmax(1)).all()
    q, e = im.run(im.quantize_input(xin))
    assert q.dtype == np.int64 and np.array_equal(q * 2.0 ** e, out)
    biased = [lay for lay in im.layers if lay.bias is not None]
    assert len(biased) == (0 if not bias else 3 if arch == "cellsort-cnn-q" else 2)
    assert all(lay.bias.dtype == np.int64 and np.any(lay.bias) for lay in biased)


def test_bias_kinds():
    assert _q(bias="quantized").conv1.bias_quant.is_quant_enabled
    assert _q(bias="float").conv1.bias is not None and not _q(bias="float").conv1.bias_quant.is_quant_enabled
    assert _q().conv1.bias is None
    for bad in ("int", 1, None):
        with pytest.raises(ConfigError, match="bias must be false, 'quantized' or 'float'"):
            _q(bias=bad)
    # a float bias is not on the accumulator grid: the integer reference refuses it by layer name
    x = torch.randn(16, 1, 16, 16)
    with pytest.raises(EdgekdError, match="float bias") as ei:
        intref.extract(quant.firmware_part(_calibrated(_q(bias=True), x)))
    assert ei.value.where == "conv1" and "bias: quantized" in ei.value.fix


def test_integer_reference_detects_a_changed_weight():
    x = torch.randn(64, 1, 16, 16)
    m = _calibrated(_q(weight_bits=4, act_bits=4), x)
    im = intref.extract(quant.firmware_part(m))
    codes = im.quantize_input(x)
    before = im.run_float(codes)
    im.layers[-1].weight[0, :] += 1  # one LSB on every weight of one output
    assert not np.array_equal(im.run_float(codes), before)


def test_input_contract_table():
    x = torch.randn(32, 1, 16, 16)
    m = _calibrated(_q(), x)
    im = intref.extract(quant.firmware_part(m))
    norm = NormalizeConfig()
    c = intref.input_contract(im, mean=norm.mean, std=norm.std, input_shape=(1, 16, 16))
    lut = np.array(c["pixel_to_code"])
    assert len(lut) == 256 and (np.diff(lut) >= 0).all() and lut.min() >= c["code_range"][0]
    px = np.arange(256, dtype=np.float32)
    expect = im.quantize_input((px / np.float32(255) - np.float32(norm.mean)) / np.float32(norm.std))
    assert np.array_equal(lut, expect)
    assert c["firmware_type"] == im.input_spec.ap_type()


def test_qcdq_options_build_signed_int8_per_channel():
    m = _q(weight_quant="int8-per-channel", act_signed=True, bias=True)
    x = torch.randn(16, 1, 16, 16)
    _calibrated(m, x)
    assert m.conv1.quant_weight().scale.numel() == 4  # one scale per output channel
    assert bool(m.relu1[1].act_quant.is_signed) and m.conv1.bias is not None
    with pytest.raises(EdgekdError, match="per-channel scales"):  # not for the fixed-point firmware
        intref._exponent(m.conv1.quant_weight().scale, "conv1")
    with pytest.raises(ConfigError, match="8-bit weights"):
        _q(weight_quant="int8-per-channel", weight_bits=4)


def test_qat_trains_with_kd_and_teacher_cache(tmp_path):
    from edgekd.data import synthetic

    x, y = synthetic.generate(360, seed=11, classes=(0, 1), difficulty=0.3)
    norm = NormalizeConfig()
    tr = PairedViews.from_images(ImageSet(x[:300], y[:300]), 16, 16, norm)
    va = PairedViews.from_images(ImageSet(x[300:], y[300:]), 16, 16, norm)
    seed_everything(1)
    teacher = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=16).eval()
    cache = build_teacher_cache(teacher, tr, "dihedral", path=tmp_path / "t.pt")
    m = _q(size=16, weight_bits=4, act_bits=4, channels=8)
    w0 = m.conv1.weight.detach().clone()
    loss = CompositeLoss([("ce", 0.5, {}), ("kd", 0.5, {"tau": 4.0})])
    res = train(m, tr, va, TrainConfig(epochs=3, batch_size=32), loss, seed=0, teacher=TeacherSignal(cache=cache),
                checkpoint=tmp_path / "s.pt", progress=False)
    assert len(res.history) == 3 and all(np.isfinite(h["loss"]) for h in res.history)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert not torch.equal(w0, m.conv1.weight)
    # the trained model is still an exact fixed-point program
    im = intref.extract(quant.firmware_part(m))
    with torch.no_grad():
        yq = m(va.student).double().numpy()
    assert np.abs(im.run_float(im.quantize_input(va.student)) - yq).max() <= 1e-6 * max(1.0, np.abs(yq).max())
    assert accuracy(predict_logits(m, va.student), va.labels) > 0.5
