"""Benchmark: the study's student on an NVIDIA GPU — PyTorch modes (issue 6) and the fused kernel (issue 18).

Target ``cuda``: ``cellsort-cnn`` (5,682 parameters, 1×48×48 → 2) in eager, CUDA-graph,
compiled and compiled+CUDA-graph modes, fp32 and fp16, at batch 1 and over a throughput
sweep, plus ONNX Runtime's CUDA/TensorRT providers when installed; writes the
``<!-- gpu -->`` section of BENCHMARKS.md naming the device.

Target ``cuda-fused``: the same student as one generated Triton kernel — direct launch,
CUDA-graph replay of that one launch, the replay with pinned host copies, and the
one-trivial-kernel graph floor — at batch 1 (4 and 8 warps) and over the sweep; writes the
``<!-- gpu-fused -->`` section: eager / CUDA graph / TensorRT (when present) / cuda-fused side
by side, and the batch-1 breakdown (launch floor, device time, copies).

    python tools/bench_gpu.py --out /tmp/bench-gpu            # measure both, write JSON + sections
    python tools/bench_gpu.py --out /tmp/bench-gpu --no-write # measure only
    python tools/bench_gpu.py --out /tmp/bench-gpu --dry-run  # say what would run / be skipped, and why

Latency at batch 1 does not depend on the weights' values, so the student is built with
seeded random weights; the input is one real synthetic cell image, preprocessed as in
training. Needs a CUDA GPU (and Triton for cuda-fused): on a CPU-only machine it exits with
status 2 and says so; ``--dry-run`` works anywhere and exits 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY_H200_GRAPH_US = 34.2  # notes/measured-anchors.md: CUDA graph replay fp32 on an H200
STUDY_H200_EAGER_US = 234.0
STUDY_FPGA_US = 14.5  # the cell-sorting study's FPGA latency
STUDY_H200_FLOOR_US = 10.5  # a CUDA graph of one trivial kernel on the H200, host-timed with sync
TARGETS = ("cuda", "cuda-fused")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="folder for results.json and the ONNX file (required "
                                                          "unless --from-json)")
    p.add_argument("--runs", type=int, default=2000, help="timed calls at batch 1")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 4096])
    p.add_argument("--modes", nargs="+", default=None, help="subset of eager cuda-graph compiled compiled-graph")
    p.add_argument("--dtypes", nargs="+", default=None, help="subset of fp32 fp16")
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS, help="what to time")
    p.add_argument("--fused-modes", nargs="+", default=None,
                   help="subset of fused fused-graph fused-graph-copies floor-graph")
    p.add_argument("--num-warps", type=int, nargs="+", default=[4, 8], help="cuda-fused warps tried at batch 1")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 8],
                   help="cuda-fused programs sharing one image, tried at batch 1")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would run and what is skipped (and why); measure and write nothing")
    p.add_argument("--from-json", type=Path, default=None,
                   help="measure nothing: write BENCHMARKS.md's sections from a results.json an earlier run "
                        "wrote (e.g. on a GPU machine with --no-write)")
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


def _fmt(v, spec=",.1f") -> str:
    return "—" if v is None else format(v, spec)


def _fused_section(data: dict) -> str:
    """The ``<!-- gpu-fused -->`` section: PyTorch modes, TensorRT and cuda-fused side by side."""
    fz = data["fused"]
    env = fz["environment"] or data.get("environment") or {}
    smi = env.get("nvidia_smi", {})
    L = ["<!-- gpu-fused -->", "## The study's student as one fused kernel on the GPU (issue 18)", ""]
    if fz.get("fallback"):
        L += [f"Not generated: {fz['fallback']}", "", f"Reproduce: `{data['command']}`", "<!-- /gpu-fused -->"]
        return "\n".join(L) + "\n"
    L += [f"Device: **{env.get('gpu', '?')}** (compute capability {env.get('compute_capability', '?')}, "
          f"{env.get('sm_count', '?')} SMs), driver {smi.get('driver_version', '?')}, torch "
          f"{env.get('versions', {}).get('torch')}, CUDA {env.get('torch_cuda')}, Triton {env.get('triton')}; "
          f"SM clock at capture {smi.get('clocks.sm', '?')} (max {smi.get('clocks.max.sm', '?')}); clocks not locked.",
          "", f"`cellsort-cnn`, 5,682 parameters, one 1×48×48 image, fp32; {data['runs']} timed calls at batch 1 after "
          f"{data['warmup']} warm-up calls. Host time: `perf_counter_ns` from the call to the stream synchronized, "
          "no CUDA events in that loop; device time: CUDA events, in a separate loop. Plan: "
          + "; ".join(fz.get("plan", [])) + ".", "",
          "| mode | host p50 (µs) | host p90 | host p99 | device p50 (µs) | max abs diff vs CPU fp32 |",
          "|---|---|---|---|---|---|"]
    rows = []
    for r in data.get("results", []):  # the cuda target's fp32 modes, for comparison
        d = r["details"]
        if r["batch_size"] == 1 and d.get("dtype") == "fp32":
            diff = data.get("output_diffs", {}).get(f"{d['mode']}/fp32")
            rows.append((f"PyTorch {d['mode']}", r, diff))
    for r in fz["results"]:
        d = r["details"]
        if r["batch_size"] == 1:
            diff = fz["output_diffs"].get(f"w{d['num_warps']}/g{d['images_per_program']}/s{d.get('split', 1)}/b1")
            label = "floor: one trivial kernel, CUDA graph" if d["mode"] == "floor-graph" else \
                f"cuda-fused {d['mode']} ({d['num_warps']} warps" + (
                    f", image split over {d['split']} programs)" if d.get("split", 1) > 1 else ")")
            rows.append((label, r, None if d["mode"] == "floor-graph" else diff))
    for label, r, diff in rows:
        dev = (r["details"].get("device_time") or {}).get("p50_us")
        L.append(f"| {label} | {r['p50_us']:,.1f} | {r['p90_us']:,.1f} | {r['p99_us']:,.1f} | {_fmt(dev)} | "
                 f"{'—' if diff is None else f'{diff:.2g}'} |")
    b1 = {r["details"]["mode"]: r for r in sorted((r for r in fz["results"] if r["batch_size"] == 1),
                                                 key=lambda r: -r["p50_us"])}  # keeps the fastest per mode
    g, floor, cp = b1.get("fused-graph"), b1.get("floor-graph"), b1.get("fused-graph-copies")
    if g is not None:
        ok = g["p50_us"] <= STUDY_FPGA_US
        L += ["", f"Batch 1, fused kernel replayed as a CUDA graph: **p50 {g['p50_us']:.1f} µs** host-timed "
                  f"({g['details']['num_warps']} warps, split {g['details'].get('split', 1)}) — goal ≤ {STUDY_FPGA_US} µs (the study's FPGA): "
                  f"{'reached' if ok else 'not reached'}. Study's H200 anchors: eager {STUDY_H200_EAGER_US:.0f} µs, "
                  f"CUDA graph of 10 kernels {STUDY_H200_GRAPH_US} µs, one-trivial-kernel floor {STUDY_H200_FLOOR_US} µs."]
        parts = [f"kernel device time p50 {g['details']['device_time']['p50_us']:.1f} µs (CUDA events)"]
        if floor is not None:
            parts.insert(0, f"launch + synchronize floor {floor['p50_us']:.1f} µs (one trivial kernel, same timer)")
            parts.append(f"fused graph minus floor {g['p50_us'] - floor['p50_us']:.1f} µs (what the student's "
                         "arithmetic adds)")
        if cp is not None:
            parts.append(f"pinned copies in and out {cp['p50_us'] - g['p50_us']:.1f} µs "
                         f"(copies mode p50 {cp['p50_us']:.1f} µs)")
        L += ["", "Breakdown at batch 1: " + "; ".join(parts) + "."]
    sweep = {}
    for r in fz["results"]:
        if r["batch_size"] > 1 and r["details"]["mode"] in ("fused", "fused-graph"):
            cur = sweep.get(r["batch_size"])
            if cur is None or r["throughput_per_s"] > cur["throughput_per_s"]:
                sweep[r["batch_size"]] = r
    if sweep:
        L += ["", "Throughput (best cuda-fused variant per batch size, images/s at the host p50):", "",
              "| batch | mode | warps | images/program | host p50 (µs) | device p50 (µs) | images/s |",
              "|---|---|---|---|---|---|---|"]
        for bs in sorted(sweep):
            r = sweep[bs]
            d = r["details"]
            L.append(f"| {bs:,} | {d['mode']} | {d['num_warps']} | {d['images_per_program']} | {r['p50_us']:,.1f} | "
                     f"{d['device_time']['p50_us']:,.1f} | {r['throughput_per_s']:,.0f} |")
        top = max(sweep.values(), key=lambda r: r["throughput_per_s"])
        L += ["", f"Best: {top['throughput_per_s']:,.0f} images/s at batch {top['batch_size']:,} — goal ≥ 1,000,000: "
                  f"{'reached' if top['throughput_per_s'] >= 1e6 else 'not reached'}."]
    if fz.get("compile_seconds"):
        L += ["", "Compile time (first launch, per variant): " + ", ".join(
            f"{k} {v:.1f} s" for k, v in fz["compile_seconds"].items()) + "."]
    if fz["failures"]:
        L += ["", "Variants that could not run: " + "; ".join(
            f"{f['mode']} w{f['num_warps']}/g{f['images_per_program']}/s{f.get('split', 1)} batch {f['batch_size']}: {f['error'][:120]}"
            for f in fz["failures"])]
    L += ["", f"Reproduce: `{data['command']}`", "<!-- /gpu-fused -->"]
    return "\n".join(L) + "\n"


def dry_run(args, cfg, fcfg, model, example) -> int:
    """Print what a real run would time, and what is skipped here and why; touch nothing."""
    import torch

    from edgekd.errors import EdgekdError
    from edgekd.profile.cuda import require_cuda
    from edgekd.targets.cuda_fused.codegen import generate, split_point
    from edgekd.targets.cuda_fused.plan import Unsupported, plan_model
    from edgekd.targets.cuda_fused.profile import require_fused_gpu
    from edgekd.targets.cuda_fused.runtime import triton_version

    def skip_reason(check) -> str | None:
        try:
            check()
        except EdgekdError as exc:
            return exc.what
        return None

    print(f"bench_gpu dry run: nothing is measured or written (torch {torch.__version__}, "
          f"Triton {triton_version() or 'not installed'})")
    print(f"model: cellsort-cnn, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"input {'x'.join(map(str, example.shape[1:]))}")
    if "cuda" in args.targets:
        why = skip_reason(require_cuda)
        print(f"cuda: modes {' '.join(cfg.modes)} × {' '.join(cfg.dtypes)} × batch "
              f"{' '.join(map(str, cfg.batch_sizes))}; {cfg.runs} runs at batch 1, {cfg.large_batch_runs} above; "
              f"ONNX Runtime GPU providers when installed")
        print(f"  {'skipped: ' + why if why else 'would run'}")
    if "cuda-fused" in args.targets:
        plan = plan_model(model, tuple(example.shape[1:]))
        if isinstance(plan, Unsupported):
            print(f"cuda-fused: {plan}")
        else:
            print("cuda-fused: plan: " + "; ".join(plan.describe()))
            for bs in fcfg.batch_sizes:
                for nw, g, split in fcfg.variants(bs):
                    if split > 1 and split_point(plan) is None:
                        continue
                    gen = generate(plan, nw, g, split=split)
                    modes = [m for m in fcfg.modes
                             if m != "floor-graph" or (bs == 1 and (nw, g, split) == fcfg.variants(1)[0])]
                    print(f"  batch {bs}: {nw} warps, {g} image(s)/program"
                          + (f", image split over {gen.split} programs" if gen.split > 1 else "")
                          + f", kernel {gen.key} "
                          f"({len(gen.source.splitlines())} lines, {gen.weights.size:,} fp32 weights, "
                          f"{gen.scratch_per_program:,} fp32 scratch/program): {' '.join(modes)}")
            why = skip_reason(require_fused_gpu)
            print(f"  {'skipped: ' + why if why else 'would run'}")
    print(f"would write: {args.out / 'results.json'}"
          + ("" if args.no_write else ", BENCHMARKS.md sections " + " ".join(
              f"<!-- {'gpu' if t == 'cuda' else 'gpu-fused'} -->" for t in args.targets)))
    return 0


def write_from_json(path: Path, *, write: bool = True) -> int:
    """Write the sections a results.json holds into BENCHMARKS.md (and print them)."""
    import json

    from edgekd.report.benchmarks_md import write_section as write_md

    data = json.loads(Path(path).read_text())
    sections = []
    if data.get("results"):
        sections.append(("gpu", _section(data)))
    if data.get("fused"):
        sections.append(("gpu-fused", _fused_section(data)))
    for key, section in sections:
        print(section)
        if write:
            write_md(ROOT / "BENCHMARKS.md", key, section)
    return 0 if sections else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return write_from_json(args.from_json, write=not args.no_write)
    if args.out is None:
        print("bench_gpu: --out is required (or --from-json)", file=sys.stderr)
        return 2
    import dataclasses

    import torch

    from edgekd.config.schema import NormalizeConfig
    from edgekd.data import synthetic
    from edgekd.data.views import make_view
    from edgekd.errors import EdgekdError
    from edgekd.nets import create_net
    from edgekd.profile.cuda import CudaProfileConfig, profile_cuda, require_cuda
    from edgekd.targets.cuda_fused.profile import FusedProfileConfig, profile_cuda_fused, require_fused_gpu

    try:
        cfg = CudaProfileConfig(runs=args.runs, warmup=args.warmup, batch_sizes=tuple(args.batch_sizes),
                                **({"modes": tuple(args.modes)} if args.modes else {}),
                                **({"dtypes": tuple(args.dtypes)} if args.dtypes else {})).validate()
        fcfg = FusedProfileConfig(runs=args.runs, warmup=args.warmup, batch_sizes=tuple(args.batch_sizes),
                                  num_warps=tuple(args.num_warps), splits=tuple(args.splits),
                                  **({"modes": tuple(args.fused_modes)} if args.fused_modes else {})).validate()
        if not args.dry_run:
            require_cuda()
            if "cuda-fused" in args.targets:
                require_fused_gpu()
    except EdgekdError as exc:
        print(f"bench_gpu: {exc.message}", file=sys.stderr)
        return exc.exit_code
    torch.manual_seed(0)
    model = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48).eval()
    images, _ = synthetic.generate(8, seed=3, classes=(0, 1))
    x = make_view(images, 48, NormalizeConfig())[:1]
    if args.dry_run:
        return dry_run(args, cfg, fcfg, model, x)
    args.out.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    data = {"runs": args.runs, "warmup": args.warmup, "environment": None, "results": [], "failures": [],
            "output_diffs": {}, "command": "python tools/bench_gpu.py " + " ".join(
                argv if argv is not None else sys.argv[1:])}
    if "cuda" in args.targets:
        from edgekd.export.onnx import export_onnx

        onnx_path = export_onnx(model, x, args.out / "cellsort-cnn.fp32.onnx")
        prof = profile_cuda(model, "cellsort-cnn", x, cfg, onnx_path=onnx_path, log=log)
        data.update({"environment": prof.environment, "results": [r.to_dict() for r in prof.results],
                     "failures": [dataclasses.asdict(f) for f in prof.failures],
                     "output_diffs": prof.outputs_max_abs_diff})
    if "cuda-fused" in args.targets:
        fprof = profile_cuda_fused(model, "cellsort-cnn", x, fcfg, log=log)
        data["fused"] = {"environment": fprof.environment, "results": [r.to_dict() for r in fprof.results],
                         "failures": [dataclasses.asdict(f) for f in fprof.failures],
                         "output_diffs": fprof.outputs_max_abs_diff, "compile_seconds": fprof.compile_seconds,
                         "plan": fprof.plan, "fallback": fprof.fallback}
    from edgekd.runs.atomic import write_json

    write_json(args.out / "results.json", data)
    write_from_json(args.out / "results.json", write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
