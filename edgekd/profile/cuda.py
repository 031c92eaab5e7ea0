"""``cuda`` target: the PyTorch student on an NVIDIA GPU, in every execution mode that matters.

A 5.7 k-parameter CNN at batch 1 is not limited by arithmetic on a GPU but by launch
overhead: ten kernels of a few microseconds each, and a host that must issue each one.
So the profiler times the same student in several modes and reports the fastest:

* ``eager``          — plain PyTorch, one launch per op;
* ``cuda-graph``     — the eager kernels captured once in a CUDA graph, replayed with one launch;
* ``compiled``       — ``torch.compile(mode="max-autotune-no-cudagraphs")`` (Triton fusions);
* ``compiled-graph`` — the compiled model captured in a CUDA graph by hand (fewer, fused
  kernels *and* one launch; the mode expected to be fastest at batch 1).

each in fp32 and fp16, at batch 1 and over a throughput sweep of batch sizes. Each row gives
host time (``perf_counter_ns`` from before the launch to after the stream synchronizes: the
latency a caller sees, timed in its own loop with no CUDA events in it) and device time
(CUDA events around the call, a second loop), both as p50/p90/p99 after warm-up. "fp32"
rows run with TF32 off (true float32 convolutions and matmuls); the previous setting is
restored afterwards. The model is profiled on copies: the caller's module is not moved,
cast or switched to eval mode. The environment (GPU, driver, clocks, versions) is captured
with every run. ONNX Runtime's CUDA and TensorRT execution providers are timed too when the
installed onnxruntime has them (one session per batch size, since a captured CUDA graph
replays one shape; a session that silently fell back to the CPU is reported as a failure).

On a machine without a CUDA GPU every entry point raises :class:`ToolMissingError`.
"""
from __future__ import annotations

import contextlib
import copy
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, ToolMissingError
from edgekd.profile.result import LatencyResult, summarize
from edgekd.profile.timing import time_calls

MODES = ("eager", "cuda-graph", "compiled", "compiled-graph")
DTYPES = ("fp32", "fp16")
_TORCH_DTYPE = {"fp32": torch.float32, "fp16": torch.float16}
ORT_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


@dataclass
class CudaProfileConfig:
    """What to time. Defaults: all modes and precisions, batch 1 plus a throughput sweep."""

    modes: tuple[str, ...] = MODES
    dtypes: tuple[str, ...] = DTYPES
    batch_sizes: tuple[int, ...] = (1, 16, 256, 4096)
    runs: int = 2000  # timed calls at batch 1
    large_batch_runs: int = 100
    warmup: int = 200
    device: int = 0
    ort_providers: bool = True  # also time ONNX Runtime CUDA/TensorRT providers when present

    def validate(self) -> "CudaProfileConfig":
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ConfigError(f"unknown CUDA mode(s) {bad or '[]'}", where="profile.cuda.modes",
                              fix=f"choose from {list(MODES)}")
        bad = [d for d in self.dtypes if d not in DTYPES]
        if bad or not self.dtypes:
            raise ConfigError(f"unknown precision(s) {bad or '[]'}", where="profile.cuda.dtypes",
                              fix=f"choose from {list(DTYPES)}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be positive, got {list(self.batch_sizes)}",
                              where="profile.cuda.batch_sizes")
        if self.runs < 10 or self.large_batch_runs < 3 or self.warmup < 1:
            raise ConfigError("need runs >= 10, large_batch_runs >= 3 and warmup >= 1", where="profile.cuda")
        return self

    def runs_for(self, batch_size: int) -> tuple[int, int]:
        """(timed runs, warm-up calls) for ``batch_size``: fewer at large batches."""
        if batch_size == 1:
            return self.runs, self.warmup
        return self.large_batch_runs, max(3, self.warmup // 10)


@dataclass
class ModeFailure:
    """A mode that could not run (e.g. torch.compile without Triton); reported, not fatal."""

    mode: str
    dtype: str
    batch_size: int
    error: str


@dataclass
class CudaProfile:
    """All timings of one student on one GPU, and the fastest mode at batch 1."""

    model: str
    results: list[LatencyResult]
    failures: list[ModeFailure]
    environment: dict[str, Any]
    fastest: LatencyResult | None = None
    outputs_max_abs_diff: dict[str, float] = field(default_factory=dict)  # per mode/dtype vs CPU fp32


def require_cuda(device: int = 0) -> None:
    """Raise :class:`ToolMissingError` unless PyTorch sees CUDA device ``device``."""
    if not torch.cuda.is_available():
        built = torch.version.cuda
        raise ToolMissingError(
            f"no CUDA GPU is visible to PyTorch (torch {torch.__version__}, "
            + (f"built for CUDA {built})" if built else "a CPU-only build)"),
            where="profile target 'cuda'",
            fix="run on a machine with an NVIDIA GPU and a CUDA build of torch "
                "(pip install torch --index-url https://download.pytorch.org/whl/cu128), or drop 'cuda' "
                "from profile.targets")
    if device >= torch.cuda.device_count():
        raise ToolMissingError(f"CUDA device {device} does not exist ({torch.cuda.device_count()} visible)",
                               where="profile.cuda.device", fix="use device 0 or set CUDA_VISIBLE_DEVICES")


def device_stats(device_ms: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/min (µs) of per-call CUDA-event times given in milliseconds."""
    us = np.asarray(device_ms, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"p50_us": float(p50), "p90_us": float(p90), "p99_us": float(p99), "mean_us": float(us.mean()),
            "min_us": float(us.min())}


def fastest(results: list[LatencyResult], *, batch_size: int = 1, key: str = "p50_us") -> LatencyResult | None:
    """The result with the lowest ``key`` at ``batch_size`` (ties: lower p99, then list order)."""
    cands = [r for r in results if r.batch_size == batch_size]
    if not cands:
        return None
    return min(cands, key=lambda r: (getattr(r, key), r.p99_us))


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------

_SMI_FIELDS = ("name", "driver_version", "pstate", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
               "clocks.applications.graphics", "power.draw", "power.limit", "persistence_mode", "temperature.gpu")


def nvidia_smi(index: int = 0) -> dict[str, str]:
    """GPU name, driver, clocks and power from ``nvidia-smi`` (empty dict when it is absent)."""
    try:
        proc = subprocess.run(["nvidia-smi", f"--id={index}", f"--query-gpu={','.join(_SMI_FIELDS)}",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"nvidia-smi not runnable: {exc}"}
    if proc.returncode != 0:
        return {"error": f"nvidia-smi exited {proc.returncode}: {proc.stderr.strip()[:200]}"}
    vals = [v.strip() for v in proc.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(_SMI_FIELDS, vals))


def cuda_environment(device: int = 0) -> dict[str, Any]:
    """Everything that moves a GPU latency figure: device, clocks, driver and library versions."""
    from edgekd.profile.environment import capture

    require_cuda(device)
    p = torch.cuda.get_device_properties(device)
    env = capture()
    env.update({
        "gpu": p.name, "compute_capability": f"{p.major}.{p.minor}", "sm_count": p.multi_processor_count,
        "gpu_memory_gib": round(p.total_memory / 2**30, 1), "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "fp32_math_default": fp32_math_state(),
        "nvidia_smi": nvidia_smi(device),
    })
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    return env


# --------------------------------------------------------------------------------------
# Float32 math: TF32 off for "fp32" rows
# --------------------------------------------------------------------------------------

def _tf32_knobs() -> dict[str, tuple[Any, str]]:
    """The TF32 switches of this torch: the fp32_precision API (torch >= 2.9) or the legacy flags.

    torch refuses to read the legacy flags once the new API was used, so only one is touched.
    """
    b = torch.backends
    conv = getattr(b.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(b.cuda.matmul, "fp32_precision"):
        return {"cudnn_conv": (conv, "fp32_precision"), "cuda_matmul": (b.cuda.matmul, "fp32_precision")}
    return {"cudnn_conv": (b.cudnn, "allow_tf32"), "cuda_matmul": (b.cuda.matmul, "allow_tf32")}


def fp32_math_state() -> dict[str, Any]:
    """The current TF32 settings ("tf32"/"ieee"/"none" with the new API, True/False with the old)."""
    return {k: getattr(obj, attr) for k, (obj, attr) in _tf32_knobs().items()}


@contextlib.contextmanager
def strict_fp32():
    """TF32 off inside the block (float32 convolutions and matmuls really in float32), restored after."""
    knobs = _tf32_knobs()
    saved = {k: getattr(obj, attr) for k, (obj, attr) in knobs.items()}
    try:
        for obj, attr in knobs.values():
            setattr(obj, attr, "ieee" if attr == "fp32_precision" else False)
        yield
    finally:
        for k, (obj, attr) in knobs.items():
            setattr(obj, attr, saved[k])


# --------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------

def _capture_graph(fn: Callable[[], torch.Tensor], warmup: int = 3) -> Callable[[], torch.Tensor]:
    """Capture ``fn`` (static input/output buffers) in a CUDA graph; return its replay."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up on a side stream, as CUDA graph capture requires
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def make_runner(model: nn.Module, x: torch.Tensor, mode: str) -> Callable[[], torch.Tensor]:
    """A zero-argument callable running ``model`` on the (static, on-device) input ``x``."""
    if mode not in MODES:
        raise ConfigError(f"unknown CUDA mode '{mode}'", where="profile.cuda.modes", fix=f"choose from {list(MODES)}")
    if mode in ("compiled", "compiled-graph"):
        # Triton-fused kernels without inductor's own CUDA graphs: the graph is captured by hand
        # below, and reduce-overhead's cudagraph trees add a per-call guard the manual graph avoids.
        model = torch.compile(model, mode="max-autotune-no-cudagraphs", fullgraph=True, dynamic=False)

    def call() -> torch.Tensor:
        return model(x)

    if mode in ("compiled", "compiled-graph"):
        # Compile and autotune now, on the current stream, so no compilation or autotuning
        # benchmark ever runs inside a CUDA graph capture or a timed call.
        call()
        torch.cuda.synchronize()
    if mode in ("cuda-graph", "compiled-graph"):
        return _capture_graph(call)
    return call


def time_cuda(fn: Callable[[], object], *, runs: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-call host wall time (s) and device time (ms), each from its own loop of ``runs`` calls.

    Host loop: ``perf_counter_ns`` before the launch and after the stream synchronizes, nothing
    else inside (event records cost a few µs on a 20-35 µs figure). Device loop: CUDA events
    recorded around each call.
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    stream = torch.cuda.current_stream()
    wall = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        fn()
        stream.synchronize()
        wall[i] = (clock() - t0) * 1e-9
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    dev = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start.record()
        fn()
        end.record()
        end.synchronize()
        dev[i] = start.elapsed_time(end)
    return wall, dev


def _device(cfg: CudaProfileConfig) -> torch.device:
    return torch.device("cuda", cfg.device)


def profile_cuda(model: nn.Module, name: str, example: torch.Tensor,
                 config: CudaProfileConfig | None = None, *, onnx_path: Path | None = None,
                 log: Callable[[str], None] | None = None) -> CudaProfile:
    """Time ``model`` on the GPU in every configured mode, precision and batch size.

    ``example`` is one real (preprocessed) input; it is repeated to each batch size. Every
    mode's batch-1 output is compared with the CPU fp32 output, so a mode that computes
    something else is visible next to its speed. With ``onnx_path`` ONNX Runtime's CUDA and
    TensorRT providers are timed too when installed. Modes that fail are listed in
    ``failures`` with their error; the others still run. ``model`` itself is left as it was:
    every precision runs on its own copy.
    """
    cfg = (config or CudaProfileConfig()).validate()
    require_cuda(cfg.device)
    log = log or (lambda msg: None)
    dev = _device(cfg)
    torch.cuda.set_device(dev)
    torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithm for these fixed shapes
    env = cuda_environment(cfg.device)
    with torch.no_grad():
        ref = copy.deepcopy(model).cpu().float().eval()(example[:1].float()).numpy()
    prof = CudaProfile(name, [], [], env)
    for dtype in cfg.dtypes:
        m = copy.deepcopy(model).to(dev, dtype=_TORCH_DTYPE[dtype]).eval()
        with (strict_fp32() if dtype == "fp32" else contextlib.nullcontext()):
            for bs in cfg.batch_sizes:
                x = example[:1].repeat(bs, *([1] * (example.ndim - 1))).to(dev, dtype=_TORCH_DTYPE[dtype])
                for mode in cfg.modes:
                    _profile_mode(prof, m, x.contiguous(), mode, dtype, cfg, ref, log)
        del m
    if onnx_path is not None and cfg.ort_providers:
        prof.results += profile_ort_gpu(onnx_path, name, example.numpy(), cfg, prof.failures, log)
    prof.fastest = best = fastest(prof.results, batch_size=1)
    if best is not None:
        log(f"[cuda] {name}: fastest at batch 1 is {best.details.get('mode', best.target)}/"
            f"{best.details.get('dtype', '')} at p50 {best.p50_us:,.1f} µs host (p99 {best.p99_us:,.1f} µs) "
            f"on {env['gpu']}")
    return prof


def _profile_mode(prof: CudaProfile, m: nn.Module, x: torch.Tensor, mode: str, dtype: str,
                  cfg: CudaProfileConfig, ref: np.ndarray, log: Callable[[str], None]) -> None:
    """Time one mode at one precision and batch size into ``prof`` (a failure is recorded, not raised)."""
    bs = len(x)
    runs, warm = cfg.runs_for(bs)
    torch._dynamo.reset()  # each compiled mode compiles for its own dtype/shape
    try:
        with torch.inference_mode():
            fn = make_runner(m, x, mode)
            out = fn()
            torch.cuda.synchronize()
            if bs == 1:
                prof.outputs_max_abs_diff[f"{mode}/{dtype}"] = float(np.abs(out.float().cpu().numpy() - ref).max())
            wall, devt = time_cuda(fn, runs=runs, warmup=warm)
    except Exception as exc:  # noqa: BLE001 - one mode failing must not hide the others
        prof.failures.append(ModeFailure(mode, dtype, bs, f"{type(exc).__name__}: {str(exc)[:300]}"))
        log(f"[cuda] {prof.model} {mode}/{dtype} batch {bs}: failed ({type(exc).__name__})")
        return
    details = {"mode": mode, "dtype": dtype, "clock": "host", "device_time": device_stats(devt),
               "fp32_math": fp32_math_state() if dtype == "fp32" else None, "gpu": prof.environment["gpu"],
               "torch": torch.__version__, "cuda": torch.version.cuda}
    r = summarize(wall, model=prof.model, target="cuda", batch_size=bs, warmup=warm, threads=None,
                  timer="host: perf_counter_ns from launch to stream sync (own loop); device: CUDA events "
                        "(details.device_time)", details=details)
    prof.results.append(r)
    log(f"[cuda] {prof.model} {mode}/{dtype} batch {bs}: p50 {r.p50_us:,.1f} µs host, "
        f"{details['device_time']['p50_us']:,.1f} µs device, {r.throughput_per_s:,.0f} /s")


def available_ort_gpu_providers() -> list[str]:
    """The ONNX Runtime GPU execution providers this installation has ([] for CPU builds)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return [p for p in ORT_GPU_PROVIDERS if p in ort.get_available_providers()]


class ProviderFallbackError(RuntimeError):
    """ONNX Runtime created the session but not on the requested execution provider."""


def _ort_gpu_session(ort, onnx_path: Path, prov: str, device: int):
    """A session on ``prov`` with CUDA graphs on; raises if ORT put it on another provider.

    ORT falls back to the next provider (the CPU) without an error when the CUDA or TensorRT
    provider fails to load (missing cuDNN, libnvinfer, ...), so the active one is checked.
    """
    opts: dict[str, Any] = {"device_id": device}
    if prov == "TensorrtExecutionProvider":
        opts.update({"trt_engine_cache_enable": True, "trt_engine_cache_path": str(Path(onnx_path).parent),
                     "trt_cuda_graph_enable": True})
    elif prov == "CUDAExecutionProvider":
        opts.update({"enable_cuda_graph": True})
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=[(prov, opts), "CPUExecutionProvider"])
    active = sess.get_providers()
    if not active or active[0] != prov:
        raise ProviderFallbackError(f"ONNX Runtime ran the session on {active[0] if active else 'nothing'} instead "
                                    f"of {prov} (the provider failed to load; its error is in ORT's log)")
    return sess, opts


def _time_ort_batch(ort, sess, example: np.ndarray, bs: int, cfg: CudaProfileConfig) -> np.ndarray:
    """Host times of ``run_with_iobinding`` at batch ``bs`` with on-device input and output."""
    iname, oname = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    x = np.ascontiguousarray(np.repeat(example[:1], bs, axis=0), dtype=np.float32)
    x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", cfg.device)
    y_dev = ort.OrtValue.ortvalue_from_shape_and_type([bs, *sess.get_outputs()[0].shape[1:]], np.float32, "cuda",
                                                      cfg.device)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(iname, x_dev)
    binding.bind_ortvalue_output(oname, y_dev)
    runs, warm = cfg.runs_for(bs)
    # ORT runs on its own CUDA stream and returns synchronized: host time only (CUDA events on
    # torch's stream would not bracket ORT's kernels).
    return time_calls(lambda: sess.run_with_iobinding(binding), runs=runs, warmup=warm)


def profile_ort_gpu(onnx_path: Path, name: str, example: np.ndarray, cfg: CudaProfileConfig,
                    failures: list[ModeFailure], log: Callable[[str], None]) -> list[LatencyResult]:
    """Time an ONNX file with ONNX Runtime's CUDA / TensorRT providers, when installed.

    Inputs are bound on the device with IOBinding so the timing excludes host copies, like
    the PyTorch modes; each call synchronizes before returning. Each batch size gets its own
    session: with CUDA graphs on, ORT captures one graph per session (``gpu_graph_id`` 0) and
    would replay the first batch size's graph for every later one.
    """
    provs = available_ort_gpu_providers()
    if not provs:
        log(ort_gpu_missing_message())
        return []
    import onnxruntime as ort

    out: list[LatencyResult] = []
    for prov in provs:
        label = f"onnxruntime-{prov.replace('ExecutionProvider', '').lower()}"
        for bs in cfg.batch_sizes:
            try:
                sess, opts = _ort_gpu_session(ort, onnx_path, prov, cfg.device)
                wall = _time_ort_batch(ort, sess, example, bs, cfg)
                del sess
            except Exception as exc:  # noqa: BLE001 - a provider failing must not hide the others
                failures.append(ModeFailure(label, "fp32", bs, f"{type(exc).__name__}: {str(exc)[:300]}"))
                log(f"[cuda] {name} ORT {prov} batch {bs}: failed ({exc})")
                if isinstance(exc, ProviderFallbackError):
                    break  # the provider does not load: the other batch sizes would fall back too
                continue
            r = summarize(wall, model=name, target="cuda", batch_size=bs, warmup=cfg.runs_for(bs)[1], threads=None,
                          timer="host: perf_counter_ns around run_with_iobinding (synchronous); no device time",
                          details={"mode": label, "dtype": "fp32", "clock": "host", "device_time": None,
                                   "onnxruntime": ort.__version__, "provider_options": opts})
            out.append(r)
            log(f"[cuda] {name} ORT {prov} batch {bs}: p50 {r.p50_us:,.1f} µs host")
    return out


def ort_gpu_missing_message() -> str:
    """The one line saying why no ONNX Runtime GPU rows appear, and how to get them."""
    try:
        import onnxruntime as ort

        have = f"onnxruntime {ort.__version__} has only {ort.get_available_providers()}"
    except ImportError:
        have = "onnxruntime is not installed"
    return (f"[cuda] ONNX Runtime GPU rows skipped: {have} (the CPU build edgekd pins); for CUDA/TensorRT "
            "provider rows install the GPU build in its place: pip uninstall -y onnxruntime && "
            "pip install onnxruntime-gpu (the 'gpu' extra names the version)")


__all__ = ["CudaProfile", "CudaProfileConfig", "DTYPES", "MODES", "ModeFailure", "ProviderFallbackError",
           "available_ort_gpu_providers", "cuda_environment", "device_stats", "fastest", "fp32_math_state",
           "make_runner", "nvidia_smi", "ort_gpu_missing_message", "profile_cuda", "profile_ort_gpu",
           "require_cuda", "strict_fp32", "time_cuda"]
