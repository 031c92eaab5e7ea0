"""trtexec output → LatencyResult.

The log samples follow trtexec's real format line for line (device block as printed on a
Jetson Orin by TensorRT 10, performance summary as written by samples/common/
sampleReporting.cpp, ``--exportTimes`` records with the field names of exportJSONTrace);
the numbers are those of a small CNN at batch 1.
"""
import json

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.profile.trtexec import (latency_from_files, parse_export_times, parse_trtexec_log,
                                    to_latency_result)

ORIN_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --loadEngine=model.int8.engine --shapes=input:1x1x48x48 --useCudaGraph --useSpinWait --noDataTransfers --warmUp=500 --iterations=2000 --duration=0 --exportTimes=times.json
[11/28/2026-09:14:02] [I] === Device Information ===
[11/28/2026-09:14:02] [I] Available Devices:
[11/28/2026-09:14:02] [I]   Device 0: "Orin" UUID: GPU-f5507ee1-b6b1-556b-8350-83af993dbffd
[11/28/2026-09:14:02] [I] Selected Device: Orin
[11/28/2026-09:14:02] [I] Selected Device ID: 0
[11/28/2026-09:14:02] [I] Compute Capability: 8.7
[11/28/2026-09:14:02] [I] SMs: 8
[11/28/2026-09:14:02] [I] Device Global Memory: 7620 MiB
[11/28/2026-09:14:02] [I] Application Compute Clock Rate: 1.02 GHz
[11/28/2026-09:14:02] [I] Application Memory Clock Rate: 2.133 GHz
[11/28/2026-09:14:02] [I]
[11/28/2026-09:14:02] [I] TensorRT version: 10.3.0
[11/28/2026-09:14:02] [I] Engine loaded in 0.0121 sec.
[11/28/2026-09:14:03] [I] Starting inference
[11/28/2026-09:14:03] [I] Warmup completed 6544 queries over 500 ms
[11/28/2026-09:14:03] [I] Timing trace has 2000 queries over 0.161203 s
[11/28/2026-09:14:03] [I]
[11/28/2026-09:14:03] [I] === Trace details ===
[11/28/2026-09:14:03] [I] Trace averages of 10 runs:
[11/28/2026-09:14:03] [I] Average on 10 runs - GPU latency: 0.0782 ms - Host latency: 0.0782 ms (enqueue 0.0121 ms)
[11/28/2026-09:14:03] [I]
[11/28/2026-09:14:03] [I] === Performance summary ===
[11/28/2026-09:14:03] [I] Throughput: 12406.7 qps
[11/28/2026-09:14:03] [I] Latency: min = 0.0727539 ms, max = 0.201904 ms, mean = 0.0790527 ms, median = 0.0778809 ms, percentile(90%) = 0.0826416 ms, percentile(95%) = 0.0852051 ms, percentile(99%) = 0.0974121 ms
[11/28/2026-09:14:03] [I] Enqueue Time: min = 0.00976562 ms, max = 0.0458984 ms, mean = 0.0123291 ms, median = 0.0117188 ms, percentile(90%) = 0.0136719 ms, percentile(95%) = 0.0146484 ms, percentile(99%) = 0.0195312 ms
[11/28/2026-09:14:03] [I] H2D Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[11/28/2026-09:14:03] [I] GPU Compute Time: min = 0.0727539 ms, max = 0.201904 ms, mean = 0.0790527 ms, median = 0.0778809 ms, percentile(90%) = 0.0826416 ms, percentile(95%) = 0.0852051 ms, percentile(99%) = 0.0974121 ms
[11/28/2026-09:14:03] [I] D2H Latency: min = 0 ms, max = 0 ms, mean = 0 ms, median = 0 ms, percentile(90%) = 0 ms, percentile(95%) = 0 ms, percentile(99%) = 0 ms
[11/28/2026-09:14:03] [I] Total Host Walltime: 0.161203 s
[11/28/2026-09:14:03] [I] Total GPU Compute Time: 0.158105 s
[11/28/2026-09:14:03] [W] * GPU compute time is unstable, with coefficient of variance = 9.81%.
[11/28/2026-09:14:03] [W]   If not already in use, locking GPU clock frequency or adding --useSpinWait may improve the stability.
[11/28/2026-09:14:03] [I] Explanations of the performance metrics are printed in the verbose logs.
[11/28/2026-09:14:03] [I]
&&&& PASSED TensorRT.trtexec [TensorRT v100300] # /usr/src/tensorrt/bin/trtexec --loadEngine=model.int8.engine
"""

# TensorRT 8.2-era summary: only percentile(99%), an End-to-End line, no version line.
OLD_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --loadEngine=m.engine
[07/28/2022-16:00:55] [I] === Performance summary ===
[07/28/2022-16:00:55] [I] Throughput: 716.632 qps
[07/28/2022-16:00:55] [I] Latency: min = 1.3476 ms, max = 1.5657 ms, mean = 1.38629 ms, median = 1.38037 ms, percentile(99%) = 1.55853 ms
[07/28/2022-16:00:55] [I] End-to-End Host Latency: min = 1.36 ms, max = 2.9 ms, mean = 2.7 ms, median = 2.71 ms, percentile(99%) = 2.8 ms
[07/28/2022-16:00:55] [I] GPU Compute Time: min = 1.3476 ms, max = 1.5657 ms, mean = 1.38629 ms, median = 1.38037 ms, percentile(99%) = 1.55853 ms
[07/28/2022-16:00:55] [I] Total Host Walltime: 3.00294 s
&&&& PASSED TensorRT.trtexec [TensorRT v8201] # trtexec --loadEngine=m.engine
"""

FAILED_LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --loadEngine=model.int8.engine
[11/28/2026-09:20:11] [E] Error[1]: [runtime.cpp::parsePlan::314] Error Code 1: Serialization (Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed.)
[11/28/2026-09:20:11] [E] Engine deserialization failed
&&&& FAILED TensorRT.trtexec [TensorRT v100300] # trtexec --loadEngine=model.int8.engine
"""


def _trace(n_warm: int, timed_ms: list[float], warm_ms: float = 500.0) -> list[dict]:
    """Records in exportJSONTrace's field order; warm-up queries start before ``warm_ms``."""
    recs, t = [], 0.0
    for i in range(n_warm + len(timed_ms)):
        c = 0.5 if i < n_warm else timed_ms[i - n_warm]
        if i == n_warm:
            t = max(t, warm_ms)
        recs.append({"startEnqMs": t, "endEnqMs": t + 0.01, "startH2dMs": t, "endH2dMs": t,
                     "startComputeMs": t, "endComputeMs": t + c, "startD2hMs": t + c, "endD2hMs": t + c,
                     "h2dMs": 0.0, "computeMs": c, "d2hMs": 0.0, "latencyMs": c, "endToEndMs": c})
        t += c + 0.001
    return recs


def test_parses_orin_log_fields():
    r = parse_trtexec_log(ORIN_LOG)
    assert r.tensorrt_version == "10.3.0"
    assert r.device == "Orin" and r.compute_capability == "8.7" and r.compute_clock_ghz == 1.02
    assert r.throughput_qps == pytest.approx(12406.7)
    assert r.warmup_queries == 6544 and r.warmup_ms == 500 and r.timed_queries == 2000
    gpu = r.metrics["GPU Compute Time"]
    assert gpu.median_ms == pytest.approx(0.0778809) and gpu.percentiles_ms[99.0] == pytest.approx(0.0974121)
    assert set(gpu.percentiles_ms) == {90.0, 95.0, 99.0}
    assert r.metrics["H2D Latency"].max_ms == 0
    assert r.passed is True
    assert r.flags == {"useCudaGraph": True, "useSpinWait": True, "noDataTransfers": True, "exportTimes": True}
    assert any("unstable" in w for w in r.warnings)


def test_summary_to_latency_result_in_microseconds():
    res = to_latency_result(parse_trtexec_log(ORIN_LOG), model="cnn-kd", batch_size=1)
    assert res.target == "tensorrt" and res.method == "measured"
    assert res.p50_us == pytest.approx(77.8809) and res.p90_us == pytest.approx(82.6416)
    assert res.p99_us == pytest.approx(97.4121) and res.min_us == pytest.approx(72.7539)
    assert res.runs == 2000 and res.warmup == 6544
    assert res.throughput_per_s == pytest.approx(1 / 77.8809e-6)
    assert "CUDA graph" in res.timer and "no H2D/D2H" in res.timer
    assert res.details["trtexec"]["device"] == "Orin"


def test_old_log_version_from_tag_and_missing_p90_is_a_clear_error():
    r = parse_trtexec_log(OLD_LOG, source="old.log")
    assert r.tensorrt_version == "8.2.1"
    assert r.metrics["End-to-End Host Latency"].median_ms == pytest.approx(2.71)
    with pytest.raises(EdgekdError, match=r"(?s)percentile\(s\) \[90.0\].*--percentile=90,95,99"):
        to_latency_result(r, model="m", batch_size=1, source="old.log")
    # the same summary is usable when the per-query records are given
    times = parse_export_times(_trace(0, [1.0, 2.0, 3.0, 4.0]))
    res = to_latency_result(r, model="m", batch_size=8, times=times)
    assert res.p50_us == pytest.approx(2500.0) and res.runs == 4
    assert res.throughput_per_s == pytest.approx(8 / 2500e-6)


def test_export_times_drops_warmup_and_gives_exact_percentiles(tmp_path):
    timed = list(np.linspace(0.07, 0.17, 101))
    path = tmp_path / "times.json"
    path.write_text(json.dumps(_trace(50, timed)))
    t = parse_export_times(path, warmup_ms=500.0)
    assert len(t["GPU Compute Time"]) == 101
    np.testing.assert_allclose(t["Latency"], timed)
    res = to_latency_result(parse_trtexec_log(ORIN_LOG), model="m", batch_size=1, times=t)
    assert res.p50_us == pytest.approx(120.0) and res.p90_us == pytest.approx(160.0)
    assert res.p99_us == pytest.approx(169.0) and res.runs == 101
    assert "per-query" in res.timer
    # without the warm-up cut the 0.5 ms warm-up queries are counted and dominate the tail
    uncut = parse_export_times(path)["GPU Compute Time"]
    assert len(uncut) == 151 and np.percentile(uncut, 90) == pytest.approx(0.5)


def test_tensorrt7_field_names():
    recs = [{"startInMs": 0, "startComputeMs": 0, "inMs": 0.01, "computeMs": 0.2, "outMs": 0.01,
             "latencyMs": 0.22, "endToEndMs": 0.3}]
    t = parse_export_times(recs)
    assert t["H2D Latency"][0] == pytest.approx(0.01) and t["D2H Latency"][0] == pytest.approx(0.01)


def test_files_roundtrip(tmp_path):
    log, times = tmp_path / "trtexec.log", tmp_path / "times.json"
    log.write_text(ORIN_LOG)
    times.write_text(json.dumps(_trace(3, [0.08, 0.09, 0.1])))
    res = latency_from_files(log, model="m", batch_size=1, times_json=times, environment={"nvpmodel": "MAXN"})
    assert res.runs == 3 and res.p50_us == pytest.approx(90.0)
    assert res.details["environment"]["nvpmodel"] == "MAXN"


@pytest.mark.parametrize("text,match", [
    (FAILED_LOG, "FAILED.*Engine deserialization failed"),
    (ORIN_LOG.split("=== Performance summary ===")[0], "no '=== Performance summary ==='"),
])
def test_failed_or_cut_logs_raise(text, match):
    with pytest.raises(EdgekdError, match=match):
        parse_trtexec_log(text, source="x.log")


def test_bad_export_times(tmp_path):
    p = tmp_path / "t.json"
    p.write_text("{not json")
    with pytest.raises(EdgekdError, match="cannot read"):
        parse_export_times(p)
    with pytest.raises(EdgekdError, match="non-empty JSON list"):
        parse_export_times([])
    with pytest.raises(EdgekdError, match="warm-up"):
        parse_export_times(_trace(2, []), warmup_ms=500.0)
    with pytest.raises(EdgekdError, match="no known time field"):
        parse_export_times([{"foo": 1.0}])


def test_bench_dir_without_bench_json_is_a_clear_error(tmp_path):
    from edgekd.profile.trtexec import latency_from_bench_dir

    with pytest.raises(EdgekdError, match="cannot read bench.json"):
        latency_from_bench_dir(tmp_path, model="m")
