"""`edgekd profile RUN --target fpga-hls --reports DIR`: the user's csynth next to the estimate, and back into calibration."""
import json

from edgekd.profile import fpga_corpus as fc
from edgekd.profile.fpga_reports import compare_run, parse_vivado_utilization

PARAMS = """
// dense
struct config2 : nnet::dense_config {
    static const unsigned n_in = 16;
    static const unsigned n_out = 8;
    static const unsigned io_type = nnet::io_parallel;
    static const unsigned strategy = nnet::latency;
    static const unsigned reuse_factor = 2;
    static const unsigned n_zeros = 0;
    typedef weight2_t weight_t;
};

// relu
struct relu_config3 : nnet::activ_config {
    static const unsigned n_in = 8;
    static const unsigned table_size = 1024;
    static const unsigned io_type = nnet::io_parallel;
    static const unsigned reuse_factor = 1;
};
"""
DEFINES = "typedef ap_fixed<16,6> weight2_t;\n"
XML = """<?xml version="1.0"?><profile><ReportVersion><Version>2023.2</Version></ReportVersion>
<UserAssignments><Part>xcku035-fbva676-2-e</Part><TopModelName>edgekd_student</TopModelName>
<TargetClockPeriod>5.00</TargetClockPeriod></UserAssignments>
<PerformanceEstimates><SummaryOfOverallLatency><Best-caseLatency>4</Best-caseLatency>
<Worst-caseLatency>5</Worst-caseLatency><Interval-min>2</Interval-min><Interval-max>2</Interval-max>
</SummaryOfOverallLatency></PerformanceEstimates>
<AreaEstimates><Resources><BRAM_18K>0</BRAM_18K><DSP>64</DSP><FF>900</FF><LUT>3000</LUT><URAM>0</URAM></Resources>
</AreaEstimates></profile>"""
UTIL = """| Site Type | Used | Fixed | Prohibited | Available | Util% |
| CLB LUTs*               | 2500 |     0 |          0 | 203128 |  1.23 |
| CLB Registers           |  800 |     0 |          0 | 406256 |  0.20 |
| Block RAM Tile |    1 |     0 |          0 |    540 |  0.19 |
| DSPs           |   60 |     0 |          0 |   1700 |  3.53 |
"""


def _run(tmp_path):
    run = tmp_path / "runs" / "r1"
    prj = run / "artifacts" / "mlp-hls"
    (prj / "firmware").mkdir(parents=True)
    (prj / "firmware" / "parameters.h").write_text(PARAMS)
    (prj / "firmware" / "defines.h").write_text(DEFINES)
    (prj / "hls4ml_config.yml").write_text("IOType: io_parallel\nHLSConfig:\n  Model:\n    Strategy: Latency\n")
    fig = {"model": "mlp", "target": "fpga-hls", "latency_cycles": 6, "ii_cycles": 2,
           "resources": {"lut": 2800, "ff": 700, "dsp": 64, "bram_36k": 0},
           "intervals": {"latency_cycles": [3, 9], "ii_cycles": [2, 2], "lut": [1500, 6000], "ff": [300, 2000],
                         "dsp": [40, 90], "bram_36k": [0, 1]}}
    (run / "report.json").write_text(json.dumps({"fpga": [fig], "artifacts": [
        {"name": "mlp", "target": "fpga-hls", "path": str(prj)}]}))
    rep = tmp_path / "reports" / "mlp" / "edgekd_student_prj" / "solution1" / "syn" / "report"
    rep.mkdir(parents=True)
    (rep / "edgekd_student_csynth.xml").write_text(XML)
    (tmp_path / "reports" / "mlp" / "vivado_synth.rpt").write_text(UTIL)
    return run, tmp_path / "reports"


def test_reports_side_by_side_and_appended(tmp_path, capsys):
    run, reports = _run(tmp_path)
    cal = tmp_path / "cal.json"
    assert compare_run(run, reports, append=True, calibration=cal) == 0
    out = capsys.readouterr().out
    assert "4–5" in out and "3,000" in out and "yes" in out  # latency min–max; LUT; inside the interval
    assert "LUT (Vivado synth)" in out and "2,500" in out
    recs = fc.load_file(cal, group="user")
    assert len(recs) == 1
    r = recs[0]
    assert r.tool == "Vitis HLS" and r.tool_version == "2023.2" and r.io_type == "io_parallel"
    assert [l["kind"] for l in r.layers] == ["dense", "act"] and r.layers[0]["reuse_factor"] == 2
    assert r.reported["dsp"] == 64 and r.reported["latency_max"] == 5


def test_vivado_utilization_parser(tmp_path):
    p = tmp_path / "u.rpt"
    p.write_text(UTIL)
    assert parse_vivado_utilization(p) == {"lut": 2500, "ff": 800, "dsp": 60, "bram_36k": 1}


def test_side_by_side_shows_a_data_dependent_estimate_as_a_range():
    from edgekd.export.vendor_reports import SynthReport
    from edgekd.profile.fpga_reports import side_by_side

    fig = {"latency_cycles": 9482, "ii_cycles": 9409, "resources": {"lut": 1, "ff": 1, "dsp": 1, "bram_36k": 1},
           "intervals": {"latency_cycles": [8000, 12000]}, "details": {"latency_range_cycles": [4700, 9482]}}
    rep = SynthReport(path="x", latency_min=9426, latency_max=9482, interval_min=4705, interval_max=9409)
    label, est, got, inside = side_by_side(fig, rep, {})[0]
    assert est == "4,700–9,482 [8,000–12,000]" and got == "9,426–9,482" and inside == "yes"
