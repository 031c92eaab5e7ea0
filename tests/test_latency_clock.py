"""Issue 16 item 12: host and device latencies are labelled, never shown as if alike."""
import numpy as np

from edgekd.profile.result import LatencyResult, summarize
from edgekd.profile.trtexec import parse_trtexec_log, to_latency_result
from edgekd.report.build import latency_table

LOG = ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --loadEngine=e --useCudaGraph --noDataTransfers\n"
       "[11/28/2026-09:14:03] [I] === Performance summary ===\n[11/28/2026-09:14:03] [I] Throughput: 150000 qps\n"
       "[11/28/2026-09:14:03] [I] Latency: min = 0.005 ms, max = 0.008 ms, mean = 0.006 ms, median = 0.006 ms, percentile(90%) = 0.007 ms, "
       "percentile(95%) = 0.007 ms, percentile(99%) = 0.008 ms\n"
       "[11/28/2026-09:14:03] [I] GPU Compute Time: min = 0.004 ms, max = 0.006 ms, mean = 0.005 ms, median = 0.005 ms, "
       "percentile(90%) = 0.0055 ms, percentile(95%) = 0.0058 ms, percentile(99%) = 0.006 ms\n")


def _cuda_row():
    r = summarize(np.full(100, 31e-6), model="s", target="cuda", batch_size=1, warmup=1, threads=None, timer="t",
                  details={"mode": "cuda-graph", "dtype": "fp32", "device_time": {"p50_us": 6.5}})
    return r


def test_trtexec_figures_are_device_time_and_cuda_rows_host_time():
    rep = parse_trtexec_log(LOG)
    assert to_latency_result(rep, model="s", batch_size=1).clock == "device"  # GPU Compute Time
    assert to_latency_result(rep, model="s", batch_size=1, metric="Latency").clock == "device"  # CUDA events too
    r = _cuda_row()
    assert r.clock == "host" and r.p50_by_clock() == {"host": 31.0, "device": 6.5}
    assert r.to_dict()["clock"] == "host"


def test_report_table_labels_each_rows_clock_and_gives_both_where_both_exist():
    trt = to_latency_result(parse_trtexec_log(LOG), model="s", batch_size=1, environment={"precision": "int8"})
    cpu = summarize(np.full(10, 40e-6), model="s", target="onnxruntime", batch_size=1, warmup=1, threads=1,
                    timer="t")
    text = "\n".join(latency_table([trt, _cuda_row(), cpu]))
    assert "**host** = host wall time" in text and "**device** = GPU time between CUDA events" in text
    assert "| clock |" in text and "| host p50 µs | device p50 µs |" in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| s |")}
    assert rows["tensorrt (int8)"].split(" | ")[3] == "device"
    assert "| 5.0 | 5.5 | 6.0 | — | 5.0 |" in rows["tensorrt (int8)"]  # no host figure from trtexec
    assert rows["cuda (cuda-graph fp32)"].split(" | ")[3] == "host"
    assert "| 31.0 | 6.5 |" in rows["cuda (cuda-graph fp32)"]  # host and device both given
    assert "| 40.0 | — |" in rows["onnxruntime"]


def test_latency_result_default_clock_is_host():
    r = LatencyResult(model="m", target="cpu-torch", batch_size=1, method="measured", p50_us=1, p90_us=1, p99_us=1,
                      mean_us=1, min_us=1, throughput_per_s=1, runs=1, warmup=0)
    assert r.clock == "host" and r.p50_by_clock() == {"host": 1, "device": None}
