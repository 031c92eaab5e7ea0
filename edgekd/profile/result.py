"""Latency records: every figure says how it was obtained."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["measured", "simulated", "estimated"]
# Which clock a measured figure is read from. host: wall time from the call to the result on the
# host (what a caller waits: launch, GPU work, synchronization). device: GPU time between two CUDA
# events (trtexec's "GPU Compute Time"), which leaves out launch and synchronization overhead.
# The two are not comparable: a 5.7 k-parameter CNN can take 5 µs of device time and 30 µs of host time.
Clock = Literal["host", "device"]
CLOCK_MEANING = {"host": "host wall time, call to result (what a caller waits)",
                 "device": "GPU time between CUDA events (no launch/sync overhead)"}


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
    clock: Clock = "host"  # what p50/p90/p99 measure; see CLOCK_MEANING

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def p50_by_clock(self) -> dict[str, float | None]:
        """p50 (µs) on each clock, where this measurement has it (the cuda rows have both)."""
        other = "device" if self.clock == "host" else "host"
        extra = self.details.get(f"{other}_time") or {}
        return {self.clock: self.p50_us, other: extra.get("p50_us")}


def summarize(samples_s: np.ndarray, *, model: str, target: str, batch_size: int, warmup: int,
              threads: int | None, timer: str, method: Method = "measured",
              details: dict[str, Any] | None = None, clock: Clock = "host") -> LatencyResult:
    """Percentiles (µs) of per-call wall times given in seconds."""
    us = np.asarray(samples_s, dtype=np.float64) * 1e6
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return LatencyResult(
        model=model, target=target, batch_size=batch_size, method=method,
        p50_us=float(p50), p90_us=float(p90), p99_us=float(p99), mean_us=float(us.mean()),
        min_us=float(us.min()), throughput_per_s=float(batch_size / (p50 * 1e-6)), runs=int(us.size),
        warmup=warmup, threads=threads, timer=timer, details=dict(details or {}), clock=clock,
    )
