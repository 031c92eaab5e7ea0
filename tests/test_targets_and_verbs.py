"""One Target interface, the stand-alone verbs (`edgekd export / distill / profile`) and the Python API."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import edgekd
from edgekd.errors import ConfigError

STUDENT_FILE = '''import torch.nn as nn


def Net(num_classes=3, in_channels=1, input_size=12):
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, num_classes))
'''


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "edgekd", *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    return p


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(100, 3)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The same model as a state dict (+ user file), TorchScript, .pt2 and ONNX; real-looking inputs."""
    d = tmp_path_factory.mktemp("models")
    m = _net()
    x = torch.randn(1, 1, 12, 12)
    (d / "my_net.py").write_text(STUDENT_FILE)
    import importlib.util

    spec = importlib.util.spec_from_file_location("verbs_test_user_net", d / "my_net.py")  # a name no test shares
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.Net().load_state_dict(m.state_dict())  # the user's file builds the very same model
    torch.save(m.state_dict(), d / "sd.pt")
    torch.jit.save(torch.jit.trace(m, x), d / "ts.pt")
    torch.export.save(torch.export.export(m, (x,)), d / "ep.pt2")
    from edgekd.export.onnx import export_onnx

    export_onnx(m, x, d / "m.onnx")
    np.savez(d / "calib.npz", x=np.random.default_rng(1).standard_normal((120, 1, 12, 12)).astype(np.float32))
    return {"dir": d, "sd": d / "sd.pt", "ts": d / "ts.pt", "pt2": d / "ep.pt2", "onnx": d / "m.onnx",
            "user": d / "my_net.py", "calib": d / "calib.npz"}


# ---- the registry -----------------------------------------------------------------------------
def test_every_target_is_a_registered_package():
    from edgekd.targets.base import all_targets, get_target

    names = [t.name for t in all_targets()]
    assert names[:5] == ["onnxruntime", "fpga-rtl", "fpga-hls", "tensorrt", "cuda-fused"]
    assert {"cpu-torch", "cuda"} <= set(names)
    for n in names:
        assert type(get_target(n)).__module__.startswith(f"edgekd.targets.{n.replace('-', '_')}")
    with pytest.raises(ConfigError, match="unknown target"):
        get_target("fpga-magic")


def test_targets_say_which_models_they_take():
    from edgekd.nets import create_net
    from edgekd.targets.base import get_target

    q = create_net("mlp-q", num_classes=2, in_channels=1, input_size=16, params={"hidden": 4, "pool": 4})
    f = create_net("mlp", num_classes=2, in_channels=1, input_size=16, params={"hidden": 4, "pool": 4})
    assert get_target("fpga-rtl").accepts(f, (1, 16, 16)) and get_target("fpga-rtl").accepts(q, (1, 16, 16)) is None
    assert "QAT" in get_target("tensorrt").accepts(q, (1, 16, 16))
    assert get_target("tensorrt").accepts(f, (1, 16, 16)) is None
    odd = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(2 * 14 * 14, 2))
    why = get_target("cuda-fused").accepts(odd, (1, 16, 16))
    assert why and "GELU" in why


# ---- edgekd export: every model format ------------------------------------------------------
@pytest.mark.parametrize("kind", ["sd", "ts", "pt2"])
def test_export_each_model_format_to_onnx(files, tmp_path, kind):
    extra = ["--arch", f"{files['user']}:Net", "--num-classes", "3"] if kind == "sd" else []
    p = cli("export", str(files[kind]), "--target", "onnxruntime", "--input-shape", "1x12x12", "--calib",
            str(files["calib"]), "--out", str(tmp_path), *extra)
    assert p.returncode == 0, p.stderr
    assert " ok " in p.stdout and "120 calibration inputs" in (tmp_path / f"{files[kind].stem}.onnx.fidelity.json"
                                                               ).read_text()


def test_export_a_state_dict_to_a_checked_hls4ml_project(files, tmp_path):
    """The FPGA user's case: their own module file + weights → hls4ml project, C simulation checked."""
    p = cli("export", str(files["sd"]), "--arch", f"{files['user']}:Net", "--num-classes", "3", "--input-shape",
            "1x12x12", "--calib", str(files["calib"]), "--target", "fpga-hls", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    fid = json.loads((tmp_path / "sd-hls.fidelity.json").read_text())["fidelity"]
    assert fid["passed"] and fid["argmax_agreement"] >= 0.99 and fid["n_inputs"] == 120
    assert (tmp_path / "sd-hls" / "firmware" / "parameters.h").is_file()
    assert "[fpga] sd: estimated" in p.stderr and "cycles" in p.stderr


def test_export_refusals_are_one_clear_message(files, tmp_path):
    p = cli("export", str(files["dir"] / "missing.pt"), "--target", "onnxruntime", "--out", str(tmp_path))
    assert p.returncode == 2 and "model file not found" in p.stderr
    p = cli("export", str(files["ts"]), "--target", "onnxruntime", "--out", str(tmp_path))
    assert p.returncode == 2 and "input shape is unknown" in p.stderr
    p = cli("export", str(files["ts"]), "--target", "onnxruntime", "--input-shape", "1x12x12", "--calib",
            str(files["calib"]).replace("calib", "nothere"), "--out", str(tmp_path))
    assert p.returncode == 2 and "calibration" in p.stderr
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 3, 12, 12), np.float32))
    p = cli("export", str(files["ts"]), "--target", "onnxruntime", "--input-shape", "1x12x12", "--calib",
            str(tmp_path / "wrong.npz"), "--out", str(tmp_path))
    assert p.returncode == 2 and "(4, 3, 12, 12)" in p.stderr
    p = cli("export", str(files["ts"]), "--target", "onnxruntime", "--input-shape", "12x12", "--out", str(tmp_path))
    assert p.returncode == 2 and "C×H×W" in p.stderr


def test_a_layer_hls4ml_does_not_support_fails_that_target_only(tmp_path):
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.PixelShuffle(2), nn.Flatten(), nn.Linear(400, 3)).eval()
    arts = edgekd.export(m, target="fpga-hls", example_input=(1, 12, 12), out_dir=tmp_path, log=lambda s: None)
    assert arts[0].status == "failed" and "PixelShuffle" in arts[0].error and "'2'" in arts[0].error
    ok = edgekd.export(m, target="onnxruntime", example_input=(1, 12, 12), out_dir=tmp_path, log=lambda s: None)
    assert ok[0].deployable


# ---- the Python API -----------------------------------------------------------------------------
def test_api_returns_typed_objects(files, tmp_path):
    from edgekd.export.artifact import Artifact
    from edgekd.profile.result import LatencyResult

    x = torch.as_tensor(np.load(files["calib"])["x"])
    arts = edgekd.export(_net(), target="onnxruntime", example_input=x[:1], calib=x, out_dir=tmp_path,
                         name="api", log=lambda s: None)
    assert isinstance(arts[0], Artifact) and arts[0].fidelity.n_inputs == 120 and arts[0].deployable
    for target in ("cpu-torch", "onnxruntime"):
        rows = edgekd.profile(str(files["ts"]), target=target, example_input="1x12x12", runs=20, log=lambda s: None)
        assert isinstance(rows[0], LatencyResult) and rows[0].method == "measured" and rows[0].target == target
    from edgekd.export import onnx  # the subpackage still imports as before

    assert callable(onnx.export_and_check)


def test_profile_verb_times_model_files(files):
    p = cli("profile", str(files["pt2"]), "--runs", "20", "--batch", "1")
    assert p.returncode == 0 and "cpu-torch batch 1" in p.stdout and "measured" in p.stdout
    p = cli("profile", str(files["sd"]), "--arch", f"{files['user']}:Net", "--input-shape", "1x12x12",
            "--runs", "20", "--batch", "1", "--target", "onnxruntime")
    assert p.returncode == 2 and "state dict" in p.stderr  # its class count is unknown without --num-classes


# ---- distill, then export a run's students with new settings -------------------------------------
RECIPE = """
name: verbs
seeds: [0]
data: {kind: npz, path: d.npz, teacher_size: 24, student_size: 16, split: {val: 0.2, test: 0.2, seed: 1}}
teacher: {arch: resnet-mini, params: {widths: [4, 8], blocks: [1, 1]}, train: {epochs: 1, batch_size: 16,
          augment: none}}
students:
  - {name: s, arch: mlp, params: {hidden: 8, pool: 4}, loss: [{ce: 0.5}, {kd: 0.5}],
     train: {epochs: 1, batch_size: 16, augment: none}}
"""


def test_distill_then_export_the_run(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (160, 24, 24), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 6:18, 6:18].mean((1, 2)) > x.mean((1, 2))).astype(int))
    (tmp_path / "r.yaml").write_text(RECIPE)
    res = edgekd.distill(tmp_path / "r.yaml", out=tmp_path / "run", progress=False)
    assert res.status == "ok" and not res.artifacts and {m.name for m in res.models} == {"teacher", "s"}
    p = cli("export", str(tmp_path / "run"), "--target", "onnxruntime", "--set", "opset=18", "--out",
            str(tmp_path / "re"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "re" / "artifacts" / "s" / "s.onnx").is_file() and "s " in p.stdout
    import onnx

    assert onnx.load(str(tmp_path / "re" / "artifacts" / "s" / "s.onnx")).opset_import[0].version == 18


def test_onnx_export_falls_back_to_the_torch_export_exporter(tmp_path):
    """Adaptive pooling to a size that does not divide the map: the TorchScript exporter refuses it."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 2)).eval()
    arts = edgekd.export(m, target="onnxruntime", example_input=(1, 15, 15), out_dir=tmp_path, name="ad",
                         log=lambda s: None)
    assert arts[0].deployable, arts[0].error
    assert arts[0].fidelity.max_abs_diff < 1e-4 and arts[0].fidelity.n_inputs == 256  # dynamic batch kept


def test_torchvision_teacher_through_distill_onnx_and_profile(tmp_path):
    """A torchvision ResNet-18 (random init, small input) as the teacher of a whole run."""
    pytest.importorskip("torchvision", reason="torchvision is a core dependency from torch 2.14.1 on")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 24, 24), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 6:18, 6:18].mean((1, 2)) > x.mean((1, 2))).astype(int))
    (tmp_path / "r.yaml").write_text(RECIPE.replace("arch: resnet-mini, params: {widths: [4, 8], blocks: [1, 1]}",
                                                    "arch: 'torchvision:resnet18'")
                                     + "export: {hls: {enabled: false}, rtl: {enabled: false}}\n"
                                       "profile: {batch_sizes: [1], runs: 20, warmup: 2}\n")
    p = cli("run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--no-progress", "--threads", "1")
    assert p.returncode == 0, p.stderr
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    teacher = next(m for m in rep["models"] if m["name"] == "teacher")
    assert teacher["arch"] == "torchvision:resnet18" and teacher["params"] > 11_000_000
    arts = {(a["model"], a["target"]): a["status"] for a in rep["artifacts"]}
    assert arts[("teacher", "onnxruntime")] == "ok" and arts[("s", "onnxruntime")] == "ok"
    assert {(r["model"], r["target"]) for r in rep["latency"]} >= {("teacher", "onnxruntime"), ("s", "cpu-torch")}
