"""Distributed-arithmetic projects: their layers and adders are read from the code hls4ml generates."""
from __future__ import annotations

import pytest

from edgekd.profile.da_codegen import kernel_calls, parse_kernels

# the shape of what da4ml's hls_logic_and_bridge_gen writes into nnet_code_gen.h (made up for this test)
KERNEL = """
template <typename inp_t, typename out_t>
void dense_da_5(inp_t model_inp[3], out_t model_out[2]) { // ap_fixed<10,4> -> ap_fixed<14,6>
    #pragma HLS INLINE
    ap_fixed<9, 3, AP_RND, AP_WRAP> model_inp_q_0 = model_inp[0];
    ap_fixed<7, 3> model_inp_q_1 = model_inp[1];
    ap_ufixed<1, 0> model_inp_q_2 = 0;
    ap_fixed<9,3> v0 = model_inp_q_0; // 0.0
    ap_fixed<7,3> v1 = model_inp_q_1; // 0.0
    ap_fixed<12,6> v2 = v0 + bit_shift<2>(v1); // 1.0
    ap_fixed<11,5> v3 = v1 - bit_shift<-1>(v0); // 1.0
    ap_fixed<13,6> v4 = v2 - v3; // 2.0
    ap_fixed<13,6> v5 = v4 + ap_ufixed<2,-1>(0.375); // 3.0
    model_out[0] = ap_fixed<14,6>(v5);
    model_out[1] = ap_fixed<14,6>(-bit_shift<1>(v3));
}
"""


def test_a_kernels_adders_and_depth_are_counted_from_its_lines():
    (k,) = parse_kernels(KERNEL).values()
    assert (k.name, k.n_in, k.n_out) == ("dense_da_5", 3, 2)
    # four adders of the graph (12 + 11 + 13 + 13 bits) and the one rounded input (9 bits); copies, the truncated
    # input, the zero input and the outputs' shifts and negation cost no adder here
    assert k.adders == 5 and k.adder_bits == 12 + 11 + 13 + 13 + 9
    assert k.depth == 3.0
    cpp = "    nnet::dense_da_5<input_t, layer2_t>(input_1, layer2_out); // fc1\n" \
          "    nnet::relu<layer2_t, layer3_t, relu_config3>(layer2_out, layer3_out); // fc1_relu\n"
    assert kernel_calls(cpp) == [("dense_da_5", "fc1", ("input_t", "layer2_t")),
                                 ("relu", "fc1_relu", ("layer2_t", "layer3_t", "relu_config3"))]
    assert parse_kernels("void f(int a[2], int b[3]) {\n    int x = 1;\n}\n") == {}


def test_stream_and_convolution_kernels_are_found_through_their_configs():
    from edgekd.errors import EdgekdError
    from edgekd.profile.da_codegen import struct_kernels
    from edgekd.profile.hls_project import with_da_layers

    params = ("struct config2 {\n    static const unsigned n_in = 3;\n    static const unsigned n_out = 2;\n"
              "    constexpr static auto dense_da = nnet::dense_da_5<typename a::value_type, typename b::value_type>;\n"
              "};\n"
              "struct config7 : nnet::conv1d_config {\n    static const unsigned n_filt = 2;\n"
              "    constexpr static auto dense_da = nnet::dense_da_5<a, b>;\n};\n")
    assert struct_kernels(params) == {"config2": ("dense_da_5", False), "config7": ("dense_da_5", True)}
    stream = "    nnet::dense<input_t, layer2_t, config2>(input_1, layer2_out); // fc1\n"
    (fc1,) = with_da_layers([], stream, KERNEL, params)
    assert (fc1.name, fc1.in_shape, fc1.out_shape, fc1.da_adders) == ("fc1", (3,), (2,), 5)
    conv = "    nnet::conv1d_cl<config7, input_t, layer7_t>(input_1, layer7_out); // conv1\n"  # hls4ml's DA order
    with pytest.raises(EdgekdError, match="conv1: a distributed-arithmetic convolution"):
        with_da_layers([], conv, KERNEL, params)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_a_distributed_arithmetic_project_is_read_and_costed_by_its_adders(tmp_path, io_type):
    """The installed hls4ml writes the DA layers as generated kernels with no config struct: they are read from
    nnet_code_gen.h, in the top function's order, and cost their adders, not multipliers."""
    hls4ml = pytest.importorskip("hls4ml")
    pytest.importorskip("da4ml")
    import torch
    import torch.nn as nn

    from edgekd.profile import hls_model
    from edgekd.profile.hls_project import read_project

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 8) / 8)
    cfg = hls4ml.utils.config_from_pytorch_model(model, (8,), granularity="name", backend="Vitis",
                                                 default_precision="ap_fixed<12,4>")
    dense = [k for k, v in cfg["LayerName"].items() if v.get("Precision", {}).get("weight") is not None]
    for k in dense:
        cfg["LayerName"][k]["Strategy"] = "distributed_arithmetic"
    h = hls4ml.converters.convert_from_pytorch_model(model, hls_config=cfg, output_dir=str(tmp_path / "prj"),
                                                     backend="Vitis", io_type=io_type)
    h.write()
    layers = read_project(tmp_path / "prj").layers
    assert [(l.kind, l.in_shape, l.out_shape) for l in layers] == [
        ("dense", (8,), (6,)), ("act", (6,), (6,)), ("dense", (6,), (3,))]
    da = [l for l in layers if l.kind == "dense"]
    assert all(l.strategy == "distributed_arithmetic" and l.da_adders and l.da_adder_bits > l.da_adders for l in da)
    s = hls_model.structural(layers, io_type=io_type, strategy="Latency", reuse={}, bits=12,
                             clock_mhz=200, family="vitis")
    assert s.dsp == 0 and s.multipliers == 0
    for l, f in zip(layers, s.layers):
        if l.kind == "dense" and io_type == "io_parallel":  # its adders at a LUT a bit plus DA_ADDER_LUT, output 20
            assert f.lut == pytest.approx(l.da_adder_bits + hls_model.DA_ADDER_LUT * l.da_adders + 20)
        elif l.kind == "dense":  # the same adders, and the stream process's FIFO and control
            assert f.lut > l.da_adder_bits + hls_model.DA_ADDER_LUT * l.da_adders
