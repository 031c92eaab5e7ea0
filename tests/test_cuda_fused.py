"""Target ``cuda-fused``: the plan (what is covered, BatchNorm folding, one-line fallbacks), the
generated kernel against PyTorch in Triton's interpreter on CPU (several architectures, batch
sizes 1, 3, 17), the artifact's fidelity record, the Hopper build of the same source, and the
profiler's behaviour without a GPU. Kernel tests skip only when Triton cannot be imported."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, ToolMissingError
from edgekd.nets import create_net
from edgekd.targets.cuda_fused import (ConvStage, DenseStage, FusedPlan, PoolStage, Unsupported, check_fused,
                                       export_cuda_fused, generate, plan_model, run_fused)
from edgekd.targets.cuda_fused import profile as fp

ROOT = Path(__file__).resolve().parents[1]
HAVE_TRITON = importlib.util.find_spec("triton") is not None
HAVE_CUDA = torch.cuda.is_available()
needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="Triton is not installed (pip install -e '.[test]')")


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.2)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


def study_cnn() -> tuple[nn.Module, tuple[int, int, int]]:
    torch.manual_seed(0)
    return create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48).eval(), (1, 48, 48)


def strided_cnn() -> tuple[nn.Module, tuple[int, int, int]]:
    """Strides, zero padding, BatchNorm, a 3×3/2 max pool, a ReLU'd dense head."""
    torch.manual_seed(1)
    m = nn.Sequential(
        nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2),
        nn.Flatten(), nn.Linear(12 * 2 * 2, 10), nn.ReLU(), nn.Dropout(0.2), nn.Linear(10, 3))
    return _randomize_bn(m, 1), (2, 21, 21)


def avgpool_cnn() -> tuple[nn.Module, tuple[int, int, int]]:
    """'same' padding, a dilated non-square kernel, avg pools (one after ReLU, one adaptive global),
    BatchNorm without conv bias, nested Sequential."""
    torch.manual_seed(2)
    m = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 6, 3, padding="same"), nn.ReLU(), nn.AvgPool2d(2)),
        nn.Conv2d(6, 5, (3, 2), dilation=(1, 2), bias=False), nn.BatchNorm2d(5), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4))
    return _randomize_bn(m, 2), (3, 14, 12)


def mlp_student() -> tuple[nn.Module, tuple[int, int, int]]:
    torch.manual_seed(3)
    return create_net("mlp", num_classes=2, in_channels=1, input_size=48).eval(), (1, 48, 48)


ARCHS = {"study-cnn": study_cnn, "strided": strided_cnn, "avgpool": avgpool_cnn, "mlp": mlp_student}


def held_out(shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    """Held-out inputs: real synthetic cell images for 1×48×48, seeded noise otherwise."""
    if shape == (1, 48, 48):
        from edgekd.config.schema import NormalizeConfig
        from edgekd.data import synthetic
        from edgekd.data.views import make_view

        images, _ = synthetic.generate(n, seed=1000 + seed, classes=(0, 1))
        return make_view(images, 48, NormalizeConfig())
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------
# Plan: coverage, folding, fallbacks (no Triton needed)
# ---------------------------------------------------------------------------------------

def test_plan_of_the_study_student():
    m, shape = study_cnn()
    plan = plan_model(m, shape)
    assert isinstance(plan, FusedPlan)
    assert [type(s) for s in plan.stages] == [ConvStage, ConvStage, DenseStage]
    c1, c2, fc = plan.stages
    assert c1.relu_before_pool and c1.pool.kind == "max" and c1.out_shape == (16, 23, 23)
    assert c2.out_shape == (16, 10, 10) and fc.fin == 1600 and fc.fout == 2 and not fc.relu
    assert plan.params == 5682 and plan.macs == 1_323_968  # 304,704 + 1,016,064 + 3,200
    assert plan.out_shape == (2,)


def test_batchnorm_is_folded_into_the_conv_and_linear_weights():
    m, shape = strided_cnn()
    plan = plan_model(m, shape)
    assert isinstance(plan, FusedPlan) and "BatchNorm2d '1' folded into Conv2d '0'" in plan.notes
    c1 = plan.stages[0]
    x = torch.randn(2, *shape)
    ref = m[1](m[0](x))  # conv then BN (eval)
    folded = nn.functional.conv2d(x, torch.from_numpy(c1.weight), torch.from_numpy(c1.bias), stride=2, padding=1)
    assert torch.allclose(folded, ref, atol=1e-5)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.BatchNorm1d(5), nn.ReLU())
    _randomize_bn(lin, 5)
    p2 = plan_model(lin, (3, 2, 2))
    assert isinstance(p2, FusedPlan) and p2.stages[0].relu and "BatchNorm1d '2' folded into Linear '1'" in p2.notes
    d = p2.stages[0]
    xin = torch.randn(4, 3, 2, 2)
    got = torch.relu(xin.flatten(1) @ torch.from_numpy(d.weight).T + torch.from_numpy(d.bias))
    assert torch.allclose(got, lin(xin), atol=1e-5)


@pytest.mark.parametrize("model, shape, layer, words", [
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)), (4, 8, 8), "0",
     "grouped convolution"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.LeakyReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)), (1, 8, 8), "1",
     "LeakyReLU is not generated"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 2)), (1, 8, 8),
     "2", "does not directly follow"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(36, 2)), (1, 8, 8),
     "1", "ceil_mode"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(6, 2)), (1, 8, 8), "1", "put nn.Flatten() before it"),
    (nn.Sequential(nn.Conv2d(1, 4, 3, padding_mode="reflect", padding=1), nn.Flatten()), (1, 8, 8), "0",
     "padding_mode 'reflect'"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 2), nn.Softmax(dim=1)), (1, 8, 8), "2", "Softmax is not generated"),
])
def test_uncovered_layers_give_one_line_reasons(model, shape, layer, words):
    r = plan_model(model, shape)
    assert isinstance(r, Unsupported) and r.layer == layer and words in r.reason
    assert "\n" not in str(r) and str(r).startswith(f"cuda-fused does not cover layer '{layer}'")


def test_non_sequential_and_quantized_students_fall_back():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x.flatten(1)) * 2

    r = plan_model(Custom(), (1, 2, 2))
    assert isinstance(r, Unsupported) and "not an nn.Sequential chain" in r.reason and r.layer == "Custom"
    q = create_net("cellsort-cnn-q", num_classes=2, in_channels=1, input_size=48)
    r = plan_model(q, (1, 48, 48))
    assert isinstance(r, Unsupported) and "is not generated" in r.reason, r


def test_export_of_an_uncovered_model_is_a_failed_artifact_with_the_reason(tmp_path):
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(72, 2))
    a = export_cuda_fused(m, "tanh", torch.randn(2, 1, 8, 8), tmp_path)
    assert a.status == "failed" and not a.deployable and a.fidelity is None
    assert a.error == "cuda-fused does not cover layer '1': Tanh is not generated (covered: Conv2d, BatchNorm " \
                      "folded into it, ReLU, MaxPool2d, AvgPool2d, adaptive pools with equal windows, Flatten, " \
                      "Linear, Dropout/Identity)"
    assert not list(tmp_path.iterdir())  # no kernel written


def test_generated_source_is_literal_shaped_and_weights_packed():
    m, shape = study_cnn()
    gen = generate(plan_model(m, shape), num_warps=4)
    assert gen.weights.dtype == np.float32 and gen.weights.size >= 5682
    assert gen.in_numel == 2304 and gen.out_shape == (2,) and gen.images_per_program == 1
    assert gen.scratch_per_program == 8480 + 1600  # pool1 (8,464) and pool2 (1,600) maps, 128-byte rounded
    src = gen.source
    assert src.count("@triton.jit") == 1 and "def fused_student(x_ptr, w_ptr, out_ptr, scratch_ptr, part_ptr, cnt_ptr, B)" in src
    assert src.count("tl.debug_barrier()") == 3 and "tl.dot" not in src  # fp32 FMAs, never TF32
    assert "x_base = x_ptr + img * 2304" in src
    assert generate(plan_model(m, shape), num_warps=4).key == gen.key  # deterministic
    assert generate(plan_model(m, shape), num_warps=8).key != gen.key
    with pytest.raises(ValueError, match="power of two"):
        generate(plan_model(m, shape), images_per_program=3)


# ---------------------------------------------------------------------------------------
# Interpreter: the kernel equals the model
# ---------------------------------------------------------------------------------------

@needs_triton
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("batch", [1, 3, 17])
def test_interpreter_matches_pytorch(arch, batch):
    m, shape = ARCHS[arch]()
    plan = plan_model(m, shape)
    assert isinstance(plan, FusedPlan), plan
    x = held_out(shape, batch, seed=batch)
    chk = check_fused(m, plan, x)
    assert chk.outputs.shape == chk.reference.shape == (batch, *plan.out_shape)
    assert np.abs(chk.outputs - chk.reference).max() <= 1e-5
    assert (chk.outputs.argmax(1) == chk.reference.argmax(1)).all()


@needs_triton
def test_the_batch1_latency_kernel_itself_matches_in_the_interpreter():
    """The exact source a GPU runs at batch 1 (4 warps, register-sized blocks, one image per
    program), on a persistent grid of one program looping over 2 images so the image loop and
    the scratch reuse between images are exercised too."""
    m, shape = study_cnn()
    gen = generate(plan_model(m, shape), num_warps=4, images_per_program=1)
    x = held_out(shape, 2, seed=7)
    out = run_fused(gen, x, programs=1)
    ref = m(x).detach().numpy()
    assert np.abs(out - ref).max() <= 1e-5 and (out.argmax(1) == ref.argmax(1)).all()


@needs_triton
@pytest.mark.parametrize("arch, split, launches", [("study-cnn", 2, 1), ("avgpool", 3, 2)])
def test_an_image_split_over_programs_matches_and_resets_its_counter(arch, split, launches):
    """Batch-1 latency variant: one image over several programs (last conv's channels split,
    the last to arrive sums the dense partials). Two launches: the arrival counter must be back
    at 0 after each, or the second launch would never finish the head."""
    from edgekd.targets.cuda_fused import FusedKernel
    from edgekd.targets.cuda_fused.export import INTERPRETER_BLOCK_ELEMS

    m, shape = ARCHS[arch]()
    gen = generate(plan_model(m, shape), num_warps=4, block_elems=INTERPRETER_BLOCK_ELEMS, split=split)
    assert gen.split == split and gen.source.count("tl.atomic_add(cnt_ptr + grp, 1") == 1
    k = FusedKernel(gen, 1, "cpu")
    assert k.grid == (split,)
    x = held_out(shape, 1, seed=3)
    ref = m(x).detach().numpy()
    for _ in range(launches):
        out = k(x).numpy()
        assert np.abs(out - ref).max() <= 1e-5 and (out.argmax(1) == ref.argmax(1)).all()
        assert k.counters.tolist() == [0]


def test_split_is_refused_where_there_is_nothing_to_split():
    m, shape = mlp_student()
    with pytest.raises(ValueError, match="split needs a conv stage"):
        generate(plan_model(m, shape), split=4)


@needs_triton
def test_artifact_with_fidelity_record(tmp_path):
    m, shape = avgpool_cnn()
    x = held_out(shape, 5, seed=11)
    a = export_cuda_fused(m, "avg", x, tmp_path, inputs_desc="5 seeded held-out inputs")
    assert a.target == "cuda-fused" and a.format == "triton" and a.status == "ok", a.error or a.fidelity
    assert a.path.read_text().startswith("import triton") and a.path.name == "avg.cuda_fused.py"
    assert np.load(tmp_path / "avg.cuda_fused.weights.npy").size == a.metadata["weights_fp32"]
    f = a.fidelity
    assert f.passed and f.n_inputs == 5 and f.max_abs_diff <= 1e-5 and f.argmax_agreement == 1.0
    assert f.thresholds == {"max_abs_diff": 1e-5, "argmax_agreement": 1.0}
    assert "Triton interpreter" in f.notes and a.metadata["checked_on"] == "cpu (Triton interpreter)"
    assert a.metadata["written_kernel_max_abs_diff"] <= 1e-5 and "the written kernel itself" in f.notes
    assert a.metadata["num_warps"] == 4 and a.metadata["images_per_program"] == 1
    assert (tmp_path / "avg.cuda_fused.json").exists()


@needs_triton
def test_a_wrong_kernel_fails_its_fidelity_check():
    """The check can fail: a plan whose folded weights are off by 1e-3 in one place."""
    from edgekd.export.artifact import FidelityRecord

    m, shape = mlp_student()
    plan = plan_model(m, shape)
    plan.stages[-1].bias = plan.stages[-1].bias + np.float32(1e-3)
    chk = check_fused(m, plan, held_out(shape, 3, seed=5))
    fid = FidelityRecord.compare(chk.outputs, chk.reference, reference="pytorch", inputs="3", max_abs=1e-5,
                                 min_agreement=1.0)
    assert not fid.passed and fid.max_abs_diff == pytest.approx(1e-3, rel=1e-2)


def _cuda_backend_usable() -> bool:
    if not HAVE_TRITON:
        return False
    import triton

    return (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists()


@pytest.mark.skipif(not _cuda_backend_usable(), reason="Triton without its NVIDIA backend (ptxas)")
def test_the_same_source_builds_for_hopper_without_spills(tmp_path):
    """Compile the batch-1 kernel for sm_90 ahead of time (no GPU needed): registers, no spills."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from edgekd.targets.cuda_fused.runtime import load_kernel

    m, shape = study_cnn()
    gen = generate(plan_model(m, shape), num_warps=4)
    k = load_kernel(gen, interpret=False)
    sig = {"x_ptr": "*fp32", "w_ptr": "*fp32", "out_ptr": "*fp32", "scratch_ptr": "*fp32", "part_ptr": "*fp32",
           "cnt_ptr": "*i32", "B": "i32"}
    c = triton.compile(ASTSource(fn=k, signature=sig, constexprs={}), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": 4})
    assert ".target sm_90" in c.asm["ptx"] and c.asm["cubin"][:4] == b"\x7fELF"
    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if cuobjdump.exists():
        cubin = tmp_path / "k.cubin"
        cubin.write_bytes(c.asm["cubin"])
        use = subprocess.run([str(cuobjdump), "--dump-resource-usage", str(cubin)], capture_output=True,
                             text=True, timeout=60).stdout
        assert "STACK:0" in use and "LOCAL:0" in use, use  # no register spills


# ---------------------------------------------------------------------------------------
# Profiler and benchmark tool without a GPU
# ---------------------------------------------------------------------------------------

def test_profile_config_validation_names_the_bad_value():
    fp.FusedProfileConfig().validate()
    with pytest.raises(ConfigError, match=r"unknown cuda-fused mode\(s\) \['graph'\]"):
        fp.FusedProfileConfig(modes=("fused", "graph")).validate()
    with pytest.raises(ConfigError, match="num_warps"):
        fp.FusedProfileConfig(num_warps=(3,)).validate()
    with pytest.raises(ConfigError, match="images_per_program"):
        fp.FusedProfileConfig(images_per_program=(6,)).validate()
    with pytest.raises(ConfigError, match="splits"):
        fp.FusedProfileConfig(splits=(0,)).validate()
    cfg = fp.FusedProfileConfig(num_warps=(4, 8), large_batch_num_warps=(4,), images_per_program=(1, 4, 8),
                                splits=(1, 8))
    assert cfg.variants(1) == [(4, 1, 1), (8, 1, 1), (4, 1, 8), (8, 1, 8)]
    assert cfg.variants(4) == [(4, 1, 1), (4, 4, 1)]
    assert cfg.variants(4096) == [(4, 1, 1), (4, 4, 1), (4, 8, 1)] and cfg.runs_for(1) == (2000, 200)


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA GPU is present: the missing-GPU path cannot be exercised")
def test_profiler_without_a_gpu_is_one_clear_line():
    m, shape = study_cnn()
    with pytest.raises(ToolMissingError) as ei:
        fp.profile_cuda_fused(m, "s", torch.zeros(1, *shape))
    msg = ei.value.message
    assert msg.startswith("profile target 'cuda-fused': ")
    assert ("no CUDA GPU is visible to PyTorch" in msg) or ("Triton is not installed" in msg)
    assert msg.count("\n") == 1  # what, then the fix
    # an uncovered model is reported as a fallback before any GPU is needed
    r = fp.profile_cuda_fused(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Sigmoid()), "x", torch.zeros(1, 1, 2, 2))
    assert r.results == [] and r.fallback == "cuda-fused does not cover layer '2': Sigmoid is not generated " \
                                             "(covered: Conv2d, BatchNorm folded into it, ReLU, MaxPool2d, " \
                                             "AvgPool2d, adaptive pools with equal windows, Flatten, Linear, " \
                                             "Dropout/Identity)"


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA GPU is present: the tool would really measure")
def test_bench_gpu_dry_run_says_what_would_run_and_what_is_skipped(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py"), "--out", str(tmp_path / "o"),
                        "--dry-run"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "dry run" in out and "cuda-fused" in out and "cuda:" in out
    assert "skipped: no CUDA GPU is visible to PyTorch" in out
    if HAVE_TRITON:
        assert "plan: conv 1->16 k3x3" in out and "fused-graph" in out
    assert not (tmp_path / "o").exists() and "Traceback" not in r.stderr


@pytest.mark.skipif(not HAVE_CUDA or not HAVE_TRITON, reason="needs a CUDA GPU and Triton (this machine has none)")
def test_profile_on_gpu_times_the_fused_kernel():
    m, shape = study_cnn()
    x = held_out(shape, 1, seed=0)
    cfg = fp.FusedProfileConfig(batch_sizes=(1, 64), num_warps=(4,), images_per_program=(1,), splits=(1, 4),
                                runs=50, warmup=10, large_batch_runs=5)
    prof = fp.profile_cuda_fused(m, "s", x, cfg)
    assert not prof.failures, prof.failures
    assert {r.details["mode"] for r in prof.results} == set(fp.MODES)
    assert all(r.details["device_time"]["p50_us"] > 0 for r in prof.results)
    assert max(prof.outputs_max_abs_diff.values()) <= 1e-5
    assert prof.fastest is not None and prof.fastest.batch_size == 1


def test_triton_comes_with_the_pinned_torch():
    """The interpreter tests need Triton: on Linux the pinned torch requires it (no separate pin to clash)."""
    import importlib.metadata as md
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("torch==") for d in deps)
    assert any(r.startswith("triton") and "Linux" in r for r in (md.requires("torch") or []))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(d.startswith("triton") for group in extras.values() for d in group)


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "tools" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_gpu_fused_section_puts_modes_side_by_side_with_the_breakdown(tmp_path):
    """Section text from made-up numbers (never presented as measurements): layout and arithmetic."""
    import json

    from edgekd.profile.result import summarize

    def res(target, mode, bs, p50, dev, **extra):
        r = summarize(np.full(50, p50 * 1e-6), model="cellsort-cnn", target=target, batch_size=bs, warmup=1,
                      threads=None, timer="t", details={"mode": mode, "dtype": "fp32", "device_time": {"p50_us": dev},
                                                        **extra})
        return r.to_dict()

    env = {"gpu": "GPU-X", "compute_capability": "9.0", "sm_count": 132, "torch_cuda": "13.0", "cudnn": 1,
           "triton": "3.6.0", "versions": {"torch": "2.11.0"}, "nvidia_smi": {"driver_version": "580"}}
    f = {"num_warps": 4, "images_per_program": 1, "split": 1}
    data = {"runs": 2000, "warmup": 200, "environment": env, "output_diffs": {"cuda-graph/fp32": 1e-7},
            "results": [res("cuda", "eager", 1, 200.0, 20.0), res("cuda", "cuda-graph", 1, 30.0, 20.0)],
            "failures": [], "command": "python tools/bench_gpu.py --out /tmp/x",
            "fused": {"environment": env, "failures": [], "fallback": None, "plan": ["conv a", "dense b"],
                      "output_diffs": {"w4/g1/s1/b1": 2e-7}, "compile_seconds": {"w4/g1/s1": 3.0},
                      "results": [res("cuda-fused", "fused", 1, 40.0, 8.0, **f),
                                  res("cuda-fused", "fused-graph", 1, 20.0, 8.0, **f),
                                  res("cuda-fused", "fused-graph-copies", 1, 26.0, 12.0, **f),
                                  res("cuda-fused", "floor-graph", 1, 11.0, 2.0, **f),
                                  res("cuda-fused", "fused-graph", 4096, 2048.0, 2000.0, **f)]}}
    mod = _bench_module()
    sec = mod._fused_section(data)
    assert sec.startswith("<!-- gpu-fused -->") and sec.rstrip().endswith("<!-- /gpu-fused -->")
    assert "| PyTorch cuda-graph | 30.0 |" in sec and "| cuda-fused fused-graph (4 warps) | 20.0 |" in sec
    assert "| floor: one trivial kernel, CUDA graph | 11.0 |" in sec
    assert "p50 20.0 µs** host-timed (4 warps, split 1) — goal ≤ 14.5 µs (the study's FPGA): not reached" in sec
    assert "launch + synchronize floor 11.0 µs" in sec and "fused graph minus floor 9.0 µs" in sec
    assert "pinned copies in and out 6.0 µs" in sec
    assert "| 4,096 | fused-graph | 4 | 1 | 2,048.0 | 2,000.0 | 2,000,000 |" in sec
    assert "goal ≥ 1,000,000: reached" in sec
    p = tmp_path / "results.json"
    p.write_text(json.dumps(data))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gpu.py"), "--from-json", str(p), "--no-write"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "<!-- gpu -->" in r.stdout and "<!-- gpu-fused -->" in r.stdout, r.stderr


@needs_triton
def test_profile_loop_runs_end_to_end_with_the_gpu_calls_stubbed(monkeypatch):
    """The profiler's own loop (variants, fidelity per variant, two timing loops, results,
    fastest) on a tiny student, with the GPU-only calls replaced by CPU stand-ins (the kernel
    runs in the interpreter, device times are made up): catches mistakes in code that would
    otherwise first run on a rented GPU. No figure from here is a measurement."""
    import edgekd.profile.cuda as pc
    import edgekd.targets.cuda_fused.runtime as rt

    class Stream:
        def synchronize(self):
            pass

    class CpuKernel(rt.FusedKernel):
        def __init__(self, gen, batch_size, device="cpu", programs=None):
            super().__init__(gen, batch_size, "cpu", programs)

    monkeypatch.setattr(fp, "require_fused_gpu", lambda device=0: None)
    monkeypatch.setattr(pc, "cuda_environment", lambda device=0: {"gpu": "stub", "triton": "stub"})
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: Stream())
    monkeypatch.setattr(fp, "time_device", lambda fn, stream, runs, warmup: np.full(runs, 1e-3))
    monkeypatch.setattr(rt, "FusedKernel", CpuKernel)
    torch.manual_seed(4)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)).eval()
    cfg = fp.FusedProfileConfig(modes=("fused", "fused-graph"), batch_sizes=(1, 2), num_warps=(4,),
                                large_batch_num_warps=(4,), images_per_program=(1, 2), splits=(1, 2), runs=10,
                                warmup=1, large_batch_runs=3)
    prof = fp.profile_cuda_fused(m, "tiny", torch.randn(1, 1, 10, 10), cfg)
    fused = [r for r in prof.results if r.details["mode"] == "fused"]
    assert sorted((r.batch_size, r.details["split"], r.details["images_per_program"]) for r in fused) == \
        [(1, 1, 1), (1, 2, 1), (2, 1, 1), (2, 1, 2)]
    assert all(r.target == "cuda-fused" and r.runs in (10, 3) and r.details["device_time"]["p50_us"] == 1.0
               for r in fused)
    assert max(prof.outputs_max_abs_diff.values()) <= 1e-5 and len(prof.outputs_max_abs_diff) == 4
    # graph capture needs a GPU: recorded as a failure per variant, the other mode still timed
    assert {f.mode for f in prof.failures} == {"fused-graph"} and "CUDA graphs need a CUDA GPU" in prof.failures[0].error
    assert prof.fastest is not None and prof.fastest.batch_size == 1 and prof.plan[0].startswith("conv 1->4")
