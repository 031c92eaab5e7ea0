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
