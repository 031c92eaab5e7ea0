"""The ``cuda`` profiler: what runs without a GPU (arguments, statistics, mode choice, the
missing-GPU message, the benchmark tool's output) and, on a GPU, the real measurement."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.errors import ConfigError, ToolMissingError
from edgekd.nets import create_net
from edgekd.profile import cuda as pc
from edgekd.profile.result import summarize

ROOT = Path(__file__).resolve().parents[1]
HAVE_CUDA = torch.cuda.is_available()


def _res(mode, dtype, bs, p50, p99):
    """A LatencyResult with the given percentiles (built the way the profiler builds them)."""
    samples = np.full(100, p50 * 1e-6)
    samples[-1] = p99 * 1e-6 * 3  # the top 1 % sets p99 between p50 and this
    r = summarize(samples, model="s", target="cuda", batch_size=bs, warmup=1, threads=None, timer="t",
                  details={"mode": mode, "dtype": dtype})
    r.p99_us = p99
    return r


def test_config_validation_names_the_bad_value():
    pc.CudaProfileConfig().validate()
    with pytest.raises(ConfigError, match=r"(?s)unknown CUDA mode\(s\) \['graph'\].*cuda-graph"):
        pc.CudaProfileConfig(modes=("eager", "graph")).validate()
    with pytest.raises(ConfigError, match="unknown precision"):
        pc.CudaProfileConfig(dtypes=("bf16",)).validate()
    with pytest.raises(ConfigError, match="positive"):
        pc.CudaProfileConfig(batch_sizes=(1, 0)).validate()
    with pytest.raises(ConfigError, match="runs >= 10"):
        pc.CudaProfileConfig(runs=5).validate()
    cfg = pc.CudaProfileConfig(runs=1000, warmup=100, large_batch_runs=20)
    assert cfg.runs_for(1) == (1000, 100) and cfg.runs_for(4096) == (20, 10)


def test_device_stats_converts_ms_to_us_percentiles():
    ms = np.arange(1, 101) * 1e-3  # 1 .. 100 µs
    st = pc.device_stats(ms)
    assert st["p50_us"] == pytest.approx(50.5) and st["p90_us"] == pytest.approx(90.1)
    assert st["p99_us"] == pytest.approx(99.01) and st["min_us"] == pytest.approx(1.0)
    assert st["mean_us"] == pytest.approx(50.5)


def test_fastest_mode_selection():
    rs = [_res("eager", "fp32", 1, 234.0, 314.0), _res("cuda-graph", "fp32", 1, 34.2, 47.1),
          _res("cuda-graph", "fp16", 1, 42.2, 49.2), _res("compiled-graph", "fp32", 1, 34.2, 40.0),
          _res("eager", "fp32", 4096, 2700.0, 2900.0)]
    best = pc.fastest(rs)
    assert best.details["mode"] == "compiled-graph"  # same p50 as cuda-graph, lower p99
    assert pc.fastest(rs, batch_size=4096).details["mode"] == "eager"
    assert pc.fastest(rs, key="p99_us").details["mode"] == "compiled-graph"
    assert pc.fastest(rs, batch_size=7) is None and pc.fastest([]) is None


def test_unknown_mode_is_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="unknown CUDA mode 'tensorrt'"):
        pc.make_runner(torch.nn.Identity(), torch.zeros(1), "tensorrt")


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA GPU is present: the missing-GPU path cannot be exercised")
def test_cpu_only_machine_gets_a_clear_tool_missing_error():
    with pytest.raises(ToolMissingError) as ei:
        pc.require_cuda()
    msg = ei.value.message
    assert "no CUDA GPU is visible to PyTorch" in msg and torch.__version__ in msg
    assert "profile target 'cuda'" in msg and "drop 'cuda' from profile.targets" in msg
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    with pytest.raises(ToolMissingError, match="no CUDA GPU"):
        pc.profile_cuda(m, "s", torch.zeros(1, 1, 48, 48))
    with pytest.raises(ToolMissingError):
        pc.cuda_environment()
    # a bad configuration is reported before the missing GPU
    with pytest.raises(ConfigError):
        pc.profile_cuda(m, "s", torch.zeros(1, 1, 48, 48), pc.CudaProfileConfig(modes=("x",)))


def test_onnxruntime_gpu_providers_and_nvidia_smi_detection():
    import onnxruntime as ort

    provs = pc.available_ort_gpu_providers()
    assert provs == [p for p in pc.ORT_GPU_PROVIDERS if p in ort.get_available_providers()]
    smi = pc.nvidia_smi()
    if shutil.which("nvidia-smi") is None:
        assert set(smi) == {"error"} and "nvidia-smi" in smi["error"]
    else:
        assert "name" in smi or "error" in smi


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "tools" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA GPU is present: the tool would really measure")
def test_bench_gpu_tool_fails_cleanly_without_gpu(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert "no CUDA GPU is visible to PyTorch" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_bench_gpu_section_and_replacement(tmp_path):
    mod = _bench_module()
    env = {"gpu": "NVIDIA H200", "compute_capability": "9.0", "sm_count": 132, "torch_cuda": "12.8", "cudnn": 91000,
           "triton": "3.5", "versions": {"torch": "2.13.0"},
           "nvidia_smi": {"driver_version": "580.1", "clocks.sm": "1980 MHz", "clocks.max.sm": "1980 MHz",
                          "persistence_mode": "Enabled"}}
    rs = [_res("eager", "fp32", 1, 234.0, 314.0), _res("compiled-graph", "fp32", 1, 20.0, 25.0),
          _res("cuda-graph", "fp32", 256, 40.0, 50.0)]
    for r in rs:
        r.details["device_time"] = {"p50_us": r.p50_us * 0.7}
    data = {"environment": env, "results": [r.to_dict() for r in rs], "failures": [], "runs": 2000, "warmup": 200,
            "output_diffs": {"eager/fp32": 1e-7}, "command": "python tools/bench_gpu.py --out /tmp/g"}
    sec = mod._section(data)
    assert sec.startswith("<!-- gpu -->") and sec.rstrip().endswith("<!-- /gpu -->")
    assert "**NVIDIA H200**" in sec and "compiled-graph fp32, p50 20.0 µs" in sec
    assert "1.71× the CUDA-graph figure" in sec and "1.38× the FPGA latency" in sec
    assert "| 256 | cuda-graph | fp32 | 40.0 | 6,400,000 |" in sec
    bm = tmp_path / "BENCHMARKS.md"
    bm.write_text("# Benchmarks\n\n<!-- qat -->\nQAT\n<!-- /qat -->\n\n<!-- gpu -->\nold\n<!-- /gpu -->\n\nrest\n")
    mod.write_section(sec, bm)
    text = bm.read_text()
    assert "old" not in text and "QAT" in text and text.count("<!-- gpu -->") == 1 and text.endswith("rest\n")
    bm2 = tmp_path / "B2.md"
    mod.write_section(sec, bm2)
    assert bm2.read_text().startswith("# Benchmarks\n\n<!-- gpu -->")


@pytest.mark.skipif(not HAVE_CUDA, reason="needs a CUDA GPU (this machine has none)")
def test_profile_on_gpu_times_every_mode_and_picks_the_fastest():
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    x = torch.randn(1, 1, 48, 48)
    cfg = pc.CudaProfileConfig(modes=("eager", "cuda-graph"), dtypes=("fp32",), batch_sizes=(1, 64), runs=50,
                               warmup=10, large_batch_runs=5, ort_providers=False)
    prof = pc.profile_cuda(m, "s", x, cfg)
    assert not prof.failures and len(prof.results) == 4
    assert prof.fastest is not None and prof.fastest.batch_size == 1
    assert all(r.details["device_time"]["p50_us"] > 0 for r in prof.results)
    assert prof.outputs_max_abs_diff["cuda-graph/fp32"] < 1e-4  # TF32 off: true float32
    assert all(set(r.details["fp32_math"].values()) <= {"ieee", False} for r in prof.results)
    assert all(r.clock == "host" for r in prof.results)
    assert prof.environment["gpu"] == torch.cuda.get_device_name(0)


# -- issue 16: what the GPU path does, checked on the CPU with stand-ins for CUDA and ORT ----

@pytest.fixture
def cpu_as_gpu(monkeypatch):
    """profile_cuda on the CPU: the device is the CPU, CUDA calls are no-ops, and timing only
    records, per call, the output dtype and the TF32 settings in force."""
    seen = []

    def fake_time_cuda(fn, *, runs, warmup):
        out = fn()
        seen.append((out.dtype, pc.fp32_math_state()))
        return np.full(runs, 30e-6), np.full(runs, 0.02)

    monkeypatch.setattr(pc, "require_cuda", lambda device=0: None)
    monkeypatch.setattr(pc, "cuda_environment", lambda device=0: {"gpu": "stand-in"})
    monkeypatch.setattr(pc, "_device", lambda cfg: torch.device("cpu"), raising=False)
    monkeypatch.setattr(pc, "time_cuda", fake_time_cuda)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    return seen


def test_profile_leaves_the_callers_model_untouched(cpu_as_gpu):
    """It used to cast the caller's model to fp16 in place and back, leaving FP16-rounded weights."""
    torch.manual_seed(0)
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    cfg = pc.CudaProfileConfig(modes=("eager",), dtypes=("fp32", "fp16"), batch_sizes=(1, 4), runs=10, warmup=1,
                               large_batch_runs=3, ort_providers=False)
    prof = pc.profile_cuda(m, "s", torch.randn(1, 1, 48, 48), cfg)
    assert len(prof.results) == 4 and not prof.failures
    assert m.training  # not switched to eval mode either
    for k, v in m.state_dict().items():
        assert v.dtype == before[k].dtype and v.device.type == "cpu"
        assert torch.equal(v, before[k]), f"{k} changed by profiling"
    assert prof.outputs_max_abs_diff["eager/fp32"] < 1e-5 and prof.outputs_max_abs_diff["eager/fp16"] < 5e-2


def test_fp32_rows_run_without_tf32_and_the_setting_is_restored(cpu_as_gpu):
    original = pc.fp32_math_state()
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    cfg = pc.CudaProfileConfig(modes=("eager",), dtypes=("fp32", "fp16"), batch_sizes=(1,), runs=10, warmup=1,
                               ort_providers=False)
    prof = pc.profile_cuda(m, "s", torch.randn(1, 1, 48, 48), cfg)
    by_dtype = {dt: state for dt, state in cpu_as_gpu}
    assert set(by_dtype[torch.float32].values()) <= {"ieee", False}, by_dtype[torch.float32]
    assert by_dtype[torch.float16] == original  # only fp32 rows change the setting
    assert pc.fp32_math_state() == original  # restored
    fp32_row = [r for r in prof.results if r.details["dtype"] == "fp32"][0]
    assert set(fp32_row.details["fp32_math"].values()) <= {"ieee", False}


def test_host_time_loop_has_no_cuda_events_in_it(monkeypatch):
    """Host latency is timed in its own loop; event records (a few µs each) stay out of it."""
    import time as _time
    from types import SimpleNamespace

    trace = []

    class Event:
        def __init__(self, enable_timing=False):
            pass

        def record(self):
            trace.append("record")

        def synchronize(self):
            trace.append("event-sync")

        def elapsed_time(self, other):
            return 0.025

    ticks = iter(range(10**6))
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: trace.append("device-sync"))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: SimpleNamespace(
        synchronize=lambda: trace.append("stream-sync")))
    monkeypatch.setattr(_time, "perf_counter_ns", lambda: trace.append("clock") or next(ticks) * 1000)
    wall, dev = pc.time_cuda(lambda: trace.append("call"), runs=5, warmup=2)
    assert len(wall) == len(dev) == 5 and np.allclose(dev, 0.025)
    clocks = [i for i, t in enumerate(trace) if t == "clock"]
    assert len(clocks) == 10  # one pair per host-timed call
    for a, b in zip(clocks[::2], clocks[1::2]):
        assert trace[a + 1 : b] == ["call", "stream-sync"], trace[a : b + 1]
    assert trace.count("record") == 10 and trace.count("call") == 2 + 5 + 5


class _FakeOrt:
    """An onnxruntime module with GPU providers: sessions record each input shape they run, and
    ``fallback`` names providers that 'fail to load' (ORT then runs the session on the CPU)."""

    __version__ = "1.31.1-gpu-standin"

    def __init__(self, fallback=()):
        from types import SimpleNamespace

        self.sessions, self.fallback = [], set(fallback)
        self.SessionOptions = lambda: SimpleNamespace()
        self.GraphOptimizationLevel = SimpleNamespace(ORT_ENABLE_ALL=99)
        self.OrtValue = SimpleNamespace(ortvalue_from_numpy=lambda x, dev, i: SimpleNamespace(shape=x.shape),
                                        ortvalue_from_shape_and_type=lambda s, t, dev, i: SimpleNamespace(shape=s))
        ort = self

        class Session:
            def __init__(self, path, sess_options=None, providers=()):
                self.requested, self.shapes = providers[0][0], []
                ort.sessions.append(self)

            def get_providers(self):
                if self.requested in ort.fallback:
                    return ["CPUExecutionProvider"]
                return [self.requested, "CPUExecutionProvider"]

            def get_inputs(self):
                return [SimpleNamespace(name="input", shape=["batch", 1, 48, 48])]

            def get_outputs(self):
                return [SimpleNamespace(name="logits", shape=["batch", 2])]

            def io_binding(self):
                b = SimpleNamespace()
                b.bind_ortvalue_input = lambda name, v: setattr(b, "x", v)
                b.bind_ortvalue_output = lambda name, v: setattr(b, "y", v)
                return b

            def run_with_iobinding(self, b):
                self.shapes.append(tuple(b.x.shape))

        self.InferenceSession = Session

    @staticmethod
    def get_available_providers():
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def _ort_cfg():
    return pc.CudaProfileConfig(batch_sizes=(1, 16, 256), runs=10, warmup=2, large_batch_runs=3)


def test_ort_cuda_graphs_get_one_session_per_batch_size(monkeypatch, tmp_path):
    """One captured CUDA graph per session: a session reused across batch sizes would replay batch 1."""
    fake = _FakeOrt()
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    failures, lines = [], []
    rows = pc.profile_ort_gpu(tmp_path / "m.onnx", "s", np.zeros((1, 1, 48, 48), np.float32), _ort_cfg(),
                              failures, lines.append)
    assert not failures and len(rows) == 6
    assert len(fake.sessions) == 6
    for sess in fake.sessions:
        assert len(set(sess.shapes)) == 1, f"{sess.requested} session ran shapes {sorted(set(sess.shapes))}"
    assert sorted((r.details["mode"], r.batch_size) for r in rows) == sorted(
        (m, b) for m in ("onnxruntime-tensorrt", "onnxruntime-cuda") for b in (1, 16, 256))
    assert all(r.details["clock"] == "host" and r.details["device_time"] is None for r in rows)


def test_ort_provider_that_fell_back_to_cpu_is_a_failure_not_a_row(monkeypatch, tmp_path):
    fake = _FakeOrt(fallback={"TensorrtExecutionProvider"})
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    failures, lines = [], []
    rows = pc.profile_ort_gpu(tmp_path / "m.onnx", "s", np.zeros((1, 1, 48, 48), np.float32), _ort_cfg(),
                              failures, lines.append)
    assert {r.details["mode"] for r in rows} == {"onnxruntime-cuda"}  # no CPU timings labelled TensorRT
    (f,) = failures
    assert f.mode == "onnxruntime-tensorrt" and "CPUExecutionProvider instead of TensorrtExecutionProvider" in f.error


def test_missing_ort_gpu_providers_are_reported_in_one_line(tmp_path):
    """The CPU build (what this machine has) gives no GPU rows; the profiler now says why."""
    import onnxruntime as ort

    if pc.available_ort_gpu_providers():
        pytest.skip(f"this onnxruntime has GPU providers: {ort.get_available_providers()}")
    failures, lines = [], []
    rows = pc.profile_ort_gpu(tmp_path / "m.onnx", "s", np.zeros((1, 1, 48, 48), np.float32), _ort_cfg(),
                              failures, lines.append)
    assert rows == [] and failures == []
    (line,) = lines
    assert "ONNX Runtime GPU rows skipped" in line and ort.__version__ in line and "onnxruntime-gpu" in line


def test_gpu_extra_installs_onnxruntime_gpu():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = meta["optional-dependencies"]["gpu"]
    assert any(d.startswith("onnxruntime-gpu==") for d in gpu), gpu
    assert any(d.startswith("onnxruntime==") for d in meta["dependencies"])  # the CPU build stays the default


def test_bench_gpu_dry_run_says_what_it_would_skip_and_why(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py"), "--out", str(tmp_path / "o"),
                        "--dry-run"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    skips = [line for line in r.stdout.splitlines() if line.startswith("would skip: ")]
    runs = [line for line in r.stdout.splitlines() if line.startswith("would run: ")]
    assert skips and all(": " in line[len("would skip: "):] for line in skips)  # each with its reason
    if not HAVE_CUDA:
        assert any("every GPU measurement: no CUDA GPU is visible to PyTorch" in line for line in skips)
        assert not any(line.startswith("would run:  cuda:") for line in runs)
    if not pc.available_ort_gpu_providers():
        assert any("ONNX Runtime GPU rows skipped" in line and "onnxruntime-gpu" in line for line in skips)
    if importlib.util.find_spec("tensorrt") is None:
        assert any(line.startswith("would skip: TensorRT engines: tensorrt is not importable") for line in skips)
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_bench_gpu_section_labels_host_and_device_clocks(tmp_path):
    """TensorRT rows (trtexec GPU Compute Time: device) and cuda rows (host, with device) side by side."""
    from edgekd.profile.trtexec import parse_trtexec_log, to_latency_result

    mod = _bench_module()
    env = {"gpu": "NVIDIA H200", "compute_capability": "9.0", "sm_count": 132, "torch_cuda": "12.8", "cudnn": 91000,
           "triton": "3.5", "versions": {"torch": "2.13.0"}, "nvidia_smi": {}}
    cuda_row = _res("cuda-graph", "fp32", 1, 30.0, 35.0)
    cuda_row.details["device_time"] = {"p50_us": 6.0}
    ort_row = _res("onnxruntime-cuda", "fp32", 1, 60.0, 70.0)
    ort_row.details["device_time"] = None
    log = ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --loadEngine=x --useCudaGraph\n"
           "[11/28/2026-09:14:03] [I] === Performance summary ===\n[11/28/2026-09:14:03] [I] GPU Compute Time: min = 0.004 ms, max = 0.006 ms, mean = 0.005 ms, median = 0.005 ms, "
           "percentile(90%) = 0.0055 ms, percentile(95%) = 0.0058 ms, percentile(99%) = 0.006 ms\n")
    trt_row = to_latency_result(parse_trtexec_log(log), model="s", batch_size=1, environment={"precision": "int8"})
    assert trt_row.clock == "device" and cuda_row.clock == "host"
    data = {"environment": env, "results": [r.to_dict() for r in (cuda_row, ort_row, trt_row)], "failures": [],
            "runs": 2000, "warmup": 200, "output_diffs": {}, "command": "c", "skipped": ["x: because y"]}
    sec = mod._section(data)
    assert "| cuda-graph | fp32 | host | 30.0 |" in sec and "| 30.0 | 6.0 |" in sec  # both clocks given
    assert "| tensorrt (trtexec) | int8 | device | 5.0 |" in sec and "| — | 5.0 |" in sec
    assert "| onnxruntime-cuda | fp32 | host | 60.0 |" in sec and "| 60.0 | — |" in sec and "nan" not in sec
    assert "Fastest at batch 1 (host time): **cuda-graph fp32, p50 30.0 µs**" in sec  # not the 5 µs device figure
    assert "Skipped: x: because y" in sec
