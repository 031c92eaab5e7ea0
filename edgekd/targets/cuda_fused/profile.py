"""Profile target ``cuda-fused``: the generated one-kernel student on an NVIDIA GPU.

Modes (each at every configured batch size, ``num_warps`` and images per program):

* ``fused``        — the Triton launch from Python each call (Triton's launcher overhead included);
* ``fused-graph``  — that single launch captured once in a CUDA graph and replayed;
* ``fused-graph-copies`` — pinned host input → device, replay, device → pinned host output:
  what a caller holding host memory waits for (the "copies" part of the breakdown);
* ``floor-graph``  — one trivial kernel (one store) in a CUDA graph, batch 1 only: the
  launch-and-synchronize floor of this machine, measured the same way.

Two separate loops per mode, so the timer of one does not perturb the other:
host time — ``perf_counter_ns`` from before the call to after ``stream.synchronize()``,
nothing else in the loop (no CUDA events); device time — CUDA events recorded around each
call, in a second loop. Inputs and outputs stay in preallocated device buffers (the copies
mode excepted), so a timed call is one launch or one graph replay and one synchronization.

Without Triton or a CUDA GPU, :func:`profile_cuda_fused` raises :class:`ToolMissingError`
with one line saying which is missing and what to do.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, ToolMissingError
from edgekd.profile.result import LatencyResult, summarize

TARGET = "cuda-fused"
MODES = ("fused", "fused-graph", "fused-graph-copies", "floor-graph")
WHERE = "profile target 'cuda-fused'"


@dataclass
class FusedProfileConfig:
    """What to time. Defaults: every mode, batch 1 plus a throughput sweep to 4096."""

    modes: tuple[str, ...] = MODES
    batch_sizes: tuple[int, ...] = (1, 16, 256, 4096)
    num_warps: tuple[int, ...] = (4, 8)  # at batch 1: one program, so warps are the only parallelism
    large_batch_num_warps: tuple[int, ...] = (4,)
    images_per_program: tuple[int, ...] = (1, 4)  # batch > 1 only; batch 1 always uses 1
    splits: tuple[int, ...] = (1, 8)  # batch 1 only: programs sharing the image (1 = one program)
    runs: int = 2000
    large_batch_runs: int = 100
    warmup: int = 200
    device: int = 0

    def validate(self) -> "FusedProfileConfig":
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ConfigError(f"unknown cuda-fused mode(s) {bad or '[]'}", where="profile.cuda_fused.modes",
                              fix=f"choose from {list(MODES)}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be positive, got {list(self.batch_sizes)}",
                              where="profile.cuda_fused.batch_sizes")
        for key in ("num_warps", "large_batch_num_warps"):
            vals = getattr(self, key)
            if not vals or any(w not in (1, 2, 4, 8, 16, 32) for w in vals):
                raise ConfigError(f"num_warps must be powers of two from 1 to 32, got {list(vals)}",
                                  where=f"profile.cuda_fused.{key}")
        if not self.splits or any(v < 1 for v in self.splits):
            raise ConfigError(f"splits must be positive, got {list(self.splits)}", where="profile.cuda_fused.splits")
        if not self.images_per_program or any(g < 1 or g & (g - 1) for g in self.images_per_program):
            raise ConfigError(f"images_per_program must be powers of two, got {list(self.images_per_program)}",
                              where="profile.cuda_fused.images_per_program")
        if self.runs < 10 or self.large_batch_runs < 3 or self.warmup < 1:
            raise ConfigError("need runs >= 10, large_batch_runs >= 3 and warmup >= 1", where="profile.cuda_fused")
        return self

    def runs_for(self, batch_size: int) -> tuple[int, int]:
        """(timed runs, warm-up calls) for ``batch_size``: fewer at large batches."""
        if batch_size == 1:
            return self.runs, self.warmup
        return self.large_batch_runs, max(3, self.warmup // 10)

    def variants(self, batch_size: int) -> list[tuple[int, int, int]]:
        """(num_warps, images_per_program, split) triples timed at ``batch_size``."""
        if batch_size == 1:
            return [(w, 1, sp) for sp in self.splits for w in self.num_warps]
        return [(w, g, 1) for w in self.large_batch_num_warps for g in self.images_per_program if g <= batch_size]


@dataclass
class FusedFailure:
    """A variant that could not run (compile error, capture error); reported, not fatal."""

    mode: str
    batch_size: int
    num_warps: int
    images_per_program: int
    split: int
    error: str


@dataclass
class FusedProfile:
    """All timings of one student's fused kernel on one GPU."""

    model: str
    results: list[LatencyResult]
    failures: list[FusedFailure]
    environment: dict[str, Any]
    fallback: str | None = None  # the one-line reason when the generator does not cover the model
    fastest: LatencyResult | None = None
    outputs_max_abs_diff: dict[str, float] = field(default_factory=dict)  # per variant vs CPU fp32
    compile_seconds: dict[str, float] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)


def require_fused_gpu(device: int = 0) -> None:
    """Raise :class:`ToolMissingError` (one line) unless Triton imports and a CUDA GPU is visible."""
    from edgekd.targets.cuda_fused.runtime import triton_version

    if triton_version() is None:
        raise ToolMissingError("Triton is not installed", where=WHERE,
                               fix="pip install -e '.[gpu]' on a machine with an NVIDIA GPU, or drop 'cuda-fused' "
                                   "from profile.targets")
    if not torch.cuda.is_available():
        raise ToolMissingError(
            f"no CUDA GPU is visible to PyTorch (torch {torch.__version__}, "
            + (f"built for CUDA {torch.version.cuda})" if torch.version.cuda else "a CPU-only build)"),
            where=WHERE, fix="run on a machine with an NVIDIA GPU, or drop 'cuda-fused' from profile.targets "
                             "(its correctness check runs on CPU in Triton's interpreter)")
    if device >= torch.cuda.device_count():
        raise ToolMissingError(f"CUDA device {device} does not exist ({torch.cuda.device_count()} visible)",
                               where=WHERE, fix="use device 0 or set CUDA_VISIBLE_DEVICES")


def time_host(fn: Callable[[], object], stream: "torch.cuda.Stream", *, runs: int, warmup: int) -> np.ndarray:
    """Seconds per call from before ``fn()`` to after the stream synchronized; nothing else timed."""
    for _ in range(warmup):
        fn()
    stream.synchronize()
    out = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    sync = stream.synchronize
    for i in range(runs):
        t0 = clock()
        fn()
        sync()
        out[i] = clock() - t0
    return out * 1e-9


def time_device(fn: Callable[[], object], stream: "torch.cuda.Stream", *, runs: int, warmup: int) -> np.ndarray:
    """Milliseconds per call between CUDA events recorded around ``fn()`` (a loop of its own)."""
    for _ in range(warmup):
        fn()
    stream.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for i in range(runs):
        starts[i].record(stream)
        fn()
        ends[i].record(stream)
        ends[i].synchronize()  # one call in flight at a time, as in the host loop
    return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)], dtype=np.float64)


def _floor_kernel():
    """A trivial Triton kernel (one store): the launch floor, timed like the fused kernel."""
    import triton
    import triton.language as tl

    @triton.jit
    def _one_store(out_ptr):
        tl.store(out_ptr, 1.0)

    return _one_store


def profile_cuda_fused(model: nn.Module, name: str, example: torch.Tensor,
                       config: FusedProfileConfig | None = None, *,
                       log: Callable[[str], None] | None = None) -> FusedProfile:
    """Time the fused kernel of ``model`` on the GPU in every configured mode and batch size.

    ``example`` is one real (preprocessed) input (1×C×H×W); it is repeated to each batch
    size. Every variant's outputs are compared with the CPU fp32 model. A model the generator
    does not cover returns a profile with no results and ``fallback`` set to the one-line
    reason. Variants that fail are listed in ``failures``; the others still run.
    """
    from edgekd.profile.cuda import cuda_environment, device_stats, fastest
    from edgekd.targets.cuda_fused.codegen import generate, split_point
    from edgekd.targets.cuda_fused.plan import Unsupported, plan_model
    from edgekd.targets.cuda_fused.runtime import FusedKernel

    cfg = (config or FusedProfileConfig()).validate()
    log = log or (lambda msg: None)
    plan = plan_model(model, tuple(example.shape[1:]))
    if isinstance(plan, Unsupported):
        log(f"[cuda-fused] {name}: {plan}")
        return FusedProfile(name, [], [], {}, fallback=str(plan))
    require_fused_gpu(cfg.device)
    dev = torch.device("cuda", cfg.device)
    torch.cuda.set_device(dev)
    env = cuda_environment(cfg.device)
    model = model.eval()
    with torch.no_grad():
        ref = model.cpu().float()(example[:1].float()).numpy()
    results: list[LatencyResult] = []
    failures: list[FusedFailure] = []
    diffs: dict[str, float] = {}
    compile_s: dict[str, float] = {}
    # Everything on the current stream: Triton launches and graph replays go there, and the
    # timers synchronize exactly that stream.
    stream = torch.cuda.current_stream(dev)
    x1 = example[:1].float().reshape(1, -1)
    for bs in cfg.batch_sizes:
        runs, warm = cfg.runs_for(bs)
        for nw, g, split in cfg.variants(bs):
            tag = f"w{nw}/g{g}/s{split}"
            try:
                if split > 1 and split_point(plan) is None:
                    continue  # nothing to split this model over (e.g. an MLP): the unsplit kernel covers it
                gen = generate(plan, nw, g, split=split)
                k = FusedKernel(gen, bs, dev)
                k.x.copy_(x1.repeat(bs, 1))
                t0 = time.perf_counter()
                k.launch()  # compiles on first use (cached by Triton for later batch sizes)
                stream.synchronize()
                compile_s.setdefault(tag, time.perf_counter() - t0)
                got = k.out.reshape(bs, -1).cpu().numpy()
                diffs[f"{tag}/b{bs}"] = float(np.abs(got - ref.reshape(1, -1)).max())
            except Exception as exc:  # noqa: BLE001 - one variant failing must not hide the others
                failures.append(FusedFailure("fused", bs, nw, g, split, f"{type(exc).__name__}: {str(exc)[:300]}"))
                log(f"[cuda-fused] {name} {tag} batch {bs}: failed ({type(exc).__name__}: {str(exc)[:120]})")
                continue
            for mode in cfg.modes:
                if mode == "floor-graph" and (bs != 1 or (nw, g, split) != cfg.variants(1)[0]):
                    continue
                try:
                    fn = _runner(mode, k)
                    wall = time_host(fn, stream, runs=runs, warmup=warm)
                    devt = time_device(fn, stream, runs=runs, warmup=warm)
                except Exception as exc:  # noqa: BLE001
                    failures.append(FusedFailure(mode, bs, nw, g, split, f"{type(exc).__name__}: {str(exc)[:300]}"))
                    log(f"[cuda-fused] {name} {mode} {tag} batch {bs}: failed ({type(exc).__name__})")
                    continue
                details = {"mode": mode, "dtype": "fp32", "num_warps": nw, "images_per_program": g,
                           "split": gen.split,
                           "programs": k.programs, "device_time": device_stats(devt), "gpu": env["gpu"],
                           "torch": torch.__version__, "cuda": torch.version.cuda, "triton": env.get("triton"),
                           "kernel_key": gen.key}
                r = summarize(wall, model=name, target=TARGET, batch_size=bs, warmup=warm, threads=None,
                              timer="host perf_counter_ns from call to stream synchronized (no events in the loop); "
                                    "device time from CUDA events in a separate loop",
                              details=details)
                results.append(r)
                log(f"[cuda-fused] {name} {mode} {tag} batch {bs}: p50 {r.p50_us:,.1f} µs host "
                    f"(p99 {r.p99_us:,.1f}), {details['device_time']['p50_us']:,.1f} µs device, "
                    f"{r.throughput_per_s:,.0f} /s")
    best = fastest([r for r in results if r.details["mode"] != "floor-graph"
                    and r.details["mode"] != "fused-graph-copies"], batch_size=1)
    if best is not None:
        log(f"[cuda-fused] {name}: fastest at batch 1 is {best.details['mode']} "
            f"w{best.details['num_warps']}/split {best.details['split']} at p50 {best.p50_us:,.1f} µs (p99 {best.p99_us:,.1f} µs) on {env['gpu']}")
    return FusedProfile(name, results, failures, env, None, best, diffs, compile_s, plan.describe())


def _runner(mode: str, k) -> Callable[[], object]:
    """The zero-argument callable a mode times (launches only; synchronization is the timer's)."""
    if mode == "fused":
        return k.launch
    if mode == "fused-graph":
        return k.capture()
    if mode == "fused-graph-copies":
        replay = k.capture()
        host_in = torch.empty(k.x.shape, dtype=k.x.dtype, pin_memory=True)
        host_in.copy_(k.x.cpu())
        host_out = torch.empty(k.out.shape, dtype=k.out.dtype, pin_memory=True)

        def call() -> torch.Tensor:
            k.x.copy_(host_in, non_blocking=True)
            replay()
            host_out.copy_(k.out, non_blocking=True)
            return host_out

        return call
    if mode == "floor-graph":
        kern = _floor_kernel()
        buf = torch.zeros(1, device=k.device)
        for _ in range(3):
            kern[(1,)](buf)
        torch.cuda.synchronize(k.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            kern[(1,)](buf)

        def replay_floor() -> None:
            graph.replay()

        replay_floor.graph = graph  # keep alive
        return replay_floor
    raise ConfigError(f"unknown cuda-fused mode '{mode}'", where="profile.cuda_fused.modes", fix=f"choose from {list(MODES)}")


__all__ = ["FusedFailure", "FusedProfile", "FusedProfileConfig", "MODES", "TARGET", "profile_cuda_fused",
           "require_fused_gpu", "time_device", "time_host"]
