"""Bring-your-own-model demo: an image folder (8-bit PNG and 16-bit TIFF), a torchvision teacher and
a student from the user's own .py file, through `edgekd run` with a recipe of under 20 lines.

    python tools/demo_byom.py --out /tmp/byom      # writes the folder, the files, the recipe; runs it
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RECIPE = """name: byom
seeds: [0]
data: {kind: imagefolder, path: cells, cache_dir: cache, teacher_size: 64, student_size: 32}
teacher:
  arch: torchvision:resnet18
  train: {epochs: 3, batch_size: 32, augment: {views: 2, hflip: 0.5, vflip: 0.5, rotate: 10}}
students:
  - name: tiny
    arch: my_student.py:TinyNet
    params: {width: 8}
    loss: [{ce: 0.1}, {kd: {weight: 0.9, tau: 4}}]
    train: {epochs: 4, batch_size: 32, augment: {views: 2, hflip: 0.5, vflip: 0.5, rotate: 10}}
export: {hls: {enabled: false}, rtl: {enabled: false}}
profile: {batch_sizes: [1], runs: 200}
"""

STUDENT = '''import torch.nn as nn


class TinyNet(nn.Module):
    """The user's own student: two conv blocks and a linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(width, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(width * 16, num_classes)

    def forward(self, x):
        return self.head(self.body(x))
'''


def write_folder(root: Path, n: int = 300) -> None:
    from PIL import Image

    from edgekd.data import synthetic

    x, y = synthetic.generate(n, seed=7, classes=(0, 1))
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / ("B" if label == 0 else "T4")
        d.mkdir(parents=True, exist_ok=True)
        if i % 2:  # half 16-bit TIFF, half 8-bit PNG, as mixed microscope exports are
            Image.fromarray((img.astype(np.float64) * 257).astype(np.uint16)).save(d / f"cell{i:04d}.tif")
        else:
            Image.fromarray(img).save(d / f"cell{i:04d}.png")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/byom"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_folder(args.out / "cells")
    (args.out / "my_student.py").write_text(STUDENT)
    (args.out / "recipe.yaml").write_text(RECIPE)
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "edgekd", "run", str(args.out / "recipe.yaml"), "--out",
                        str(args.out / "run"), "--overwrite", "--no-progress"], text=True)
    print(f"edgekd run: exit {p.returncode} in {time.time() - t:.0f} s; recipe has "
          f"{len(RECIPE.strip().splitlines())} lines")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
