"""End to end: an image folder (PNG + 16-bit TIFF) and a student from the user's own .py file."""
from __future__ import annotations

import json
import textwrap

import numpy as np
from PIL import Image

from edgekd.cli import main

STUDENT = textwrap.dedent('''
    import torch.nn as nn

    class TinyNet(nn.Module):
        """The user's own student: conv, pool, linear."""

        def __init__(self, num_classes, in_channels, width=4):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten(), nn.Linear(width, num_classes))

        def forward(self, x):
            return self.body(x)
''')

RECIPE = """
name: folder-e2e
seeds: [0]
data:
  kind: imagefolder
  path: {root}
  cache_dir: {cache}
  teacher_size: 24
  student_size: [16, 20]
  normalize: {{mean: 0.4, std: 0.2}}
  split: {{val: 0.2, test: 0.2, seed: 1}}
teacher:
  arch: resnet-mini
  params: {{widths: [8], blocks: [1]}}
  train: {{epochs: 3, batch_size: 16, augment: none, optim: {{lr: 0.01}}}}
students:
  - name: user-kd
    arch: tiny_student.py:TinyNet
    params: {{width: 4}}
    loss: [{{ce: 0.5}}, {{kd: {{weight: 0.5, tau: 2}}}}]
    train:
      epochs: 2
      batch_size: 16
      balanced: true
      augment: {{views: 4, hflip: 0.5, rotate: 10, brightness: 0.1, noise: 0.05}}
export:
  hls: {{enabled: false}}
  rtl: {{enabled: false}}
  tensorrt: {{enabled: false}}
profile: {{targets: [cpu-torch], batch_sizes: [1], runs: 10, large_batch_runs: 3, warmup: 1}}
"""


def _folder(root, n=(40, 20)):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    for c, (name, count) in enumerate(zip(["blob", "ring"], n)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            r = np.hypot(yy - 12 - rng.uniform(-2, 2), xx - 12 - rng.uniform(-2, 2))
            img = 0.3 + (0.5 * np.exp(-(r**2) / 12) if c == 0 else 0.5 * np.exp(-((r - 6) ** 2) / 3))
            img = np.clip(img + rng.normal(0, 0.04, img.shape), 0, 1)
            if i % 2:
                Image.fromarray((img * 65535).astype(np.uint16)).save(root / name / f"{i}.tif")
            else:
                Image.fromarray((img * 255).astype(np.uint8)).save(root / name / f"{i}.png")


def test_imagefolder_and_user_student_run_end_to_end(tmp_path):
    _folder(tmp_path / "cells")
    (tmp_path / "tiny_student.py").write_text(STUDENT)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(root="cells", cache=tmp_path / "cache"))  # paths relative to the recipe
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == "ok" and rep["data"]["classes"] == ["blob", "ring"]
    assert rep["data"]["class_counts"]["train"] == [24, 12]  # 40/20 split 60/20/20, stratified
    arts = {(a["model"], a["target"]): a for a in rep["artifacts"]}
    assert arts[("user-kd", "onnxruntime")]["status"] == "ok"
    student = next(m for m in rep["models"] if m["name"] == "user-kd")
    assert len(student["metrics"]["confusion"]) == 2 and 0.0 <= student["metrics"]["balanced_accuracy"] <= 1.0
    assert any(p.name.startswith("teacher-seed0-aug-") for p in (out / "cache").iterdir())
    assert "balanced accuracy" in (out / "report.md").read_text()


def test_onnx_teacher_file_with_imagefolder(tmp_path):
    """teacher.checkpoint as an ONNX file: logits-only KD; the teacher is neither re-exported nor profiled."""
    import torch

    from edgekd.nets import create_net

    _folder(tmp_path / "cells", n=(16, 16))
    (tmp_path / "tiny_student.py").write_text(STUDENT)
    torch.manual_seed(0)
    t = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=24, params={"widths": [8], "blocks": [1]})
    torch.onnx.export(t.eval(), (torch.zeros(1, 1, 24, 24),), str(tmp_path / "teacher.onnx"), opset_version=17,
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    recipe = RECIPE.format(root="cells", cache=tmp_path / "cache").replace(
        "  train: {epochs: 3,", "  checkpoint: teacher.onnx\n  train: {epochs: 3,")
    (tmp_path / "recipe.yaml").write_text(recipe)
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "recipe.yaml"), "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert {(a["model"], a["target"]) for a in rep["artifacts"]} == {("user-kd", "onnxruntime")}
    assert {r["model"] for r in rep["latency"]} == {"user-kd"}
    assert next(m for m in rep["models"] if m["name"] == "teacher")["metrics"] is not None
