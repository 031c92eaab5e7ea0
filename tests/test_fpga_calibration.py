"""The calibration of the hls4ml structural model: the per-figure choice of a correction, made by an
inner leave-one-source-out on the training sources only."""
import math

import numpy as np

from edgekd.profile import fpga_calibration as cal
from edgekd.profile.fpga_corpus import CalibrationRecord


def _recs(factor_of_group):
    """Synthetic records: a dense layer whose structural LUT is known; reported LUT = structural × the group's factor."""
    out = []
    for g, factor in factor_of_group.items():
        for i, n in enumerate((8, 16, 32, 64)):
            r = CalibrationRecord(
                id=f"{g}-{i}", group=g, source=f"{g}@0:x.rpt", tool="Vivado HLS", tool_version="2020.1", part="",
                clock_ns=5.0, hls4ml={"io_type": "io_parallel", "strategy": "Latency"},
                layers=[{"kind": "dense", "name": "d", "in_shape": [n], "out_shape": [n]}], reported={})
            feats = {m: 100.0 * n for m in cal.METRICS}
            r.reported = {k: int(round(100.0 * n * factor)) for k in cal.REPORTED.values()}
            out.append((r, feats))
    return out


def test_a_correction_that_transfers_between_sources_is_kept():
    f = cal.fit(_recs({"a": 2.0, "b": 2.0, "c": 2.0, "d": 2.0}))
    assert all(f.corrected.values())
    d = cal.Design("vivado", "io_parallel", "Latency")
    assert 1.6 * 3200 < f.predict("lut", 3200.0, d) < 2.4 * 3200


def test_a_correction_that_does_not_transfer_is_dropped():
    # each source is off in its own direction: a correction learnt on the others does worse held out
    f = cal.fit(_recs({"a": 3.0, "b": 1 / 3.0, "c": 3.0, "d": 1 / 3.0, "e": 1.0}))
    assert not any(f.corrected.values())
    d = cal.Design("vivado", "io_parallel", "Latency")
    assert f.predict("lut", 3200.0, d) == 3200.0  # the structural figure, as is
    # exact structural figures: nothing to correct, the correction is not used either
    assert not any(cal.fit(_recs({"a": 1.0, "b": 1.0, "c": 1.0})).corrected.values())


def test_cross_validation_never_sees_the_held_out_source():
    recs = _recs({"a": 2.0, "b": 2.0, "c": 2.0, "odd": 10.0})
    rows, res = cal.cross_validate(recs)
    odd = [r for r in rows if r.group == "odd" and r.metric == "lut"]
    # fitted on a, b, c only: the held-out source's 10× is not learnt
    assert all(r.estimated < 3 * r.structural for r in odd)
    assert all(r.abs_rel_error > 0.5 for r in odd)
    assert len(res["lut"]) == len(rows) // len(cal.METRICS)
    assert np.all(np.isfinite(res["lut"])) and math.isfinite(rows[0].lo)


def test_intervals_weight_sources_equally_and_widen_for_few_sources():
    # one large source of exact designs and three small ones off by ×2: the interval must reach ×2
    res = np.array([[0.0, 1.0]] * 60 + [[math.log(2.0), g] for g in (2.0, 3.0, 4.0)])
    lo, hi = cal._quantiles(res, [0.1, 0.9])
    assert hi >= math.log(2.0) - 1e-9 and lo <= 0.0
    plain = np.quantile(res[:, 0], [0.1, 0.9])
    assert plain[1] == 0.0  # unweighted, the 60 exact designs would hide the others


def test_one_source_far_off_does_not_swing_the_correction():
    # four sources at ×2 and one whose designs the structural model misses by ×30 (a tool quirk): the
    # robust (Huber) fit keeps the ×2 correction instead of a least-squares compromise near ×3.4
    f = cal.fit(_recs({"a": 2.0, "b": 2.0, "c": 2.0, "d": 2.0, "odd": 30.0}), select=False)
    d = cal.Design("vivado", "io_parallel", "Latency")
    assert 1.6 * 3200 < f.predict("lut", 3200.0, d) < 2.6 * 3200


def _bench_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "bench_fpga_calibration.py"
    spec = importlib.util.spec_from_file_location("bench_fpga_calibration_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_renders_a_predictor_anchor_next_to_the_held_out_error(tmp_path):
    # a tiny anchors file (no rule4ml needed): two records predicted, one off by 2× in LUT
    import json

    bench = _bench_module()
    (tmp_path / "rule4ml.json").write_text(json.dumps({
        "tool": "rule4ml", "version": "0.2.0", "model": "v2 gnn", "generated": "2026-01-01",
        "predictions": {"a": {"lut": 200.0, "latency_cycles": 10.0, "board_match": "exact"},
                        "b": {"lut": 100.0, "latency_cycles": None, "board_match": "same die"}},
        "skipped": {"io_stream (rule4ml's estimators: io_parallel only)": 3}}))
    anchor = bench.load_anchor(tmp_path / "rule4ml.json")
    assert bench.load_anchor(tmp_path / "absent.json") is None

    def row(rid, metric, rep, est):
        return cal.CvRow(id=rid, group=rid, regime="dense", metric=metric, reported=rep, estimated=est,
                         lo=est, hi=est, structural=est)

    rows = [row("a", "lut", 100, 110), row("b", "lut", 100, 100), row("c", "lut", 100, 500),
            row("a", "latency", 10, 10), row("b", "latency", 10, 12)]
    reported = {"a": {"lut": 100, "latency_max": 10}, "b": {"lut": 100, "latency_max": 10}, "c": {"lut": 100}}
    cmp = bench.anchor_comparison(rows, reported, anchor)
    # LUT: records a and b only (c has no prediction); edgekd 10 % and 0 %, the anchor 100 % and 0 %
    assert cmp["lut"]["all"]["edgekd"]["n"] == 2 and cmp["lut"]["all"]["records"] == 2
    assert math.isclose(cmp["lut"]["all"]["anchor"]["median"], 0.5)
    assert math.isclose(cmp["lut"]["all"]["edgekd"]["median"], 0.05)
    assert cmp["lut"]["exact board part"]["anchor"]["n"] == 1
    # latency: b's prediction is missing, so only a counts, for both predictors
    assert cmp["latency"]["all"]["edgekd"]["n"] == cmp["latency"]["all"]["anchor"]["n"] == 1
    assert "io_parallel CNN" not in cmp["lut"]
    text = "\n".join(bench.render_anchor("rule4ml", bench.anchor_meta(anchor), cmp))
    assert "| LUT | all | 2 | 5 % | 9 % | 50 % | 90 % |" in text
    assert "| latency | all | 1 | 0 % | 0 % | 0 % | 0 % |" in text
    assert "not held out" in text and "io_parallel only" in text and "2 of the corpus's records" in text
