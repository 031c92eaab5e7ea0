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
