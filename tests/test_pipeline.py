"""End to end through the CLI, on an NPZ dataset written by the test (not the generator)."""
import json

import numpy as np
import pytest

from edgekd.cli import main
from edgekd.runs import sha256_file


def _make_npz(path, n=360, size=32, seed=0):
    """Two classes a human could tell apart: bright blob vs ring, with noise and jitter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    x = np.empty((n, size, size), np.uint8)
    y = np.arange(n) % 2
    for i in range(n):
        cy, cx = size / 2 + rng.uniform(-3, 3, 2)
        r = np.hypot(yy - cy, xx - cx)
        img = 80 + rng.normal(0, 12, (size, size))
        img += 120 * np.exp(-(r**2) / 20) if y[i] == 0 else 120 * np.exp(-((r - 7) ** 2) / 4)
        x[i] = np.clip(img, 0, 255)
    np.savez(path, x=x, y=y, classes=np.array(["blob", "ring"]))


RECIPE = """
name: npz-e2e
seeds: [0, 1]
data:
  kind: npz
  path: cells.npz
  teacher_size: 32
  student_size: 24
  normalize: {{mean: 0.4, std: 0.2}}
  split: {{val: 0.2, test: 0.2, seed: 3}}
teacher:
  arch: resnet-mini
  params: {{widths: [8, 16], blocks: [1, 1]}}
  train: {{epochs: 5, batch_size: 32, optim: {{lr: 0.01}}}}
students:
  - name: mlp-kd
    arch: mlp
    params: {{hidden: 8, pool: 4}}
    loss: [{{ce: 0.5}}, {{kd: {{weight: 0.5, tau: 2}}}}]
    train: {{epochs: 4, batch_size: 32, augment: none, optim: {{lr: 0.01}}}}
  - name: mlp-ce
    arch: mlp
    params: {{hidden: 8, pool: 4}}
    export: false
    train: {{epochs: 4, batch_size: 32, optim: {{lr: 0.01}}}}
export:
  hls: {{io_type: io_parallel, n_check: 40, min_agreement: {agree}, precision: "{precision}"}}
  tensorrt: {{enabled: {trt}, n_golden: 8, max_batch: 16, targets: [orin-nano-8gb, agx-thor]}}
profile: {{targets: [cpu-torch, onnxruntime, cuda], batch_sizes: [1, 16], runs: 100, large_batch_runs: 5, warmup: 5}}
"""


@pytest.fixture
def npz_recipe(tmp_path):
    _make_npz(tmp_path / "cells.npz")

    def write(precision="auto", agree=0.95, trt="true"):
        p = tmp_path / "recipe.yaml"
        p.write_text(RECIPE.format(precision=precision, agree=agree, trt=trt))
        return p
    return write


@pytest.mark.hls
def test_npz_recipe_runs_end_to_end(npz_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", str(npz_recipe()), "--out", str(out), "--no-progress"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == "ok"
    assert rep["data"]["classes"] == ["blob", "ring"]
    assert rep["data"]["sizes"] == {"train": 216, "val": 72, "test": 72}
    names = {r["name"]: r for r in rep["accuracy"]}
    assert set(names) == {"teacher", "mlp-kd", "mlp-ce"} and names["mlp-kd"]["n_seeds"] == 2
    assert names["teacher"]["acc_mean"] > 0.8  # an easy task: the pipeline really trains
    arts = {(a["model"], a["target"]): a for a in rep["artifacts"]}
    assert {("teacher", "onnxruntime"), ("mlp-kd", "onnxruntime"), ("mlp-kd", "fpga-hls")} <= set(arts)
    assert all(a["status"] == "ok" for a in rep["artifacts"])
    trt = [a for a in rep["artifacts"] if a["target"] == "tensorrt"]
    assert trt and all(a["model"] == "mlp-kd" for a in trt)
    assert (out / "artifacts" / "mlp-kd" / "tensorrt" / "metadata.json").is_file()
    assert arts[("mlp-kd", "onnxruntime")]["fidelity"]["max_abs_diff"] <= 1e-4
    lat = rep["latency"]
    assert {(r["model"], r["target"], r["batch_size"]) for r in lat} >= {
        ("teacher", "cpu-torch", 1), ("mlp-kd", "onnxruntime", 16)}
    expected = {"cpu-torch": "measured", "onnxruntime": "measured", "fpga-hls": "estimated"}
    assert all(r["method"] == expected[r["target"]] and r["p50_us"] <= r["p99_us"] for r in lat)
    assert any(r["target"] == "fpga-hls" for r in lat)  # the hls design's estimate, labelled as such
    manifest = json.loads((out / "manifest.json").read_text())
    for rel, info in manifest["files"].items():
        assert sha256_file(out / rel) == info["sha256"], rel
    assert "report.md" in manifest["files"] and manifest["versions"]["torch"].startswith("2.14")
    md = (out / "report.md").read_text()
    assert "## Accuracy" in md and "## Latency" in md and "plots/accuracy_vs_params.png" in md
    for png in ("accuracy_vs_params.png", "latency.png", "training_curves.png"):
        assert (out / "plots" / png).stat().st_size > 5000

    # an existing run is not touched without --resume / --overwrite
    before = (out / "report.json").read_bytes()
    assert main(["run", str(npz_recipe()), "--out", str(out), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before
    # --resume finds every checkpoint complete and reproduces the same accuracies
    assert main(["run", str(npz_recipe()), "--out", str(out), "--no-progress", "--resume"]) == 0
    rep2 = json.loads((out / "report.json").read_text())
    assert [r["acc_mean"] for r in rep2["accuracy"]] == [r["acc_mean"] for r in rep["accuracy"]]


@pytest.mark.hls
def test_failed_fidelity_fails_the_run(npz_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", str(npz_recipe(precision="fixed<3,1>", agree=1.0, trt="false")), "--out", str(out), "--no-progress"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "fidelity" in err and "mlp-kd fpga-hls" in err
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == "failed"
    hls = [a for a in rep["artifacts"] if a["target"] == "fpga-hls"][0]
    assert hls["status"] == "failed"
    assert "FAILED" in (out / "report.md").read_text()


def test_cli_help_and_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--quick" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("students: [{name: a, arch: cellsort-cnn, lr: 3}]\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "students[0].lr" in err and "Traceback" not in err
    assert main(["validate"]) == 0
