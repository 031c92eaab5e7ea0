"""ONNX Runtime CPU latency of the TensorRT bundle's fp32 / fp16 / INT8 Q/DQ files (issue 16).

Trains the study's student briefly on synthetic cells (the weights barely move latency, but
the INT8 twin needs real activations to calibrate), writes the bundle without building
engines, and times each ONNX file with ONNX Runtime's CPU provider, one thread, batch 1:

    python tools/ort_precision_speeds.py --runs 1000

Prints the same statement the bundle's README carries ("which precision is fastest where").
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1000)
    args = p.parse_args(argv)
    import torch
    import torch.nn as nn

    from edgekd.config.schema import NormalizeConfig
    from edgekd.data import synthetic
    from edgekd.data.views import make_view
    from edgekd.export import tensorrt as trtx
    from edgekd.nets import create_net

    x, y = synthetic.generate(400, seed=11, classes=(0, 1))
    X, Y = make_view(x, 48, NormalizeConfig()), torch.from_numpy(y).long()
    torch.manual_seed(1)
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(2):
        for i in range(0, 250, 50):
            loss = nn.functional.cross_entropy(m(X[i : i + 50]), Y[i : i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = Path(tempfile.mkdtemp(prefix="edgekd-ort-speeds-"))
    cfg = trtx.BundleConfig(speed_runs=args.runs)
    b = trtx.export_bundle(m.eval(), "cellsort-cnn", x_calib=X[:250], x_check=X[250:], out_dir=out,
                           preprocessing={}, config=cfg, build=False)
    speeds = b.metadata["onnxruntime_cpu_latency"]
    for prec, v in speeds["precisions"].items():
        print(f"{prec:5s} {v['file']:28s} p50 {v['p50_us']:8.1f} µs  p90 {v['p90_us']:8.1f}  p99 {v['p99_us']:8.1f}")
    print(speeds["statement"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
