"""Benchmark: the study's student on an NVIDIA GPU with edgekd's ``cuda`` profiler (issue 6).

Times ``cellsort-cnn`` (5,682 parameters, 1×48×48 → 2) in eager, CUDA-graph, compiled and
compiled+CUDA-graph modes, fp32 and fp16, at batch 1 and over a throughput sweep, plus
ONNX Runtime's CUDA/TensorRT providers when installed, and writes the ``<!-- gpu -->``
section of BENCHMARKS.md naming the device.

    python tools/bench_gpu.py --out /tmp/bench-gpu            # measure, write JSON + section
    python tools/bench_gpu.py --out /tmp/bench-gpu --no-write # measure only

Latency at batch 1 does not depend on the weights' values, so the student is built with
seeded random weights; the input is one real synthetic cell image, preprocessed as in
training. Needs a CUDA GPU: on a CPU-only machine it exits with status 2 and says so.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY_H200_GRAPH_US = 34.2  # notes/measured-anchors.md: CUDA graph replay fp32 on an H200
STUDY_H200_EAGER_US = 234.0
STUDY_FPGA_US = 14.5  # the cell-sorting study's FPGA latency


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for results.json and the ONNX file")
    p.add_argument("--runs", type=int, default=2000, help="timed calls at batch 1")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 4096])
    p.add_argument("--modes", nargs="+", default=None, help="subset of eager cuda-graph compiled compiled-graph")
    p.add_argument("--dtypes", nargs="+", default=None, help="subset of fp32 fp16")
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    return p.parse_args(argv)


def _section(data: dict) -> str:
    env = data["environment"]
    res = data["results"]
    b1 = sorted((r for r in res if r["batch_size"] == 1), key=lambda r: r["p50_us"])
    best = b1[0] if b1 else None
    L = ["<!-- gpu -->", "## GPU latency of the study's student (issue 6)", "",
         f"Device: **{env['gpu']}** (compute capability {env['compute_capability']}, {env['sm_count']} SMs), "
         f"driver {env['nvidia_smi'].get('driver_version', '?')}, torch {env['versions'].get('torch')}, "
         f"CUDA {env['torch_cuda']}, cuDNN {env['cudnn']}, Triton {env.get('triton')}. "
         f"SM clock at capture {env['nvidia_smi'].get('clocks.sm', '?')} (max {env['nvidia_smi'].get('clocks.max.sm', '?')}), "
         f"persistence mode {env['nvidia_smi'].get('persistence_mode', '?')}; clocks not locked.",
         "", f"`cellsort-cnn`, 5,682 parameters, one 1×48×48 image; {data['runs']} timed calls at batch 1 after "
         f"{data['warmup']} warm-up calls. Host time: `perf_counter_ns` from launch to stream synchronized "
         "(what a caller waits); device time: CUDA events around the call.", "",
         "| mode | precision | host p50 (µs) | host p90 | host p99 | device p50 (µs) | max abs diff vs CPU fp32 |",
         "|---|---|---|---|---|---|---|"]
    for r in b1:
        d = r["details"]
        dev = d.get("device_time") or {}
        key = f"{d['mode']}/{d['dtype']}"
        diff = data["output_diffs"].get(key)
        L.append(f"| {d['mode']} | {d['dtype']} | {r['p50_us']:,.1f} | {r['p90_us']:,.1f} | {r['p99_us']:,.1f} | "
                 f"{dev.get('p50_us', float('nan')):,.1f} | {'—' if diff is None else f'{diff:.2g}'} |")
    if best is not None:
        d = best["details"]
        L += ["", f"Fastest at batch 1: **{d['mode']} {d['dtype']}, p50 {best['p50_us']:.1f} µs** "
                  f"(p99 {best['p99_us']:.1f} µs). The study's H200 figures (notes/measured-anchors.md): "
                  f"eager {STUDY_H200_EAGER_US:.0f} µs, CUDA graph {STUDY_H200_GRAPH_US} µs → "
                  f"{STUDY_H200_GRAPH_US / best['p50_us']:.2f}× the CUDA-graph figure. The study's FPGA: "
                  f"{STUDY_FPGA_US} µs → the GPU is {best['p50_us'] / STUDY_FPGA_US:.2f}× the FPGA latency."]
    sweep = {}
    for r in res:
        if r["batch_size"] > 1:
            cur = sweep.get(r["batch_size"])
            if cur is None or r["throughput_per_s"] > cur["throughput_per_s"]:
                sweep[r["batch_size"]] = r
    if sweep:
        L += ["", "Throughput sweep (best mode per batch size, images/s at the p50 latency):", "",
              "| batch | mode | precision | host p50 (µs) | images/s |", "|---|---|---|---|---|"]
        for bs in sorted(sweep):
            r = sweep[bs]
            L.append(f"| {bs:,} | {r['details']['mode']} | {r['details']['dtype']} | {r['p50_us']:,.1f} | "
                     f"{r['throughput_per_s']:,.0f} |")
    if data["failures"]:
        L += ["", "Modes that could not run: " + "; ".join(f"{f['mode']}/{f['dtype']} batch {f['batch_size']}: "
                                                           f"{f['error'][:120]}" for f in data["failures"])]
    L += ["", f"Reproduce: `{data['command']}`", "<!-- /gpu -->"]
    return "\n".join(L) + "\n"


def write_section(section: str, path: Path) -> None:
    """Replace (or append) the ``<!-- gpu -->`` section of ``path``, leaving the rest as it is."""
    from edgekd.report.benchmarks_md import write_section as write

    write(path, "gpu", section)


def main(argv=None) -> int:
    args = parse_args(argv)
    import dataclasses

    import torch

    from edgekd.config.schema import NormalizeConfig
    from edgekd.data import synthetic
    from edgekd.data.views import make_view
    from edgekd.errors import EdgekdError
    from edgekd.nets import create_net
    from edgekd.profile.cuda import CudaProfileConfig, profile_cuda, require_cuda

    try:
        require_cuda()
        cfg = CudaProfileConfig(runs=args.runs, warmup=args.warmup, batch_sizes=tuple(args.batch_sizes),
                                **({"modes": tuple(args.modes)} if args.modes else {}),
                                **({"dtypes": tuple(args.dtypes)} if args.dtypes else {})).validate()
    except EdgekdError as exc:
        print(f"bench_gpu: {exc.message}", file=sys.stderr)
        return exc.exit_code
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48).eval()
    images, _ = synthetic.generate(8, seed=3, classes=(0, 1))
    x = make_view(images, 48, NormalizeConfig())[:1]
    from edgekd.export.onnx import export_onnx

    onnx_path = export_onnx(model, x, args.out / "cellsort-cnn.fp32.onnx")
    prof = profile_cuda(model, "cellsort-cnn", x, cfg, onnx_path=onnx_path, log=lambda m: print(m, flush=True))
    data = {"environment": prof.environment, "results": [r.to_dict() for r in prof.results],
            "failures": [dataclasses.asdict(f) for f in prof.failures], "output_diffs": prof.outputs_max_abs_diff,
            "runs": cfg.runs, "warmup": cfg.warmup,
            "command": "python tools/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    from edgekd.runs.atomic import write_json

    write_json(args.out / "results.json", data)
    section = _section(data)
    print(section)
    if not args.no_write:
        write_section(section, ROOT / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
