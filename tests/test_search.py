"""edgekd search (issue 15): budgets, Pareto fronts, tiny real searches, a killed search resumed,
Ray Tune workers, and QAT students started from their float twins."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, EdgekdError
from edgekd.search.budget import Budget, parse_budget
from edgekd.search.pareto import pareto_front

RECIPE = """
name: tiny-search
seeds: [0]
data:
  kind: synthetic
  classes: [B, T4]
  teacher_size: 32
  student_size: 24
  synthetic: {n_train: 240, n_val: 80, n_test: 80, seed: 1, difficulty: 0.3}
teacher:
  arch: resnet-mini
  params: {widths: [8, 16], strides: [1, 2], blocks: [1, 1]}
  train: {epochs: 1, batch_size: 64}
students:
  - {name: s, arch: cellsort-cnn}
export:
  hls: {n_check: 40}
  rtl: {n_check: 40}
search:
  trials: TRIALS
  epochs: [1, 2]
  qat_epochs: 1
  profile_runs: 20
  train: {epochs: 2, batch_size: 64, augment: none}
  families: FAMILIES
  knobs:
    fpga-hls: {io_type: io_stream, strategy: [Latency, Resource], reuse_factor: [1, auto]}
"""
FPGA_FAMILIES = """
    - arch: cellsort-cnn-q
      params: {channels: [2, 4], weight_bits: [4, 8], pool_in: 2}
    - arch: mlp-q
      params: {hidden: [4, 8], pool: [4, 6]}"""
CPU_FAMILIES = """
    - arch: cellsort-cnn
      params: {channels: [2, 4], pool_in: [1, 2]}
    - arch: dwsep-cnn
      params: {width: [4, 8]}
    - arch: mlp
      params: {hidden: [4, 8, 16], pool: [4, 6]}"""


def _recipe(d: Path, families: str, trials: int = 3) -> Path:
    p = d / "search.yaml"
    p.write_text(RECIPE.replace("TRIALS", str(trials)).replace("FAMILIES", families))
    return p


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekd", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


# ---- budgets ------------------------------------------------------------------------------
def test_budget_parsing_fractions_percent_and_bounds():
    b = parse_budget("latency_us=2, lut=0.8,dsp=50%,accuracy=0.9", "fpga-hls")
    assert b.limits == {"latency_us": 2.0, "lut": 0.8, "dsp": 0.5, "accuracy": 0.9}
    assert b.met({"latency_us": 1.9, "lut": 0.8, "dsp": 0.1, "accuracy": 0.95})
    assert not b.met({"latency_us": 2.1, "lut": 0.1, "dsp": 0.1, "accuracy": 0.95})
    assert not b.met({"latency_us": 1.0, "lut": 0.1, "dsp": 0.1, "accuracy": 0.85})  # accuracy is a floor
    assert b.distance({"latency_us": 3.0, "lut": 0.4, "dsp": 0.1, "accuracy": 0.9}) == pytest.approx(0.5)
    assert parse_budget("params=5000,latency_us=100", "onnxruntime").limits == {"params": 5000.0,
                                                                                "latency_us": 100.0}
    assert parse_budget(None, "fpga-rtl") == Budget()
    from edgekd.search.costs import Cost

    c = Cost(latency_us=2.0, latency_label="estimated", resources={"lut": 0.5}, upper={"lut": 1.5},
             latency_interval=[1.5, 3.0])
    assert not parse_budget("latency_us=2.5,lut=1", "fpga-hls").met(c.budget_figures(None))  # upper ends
    assert parse_budget("latency_us=2.5,lut=1", "fpga-hls", on="point").met(c.budget_figures(None, "point"))
    with pytest.raises(ConfigError, match="budget-on"):
        parse_budget("lut=1", "fpga-hls", on="mean")


@pytest.mark.parametrize("spec,target,needle", [
    ("luts=0.5", "fpga-hls", "unknown budget 'luts'"),
    ("lut=0.5", "onnxruntime", "unknown budget 'lut'"),
    ("latency_us=-2", "fpga-hls", "must be a positive number"),
    ("latency_us=0", "fpga-rtl", "must be a positive number"),
    ("lut=abc", "fpga-hls", "is not a number"),
    ("lut=1.5", "fpga-hls", "more than the whole part"),
    ("latency_us=2,latency_us=3", "fpga-hls", "given twice"),
    ("latency_us", "fpga-hls", "has no '='"),
    ("latency_us=5%", "fpga-hls", "does not take a percentage"),
    ("latency_us=nan", "fpga-hls", "positive number"),
])
def test_bad_budgets_are_refused_with_the_valid_keys(spec, target, needle):
    with pytest.raises(ConfigError) as e:
        parse_budget(spec, target)
    assert needle in e.value.message
    if "unknown" in needle:
        assert "latency_us" in e.value.message  # lists what the target takes


# ---- Pareto -------------------------------------------------------------------------------
def test_pareto_front_on_known_points():
    pts = [
        {"key": "a", "accuracy": 0.90, "latency_us": 10.0, "resource": 0.5},
        {"key": "b", "accuracy": 0.85, "latency_us": 2.0, "resource": 0.5},
        {"key": "c", "accuracy": 0.80, "latency_us": 3.0, "resource": 0.6},  # dominated by b
        {"key": "d", "accuracy": 0.80, "latency_us": 2.0, "resource": 0.1},  # cheapest
        {"key": "e", "accuracy": 0.90, "latency_us": 11.0, "resource": 0.5},  # dominated by a
        {"key": "f", "accuracy": 0.95, "latency_us": 50.0, "resource": 0.9},  # most accurate
    ]
    front = pareto_front(pts)
    assert {p["key"] for p in front} == {"a", "b", "d", "f"}
    assert [p["latency_us"] for p in front] == sorted(p["latency_us"] for p in front)
    assert pareto_front([]) == []
    same = [{"key": k, "accuracy": 0.5, "latency_us": 1.0, "resource": 0.1} for k in "xy"]
    assert len(pareto_front(same)) == 2  # equal points do not dominate each other


# ---- recipes ------------------------------------------------------------------------------
def test_search_recipes_are_checked(tmp_path):
    from edgekd.config import load_recipe
    from edgekd.search import search

    p = _recipe(tmp_path, FPGA_FAMILIES)
    with pytest.raises(ConfigError, match="no search family suits target onnxruntime"):
        search(p, target="onnxruntime", out=tmp_path / "o")
    with pytest.raises(ConfigError, match="not supported"):
        search(p, target="tensorrt", out=tmp_path / "o")
    bad = tmp_path / "bad.yaml"
    bad.write_text(p.read_text().replace("epochs: [1, 2]", "epochs: [2, 1]"))
    with pytest.raises(ConfigError, match="increasing"):
        load_recipe(bad)
    plain = tmp_path / "plain.yaml"
    plain.write_text(p.read_text().split("search:")[0])
    with pytest.raises(ConfigError, match="no 'search:' section"):
        search(plain, target="fpga-hls", out=tmp_path / "o")
    typo = tmp_path / "typo.yaml"
    typo.write_text(p.read_text().replace("hidden: [4, 8]", "hiden: [4, 8]"))
    with pytest.raises(EdgekdError, match="hiden"):
        search(typo, target="fpga-hls", out=tmp_path / "t", progress=False)


# ---- real searches ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.hls
def test_tiny_fpga_search_end_to_end_exports_the_best_student_checked(tmp_path):
    from edgekd.search import search

    res = search(_recipe(tmp_path, FPGA_FAMILIES, trials=3), target="fpga-hls", out=tmp_path / "s",
                 budget="latency_us=60,lut=0.9", progress=False)
    assert res.status == "ok"
    assert sum(res.counts.values()) >= 1 and res.front
    best = res.best
    assert best["fidelity_ok"] and best["artifacts"][0]["fidelity"]["passed"]
    assert best["meets_budget_by_target"] and best["target_figures"]["latency_label"] == "estimated"
    assert best["target_figures"]["latency_us"] <= 60
    saved = json.loads((tmp_path / "s" / "search.json").read_text())
    assert saved["front"] and saved["best"]["name"] == best["name"]
    assert (tmp_path / "s" / "front.png").stat().st_size > 1000
    assert "Pareto front" in (tmp_path / "s" / "search.md").read_text()
    for rec in (tmp_path / "s" / "trials").glob("*.json"):
        r = json.loads(rec.read_text())
        assert r["cost"]["latency_label"] == "estimated" and r["cost"]["latency_interval"]


@pytest.mark.slow
def test_killed_search_resumes_and_an_unreachable_budget_names_the_closest_points(tmp_path):
    p = _recipe(tmp_path, CPU_FAMILIES, trials=3)
    p.write_text(p.read_text().replace("epochs: [1, 2]", "epochs: [1, 6]"))
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "edgekd", "search", str(p), "--target", "onnxruntime",
                             "--out", str(out), "--no-progress", "--no-export"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(out.glob("trials/*.json")):
        time.sleep(0.2)
    time.sleep(1.0)  # inside the next trial's training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {q.name: q.read_bytes() for q in (out / "trials").glob("*.json")}
    assert first, "no trial finished before the kill"
    # resumed under a budget nothing can meet: the search finishes, then says so, naming the closest points
    r = _cli("search", str(p), "--target", "onnxruntime", "--out", str(out), "--resume", "--no-progress",
             "--budget", "latency_us=100000,accuracy=0.999")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "no trained student meets the budget" in r.stderr and "closest points:" in r.stderr
    assert "val " in r.stderr and "over by accuracy" in r.stderr and "Traceback" not in r.stderr
    saved = json.loads((out / "search.json").read_text())
    assert saved["status"] == "unreachable" and saved["closest"]
    for name, blob in first.items():  # finished trials are not trained again
        assert (out / "trials" / name).read_bytes() == blob
    import optuna

    study = optuna.load_study(study_name="edgekd-search", storage=f"sqlite:///{out / 'search.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 3 and "RUNNING" not in states
    # the same folder answers a looser budget without training anything
    before = {q.name: q.stat().st_mtime_ns for q in (out / "trials").glob("*.json")}
    r2 = _cli("search", str(p), "--target", "onnxruntime", "--out", str(out), "--budget", "latency_us=100000",
              "--resume", "--no-progress", "--no-export")
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert {q.name: q.stat().st_mtime_ns for q in (out / "trials").glob("*.json")} == before
    assert json.loads((out / "search.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_ray_tune_runs_trials_in_parallel_workers(tmp_path):
    pytest.importorskip("ray")
    from edgekd.search import search

    res = search(_recipe(tmp_path, CPU_FAMILIES, trials=2), target="cpu-torch", out=tmp_path / "s", workers=2,
                 progress=False, export_best=False)
    assert res.status == "ok" and res.front
    assert (tmp_path / "s" / "ray" / "trials").is_dir()  # Ray Tune's own experiment folder
    import optuna

    study = optuna.load_study(study_name="edgekd-search", storage=f"sqlite:///{tmp_path / 's' / 'search.db'}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2


def test_missing_ray_and_optuna_are_one_clear_message(monkeypatch):
    from edgekd.errors import ToolMissingError
    from edgekd.search import engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ToolMissingError, match=r"ray\[tune\] is not installed") as e:
        engine.run_ray(None, None, "cpu-torch", Budget(), 2, workers=2, address=None, seed=0, log=print)
    assert "--workers 1" in e.value.message
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ToolMissingError, match="optuna is not installed"):
        engine.finished(None)


# ---- QAT students started from their float twins -----------------------------------------
def test_batchnorm_folding_keeps_the_function():
    from edgekd.nets.transfer import fold_batchnorm

    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
                      nn.BatchNorm1d(3))
    m.train()
    for _ in range(3):
        m(torch.randn(16, 1, 8, 8))  # running statistics that are not the identity
    m.eval()
    x = torch.randn(5, 1, 8, 8)
    folded, names = fold_batchnorm(m)
    assert names == ["0", "4"]
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in folded.modules())
    torch.testing.assert_close(folded(x), m(x), atol=1e-5, rtol=1e-5)


def test_qat_student_starts_from_its_float_twin():
    import edgekd.nets.quant  # noqa: F401
    from edgekd.nets import create_net
    from edgekd.nets.transfer import init_from

    torch.manual_seed(0)
    kw = dict(num_classes=2, in_channels=1, input_size=24)
    f = create_net("cellsort-cnn", params={"channels": 4, "bias": False}, **kw).eval()
    q = create_net("cellsort-cnn-q", params={"channels": 4}, **kw)
    x = torch.randn(256, 1, 24, 24)
    rep = init_from(q, f, x, seed=0, calibration_steps=20)
    assert len(rep.layers) == 3 and not rep.dropped_biases and rep.calibration_batches == 20
    q.eval()
    with torch.no_grad():
        agree = (q(x).argmax(1) == f(x).argmax(1)).float().mean().item()
    assert agree > 0.9  # 8-bit copy of the float network: same decisions almost everywhere
    fresh = create_net("cellsort-cnn-q", params={"channels": 4}, **kw).eval()
    with torch.no_grad():
        assert (fresh(x).argmax(1) == f(x).argmax(1)).float().mean().item() < agree
    wrong = create_net("cellsort-cnn-q", params={"channels": 8}, **kw)
    with pytest.raises(EdgekdError, match="weight shape"):
        init_from(wrong, f)


def test_qat_student_keeps_biases_on_the_accumulator_grid():
    import edgekd.nets.quant  # noqa: F401
    from edgekd.export import intref
    from edgekd.nets import create_net
    from edgekd.nets.quant import firmware_part
    from edgekd.nets.transfer import init_from

    torch.manual_seed(1)
    kw = dict(num_classes=2, in_channels=1, input_size=24)
    f = create_net("cellsort-cnn", params={"channels": 4}, **kw).eval()
    with torch.no_grad():
        for mod in f.modules():
            if getattr(mod, "bias", None) is not None:
                mod.bias.normal_(0, 0.5)
    x = torch.randn(256, 1, 24, 24)
    dropped = init_from(create_net("cellsort-cnn-q", params={"channels": 4}, **kw), f, x, seed=0)
    assert len(dropped.dropped_biases) == 3  # no bias in the QAT student: reported
    q = create_net("cellsort-cnn-q", params={"channels": 4, "bias": "quantized"}, **kw)
    rep = init_from(q, f, x, seed=0, calibration_steps=20)
    assert not rep.dropped_biases
    q.eval()
    im = intref.extract(firmware_part(q))
    # the float biases, rounded onto each layer's accumulator grid
    acc_exp = im.input_spec.exp + im.layers[0].w_exp
    np.testing.assert_array_equal(im.layers[0].bias, torch.round(f[0].bias.detach() / 2.0 ** acc_exp).numpy())
    with torch.no_grad():
        assert (q(x).argmax(1) == f(x).argmax(1)).float().mean().item() > 0.9


def test_student_init_must_name_an_earlier_student(tmp_path):
    from edgekd.config.load import parse_recipe

    base = {"students": [{"name": "q", "arch": "cellsort-cnn-q", "init": "f"}, {"name": "f"}]}
    with pytest.raises(ConfigError, match="not a student listed before it"):
        parse_recipe(base)
    ok = parse_recipe({"students": [{"name": "f"}, {"name": "q", "arch": "cellsort-cnn-q", "init": "f"}]})
    assert ok.students[1].init == "f"
