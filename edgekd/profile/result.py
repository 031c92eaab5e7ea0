"""Latency records: every figure says how it was obtained."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["measured", "simulated", "estimated"]


@dataclass
class LatencyResult:
    model: str
    target: str  # cpu-torch, onnxruntime, cuda, tensorrt, fpga-hls, fpga-rtl
    batch_size: int
    method: Method
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    min_us: float
    throughput_per_s: float  # samples per second at the p50 latency
    runs: int
    warmup: int
    threads: int | None = None
    timer: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(samples_s: np.ndarray, *, model: str, target: str, batch_size: int, warmup: int,
              threads: int | None, timer: str, method: Method = "measured",
              details: dict[str, Any] | None = None) -> LatencyResult:
    """Percentiles (µs) of per-call wall times given in seconds."""
    us = np.asarray(samples_s, dtype=np.float64) * 1e6
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return LatencyResult(
        model=model, target=target, batch_size=batch_size, method=method,
        p50_us=float(p50), p90_us=float(p90), p99_us=float(p99), mean_us=float(us.mean()),
        min_us=float(us.min()), throughput_per_s=float(batch_size / (p50 * 1e-6)), runs=int(us.size),
        warmup=warmup, threads=threads, timer=timer, details=dict(details or {}),
    )
