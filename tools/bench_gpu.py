"""Benchmark: the study's student on an NVIDIA GPU with edgekd's ``cuda`` profiler (issue 6).

The one command for an H100/H200. Times ``cellsort-cnn`` (5,682 parameters, 1×48×48 → 2) in
eager, CUDA-graph, compiled and compiled+CUDA-graph modes, fp32 (TF32 off) and fp16, at
batch 1 and over a throughput sweep, plus ONNX Runtime's CUDA/TensorRT providers when
installed (``onnxruntime-gpu``), plus the TensorRT bundle's engines (built with the bundle's
own scripts, timed with trtexec) when ``tensorrt`` imports; writes the ``<!-- gpu -->``
section of BENCHMARKS.md naming the device. Every row says its clock: host (what a caller
waits) or device (CUDA events; trtexec's GPU Compute Time); the cuda rows give both.

    python tools/bench_gpu.py --out /tmp/bench-gpu --dry-run  # what would run, what is skipped and why
    python tools/bench_gpu.py --out /tmp/bench-gpu            # measure, write JSON + section
    python tools/bench_gpu.py --out /tmp/bench-gpu --no-write # measure only

Latency at batch 1 does not depend on the weights' values, so the student is built with
seeded random weights; the input is one real synthetic cell image, preprocessed as in
training. Needs a CUDA GPU: on a CPU-only machine it exits with status 2 and says so
(``--dry-run`` works anywhere and exits 0).
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
    p.add_argument("--no-tensorrt", action="store_true", help="skip the TensorRT bundle's engines")
    p.add_argument("--dry-run", action="store_true", help="print what would run and what would be skipped, and why")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(what would run, what would be skipped with the reason), from this machine's state alone."""
    import importlib.util
    import shutil

    from edgekd.errors import ToolMissingError
    from edgekd.export.tensorrt import tensorrt_status
    from edgekd.profile.cuda import DTYPES, MODES, available_ort_gpu_providers, ort_gpu_missing_message, require_cuda

    run, skip = [], []
    modes, dtypes = args.modes or list(MODES), args.dtypes or list(DTYPES)
    try:
        require_cuda()
        gpu = True
    except ToolMissingError as exc:
        gpu = False
        skip.append(f"every GPU measurement: {exc.what}")
    if gpu:
        run.append(f"cuda: {len(modes)} modes {modes} × {dtypes} × batch {args.batch_sizes}, "
                   f"{args.runs} runs at batch 1 (host and device time)")
    compiled = [m for m in modes if m.startswith("compiled")]
    if compiled and importlib.util.find_spec("triton") is None:
        skip.append(f"cuda modes {compiled}: triton is not installed (torch.compile needs it); recorded as failures")
    provs = available_ort_gpu_providers()
    if provs:
        run.append(f"onnxruntime GPU rows: {provs}, one session per batch size (host time)")
    else:
        skip.append(ort_gpu_missing_message().replace("[cuda] ", ""))
    ok, why = tensorrt_status()
    if args.no_tensorrt:
        skip.append("TensorRT engines: --no-tensorrt")
    elif ok:
        trtexec = shutil.which("trtexec") or ("/usr/src/tensorrt/bin/trtexec"
                                              if Path("/usr/src/tensorrt/bin/trtexec").exists() else None)
        run.append(f"TensorRT engines ({why}): int8/fp16/fp32 built and golden-checked with the bundle's scripts")
        if trtexec:
            run.append(f"TensorRT timing with {trtexec} (device time: GPU Compute Time)")
        else:
            skip.append("TensorRT timing: trtexec not found (engines built and checked, not timed)")
    else:
        skip.append(f"TensorRT engines: {why} (pip install tensorrt, or a container with TensorRT)")
    if shutil.which("nvidia-smi") is None:
        skip.append("clocks/driver record: nvidia-smi not found")
    if not gpu:
        skip.append("BENCHMARKS.md <!-- gpu --> section: nothing measured, left as it is")
    elif args.no_write:
        skip.append("BENCHMARKS.md <!-- gpu --> section: --no-write")
    else:
        run.append("BENCHMARKS.md <!-- gpu --> section: rewritten")
    return run, skip


def print_plan(run: list[str], skip: list[str], file=sys.stdout) -> None:
    for line in run:
        print(f"would run:  {line}", file=file)
    for line in skip:
        print(f"would skip: {line}", file=file)


def _row_label(r: dict) -> tuple[str, str]:
    """(mode, precision) of a result dict: cuda/ORT rows carry them, TensorRT rows their bench record."""
    d = r["details"]
    if r["target"] == "tensorrt":
        return "tensorrt (trtexec)", str((d.get("environment") or {}).get("precision", "?"))
    return d.get("mode", r["target"]), d.get("dtype", "?")


def _both_clocks(r: dict) -> tuple[str, str]:
    """(host p50, device p50) cells; '—' where the row has no figure on that clock."""
    clock = r.get("clock", "host")
    other = "device" if clock == "host" else "host"
    vals = {clock: r["p50_us"], other: (r["details"].get(f"{other}_time") or {}).get("p50_us")}
    return tuple("—" if vals[k] is None else f"{vals[k]:,.1f}" for k in ("host", "device"))


def _section(data: dict) -> str:
    env = data["environment"]
    res = data["results"]
    b1 = sorted((r for r in res if r["batch_size"] == 1), key=lambda r: (r.get("clock", "host") != "host", r["p50_us"]))
    host_b1 = [r for r in b1 if r.get("clock", "host") == "host"]
    best = host_b1[0] if host_b1 else None
    L = ["<!-- gpu -->", "## GPU latency of the study's student (issue 6)", "",
         f"Device: **{env['gpu']}** (compute capability {env['compute_capability']}, {env['sm_count']} SMs), "
         f"driver {env['nvidia_smi'].get('driver_version', '?')}, torch {env['versions'].get('torch')}, "
         f"CUDA {env['torch_cuda']}, cuDNN {env['cudnn']}, Triton {env.get('triton')}. "
         f"SM clock at capture {env['nvidia_smi'].get('clocks.sm', '?')} (max {env['nvidia_smi'].get('clocks.max.sm', '?')}), "
         f"persistence mode {env['nvidia_smi'].get('persistence_mode', '?')}; clocks not locked.",
         "", f"`cellsort-cnn`, 5,682 parameters, one 1×48×48 image; {data['runs']} timed calls at batch 1 after "
         f"{data['warmup']} warm-up calls. **Host** time: `perf_counter_ns` from launch to stream synchronized "
         "(what a caller waits), in its own loop; **device** time: CUDA events around the call (for TensorRT, "
         "trtexec's GPU Compute Time). The two clocks are not comparable; fp32 rows run with TF32 off.", "",
         "| mode | precision | clock | p50 (µs) | p90 | p99 | host p50 (µs) | device p50 (µs) | max abs diff vs CPU fp32 |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in b1:
        mode, dtype = _row_label(r)
        host, dev = _both_clocks(r)
        diff = data["output_diffs"].get(f"{mode}/{dtype}")
        L.append(f"| {mode} | {dtype} | {r.get('clock', 'host')} | {r['p50_us']:,.1f} | {r['p90_us']:,.1f} | "
                 f"{r['p99_us']:,.1f} | {host} | {dev} | {'—' if diff is None else f'{diff:.2g}'} |")
    if best is not None:
        d = best["details"]
        L += ["", f"Fastest at batch 1 (host time): **{d['mode']} {d['dtype']}, p50 {best['p50_us']:.1f} µs** "
                  f"(p99 {best['p99_us']:.1f} µs). The study's H200 figures (notes/measured-anchors.md): "
                  f"eager {STUDY_H200_EAGER_US:.0f} µs, CUDA graph {STUDY_H200_GRAPH_US} µs → "
                  f"{STUDY_H200_GRAPH_US / best['p50_us']:.2f}× the CUDA-graph figure. The study's FPGA: "
                  f"{STUDY_FPGA_US} µs → the GPU is {best['p50_us'] / STUDY_FPGA_US:.2f}× the FPGA latency."]
    sweep = {}
    for r in res:
        if r["batch_size"] > 1 and r.get("clock", "host") == "host":
            cur = sweep.get(r["batch_size"])
            if cur is None or r["throughput_per_s"] > cur["throughput_per_s"]:
                sweep[r["batch_size"]] = r
    if sweep:
        L += ["", "Throughput sweep (best mode per batch size, host time, images/s at the p50 latency):", "",
              "| batch | mode | precision | host p50 (µs) | images/s |", "|---|---|---|---|---|"]
        for bs in sorted(sweep):
            r = sweep[bs]
            L.append(f"| {bs:,} | {r['details']['mode']} | {r['details']['dtype']} | {r['p50_us']:,.1f} | "
                     f"{r['throughput_per_s']:,.0f} |")
    if data["failures"]:
        L += ["", "Modes that could not run: " + "; ".join(f"{f['mode']}/{f['dtype']} batch {f['batch_size']}: "
                                                           f"{f['error'][:120]}" for f in data["failures"])]
    if data.get("skipped"):
        L += ["", "Skipped: " + "; ".join(data["skipped"])]
    L += ["", f"Reproduce: `{data['command']}`", "<!-- /gpu -->"]
    return "\n".join(L) + "\n"


def write_section(section: str, path: Path) -> None:
    """Replace (or append) the ``<!-- gpu -->`` section of ``path``, leaving the rest as it is."""
    from edgekd.report.benchmarks_md import write_section as write

    write(path, "gpu", section)


def _tensorrt_rows(model, images, out: Path, log) -> tuple[list, str]:
    """Export the TensorRT bundle and build/check/time its engines here (beside the bundle)."""
    from edgekd.config.schema import NormalizeConfig
    from edgekd.export import tensorrt as trtx

    norm = NormalizeConfig()
    bundle = trtx.export_bundle(model, "cellsort-cnn", x_calib=images[:128], x_check=images[128:],
                                out_dir=out / "tensorrt-bundle",
                                preprocessing=trtx.preprocessing_contract(size=48, channels=1, mean=norm.mean,
                                                                          std=norm.std),
                                build=True, log=log)
    return bundle.latencies, bundle.message


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

    run, skip = plan(args)
    if args.dry_run:
        print_plan(run, skip)
        return 0
    try:
        require_cuda()
        cfg = CudaProfileConfig(runs=args.runs, warmup=args.warmup, batch_sizes=tuple(args.batch_sizes),
                                **({"modes": tuple(args.modes)} if args.modes else {}),
                                **({"dtypes": tuple(args.dtypes)} if args.dtypes else {})).validate()
    except EdgekdError as exc:
        print(f"bench_gpu: {exc.message}\n(--dry-run lists what would run and what would be skipped)",
              file=sys.stderr)
        return exc.exit_code
    print_plan(run, skip)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48).eval()
    images, _ = synthetic.generate(256, seed=3, classes=(0, 1))
    views = make_view(images, 48, NormalizeConfig())
    x = views[:1]
    from edgekd.export.onnx import export_onnx

    log = lambda m: print(m, flush=True)  # noqa: E731
    onnx_path = export_onnx(model, x, args.out / "cellsort-cnn.fp32.onnx")
    prof = profile_cuda(model, "cellsort-cnn", x, cfg, onnx_path=onnx_path, log=log)
    results = list(prof.results)
    trt_note = "TensorRT engines: --no-tensorrt"
    if not args.no_tensorrt:
        from edgekd.export.tensorrt import tensorrt_status

        ok, why = tensorrt_status()
        trt_rows, trt_note = _tensorrt_rows(model, views, args.out, log) if ok else ([], f"TensorRT skipped: {why}")
        results += trt_rows
        log(f"[tensorrt] {trt_note}")
    data = {"environment": prof.environment, "results": [r.to_dict() for r in results],
            "failures": [dataclasses.asdict(f) for f in prof.failures], "output_diffs": prof.outputs_max_abs_diff,
            "runs": cfg.runs, "warmup": cfg.warmup, "skipped": skip, "tensorrt": trt_note,
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
