"""The Jetson/TensorRT bundle, checked as far as a machine without TensorRT allows.

Everything up to the engine build runs for real: the ONNX files (onnx.checker, ONNX
Runtime against PyTorch and Brevitas, the Q/DQ graph rules), metadata consistency, and
the bundle's own scripts (syntax for Python 3.8, argument handling, the ONNX Runtime
golden check, bench.sh's flow). Building and running an engine needs TensorRT and a GPU:
those tests skip with the reason.
"""
import ast
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from edgekd.config.schema import NormalizeConfig
from edgekd.data.views import make_view
from edgekd.errors import ConfigError, EdgekdError
from edgekd.export import qcdq
from edgekd.export import tensorrt as trtx
from edgekd.hwtargets import available_jetsons, load_jetson
from edgekd.nets import create_net

HAVE_TRT, TRT_WHY = trtx.tensorrt_status()


@pytest.fixture(scope="module")
def student():
    from edgekd.data import synthetic

    x, y = synthetic.generate(400, seed=11, classes=(0, 1))
    X = make_view(x, 48, NormalizeConfig())
    Y = torch.from_numpy(y).long()
    torch.manual_seed(1)
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(2):
        for i in range(0, 250, 50):
            loss = nn.functional.cross_entropy(m(X[i : i + 50]), Y[i : i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval(), X[:250], X[250:]


@pytest.fixture(scope="module")
def bundle(student, tmp_path_factory):
    m, calib, check = student
    out = tmp_path_factory.mktemp("bundle")
    cfg = trtx.BundleConfig(max_batch=64, n_golden=32)
    pre = trtx.preprocessing_contract(size=48, channels=1, mean=0.4819, std=0.1484)
    return trtx.export_bundle(m, "cnn", x_calib=calib, x_check=check, out_dir=out, preprocessing=pre,
                              class_names=["B", "T4"], config=cfg, build=False)


def _copy(bundle, tmp_path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(bundle.root, dst)
    return dst


def _run(args, cwd, env=None):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


# -- the ONNX files -------------------------------------------------------------------------

def test_every_onnx_file_is_valid_opset17_and_matches_metadata(bundle):
    meta = bundle.metadata
    assert bundle.deployable and [a.format for a in bundle.artifacts] == ["onnx-fp32", "onnx-fp16", "onnx-qdq"]
    for p, info in meta["precisions"].items():
        path = bundle.root / info["onnx_strongly_typed"]
        m = onnx.load(str(path))
        onnx.checker.check_model(m, full_check=True)
        assert m.ir_version <= 9 and m.ir_version == meta["onnx_ir_version"]
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
        (gi,), (go,) = m.graph.input, m.graph.output
        assert gi.name == meta["inputs"][0]["name"] and go.name == meta["outputs"][0]["name"]
        dims = [d.dim_param or d.dim_value for d in gi.type.tensor_type.shape.dim]
        assert dims == meta["inputs"][0]["shape"] == ["batch", 1, 48, 48]
        assert gi.type.tensor_type.elem_type == go.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in go.type.tensor_type.shape.dim] == meta["outputs"][0]["shape"]
        assert info["status"] == "ok"
    fp16 = onnx.load(str(bundle.root / "cnn.fp16.onnx"))
    assert {i.data_type for i in fp16.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert [n.op_type for n in fp16.graph.node][0] == "Cast" and [n.op_type for n in fp16.graph.node][-1] == "Cast"


def test_int8_file_has_only_tensorrt_qdq_patterns(bundle):
    path = bundle.root / bundle.metadata["precisions"]["int8"]["onnx_strongly_typed"]
    rep = qcdq.check_qdq_graph(path)
    assert rep.ok and len(rep.quantized_weights) == 3 and rep.float_weights == []
    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert inits[n.input[2]].data_type == onnx.TensorProto.INT8
            assert not onnx.numpy_helper.to_array(inits[n.input[2]]).any()
    assert not [n for n in m.graph.node if n.op_type == "Clip"]


def test_fidelity_records(bundle, student):
    fids = {a.format: a.fidelity for a in bundle.artifacts}
    assert fids["onnx-fp32"].max_abs_diff < 1e-4 and fids["onnx-fp32"].argmax_agreement == 1.0
    assert fids["onnx-fp16"].passed and fids["onnx-fp16"].max_abs_diff < 1e-2
    assert fids["onnx-qdq"].passed and fids["onnx-qdq"].argmax_agreement >= 0.99
    qdq = [a for a in bundle.artifacts if a.format == "onnx-qdq"][0]
    assert qdq.metadata["twin"]["quantized"] == ["0", "3", "7"]
    assert qdq.metadata["quantization_vs_float"]["argmax_agreement"] >= 0.95


# -- metadata and golden data ---------------------------------------------------------------

def test_metadata_hashes_profile_targets_and_golden(bundle, student):
    from edgekd.runs.atomic import sha256_file

    meta = json.loads((bundle.root / "metadata.json").read_text())
    assert meta == json.loads(json.dumps(bundle.metadata))
    assert meta["format"] == "edgekd-tensorrt-bundle/1" and meta["default_precision"] == "int8"
    expected_files = {"cnn.fp32.onnx", "cnn.fp16.onnx", "cnn.int8.qdq.onnx", "golden.npz", "build_engine.py",
                      "check.py", "bench.sh", "trt_common.py"}
    assert set(meta["files"]) == expected_files
    for name, digest in meta["files"].items():
        assert sha256_file(bundle.root / name) == digest
    assert meta["optimization_profile"] == {"input": "input", "min_batch": 1, "opt_batch": 1, "max_batch": 64}
    assert meta["preprocessing"]["mean"] == pytest.approx(0.4819) and meta["preprocessing"]["layout"] == "NCHW"
    assert meta["outputs"][0]["classes"] == ["B", "T4"]
    by_name = {t["name"]: t for t in meta["targets"]}
    assert set(by_name) == set(trtx.DEFAULT_TARGETS)
    assert by_name["orin-nano-8gb"]["tensorrt"] == "10.3" and by_name["orin-nano-8gb"]["cuda"] == "12.6"
    assert by_name["xavier-nx"]["build"] == "weakly typed (TensorRT 8)" and by_name["agx-thor"]["dla_cores"] == 0
    with np.load(bundle.root / "golden.npz") as z:
        g = {k: z[k] for k in z.files}
    assert g["input"].shape == (32, 1, 48, 48) and g["input"].dtype == np.float32
    assert g["output_float"].shape == g["output_int8"].shape == (32, 2)
    _, _, check = student
    np.testing.assert_array_equal(g["input"], check.numpy()[g["indices"]])
    # golden inputs are the ones no tolerated error can flip: margin > atol on both references
    for key, p in (("output_float", "fp16"), ("output_int8", "int8")):
        s = np.sort(g[key], axis=1)
        assert (s[:, -1] - s[:, -2] > meta["precisions"][p]["tolerance"]["atol"]).all()


def test_trtexec_commands_per_tensorrt_version(bundle):
    cmds = bundle.metadata["precisions"]
    i8, f16 = cmds["int8"]["trtexec"], cmds["fp16"]["trtexec"]
    for c in (i8, f16):
        assert "--minShapes=input:1x1x48x48" in c["tensorrt10"] and "--maxShapes=input:64x1x48x48" in c["tensorrt10"]
        assert "--timingCacheFile=timing.cache" in c["tensorrt10"]
        for flag in ("--int8", "--fp16", "--best", "--stronglyTyped"):
            assert flag not in c["tensorrt11"]  # removed (precision) or implicit (typing) on 11
    assert "--stronglyTyped" in i8["tensorrt10"] and "--onnx=cnn.int8.qdq.onnx" in i8["tensorrt10"]
    assert "--int8" not in i8["tensorrt10"] and "--int8" in i8["tensorrt8"] and "--buildOnly" in i8["tensorrt8"]
    assert "--onnx=cnn.fp16.onnx" in f16["tensorrt10"] and "--onnx=cnn.fp32.onnx --" in f16["tensorrt8"]
    assert "--fp16" in f16["tensorrt8"]
    readme = (bundle.root / "README.md").read_text()
    assert i8["tensorrt10"] in readme and "Jetson AGX Thor" in readme


# -- the bundle's scripts -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["build_engine.py", "check.py", "trt_common.py"])
def test_python_scripts_compile_for_python38(bundle, name):
    src = (bundle.root / name).read_text()
    ast.parse(src, filename=name, feature_version=(3, 8))  # JetPack 5 ships Python 3.8
    import py_compile

    py_compile.compile(str(bundle.root / name), doraise=True, cfile=str(bundle.root / f".{name}.pyc"))
    assert "import edgekd" not in src and "from edgekd" not in src


def test_bench_sh_syntax_and_modes(bundle):
    assert _run(["bash", "-n", "bench.sh"], bundle.root).returncode == 0
    assert os.stat(bundle.root / "bench.sh").st_mode & stat.S_IXUSR
    r = _run(["bash", "bench.sh", "--help"], bundle.root)
    assert r.returncode == 0 and "--useCudaGraph" in r.stdout


def test_check_py_onnxruntime_backend_passes(bundle, tmp_path):
    root = _copy(bundle, tmp_path)
    r = _run([sys.executable, "check.py", "--backend", "onnxruntime", "--precision", "all"], root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASS") == 3
    res = json.loads((root / "check-int8-onnxruntime.json").read_text())
    assert res["passed"] and res["n_inputs"] == 32 and res["argmax_agreement"] == 1.0
    assert res["max_abs_diff"] <= res["tolerance"]["atol"]


def test_check_py_fails_on_wrong_outputs_and_on_edited_files(bundle, tmp_path):
    from edgekd.runs.atomic import sha256_file

    root = _copy(bundle, tmp_path)
    with np.load(root / "golden.npz") as z:
        g = {k: z[k] for k in z.files}
    g["output_float"] = g["output_float"] + 0.05  # an engine this far off must fail
    np.savez(root / "golden.npz", **g)
    r = _run([sys.executable, "check.py", "--backend", "onnxruntime", "--precision", "fp32"], root)
    assert r.returncode == 4 and "SHA-256 differs" in r.stderr  # edited after export: refused
    meta = json.loads((root / "metadata.json").read_text())
    meta["files"]["golden.npz"] = sha256_file(root / "golden.npz")
    (root / "metadata.json").write_text(json.dumps(meta))
    r = _run([sys.executable, "check.py", "--backend", "onnxruntime", "--precision", "fp32"], root)
    assert r.returncode == 1 and "FAIL" in r.stdout
    assert not json.loads((root / "check-fp32-onnxruntime.json").read_text())["within_tolerance"]


def test_build_engine_plans_for_tensorrt_8_10_11(bundle):
    plans = {}
    for major in (8, 10, 11):
        for prec in ("int8", "fp16", "fp32"):
            r = _run([sys.executable, "build_engine.py", "--dry-run", "--tensorrt-major", str(major),
                      "--precision", prec, "--max-batch", "32"], bundle.root)
            assert r.returncode == 0, r.stderr
            plans[major, prec] = json.loads(r.stdout)
    assert plans[10, "int8"]["plan"]["strongly_typed"] and plans[11, "fp16"]["plan"]["strongly_typed"]
    assert plans[10, "fp16"]["plan"]["onnx"] == "cnn.fp16.onnx" and plans[10, "fp16"]["plan"]["builder_flags"] == []
    assert plans[8, "fp16"]["plan"]["onnx"] == "cnn.fp32.onnx" and plans[8, "fp16"]["plan"]["builder_flags"] == ["FP16"]
    assert plans[8, "int8"]["plan"]["builder_flags"] == ["INT8"] and not plans[8, "int8"]["plan"]["strongly_typed"]
    assert plans[10, "int8"]["plan"]["profile"] == {"min": [1, 1, 48, 48], "opt": [1, 1, 48, 48],
                                                    "max": [32, 1, 48, 48]}
    assert "--maxShapes=input:32x1x48x48" in plans[11, "int8"]["trtexec"]


def test_build_engine_argument_errors_and_missing_tensorrt(bundle):
    r = _run([sys.executable, "build_engine.py", "--min-batch", "4", "--opt-batch", "2"], bundle.root)
    assert r.returncode == 2 and "--min-batch <= --opt-batch" in r.stderr
    r = _run([sys.executable, "build_engine.py", "--precision", "int4"], bundle.root)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    if not HAVE_TRT:
        r = _run([sys.executable, "build_engine.py"], bundle.root)
        assert r.returncode == 3 and "cannot import tensorrt" in r.stderr and "--backend onnxruntime" in r.stderr
        r = _run([sys.executable, "check.py"], bundle.root)
        assert r.returncode == 3 and "cannot import tensorrt" in r.stderr


STAND_IN_TRTEXEC = """#!/usr/bin/env bash
# Stand-in for trtexec (not installable here): records its arguments, prints a log in
# trtexec's format and writes --exportTimes records; exits with $FAKE_TRTEXEC_EXIT.
printf '%s\\n' "$@" > "$(dirname "$0")/args.txt"
for a in "$@"; do case "$a" in --exportTimes=*) T="${a#--exportTimes=}";; esac; done
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec $*"
echo "[11/28/2026-09:14:02] [I] Selected Device: Orin"
echo "[11/28/2026-09:14:02] [I] TensorRT version: 10.3.0"
echo "[11/28/2026-09:14:03] [I] Warmup completed 10 queries over 1 ms"
echo "[11/28/2026-09:14:03] [I] Timing trace has 3 queries over 0.0003 s"
echo "[11/28/2026-09:14:03] [I] === Performance summary ==="
echo "[11/28/2026-09:14:03] [I] Throughput: 10000 qps"
echo "[11/28/2026-09:14:03] [I] GPU Compute Time: min = 0.08 ms, max = 0.1 ms, mean = 0.09 ms, median = 0.09 ms, percentile(90%) = 0.1 ms, percentile(95%) = 0.1 ms, percentile(99%) = 0.1 ms"
echo '[{"startComputeMs": 0.5, "computeMs": 0.2, "latencyMs": 0.2}, {"startComputeMs": 1.0, "computeMs": 0.08, "latencyMs": 0.08}, {"startComputeMs": 1.1, "computeMs": 0.09, "latencyMs": 0.09}, {"startComputeMs": 1.2, "computeMs": 0.1, "latencyMs": 0.1}]' > "$T"
if [ "${FAKE_TRTEXEC_EXIT:-0}" != 0 ]; then echo "[E] Engine deserialization failed"; echo "&&&& FAILED TensorRT.trtexec"; exit "$FAKE_TRTEXEC_EXIT"; fi
echo "&&&& PASSED TensorRT.trtexec [TensorRT v100300]"
"""


def test_bench_sh_flow_up_to_trtexec(bundle, tmp_path):
    """bench.sh's own logic: argument checks, engine and trtexec lookup, records, exit status.

    trtexec itself cannot be installed here; a stand-in script with trtexec's output format
    takes its place so the command bench.sh composes and its handling of the result are checked.
    """
    from edgekd.profile.trtexec import latency_from_bench_dir, latency_from_files

    root = _copy(bundle, tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    env.pop("TRTEXEC", None)
    r = _run(["bash", "bench.sh", "--batch", "0"], root, env)
    assert r.returncode == 2 and "positive integer" in r.stderr
    r = _run(["bash", "bench.sh", "--batch", "65"], root, env)
    assert r.returncode == 2 and "outside the engine's profile [1, 64]" in r.stderr
    r = _run(["bash", "bench.sh", "--precision", "int4"], root, env)
    assert r.returncode == 2 and "not in this bundle" in r.stderr
    r = _run(["bash", "bench.sh"], root, env)
    assert r.returncode == 4 and "build_engine.py --precision int8" in r.stderr
    (root / "cnn.int8.engine").write_bytes(b"engine built on the device")
    if shutil.which("trtexec", path=env["PATH"]) is None and not Path("/usr/src/tensorrt/bin/trtexec").exists():
        r = _run(["bash", "bench.sh"], root, env)
        assert r.returncode == 3 and "trtexec not found" in r.stderr
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    fake.write_text(STAND_IN_TRTEXEC)
    fake.chmod(0o755)
    out = tmp_path / "run"
    r = _run(["bash", "bench.sh", "--trtexec", str(fake), "--out", str(out), "--iterations", "3"], root, env)
    assert r.returncode == 0, r.stdout + r.stderr
    args = (fake.parent / "args.txt").read_text().split()
    for flag in ("--useCudaGraph", "--useSpinWait", "--noDataTransfers", "--iterations=3", "--warmUp=500",
                 f"--loadEngine={root / 'cnn.int8.engine'}", "--shapes=input:1x1x48x48",
                 f"--exportTimes={out / 'times.json'}"):
        assert flag in args
    rec = json.loads((out / "bench.json").read_text())
    assert rec["trtexec_exit"] == 0 and rec["batch"] == 1 and rec["precision"] == "int8"
    assert "nvpmodel" in rec and rec["clocks"]  # recorded even off-Jetson ("not found" / "needs root")
    res = latency_from_files(out / "trtexec.log", model="cnn", batch_size=1, times_json=out / "times.json")
    assert res.runs == 3 and res.p50_us == pytest.approx(90.0)  # warm-up record (0.5 ms start) dropped
    res = latency_from_bench_dir(out, model="cnn")
    assert res.p50_us == pytest.approx(90.0) and res.batch_size == 1 and res.target == "tensorrt"
    env_rec = res.details["environment"]
    assert env_rec["precision"] == "int8" and env_rec["clocks"] == rec["clocks"] and env_rec["uname"]
    env["FAKE_TRTEXEC_EXIT"] = "1"
    r = _run(["bash", "bench.sh", "--trtexec", str(fake), "--out", str(tmp_path / "run2")], root, env)
    assert r.returncode == 5 and "Engine deserialization failed" in r.stderr
    assert json.loads((tmp_path / "run2" / "bench.json").read_text())["trtexec_exit"] == 1


# -- host side ------------------------------------------------------------------------------

def test_message_says_where_the_engine_will_be_built(bundle):
    if HAVE_TRT:
        pytest.skip(f"TensorRT is available here ({TRT_WHY}); the engine was not skipped")
    assert "engine not built here" in bundle.message and "tensorrt is not importable" in bundle.message
    assert "python3 build_engine.py" in bundle.message and "\n" not in bundle.message


def test_build_true_without_tensorrt_is_a_clear_error(student, tmp_path):
    if HAVE_TRT:
        pytest.skip(f"TensorRT is available here ({TRT_WHY})")
    m, calib, check = student
    with pytest.raises(EdgekdError, match="cannot build TensorRT engines here: tensorrt is not importable"):
        trtx.export_bundle(m, "cnn", x_calib=calib, x_check=check[:40], out_dir=tmp_path,
                           preprocessing={}, config=trtx.BundleConfig(precisions=("fp32",), default_precision="fp32"),
                           build=True)


@pytest.mark.skipif(not HAVE_TRT, reason=f"needs TensorRT and a CUDA GPU: {TRT_WHY}")
def test_engine_builds_and_passes_golden_check(bundle):
    trtx.build_here(bundle, bench_iterations=200)
    assert all(r["passed"] for r in bundle.golden_checks.values()), bundle.golden_checks


def test_config_and_target_errors(student, tmp_path):
    m, calib, check = student
    with pytest.raises(EdgekdError, match="unknown precision"):
        trtx.BundleConfig(precisions=("int4",)).validate()
    with pytest.raises(EdgekdError, match="default precision"):
        trtx.BundleConfig(precisions=("fp32",)).validate()
    with pytest.raises(EdgekdError, match="batch profile"):
        trtx.BundleConfig(min_batch=2, opt_batch=1).validate()
    with pytest.raises(ConfigError, match="unknown Jetson module 'jetson-nano'"):
        trtx.export_bundle(m, "cnn", x_calib=calib, x_check=check, out_dir=tmp_path / "x", preprocessing={},
                           config=trtx.BundleConfig(targets=("jetson-nano",)), build=False)
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_fp16_conversion_refuses_unknown_ops():
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Resize", ["x", "", "scales"], ["y"])], "r",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    with pytest.raises(EdgekdError, match=r"ops \['Resize'\] to FP16"):
        trtx.to_fp16_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_jetson_modules_load_with_versions():
    names = available_jetsons()
    assert set(trtx.DEFAULT_TARGETS) <= set(names)
    for n in names:
        j = load_jetson(n)
        assert j.kind == "jetson" and j.software and j.default_software.tensorrt
    assert load_jetson("agx-thor").dla_cores == 0 and load_jetson("agx-thor").gpu.compute_capability == "11.0"
    assert load_jetson("xavier-nx").default_software.tensorrt_major == 8
    orin = load_jetson("agx-orin-64gb")
    assert orin.default_software.jetpack == "6.2" and any(s.tensorrt_major == 11 for s in orin.software)
    with pytest.raises(ConfigError, match="unknown Jetson module"):
        load_jetson("tx2")


# -- issue 16: engine names, profiles, typing, libcudart, host builds, timing cache ----------

def _dry_run(root, major, prec, *extra):
    r = _run([sys.executable, "build_engine.py", "--dry-run", "--tensorrt-major", str(major), "--precision", prec,
              *extra], root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_engine_names_carry_the_precision_on_every_tensorrt_version(bundle):
    """On TensorRT 8 fp16 is built from the FP32 ONNX: its engine must not be <model>.fp32.engine."""
    for major in (8, 10, 11):
        engines = {}
        for prec in ("int8", "fp16", "fp32"):
            out = _dry_run(bundle.root, major, prec)
            engines[prec] = Path(out["plan"]["engine"]).name
            assert f"--saveEngine={out['plan']['engine']}" in out["trtexec"]
        assert engines == {"int8": "cnn.int8.engine", "fp16": "cnn.fp16.engine", "fp32": "cnn.fp32.engine"}, major
    for prec, info in bundle.metadata["precisions"].items():
        for cmd in info["trtexec"].values():
            assert f"--saveEngine=cnn.{prec}.engine" in cmd
    readme = (bundle.root / "README.md").read_text()
    assert "--saveEngine=cnn.int8.engine" in readme


def test_strong_typing_agrees_between_python_build_and_trtexec(bundle):
    """TensorRT 9 is strongly typed in both, 8 weakly typed in both; 11 has no flag to pass."""
    for major in (8, 9, 10, 11):
        out = _dry_run(bundle.root, major, "fp16")
        plan = out["plan"]
        assert plan["strongly_typed"] == (major >= 9), major
        assert ("--stronglyTyped" in out["trtexec"]) == (major in (9, 10)), major
        assert (plan["builder_flags"] == []) == plan["strongly_typed"]
        assert ("--fp16" in out["trtexec"]) == (not plan["strongly_typed"])
        assert plan["onnx"] == ("cnn.fp16.onnx" if plan["strongly_typed"] else "cnn.fp32.onnx")


def _load_bundle_script(root: Path, name: str, monkeypatch):
    """Import one of the bundle's scripts from ``root`` in this process (its own trt_common)."""
    import importlib.util

    def load(mod_name, file):
        spec = importlib.util.spec_from_file_location(mod_name, root / file)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts its folder first
    tc = load("trt_common", "trt_common.py")
    monkeypatch.setitem(sys.modules, "trt_common", tc)
    return load(f"_bundle_{name[:-3]}", name), tc


def _fake_engine_from_onnx(root: Path, onnx_name: str, batch_range):
    import onnxruntime as ort
    from trt_fakes import FakeEngine

    sess = ort.InferenceSession(str(root / onnx_name), providers=["CPUExecutionProvider"])
    return FakeEngine(lambda x: sess.run(None, {"input": x})[0], batch_range, (1, 48, 48), 2)


@pytest.mark.parametrize("batch_range,chunks", [((1, 16), [16, 16]), ((4, 10), [10, 10, 10, 4])])
def test_check_py_batches_golden_inputs_by_the_engines_own_profile(bundle, tmp_path, monkeypatch, batch_range,
                                                                   chunks):
    """metadata.json says max batch 64; the engine was built with --max-batch 16 (or [4, 10]).

    The fake engine refuses shapes outside its profile, like TensorRT, and computes its
    outputs with ONNX Runtime on the bundle's FP32 ONNX, so the golden check is real.
    """
    from trt_fakes import FakeCuda, fake_tensorrt

    root = _copy(bundle, tmp_path)
    assert bundle.metadata["optimization_profile"]["max_batch"] == 64 and bundle.metadata["golden"]["n"] == 32
    check, _ = _load_bundle_script(root, "check.py", monkeypatch)
    engine = _fake_engine_from_onnx(root, "cnn.fp32.onnx", batch_range)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0", engine))
    monkeypatch.setattr(check, "CudaRuntime", FakeCuda)
    (root / "cnn.fp32.engine").write_bytes(b"ENGINE")  # the default engine name for fp32
    assert check.main(["--precision", "fp32", "--quiet"]) == 0
    res = json.loads((root / "check-fp32-tensorrt.json").read_text())
    assert res["passed"] and res["n_inputs"] == 32 and res["artifact"].endswith("cnn.fp32.engine")
    assert engine.batches == chunks  # every call inside the profile; the short tail padded to its minimum


def test_bench_sh_reads_batch_limits_from_the_engine_build_record(bundle, tmp_path):
    root = _copy(bundle, tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    (root / "cnn.int8.engine").write_bytes(b"engine")
    (root / "cnn.int8.engine.json").write_text(json.dumps({"profile": {"min": [1, 1, 48, 48], "opt": [1, 1, 48, 48],
                                                                        "max": [32, 1, 48, 48]}}))
    r = _run(["bash", "bench.sh", "--batch", "48"], root, env)  # inside metadata's 64, outside the engine's 32
    assert r.returncode == 2 and "outside the engine's profile [1, 32] (from cnn.int8.engine.json)" in r.stderr
    (root / "cnn.int8.engine.json").write_text(json.dumps({"profile": {"min": [1, 1, 48, 48], "opt": [1, 1, 48, 48],
                                                                        "max": [128, 1, 48, 48]}}))
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    fake.write_text(STAND_IN_TRTEXEC)
    fake.chmod(0o755)
    r = _run(["bash", "bench.sh", "--batch", "100", "--trtexec", str(fake), "--out", str(tmp_path / "o"),
              "--iterations", "3"], root, env)  # built with --max-batch 128: allowed though metadata says 64
    assert r.returncode == 0, r.stderr
    assert "--shapes=input:100x1x48x48" in (fake.parent / "args.txt").read_text().split()


def test_cudart_is_found_in_pip_wheels_of_cuda_12_and_13(bundle, tmp_path, monkeypatch):
    import ctypes
    import ctypes.util

    _, tc = _load_bundle_script(bundle.root, "build_engine.py", monkeypatch)
    site = tmp_path / "site-packages"
    for rel in ("nvidia/cuda_runtime/lib/libcudart.so.12", "nvidia/cu13/lib/libcudart.so.13"):
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(b"")

    def no_lib(name, *a, **k):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_lib)  # nothing on the loader path, as on a pip-only machine
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(tc, "_SYSTEM_CUDART_GLOBS", (), raising=False)
    monkeypatch.setattr(tc, "_site_dirs", lambda: [str(site)], raising=False)
    assert tc._find_cudart() == str(site / "nvidia/cu13/lib/libcudart.so.13")  # TensorRT 11's CUDA 13 runtime
    (site / "nvidia/cu13/lib/libcudart.so.13").unlink()
    assert tc._find_cudart() == str(site / "nvidia/cuda_runtime/lib/libcudart.so.12")
    monkeypatch.setattr(tc, "_site_dirs", lambda: [])
    assert tc._find_cudart() is None
    monkeypatch.delenv("EDGEKD_CUDART", raising=False)
    with pytest.raises(tc.BundleError, match="nvidia/cu13/lib"):
        tc.CudaRuntime()


def test_timing_cache_from_another_gpu_is_replaced_not_fatal(bundle, tmp_path, monkeypatch, capsys):
    """A cache TensorRT refuses (set_timing_cache -> False, get_timing_cache -> None) used to crash
    after the engine was written; now the build starts a fresh cache named for this GPU/TensorRT."""
    from trt_fakes import FakeCuda, fake_tensorrt

    root = _copy(bundle, tmp_path)
    be, _ = _load_bundle_script(root, "build_engine.py", monkeypatch)
    monkeypatch.setattr(be, "CudaRuntime", FakeCuda)
    trt = fake_tensorrt("10.3.0")
    foreign = root / "timing.sm87.trt10.3.0.cache"
    foreign.write_bytes(b"cache of an Orin")
    args = be.parse_args(["--precision", "int8", "--timing-cache", str(foreign)], bundle.metadata)
    plan = be.build_plan(bundle.metadata, args, 10)
    engine = be.build(plan, bundle.metadata, trt)
    assert engine.read_bytes() == b"ENGINE" and "another GPU or TensorRT version" in capsys.readouterr().out
    assert foreign.read_bytes() == b"fresh timing cache"  # replaced by the cache of this build
    # default: one cache per GPU and TensorRT version, so devices sharing a folder never clash
    args = be.parse_args(["--precision", "fp16", "--force"], bundle.metadata)
    plan = be.build_plan(bundle.metadata, args, 10)
    assert plan["timing_cache"] is None and "--timingCacheFile=timing.cache" in " ".join(be.trtexec_command(plan))
    be.build(plan, bundle.metadata, trt)
    assert (root / "timing.sm90.trt10.3.0.cache").read_bytes() == b"fresh timing cache"
    own = root / "timing.sm90.trt10.3.0.cache"
    own.write_bytes(trt.cache_signature)  # a cache this GPU and version wrote: accepted and kept
    be.build(plan, bundle.metadata, trt, force=True)
    assert own.read_bytes() == trt.cache_signature
    assert "another GPU" not in capsys.readouterr().out


def test_host_engine_builds_stay_out_of_the_bundle_and_fail_one_artifact(bundle, tmp_path, monkeypatch):
    """One build_engine.py failure fails that precision's artifact; the run and the others go on."""
    import copy

    b = copy.deepcopy(bundle)
    b.root = _copy(bundle, tmp_path)
    before = sorted(p.name for p in b.root.iterdir())
    calls = []

    def fake_run(cmd, cwd=None, capture_output=True, text=True, **kw):
        script, prec, cwd = cmd[1], cmd[cmd.index("--precision") + 1], Path(cwd)
        calls.append((script, prec, cwd))
        if script == "build_engine.py" and prec == "fp16":
            return subprocess.CompletedProcess(cmd, 5, "", "error: TensorRT could not build the engine")
        if script == "build_engine.py":
            (cwd / f"cnn.{prec}.engine").write_bytes(b"ENGINE")
        else:
            (cwd / f"check-{prec}-tensorrt.json").write_text(json.dumps({"passed": True}))
        return subprocess.CompletedProcess(cmd, 0, f"{prec} tensorrt: PASS", "")

    monkeypatch.setattr(trtx.subprocess, "run", fake_run)
    monkeypatch.setattr(trtx.shutil, "which", lambda name: None)  # no trtexec: build and check only
    trtx.build_here(b)
    host = tmp_path / "b-host-build"
    assert {cwd for _, _, cwd in calls} == {host}
    assert sorted(p.name for p in b.root.iterdir()) == before  # nothing built or written in the bundle
    assert sorted(b.engines) == ["fp32", "int8"] and (host / "cnn.int8.engine").is_file()
    status = {a.format: a for a in b.artifacts}
    assert "engine build on this host failed" in status["onnx-fp16"].error and not status["onnx-fp16"].deployable
    assert status["onnx-fp32"].deployable and status["onnx-qdq"].deployable
    assert "build FAILED for ['fp16']" in b.message and "kept out of the bundle folder" in b.message


def test_bundle_says_which_precision_is_fastest_where_measured(bundle):
    """ONNX Runtime's CPU runs the Q/DQ student slower than FP32 (issue 16: 3.4-5×); the bundle
    must not leave a reader assuming INT8 is faster everywhere. The figures are measured at export."""
    speeds = bundle.metadata["onnxruntime_cpu_latency"]
    rows = speeds["precisions"]
    assert set(rows) == {"fp32", "fp16", "int8"} and all(v["p50_us"] > 0 for v in rows.values())
    assert speeds["threads"] == 1 and speeds["batch"] == 1 and speeds["runs"] == 300 and speeds["clock"] == "host"
    assert speeds["fastest"] == min(rows, key=lambda k: rows[k]["p50_us"])
    readme = (bundle.root / "README.md").read_text()
    section = readme.split("### Which precision is fastest where", 1)[1]
    assert speeds["statement"] in section
    for p, v in rows.items():
        assert f"{p} {v['p50_us']:,.1f} µs" in section
    assert f"fastest there: {speeds['fastest']}" in section and "bench.sh --precision" in section
    if speeds["fastest"] != "int8":
        ratio = rows["int8"]["p50_us"] / rows[speeds["fastest"]]["p50_us"]
        assert f"{ratio:.1f}× slower than {speeds['fastest']}" in section and "it is for TensorRT" in section
    qdq = [a for a in bundle.artifacts if a.format == "onnx-qdq"][0]
    assert qdq.metadata["onnxruntime_cpu_p50_us"] == rows["int8"]["p50_us"]


def test_int8_tolerance_is_derived_in_requantization_flips(bundle):
    """Issue 16 item 14: the INT8 golden tolerance in units of one requantization flip at the
    classifier's input (s·max|W|), not only a bare multiple of ONNX Runtime's error."""
    tol = bundle.metadata["precisions"]["int8"]["tolerance"]
    d = tol["derivation"]
    step = d["one_flip"]
    assert step is not None and step > 0
    assert tol["atol"] >= d["factor"] * d["ort_int8_max_abs_diff"] and tol["atol"] >= d["min_flips"] * step
    assert f"{d['ort_int8_max_abs_diff'] / step:.1f} flips" in tol["why"]
    # ONNX Runtime matching Brevitas exactly on a small check set must not shrink the tolerance to nothing
    t0 = trtx.int8_tolerance(0.0, step, logit_scale=1e-3)
    assert t0["atol"] == pytest.approx(trtx.INT8_MIN_FLIPS * step)
    assert trtx.int8_tolerance(0.0, None, 1.0)["atol"] == pytest.approx(1e-3)  # not measurable: the floor
    assert "not measurable" in trtx.int8_tolerance(0.0, None, 1.0)["why"]


def test_last_layer_step_is_the_classifier_input_scale_times_max_weight(student):
    m, calib, _ = student
    twin, _ = qcdq.trt_twin(m, calib)
    lin = twin[7]
    expected = float(lin.input_quant.scale()) * float(lin.quant_weight().value.detach().abs().max())
    assert trtx.last_layer_step(twin) == pytest.approx(expected)
    assert trtx.last_layer_step(m) is None  # a plain float model has no requantization step


FAKE_TRT_MODULE = '''
__version__ = "10.3.0"
class Logger:
    ERROR = 4
    def __init__(self, level=None):
        pass
class _Engine:
    def get_tensor_profile_shape(self, name, index):
        assert name == "input" and index == 0
        return [(2, 1, 48, 48), (8, 1, 48, 48), (16, 1, 48, 48)]
class Runtime:
    def __init__(self, logger):
        pass
    def deserialize_cuda_engine(self, data):
        return _Engine() if data == b"trtexec engine" else None
'''


def test_bench_sh_reads_the_profile_of_an_engine_built_without_build_engine_py(bundle, tmp_path):
    """No build record (engine from trtexec): the limits come from the engine through TensorRT."""
    root = _copy(bundle, tmp_path)
    fake = tmp_path / "fake_trt"
    fake.mkdir()
    (fake / "tensorrt.py").write_text(FAKE_TRT_MODULE)
    env = {**os.environ, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake)}
    (root / "cnn.int8.engine").write_bytes(b"trtexec engine")
    r = _run(["bash", "bench.sh", "--batch", "32"], root, env)  # metadata allows 64; the engine 16
    assert r.returncode == 2 and "outside the engine's profile [2, 16] (from cnn.int8.engine)" in r.stderr
    r = _run(["bash", "bench.sh", "--batch", "1"], root, env)
    assert r.returncode == 2 and "[2, 16]" in r.stderr
