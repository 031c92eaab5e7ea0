"""Parse ``trtexec`` output (log and ``--exportTimes`` JSON) into edgekd's latency record.

``trtexec`` prints a performance summary (TensorRT 8.x–11.x format)::

    [I] === Performance summary ===
    [I] Throughput: 9876.5 qps
    [I] Latency: min = 0.0914 ms, max = 0.2 ms, mean = 0.1 ms, median = 0.0999 ms,
        percentile(90%) = 0.104 ms, percentile(95%) = 0.106 ms, percentile(99%) = 0.118 ms
    [I] Enqueue Time: ...   [I] H2D Latency: ...   [I] GPU Compute Time: ...
    [I] D2H Latency: ...    [I] Total Host Walltime: 3.0 s   [I] Total GPU Compute Time: 2.9 s

and, with ``--exportTimes=FILE``, one JSON record per query *including the warm-up
queries* (``startComputeMs``, ``computeMs``, ``latencyMs``, ...; TensorRT 7 named the
transfer fields ``inMs``/``outMs``). Percentiles from the per-query records are preferred:
they are computed here the same way as for every other edgekd target. This module needs
only the standard library and numpy, so it also runs on the Jetson.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.profile.result import LatencyResult

_PREFIX = re.compile(r"^\[[^\]]*\]\s*\[[A-Z]\]\s?")
_STAT = re.compile(r"(min|max|mean|median)\s*=\s*([-+0-9.eE]+)\s*ms")
_PCT = re.compile(r"percentile\(([0-9.]+)%\)\s*=\s*([-+0-9.eE]+)\s*ms")
_METRICS = ("Latency", "End-to-End Host Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time", "D2H Latency")
# Per-query JSON fields for each summary metric (TensorRT >= 8 first, then TensorRT 7 names).
_TRACE_FIELDS = {"Latency": ("latencyMs",), "GPU Compute Time": ("computeMs",), "H2D Latency": ("h2dMs", "inMs"),
                 "D2H Latency": ("d2hMs", "outMs"), "End-to-End Host Latency": ("endToEndMs",)}


@dataclass
class TrtexecStats:
    """One metric of trtexec's performance summary, in milliseconds."""

    min_ms: float
    max_ms: float
    mean_ms: float
    median_ms: float
    percentiles_ms: dict[float, float] = field(default_factory=dict)


@dataclass
class TrtexecReport:
    """Everything edgekd reads from one trtexec log."""

    command: str | None
    tensorrt_version: str | None
    device: str | None
    compute_capability: str | None
    compute_clock_ghz: float | None
    throughput_qps: float | None
    metrics: dict[str, TrtexecStats]
    warmup_queries: int | None
    warmup_ms: float | None
    timed_queries: int | None
    total_host_walltime_s: float | None
    total_gpu_compute_s: float | None
    passed: bool | None  # "&&&& PASSED" / "&&&& FAILED"; None when the log was cut
    warnings: list[str] = field(default_factory=list)

    @property
    def flags(self) -> dict[str, bool]:
        """The timing-relevant flags the command was run with."""
        cmd = self.command or ""
        return {f: f"--{f}" in cmd for f in ("useCudaGraph", "useSpinWait", "noDataTransfers", "exportTimes")}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = self.flags
        return d


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\n")).strip()


def _stats(text: str) -> TrtexecStats | None:
    vals = dict((k, float(v)) for k, v in _STAT.findall(text))
    if not {"min", "max", "mean", "median"} <= set(vals):
        return None
    pct = {float(p): float(v) for p, v in _PCT.findall(text)}
    return TrtexecStats(vals["min"], vals["max"], vals["mean"], vals["median"], pct)


def _float(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else None


def parse_trtexec_log(text: str, *, source: str = "trtexec log") -> TrtexecReport:
    """Parse the text printed by one ``trtexec`` run (any TensorRT from 8.0 to 11.x).

    Raises :class:`EdgekdError` naming ``source`` when the run failed or the log holds no
    performance summary (e.g. the engine did not load, or the run was cut short).
    """
    lines = [_strip(ln) for ln in text.splitlines()]
    body = "\n".join(lines)
    passed = True if re.search(r"^&&&& PASSED", body, re.M) else False if re.search(r"^&&&& FAILED", body, re.M) \
        else None
    if passed is False:
        errs = [ln for ln in text.splitlines() if "[E]" in ln][-3:]
        raise EdgekdError("trtexec reported FAILED" + (": " + " | ".join(_strip(e) for e in errs) if errs else ""),
                          where=source, fix="read the [E] lines of the log; rebuild the engine on this device "
                                            "with build_engine.py if it was built elsewhere")
    if "=== Performance summary ===" not in body:
        raise EdgekdError("no '=== Performance summary ===' section", where=source,
                          fix="pass the complete output of a trtexec timing run (not an engine build without "
                              "inference, --skipInference)")
    summary = body.split("=== Performance summary ===", 1)[1]
    metrics: dict[str, TrtexecStats] = {}
    for ln in summary.splitlines():
        name, _, rest = ln.partition(":")
        if name in _METRICS:
            st = _stats(rest)
            if st is not None:
                metrics[name] = st
    if "GPU Compute Time" not in metrics and "Latency" not in metrics:
        raise EdgekdError("the performance summary has neither 'Latency' nor 'GPU Compute Time'", where=source,
                          fix="pass the log of trtexec 8.0 or newer")
    cmd = re.search(r"^&&&& RUNNING TensorRT\.trtexec \[[^\]]*\] # (.*)$", body, re.M)
    version = re.search(r"^TensorRT version: ([0-9.]+)", body, re.M)
    if version is None:
        tag = re.search(r"\[TensorRT v(\d+)\]", body)
        if tag:  # v100300 → 10.3.0, v8502 → 8.5.2
            v = tag.group(1)
            version_str = (f"{int(v[:-4])}.{int(v[-4:-2])}.{int(v[-2:])}" if len(v) >= 6
                           else f"{v[0]}.{v[1]}.{int(v[2:])}")
        else:
            version_str = None
    else:
        version_str = version.group(1)
    device = re.search(r"^Selected Device: (.+)$", body, re.M)
    cc = re.search(r"^Compute Capability: ([0-9.]+)", body, re.M)
    warm = re.search(r"^Warmup completed (\d+) queries over ([0-9.eE+-]+) ms", body, re.M)
    timed = re.search(r"^Timing trace has (\d+) queries over ([0-9.eE+-]+) s", body, re.M)
    warnings = [_strip(ln) for ln in text.splitlines() if "[W]" in ln and "* " in ln]
    return TrtexecReport(
        command=cmd.group(1).strip() if cmd else None, tensorrt_version=version_str,
        device=device.group(1).strip() if device else None, compute_capability=cc.group(1) if cc else None,
        compute_clock_ghz=_float(r"^Application Compute Clock Rate: ([0-9.]+) GHz", body),
        throughput_qps=_float(r"^Throughput: ([0-9.eE+-]+) qps", summary), metrics=metrics,
        warmup_queries=int(warm.group(1)) if warm else None, warmup_ms=float(warm.group(2)) if warm else None,
        timed_queries=int(timed.group(1)) if timed else None,
        total_host_walltime_s=_float(r"^Total Host Walltime: ([0-9.eE+-]+) s", summary),
        total_gpu_compute_s=_float(r"^Total GPU Compute Time: ([0-9.eE+-]+) s", summary),
        passed=passed, warnings=warnings)


def parse_export_times(data: str | Path | list[dict[str, float]], *, warmup_ms: float | None = None,
                       source: str | None = None) -> dict[str, np.ndarray]:
    """Per-query times (ms) from a ``--exportTimes`` JSON file or its parsed list.

    trtexec writes the warm-up queries too; like trtexec's own summary, queries whose
    compute started before ``warmup_ms`` (from the log's "Warmup completed ... over X ms")
    are dropped. Returns arrays keyed by summary metric name ("Latency", "GPU Compute
    Time", ...), only for fields present in the file.
    """
    where = source or (str(data) if isinstance(data, (str, Path)) else "exportTimes data")
    if isinstance(data, (str, Path)):
        try:
            records = json.loads(Path(data).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EdgekdError(f"cannot read trtexec --exportTimes JSON: {exc}", where=where,
                              fix="pass the file written by trtexec --exportTimes=FILE") from None
    else:
        records = data
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise EdgekdError("expected a non-empty JSON list of per-query records", where=where,
                          fix="pass the file written by trtexec --exportTimes=FILE")
    start_key = "startComputeMs"
    if warmup_ms is not None and all(start_key in r for r in records):
        records = [r for r in records if r[start_key] >= warmup_ms]
        if not records:
            raise EdgekdError(f"every query started within the {warmup_ms} ms warm-up", where=where,
                              fix="time more iterations (--iterations / --duration)")
    out: dict[str, np.ndarray] = {}
    for metric, keys in _TRACE_FIELDS.items():
        for k in keys:
            if all(k in r for r in records):
                out[metric] = np.array([float(r[k]) for r in records], dtype=np.float64)
                break
    if not out:
        raise EdgekdError("the per-query records have no known time field (latencyMs, computeMs, ...)", where=where)
    return out


def to_latency_result(report: TrtexecReport, *, model: str, batch_size: int,
                      times: dict[str, np.ndarray] | None = None, metric: str = "GPU Compute Time",
                      environment: dict[str, Any] | None = None, source: str = "trtexec") -> LatencyResult:
    """An edgekd :class:`LatencyResult` (method ``measured``, target ``tensorrt``).

    ``metric`` picks the trtexec figure ("GPU Compute Time": device time of one query, CUDA
    events; "Latency": plus H2D/D2H copies, equal to it under ``--noDataTransfers``). With
    ``times`` (from :func:`parse_export_times`) percentiles are computed from every timed
    query; otherwise they come from the summary, which must then list percentile(90%) and
    percentile(99%) (trtexec >= 8.6 does by default; older ones need ``--percentile=90,99``
    or ``--exportTimes``).
    """
    details: dict[str, Any] = {"trtexec": report.to_dict(), "metric": metric, "source": source}
    if environment:
        details["environment"] = environment
    if times is not None and metric in times:
        us = times[metric] * 1e3
        p50, p90, p99 = (float(v) for v in np.percentile(us, [50, 90, 99]))
        mean, mn, runs = float(us.mean()), float(us.min()), int(us.size)
        how = "per-query --exportTimes records"
    else:
        st = report.metrics.get(metric)
        if st is None:
            raise EdgekdError(f"the trtexec summary has no '{metric}'", where=source,
                              fix=f"use one of {sorted(report.metrics)}")
        missing = [p for p in (90.0, 99.0) if p not in st.percentiles_ms]
        if missing:
            raise EdgekdError(f"the trtexec summary lacks percentile(s) {missing} of '{metric}'", where=source,
                              fix="rerun trtexec with --percentile=90,95,99 or --exportTimes=times.json")
        p50, p90, p99 = st.median_ms * 1e3, st.percentiles_ms[90.0] * 1e3, st.percentiles_ms[99.0] * 1e3
        mean, mn, runs = st.mean_ms * 1e3, st.min_ms * 1e3, int(report.timed_queries or 0)
        how = "trtexec performance summary"
    if report.throughput_qps is not None:
        details["trtexec_throughput_samples_per_s"] = report.throughput_qps * batch_size
    flags = report.flags
    timer = (f"trtexec {metric} ({how}; CUDA events"
             + (", CUDA graph" if flags["useCudaGraph"] else "")
             + (", spin-wait" if flags["useSpinWait"] else "")
             + (", no H2D/D2H" if flags["noDataTransfers"] else "") + ")")
    # Every trtexec figure but "End-to-End Host Latency" is read from CUDA events: device time.
    clock = "host" if metric == "End-to-End Host Latency" else "device"
    return LatencyResult(model=model, target="tensorrt", batch_size=batch_size, method="measured",
                         p50_us=p50, p90_us=p90, p99_us=p99, mean_us=mean, min_us=mn,
                         throughput_per_s=batch_size / (p50 * 1e-6), runs=runs,
                         warmup=int(report.warmup_queries or 0), threads=None, timer=timer, details=details,
                         clock=clock)


def latency_from_files(log: Path, *, model: str, batch_size: int, times_json: Path | None = None,
                       metric: str = "GPU Compute Time", environment: dict[str, Any] | None = None) -> LatencyResult:
    """Read a trtexec log (and its ``--exportTimes`` file when given) into a LatencyResult."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError as exc:
        raise EdgekdError(f"cannot read trtexec log: {exc}", where=str(log)) from None
    report = parse_trtexec_log(text, source=str(log))
    times = parse_export_times(times_json, warmup_ms=report.warmup_ms) if times_json is not None else None
    return to_latency_result(report, model=model, batch_size=batch_size, times=times, metric=metric,
                             environment=environment, source=str(log))


def latency_from_bench_dir(out_dir: Path, *, model: str, metric: str = "GPU Compute Time") -> LatencyResult:
    """The LatencyResult of one ``bench.sh`` run folder (trtexec.log, times.json, bench.json, env.txt).

    The batch size, precision, power mode (``nvpmodel -q``) and clock state recorded by
    bench.sh go into the result's environment, so the figure carries its conditions.
    """
    out_dir = Path(out_dir)
    try:
        bench = json.loads((out_dir / "bench.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgekdError(f"cannot read bench.json: {exc}", where=str(out_dir),
                          fix="pass the --out folder of one bench.sh run") from None
    env: dict[str, Any] = {"precision": bench.get("precision"), "clocks": bench.get("clocks"),
                           "nvpmodel": bench.get("nvpmodel"), "engine": bench.get("engine")}
    env_txt = out_dir / "env.txt"
    if env_txt.is_file():
        for line in env_txt.read_text(errors="replace").splitlines():
            key, sep, val = line.partition(": ")
            if sep:
                env[key.strip()] = val.strip()
    times = out_dir / "times.json"
    return latency_from_files(out_dir / "trtexec.log", model=model, batch_size=int(bench["batch"]),
                              times_json=times if times.is_file() else None, metric=metric, environment=env)


__all__ = ["TrtexecReport", "TrtexecStats", "latency_from_bench_dir", "latency_from_files", "parse_export_times", "parse_trtexec_log",
           "to_latency_result"]
