"""``onnxruntime`` target: the exported ONNX file on ONNX Runtime's CPU provider."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.profile.result import LatencyResult, summarize
from edgekd.profile.timing import time_calls


def profile_ort(onnx_path: Path, name: str, example: np.ndarray, *, batch_size: int, runs: int,
                warmup: int, threads: int) -> LatencyResult:
    import onnxruntime as ort

    from edgekd.export.onnx import ort_session

    sess = ort_session(onnx_path, threads=threads)
    x = np.ascontiguousarray(np.repeat(example[:1], batch_size, axis=0))
    feed = {sess.get_inputs()[0].name: x}  # any model's first input, not only edgekd's own exports
    samples = time_calls(lambda: sess.run(None, feed), runs=runs, warmup=warmup)
    return summarize(samples, model=name, target="onnxruntime", batch_size=batch_size, warmup=warmup,
                     threads=threads, timer="time.perf_counter_ns around session.run",
                     details={"onnxruntime": ort.__version__, "provider": "CPUExecutionProvider",
                              "graph_optimization": "ORT_ENABLE_ALL", "inter_op_threads": 1})
