"""The FPGA calibration corpus (hw/fpga/reports/*.json): schema, provenance, size."""
import json

import pytest

from edgekd.errors import ConfigError
from edgekd.profile import fpga_corpus as fc


def test_corpus_loads_and_is_large_enough():
    recs = fc.load_corpus(user=False)
    used = [r for r in recs if not r.excluded]
    assert len(used) >= 40
    groups = {r.group for r in used}
    assert len(groups) >= 5  # leave-one-source-out needs several sources
    for r in used:
        assert r.layers and r.clock_ns > 0
        assert any(r.reported[k] is not None for k in ("latency_max", "lut"))
        assert r.regime in ("dense", "io_stream CNN", "io_parallel CNN")
        layers = r.hls_layers()
        assert len(layers) == len(r.layers)


def test_every_record_cites_its_source():
    for f in sorted(fc.CORPUS_DIR.glob("*.json")):
        data = json.loads(f.read_text())
        assert data["source"].get("id") and data["source"].get("repository"), f.name
        for rec in data["records"]:
            src = rec["source"]
            assert ("@" in src and ":" in src.split("@", 1)[1]) or src.startswith("https://"), (f.name, rec["id"])


def _rec(**kw):
    r = {"id": "x", "source": "a/b@0123:c.rpt", "tool": "Vitis HLS", "tool_version": "2023.1", "clock_ns": 5,
         "hls4ml": {"io_type": "io_stream", "strategy": "Resource"},
         "layers": [{"kind": "dense", "in_shape": [4], "out_shape": [2]}],
         "reported": {"latency_max": 10}}
    r.update(kw)
    return r


@pytest.mark.parametrize("bad", [
    {"tool": "Quartus"},
    {"hls4ml": {"io_type": "io_serial", "strategy": "Latency"}},
    {"layers": [{"kind": "lstm", "in_shape": [4], "out_shape": [2]}]},
    {"layers": [{"kind": "dense", "in_shape": [0], "out_shape": [2]}]},
    {"reported": {"latency_max": -1}},
    {"reported": {"cycles": 3}},
    {"reported": {"ii_max": 3}},
    {"source": "somewhere"},
])
def test_schema_rejects(tmp_path, bad):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"source": {"id": "t", "repository": "a/b"}, "records": [_rec(**bad)]}))
    with pytest.raises(ConfigError):
        fc.load_file(p)


def test_user_points_append_and_replace(tmp_path):
    p = tmp_path / "user.json"
    fc.append_user_point(_rec(id="mine"), p)
    fc.append_user_point(_rec(id="mine", reported={"latency_max": 12}), p)
    recs = fc.load_file(p, group="user")
    assert len(recs) == 1 and recs[0].reported["latency_max"] == 12 and recs[0].group == "user"


def test_hard_activations_are_read_from_parameters_h():
    from edgekd.profile.hls_project import parse_parameters

    # hls4ml's hard_activ_config_template writes a struct with no nnet:: base
    params = """
struct config2 : nnet::dense_config {
    static const unsigned n_in = 16;
    static const unsigned n_out = 8;
    static const unsigned reuse_factor = 1;
};

struct hard_tanh_config3 {
    static const unsigned n_in = 8;
    static const slope3_t slope;
    static const shift3_t shift;
    static const unsigned io_type = nnet::io_parallel;
    static const unsigned reuse_factor = 1;
};

struct helper_t {
    static const unsigned n_in = 99;
};
"""
    layers, _ = parse_parameters(params)
    assert [(l.kind, l.activation) for l in layers] == [("dense", None), ("act", "hard_tanh")]
    assert layers[1].in_shape == (8,)


def test_layer_widths_are_read_from_the_top_function_hls4ml_writes(tmp_path):
    """data_bits / result_bits come from the types the top function passes each layer (myproject.cpp), resolved
    through defines.h — here a project written by the installed hls4ml, with one layer's result narrowed."""
    hls4ml = pytest.importorskip("hls4ml")
    import torch.nn as nn

    from edgekd.profile.hls_project import read_project

    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    cfg = hls4ml.utils.config_from_pytorch_model(model, (8,), granularity="name", backend="Vitis",
                                                 default_precision="ap_fixed<12,4>")
    first = next(k for k in cfg["LayerName"] if k not in ("input", "input_1", "x") and "relu" not in k.lower()
                 and cfg["LayerName"][k].get("Precision", {}).get("weight") is not None)
    cfg["LayerName"][first]["Precision"]["result"] = "ap_fixed<9,3>"
    h = hls4ml.converters.convert_from_pytorch_model(model, hls_config=cfg, output_dir=str(tmp_path / "prj"),
                                                     backend="Vitis", io_type="io_parallel")
    h.write()
    layers = read_project(tmp_path / "prj").layers
    dense = [l for l in layers if l.kind == "dense"]
    assert dense[0].data_bits == 12 and dense[0].result_bits == 9
    relu = next(l for l in layers if l.kind == "act")
    assert relu.data_bits == 9
    # the weights the project holds (firmware/weights/w*.h), quantized to ap_fixed<12,4>, counted by CSD digits
    import math

    w = model[0].weight.detach().numpy().ravel()
    nonzero = sum(1 for v in w if math.floor(float(v) * 256) != 0)
    assert dense[0].weight_csd is not None and len(dense[0].weight_csd) == 4
    assert abs(sum(dense[0].weight_csd) - nonzero) <= 1


def test_csd_digits_and_weight_counts():
    from edgekd.profile.hls_project import csd_digits, weight_csd

    assert [csd_digits(q) for q in (0, 1, 2, 3, 7, 11, 15, 21, -21, 0b101010101)] == [0, 1, 1, 2, 2, 3, 2, 3, 3, 5]
    # 0.0033 → 3/1024 (2 digits), −0.0356 → −37/1024 (3), 0.2367 → 242/1024 (3), 0.5 → 512/1024 (1), 0 → none
    assert weight_csd([0.0033474818, -0.0356266648, 0.2367412895, 0.5, 0.0], "ap_fixed<16,6>") == (1, 1, 2, 0)
    assert weight_csd([0.33], "ap_fixed<4,1>") == (1, 0, 0, 0)  # 2.64/8 truncated to 2/8
    assert weight_csd([0.33], "ap_fixed<4,1,AP_RND_CONV>") == (0, 1, 0, 0)  # rounded to 3/8
    assert weight_csd([0.3], "float") is None


def test_corpus_layers_carry_their_widths():
    from edgekd.profile.fpga_corpus import load_corpus

    recs = [r for r in load_corpus(user=False) if not r.excluded]
    weighted = [l for r in recs for l in r.hls_layers() if l.kind in ("dense", "conv1d", "conv2d")]
    with_widths = [l for l in weighted if l.data_bits and l.result_bits]
    assert len(with_widths) >= 0.9 * len(weighted)
    assert all(1 <= l.data_bits <= 128 and 1 <= l.result_bits <= 128 for l in with_widths)
