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
    assert prof.outputs_max_abs_diff["cuda-graph/fp32"] < 1e-4
    assert prof.environment["gpu"] == torch.cuda.get_device_name(0)
