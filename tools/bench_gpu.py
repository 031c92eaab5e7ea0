"""Benchmark the study's student on an NVIDIA GPU: cuda (PyTorch, ORT, TensorRT; issues 6, 16) and cuda-fused (18).

The one command for an H100/H200: it times both targets and writes both sections.

Target ``cuda``: ``cellsort-cnn`` (5,682 parameters, 1×48×48 → 2) in eager, CUDA-graph,
compiled and compiled+CUDA-graph modes, fp32 (TF32 off) and fp16, at batch 1 and over a
throughput sweep, plus ONNX Runtime's CUDA/TensorRT providers when installed
(``onnxruntime-gpu``), plus the TensorRT bundle's engines (built and golden-checked with the
bundle's own scripts, timed with trtexec) when ``tensorrt`` imports and ``--no-tensorrt`` is
not given; writes the ``<!-- gpu -->`` section of BENCHMARKS.md naming the device. Every row
says its clock: host (what a caller waits) or device (CUDA events; trtexec's GPU Compute
Time); the cuda rows give both.

Target ``cuda-fused``: the same student as one generated Triton kernel — direct launch,
CUDA-graph replay of that one launch, the replay with pinned host copies, and the
one-trivial-kernel graph floor — at batch 1 (4 and 8 warps, whole image or split over
programs) and over the sweep; writes the ``<!-- gpu-fused -->`` section: PyTorch eager / CUDA
graph / ONNX Runtime / TensorRT (when present) / cuda-fused side by side, and the batch-1
breakdown (launch floor, device time, copies).

What is skipped, and why (no GPU, no Triton, no ``onnxruntime-gpu``, no ``tensorrt``, no
trtexec, no nvidia-smi, ``--no-tensorrt``, ``--no-write``), is printed before measuring, kept in
results.json and noted in the sections.

    python tools/bench_gpu.py --out /tmp/bench-gpu --dry-run   # what would run / be skipped, and why
    python tools/bench_gpu.py --out /tmp/bench-gpu             # measure both, write JSON + both sections
    python tools/bench_gpu.py --out /tmp/bench-gpu --no-write  # measure only
    python tools/bench_gpu.py --from-json /tmp/bench-gpu/results.json  # sections from an earlier run

Latency at batch 1 does not depend on the weights' values, so the student is built with
seeded random weights; the input is one real synthetic cell image, preprocessed as in
training. Needs a CUDA GPU: on a CPU-only machine it exits with status 2 and says so
(``--dry-run`` and ``--from-json`` work anywhere and exit 0).
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
SECTIONS = {"cuda": "gpu", "cuda-fused": "gpu-fused"}  # target -> BENCHMARKS.md section key


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="folder for results.json, the ONNX file and the TensorRT "
                                                          "bundle (required unless --from-json)")
    p.add_argument("--runs", type=int, default=2000, help="timed calls at batch 1")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 4096])
    p.add_argument("--modes", nargs="+", default=None, help="subset of eager cuda-graph compiled compiled-graph")
    p.add_argument("--dtypes", nargs="+", default=None, help="subset of fp32 fp16")
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    p.add_argument("--no-tensorrt", action="store_true", help="skip the TensorRT bundle's engines")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS, help="what to time")
    p.add_argument("--fused-modes", nargs="+", default=None,
                   help="subset of fused fused-graph fused-graph-copies floor-graph")
    p.add_argument("--num-warps", type=int, nargs="+", default=[4, 8], help="cuda-fused warps tried at batch 1")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 8],
                   help="cuda-fused programs sharing one image, tried at batch 1")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would run and what would be skipped (and why); measure and write nothing")
    p.add_argument("--from-json", type=Path, default=None,
                   help="measure nothing: write BENCHMARKS.md's sections from a results.json an earlier run "
                        "wrote (e.g. on a GPU machine with --no-write)")
    return p.parse_args(argv)


def _configs(args: argparse.Namespace):
    """(CudaProfileConfig, FusedProfileConfig), validated; raises ConfigError on a bad option."""
    from edgekd.profile.cuda import CudaProfileConfig
    from edgekd.targets.cuda_fused.profile import FusedProfileConfig

    cfg = CudaProfileConfig(runs=args.runs, warmup=args.warmup, batch_sizes=tuple(args.batch_sizes),
                            **({"modes": tuple(args.modes)} if args.modes else {}),
                            **({"dtypes": tuple(args.dtypes)} if args.dtypes else {})).validate()
    fcfg = FusedProfileConfig(runs=args.runs, warmup=args.warmup, batch_sizes=tuple(args.batch_sizes),
                              num_warps=tuple(args.num_warps), splits=tuple(args.splits),
                              **({"modes": tuple(args.fused_modes)} if args.fused_modes else {})).validate()
    return cfg, fcfg


def _student():
    """(model, views): cellsort-cnn with seeded random weights, 256 preprocessed synthetic cell images."""
    import torch

    from edgekd.config.schema import NormalizeConfig
    from edgekd.data import synthetic
    from edgekd.data.views import make_view
    from edgekd.nets import create_net

    torch.manual_seed(0)
    model = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48).eval()
    images, _ = synthetic.generate(256, seed=3, classes=(0, 1))
    return model, make_view(images, 48, NormalizeConfig())


def _why_not(check) -> str | None:
    """The one-line reason ``check()`` raises an EdgekdError, or None when it passes."""
    from edgekd.errors import EdgekdError

    try:
        check()
    except EdgekdError as exc:
        return exc.what
    return None


def _fused_ready(args: argparse.Namespace) -> bool:
    """Whether a real run times cuda-fused: asked for, and Triton imports (the GPU is checked first)."""
    from edgekd.targets.cuda_fused.runtime import triton_version

    return "cuda-fused" in args.targets and triton_version() is not None


def _fused_variants(fcfg, fplan):
    """(batch, warps, images/program, split, modes) for every cuda-fused variant a run times."""
    from edgekd.targets.cuda_fused.codegen import split_point

    for bs in fcfg.batch_sizes:
        for nw, g, split in fcfg.variants(bs):
            if split > 1 and split_point(fplan) is None:
                continue
            modes = [m for m in fcfg.modes if m != "floor-graph" or (bs == 1 and (nw, g, split) == fcfg.variants(1)[0])]
            yield bs, nw, g, split, modes


def _plan_cuda(args: argparse.Namespace, gpu: bool) -> tuple[list[str], list[str]]:
    """Plan lines of the cuda target: PyTorch modes, ONNX Runtime GPU rows, TensorRT engines."""
    import importlib.util
    import shutil

    from edgekd.export.tensorrt import tensorrt_status
    from edgekd.profile.cuda import DTYPES, MODES, available_ort_gpu_providers, ort_gpu_missing_message

    run, skip = [], []
    if "cuda" not in args.targets:
        return run, ["cuda target (PyTorch modes, ONNX Runtime, TensorRT rows): not in --targets"]
    modes, dtypes = args.modes or list(MODES), args.dtypes or list(DTYPES)
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
    return run, skip


def _plan_fused(args: argparse.Namespace, fcfg, model, example, gpu: bool) -> tuple[list[str], list[str]]:
    """Plan lines of the cuda-fused target: the kernel variants, or why there are none."""
    from edgekd.targets.cuda_fused.plan import Unsupported, plan_model

    if "cuda-fused" not in args.targets:
        return [], ["cuda-fused target (one generated Triton kernel): not in --targets"]
    if not _fused_ready(args):
        return [], ["cuda-fused: Triton is not installed (pip install -e '.[gpu]'); its section is left as it is"]
    fplan = plan_model(model, tuple(example.shape[1:]))
    if isinstance(fplan, Unsupported):
        return [], [f"cuda-fused kernels: {fplan} (the <!-- gpu-fused --> section says so)"]
    if not gpu:
        return [], []  # "every GPU measurement" already says why
    variants = list(_fused_variants(fcfg, fplan))
    timed = sorted({m for *_, modes in variants for m in modes})
    return [f"cuda-fused: {len(variants)} kernel variants × modes {timed} over batch {list(fcfg.batch_sizes)}, "
            f"{fcfg.runs} runs at batch 1 (host time; device time in its own loop)"], []


def _plan_outputs(args: argparse.Namespace, gpu: bool) -> tuple[list[str], list[str]]:
    """Plan lines of what a run writes: results.json and the BENCHMARKS.md sections."""
    run, skip = [], []
    if gpu:
        run.append(f"results.json in {args.out} (rewrite the sections from it later with --from-json)")
    for target in args.targets:
        what = f"BENCHMARKS.md <!-- {SECTIONS[target]} --> section"
        if not gpu:
            skip.append(f"{what}: nothing measured, left as it is")
        elif target == "cuda-fused" and not _fused_ready(args):
            skip.append(f"{what}: cuda-fused not timed, left as it is")
        elif args.no_write:
            skip.append(f"{what}: --no-write")
        else:
            run.append(f"{what}: rewritten")
    return run, skip


def plan_parts(args: argparse.Namespace, fcfg, model, example) -> dict[str, tuple[list[str], list[str]]]:
    """Plan lines by part (gpu, cuda, cuda-fused, machine, outputs), from this machine's state alone."""
    import shutil

    from edgekd.profile.cuda import require_cuda

    no_gpu = _why_not(require_cuda)
    smi = [] if shutil.which("nvidia-smi") else ["clocks/driver record: nvidia-smi not found"]
    return {"gpu": ([], [f"every GPU measurement: {no_gpu}"] if no_gpu else []),
            "cuda": _plan_cuda(args, no_gpu is None),
            "cuda-fused": _plan_fused(args, fcfg, model, example, no_gpu is None),
            "machine": ([], smi), "outputs": _plan_outputs(args, no_gpu is None)}


def flatten(parts: dict[str, tuple[list[str], list[str]]]) -> tuple[list[str], list[str]]:
    """(every run line, every skip line) of :func:`plan_parts`' answer, in part order."""
    return [line for run, _ in parts.values() for line in run], [line for _, skip in parts.values() for line in skip]


def plan(args: argparse.Namespace, fcfg, model, example) -> tuple[list[str], list[str]]:
    """(what would run, what would be skipped with the reason), both targets together."""
    return flatten(plan_parts(args, fcfg, model, example))


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


def _is_host(r: dict) -> bool:
    return r.get("clock", "host") == "host"


def _section_head(data: dict) -> list[str]:
    """The ``<!-- gpu -->`` section's device line, method note and table header."""
    env = data["environment"]
    smi = env["nvidia_smi"]
    return ["<!-- gpu -->", "## GPU latency of the study's student (issue 6)", "",
            f"Device: **{env['gpu']}** (compute capability {env['compute_capability']}, {env['sm_count']} SMs), "
            f"driver {smi.get('driver_version', '?')}, torch {env['versions'].get('torch')}, "
            f"CUDA {env['torch_cuda']}, cuDNN {env['cudnn']}, Triton {env.get('triton')}. "
            f"SM clock at capture {smi.get('clocks.sm', '?')} (max {smi.get('clocks.max.sm', '?')}), "
            f"persistence mode {smi.get('persistence_mode', '?')}; clocks not locked.",
            "", f"`cellsort-cnn`, 5,682 parameters, one 1×48×48 image; {data['runs']} timed calls at batch 1 after "
            f"{data['warmup']} warm-up calls. **Host** time: `perf_counter_ns` from launch to stream synchronized "
            "(what a caller waits), in its own loop; **device** time: CUDA events around the call (for TensorRT, "
            "trtexec's GPU Compute Time). The two clocks are not comparable; fp32 rows run with TF32 off.", "",
            "| mode | precision | clock | p50 (µs) | p90 | p99 | host p50 (µs) | device p50 (µs) | max abs diff vs CPU fp32 |",
            "|---|---|---|---|---|---|---|---|---|"]


def _best_line(best: dict) -> str:
    mode, dtype = _row_label(best)
    return (f"Fastest at batch 1 (host time): **{mode} {dtype}, p50 {best['p50_us']:.1f} µs** "
            f"(p99 {best['p99_us']:.1f} µs). The study's H200 figures (notes/measured-anchors.md): "
            f"eager {STUDY_H200_EAGER_US:.0f} µs, CUDA graph {STUDY_H200_GRAPH_US} µs → "
            f"{STUDY_H200_GRAPH_US / best['p50_us']:.2f}× the CUDA-graph figure. The study's FPGA: "
            f"{STUDY_FPGA_US} µs → the GPU is {best['p50_us'] / STUDY_FPGA_US:.2f}× the FPGA latency.")


def _sweep_lines(res: list[dict]) -> list[str]:
    """Best host-timed row per batch size above 1, as a table (none when there is no sweep)."""
    sweep = {}
    for r in res:
        if r["batch_size"] > 1 and _is_host(r):
            cur = sweep.get(r["batch_size"])
            if cur is None or r["throughput_per_s"] > cur["throughput_per_s"]:
                sweep[r["batch_size"]] = r
    if not sweep:
        return []
    L = ["", "Throughput sweep (best mode per batch size, host time, images/s at the p50 latency):", "",
         "| batch | mode | precision | host p50 (µs) | images/s |", "|---|---|---|---|---|"]
    for bs in sorted(sweep):
        r = sweep[bs]
        mode, dtype = _row_label(r)
        L.append(f"| {bs:,} | {mode} | {dtype} | {r['p50_us']:,.1f} | {r['throughput_per_s']:,.0f} |")
    return L


def _section(data: dict) -> str:
    """The ``<!-- gpu -->`` section: every batch-1 row on its clock, the fastest host row, the sweep."""
    res = data["results"]
    b1 = sorted((r for r in res if r["batch_size"] == 1), key=lambda r: (not _is_host(r), r["p50_us"]))
    best = next((r for r in b1 if _is_host(r)), None)
    L = _section_head(data)
    for r in b1:
        mode, dtype = _row_label(r)
        host, dev = _both_clocks(r)
        diff = data["output_diffs"].get(f"{mode}/{dtype}")
        L.append(f"| {mode} | {dtype} | {r.get('clock', 'host')} | {r['p50_us']:,.1f} | {r['p90_us']:,.1f} | "
                 f"{r['p99_us']:,.1f} | {host} | {dev} | {'—' if diff is None else f'{diff:.2g}'} |")
    if best is not None:
        L += ["", _best_line(best)]
    L += _sweep_lines(res)
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


def _fused_head(data: dict, fz: dict) -> list[str]:
    """The ``<!-- gpu-fused -->`` section's device line, method note and table header."""
    env = fz["environment"] or data.get("environment") or {}
    smi = env.get("nvidia_smi", {})
    return [f"Device: **{env.get('gpu', '?')}** (compute capability {env.get('compute_capability', '?')}, "
            f"{env.get('sm_count', '?')} SMs), driver {smi.get('driver_version', '?')}, torch "
            f"{env.get('versions', {}).get('torch')}, CUDA {env.get('torch_cuda')}, Triton {env.get('triton')}; "
            f"SM clock at capture {smi.get('clocks.sm', '?')} (max {smi.get('clocks.max.sm', '?')}); clocks not locked.",
            "", f"`cellsort-cnn`, 5,682 parameters, one 1×48×48 image, fp32; {data['runs']} timed calls at batch 1 "
            f"after {data['warmup']} warm-up calls. Host time: `perf_counter_ns` from the call to the stream "
            "synchronized, no CUDA events in that loop; device time: CUDA events, in a separate loop (TensorRT "
            "rows: trtexec's GPU Compute Time, device time only). Plan: " + "; ".join(fz.get("plan", [])) + ".", "",
            "| mode | host p50 (µs) | host p90 | host p99 | device p50 (µs) | max abs diff vs CPU fp32 |",
            "|---|---|---|---|---|---|"]


def _compare_rows(data: dict) -> list[tuple[str, dict, float | None]]:
    """(label, row, diff) of the cuda target's batch-1 rows shown beside cuda-fused: fp32, and TensorRT."""
    rows = []
    for r in data.get("results", []):
        mode, dtype = _row_label(r)
        if r["batch_size"] != 1 or (r["target"] != "tensorrt" and dtype != "fp32"):
            continue
        if r["target"] == "tensorrt":
            label = f"TensorRT {dtype} (trtexec)"
        elif mode.startswith("onnxruntime-"):
            label = f"ONNX Runtime {mode[len('onnxruntime-'):]}"
        else:
            label = f"PyTorch {mode}"
        rows.append((label, r, data.get("output_diffs", {}).get(f"{mode}/fp32")))
    return rows


def _fused_rows(fz: dict) -> list[tuple[str, dict, float | None]]:
    """(label, row, diff) of the cuda-fused batch-1 rows, the launch floor included."""
    rows = []
    for r in fz["results"]:
        d = r["details"]
        if r["batch_size"] != 1:
            continue
        if d["mode"] == "floor-graph":
            rows.append(("floor: one trivial kernel, CUDA graph", r, None))
            continue
        diff = fz["output_diffs"].get(f"w{d['num_warps']}/g{d['images_per_program']}/s{d.get('split', 1)}/b1")
        split = f", image split over {d['split']} programs" if d.get("split", 1) > 1 else ""
        rows.append((f"cuda-fused {d['mode']} ({d['num_warps']} warps{split})", r, diff))
    return rows


def _fused_table_row(label: str, r: dict, diff: float | None) -> str:
    """One row; host p90/p99 only for host-timed rows (a device-clock row has '—' there)."""
    host, dev = _both_clocks(r)
    tail = f"{r['p90_us']:,.1f} | {r['p99_us']:,.1f}" if _is_host(r) else "— | —"
    return f"| {label} | {host} | {tail} | {dev} | {'—' if diff is None else f'{diff:.2g}'} |"


def _fused_breakdown(fz: dict) -> list[str]:
    """The batch-1 goal line and breakdown (floor, device time, copies), from the fastest of each mode."""
    b1 = {r["details"]["mode"]: r for r in sorted((r for r in fz["results"] if r["batch_size"] == 1),
                                                 key=lambda r: -r["p50_us"])}  # keeps the fastest per mode
    g, floor, cp = b1.get("fused-graph"), b1.get("floor-graph"), b1.get("fused-graph-copies")
    if g is None:
        return []
    ok = g["p50_us"] <= STUDY_FPGA_US
    L = ["", f"Batch 1, fused kernel replayed as a CUDA graph: **p50 {g['p50_us']:.1f} µs** host-timed "
             f"({g['details']['num_warps']} warps, split {g['details'].get('split', 1)}) — goal ≤ {STUDY_FPGA_US} µs "
             f"(the study's FPGA): {'reached' if ok else 'not reached'}. Study's H200 anchors: eager "
             f"{STUDY_H200_EAGER_US:.0f} µs, CUDA graph of 10 kernels {STUDY_H200_GRAPH_US} µs, one-trivial-kernel "
             f"floor {STUDY_H200_FLOOR_US} µs."]
    parts = [f"kernel device time p50 {g['details']['device_time']['p50_us']:.1f} µs (CUDA events)"]
    if floor is not None:
        parts.insert(0, f"launch + synchronize floor {floor['p50_us']:.1f} µs (one trivial kernel, same timer)")
        parts.append(f"fused graph minus floor {g['p50_us'] - floor['p50_us']:.1f} µs (what the student's "
                     "arithmetic adds)")
    if cp is not None:
        parts.append(f"pinned copies in and out {cp['p50_us'] - g['p50_us']:.1f} µs "
                     f"(copies mode p50 {cp['p50_us']:.1f} µs)")
    return L + ["", "Breakdown at batch 1: " + "; ".join(parts) + "."]


def _fused_sweep(fz: dict) -> list[str]:
    """Best cuda-fused variant per batch size above 1, and the throughput goal line."""
    sweep = {}
    for r in fz["results"]:
        if r["batch_size"] > 1 and r["details"]["mode"] in ("fused", "fused-graph"):
            cur = sweep.get(r["batch_size"])
            if cur is None or r["throughput_per_s"] > cur["throughput_per_s"]:
                sweep[r["batch_size"]] = r
    if not sweep:
        return []
    L = ["", "Throughput (best cuda-fused variant per batch size, images/s at the host p50):", "",
         "| batch | mode | warps | images/program | host p50 (µs) | device p50 (µs) | images/s |",
         "|---|---|---|---|---|---|---|"]
    for bs in sorted(sweep):
        r = sweep[bs]
        d = r["details"]
        L.append(f"| {bs:,} | {d['mode']} | {d['num_warps']} | {d['images_per_program']} | {r['p50_us']:,.1f} | "
                 f"{d['device_time']['p50_us']:,.1f} | {r['throughput_per_s']:,.0f} |")
    top = max(sweep.values(), key=lambda r: r["throughput_per_s"])
    return L + ["", f"Best: {top['throughput_per_s']:,.0f} images/s at batch {top['batch_size']:,} — goal ≥ "
                    f"1,000,000: {'reached' if top['throughput_per_s'] >= 1e6 else 'not reached'}."]


def _fused_section(data: dict) -> str:
    """The ``<!-- gpu-fused -->`` section: PyTorch modes, ONNX Runtime, TensorRT and cuda-fused side by side."""
    fz = data["fused"]
    L = ["<!-- gpu-fused -->", "## The study's student as one fused kernel on the GPU (issue 18)", ""]
    if fz.get("fallback"):
        L += [f"Not generated: {fz['fallback']}", "", f"Reproduce: `{data['command']}`", "<!-- /gpu-fused -->"]
        return "\n".join(L) + "\n"
    L += _fused_head(data, fz)
    L += [_fused_table_row(*row) for row in _compare_rows(data) + _fused_rows(fz)]
    L += _fused_breakdown(fz) + _fused_sweep(fz)
    if fz.get("compile_seconds"):
        L += ["", "Compile time (first launch, per variant): " + ", ".join(
            f"{k} {v:.1f} s" for k, v in fz["compile_seconds"].items()) + "."]
    if fz["failures"]:
        L += ["", "Variants that could not run: " + "; ".join(
            f"{f['mode']} w{f['num_warps']}/g{f['images_per_program']}/s{f.get('split', 1)} batch {f['batch_size']}: "
            f"{f['error'][:120]}" for f in fz["failures"])]
    if fz.get("skipped"):
        L += ["", "Skipped: " + "; ".join(fz["skipped"])]
    L += ["", f"Reproduce: `{data['command']}`", "<!-- /gpu-fused -->"]
    return "\n".join(L) + "\n"


def _dry_run_fused(fcfg, model, example) -> None:
    """The cuda-fused block of the dry run: the plan and every kernel variant a GPU run would time."""
    from edgekd.targets.cuda_fused.codegen import generate
    from edgekd.targets.cuda_fused.plan import Unsupported, plan_model
    from edgekd.targets.cuda_fused.profile import require_fused_gpu

    fplan = plan_model(model, tuple(example.shape[1:]))
    if isinstance(fplan, Unsupported):
        print(f"cuda-fused: {fplan}")
        return
    print("cuda-fused: plan: " + "; ".join(fplan.describe()))
    for bs, nw, g, split, modes in _fused_variants(fcfg, fplan):
        gen = generate(fplan, nw, g, split=split)
        print(f"  batch {bs}: {nw} warps, {g} image(s)/program"
              + (f", image split over {gen.split} programs" if gen.split > 1 else "")
              + f", kernel {gen.key} ({len(gen.source.splitlines())} lines, {gen.weights.size:,} fp32 weights, "
                f"{gen.scratch_per_program:,} fp32 scratch/program): {' '.join(modes)}")
    why = _why_not(require_fused_gpu)
    print(f"  {'skipped: ' + why if why else 'would run'}")


def dry_run(args, cfg, fcfg, model, example, run: list[str], skip: list[str]) -> int:
    """Print what a real run would time, then every 'would run' / 'would skip: reason' line; touch nothing."""
    import torch

    from edgekd.profile.cuda import require_cuda
    from edgekd.targets.cuda_fused.runtime import triton_version

    print(f"bench_gpu dry run: nothing is measured or written (torch {torch.__version__}, "
          f"Triton {triton_version() or 'not installed'})")
    print(f"model: cellsort-cnn, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"input {'x'.join(map(str, example.shape[1:]))}")
    if "cuda" in args.targets:
        why = _why_not(require_cuda)
        print(f"cuda: modes {' '.join(cfg.modes)} × {' '.join(cfg.dtypes)} × batch "
              f"{' '.join(map(str, cfg.batch_sizes))}; {cfg.runs} runs at batch 1, {cfg.large_batch_runs} above; "
              f"ONNX Runtime GPU providers when installed; TensorRT engines "
              + ("off (--no-tensorrt)" if args.no_tensorrt else "when tensorrt imports"))
        print(f"  {'skipped: ' + why if why else 'would run'}")
    if "cuda-fused" in args.targets:
        _dry_run_fused(fcfg, model, example)
    print_plan(run, skip)
    return 0


def write_from_json(path: Path, *, write: bool = True) -> int:
    """Write the sections a results.json holds into BENCHMARKS.md (and print them)."""
    import json

    from edgekd.report.benchmarks_md import write_section as write_md

    data = json.loads(Path(path).read_text())
    sections = []
    if data.get("environment") is not None:  # the cuda target ran (None when only cuda-fused did)
        sections.append(("gpu", _section(data)))
    if data.get("fused"):
        sections.append(("gpu-fused", _fused_section(data)))
    for key, section in sections:
        print(section)
        if write:
            write_md(ROOT / "BENCHMARKS.md", key, section)
    if not sections:
        print(f"bench_gpu: {path} holds no cuda or cuda-fused results", file=sys.stderr)
    return 0 if sections else 1


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


def _measure_cuda(args, cfg, model, views, log) -> dict:
    """The cuda target: PyTorch modes and ONNX Runtime GPU rows, then the TensorRT engines when possible."""
    import dataclasses

    from edgekd.export.onnx import export_onnx
    from edgekd.export.tensorrt import tensorrt_status
    from edgekd.profile.cuda import profile_cuda

    x = views[:1]
    onnx_path = export_onnx(model, x, args.out / "cellsort-cnn.fp32.onnx")
    prof = profile_cuda(model, "cellsort-cnn", x, cfg, onnx_path=onnx_path, log=log)
    results = list(prof.results)
    trt_note = "TensorRT engines: --no-tensorrt"
    if not args.no_tensorrt:
        ok, why = tensorrt_status()
        trt_rows, trt_note = _tensorrt_rows(model, views, args.out, log) if ok else ([], f"TensorRT skipped: {why}")
        results += trt_rows
        log(f"[tensorrt] {trt_note}")
    return {"environment": prof.environment, "results": [r.to_dict() for r in results],
            "failures": [dataclasses.asdict(f) for f in prof.failures], "output_diffs": prof.outputs_max_abs_diff,
            "tensorrt": trt_note}


def _measure_fused(fcfg, model, x, skipped: list[str], log) -> dict:
    """The cuda-fused target: every kernel variant and mode (or the generator's one-line fallback)."""
    import dataclasses

    from edgekd.targets.cuda_fused.profile import profile_cuda_fused

    fprof = profile_cuda_fused(model, "cellsort-cnn", x, fcfg, log=log)
    return {"environment": fprof.environment, "results": [r.to_dict() for r in fprof.results],
            "failures": [dataclasses.asdict(f) for f in fprof.failures], "output_diffs": fprof.outputs_max_abs_diff,
            "compile_seconds": fprof.compile_seconds, "plan": fprof.plan, "fallback": fprof.fallback,
            "skipped": skipped}


def _require(args: argparse.Namespace) -> None:
    """Raise ToolMissingError unless a GPU is visible (and Triton, when cuda-fused is all that was asked)."""
    from edgekd.profile.cuda import require_cuda
    from edgekd.targets.cuda_fused.profile import require_fused_gpu

    require_cuda()
    if args.targets == ["cuda-fused"]:
        require_fused_gpu()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return write_from_json(args.from_json, write=not args.no_write)
    if args.out is None:
        print("bench_gpu: --out is required (or --from-json)", file=sys.stderr)
        return 2
    from edgekd.errors import EdgekdError

    try:
        cfg, fcfg = _configs(args)
    except EdgekdError as exc:
        print(f"bench_gpu: {exc.message}", file=sys.stderr)
        return exc.exit_code
    model, views = _student()
    x = views[:1]
    parts = plan_parts(args, fcfg, model, x)
    run, skip = flatten(parts)
    if args.dry_run:
        return dry_run(args, cfg, fcfg, model, x, run, skip)
    try:
        _require(args)
    except EdgekdError as exc:
        print(f"bench_gpu: {exc.message}\n(--dry-run lists what would run and what would be skipped)",
              file=sys.stderr)
        return exc.exit_code
    print_plan(run, skip)
    args.out.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    fused = _fused_ready(args)
    notes = {k: parts[k][1] for k in parts}
    data = {"runs": args.runs, "warmup": args.warmup, "environment": None, "results": [], "failures": [],
            "output_diffs": {}, "tensorrt": None,
            "skipped": notes["cuda"] + notes["machine"] + ([] if fused else notes["cuda-fused"]),
            "command": "python tools/bench_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if "cuda" in args.targets:
        data.update(_measure_cuda(args, cfg, model, views, log))
    if fused:
        data["fused"] = _measure_fused(fcfg, model, x, notes["cuda-fused"] + notes["machine"], log)
    from edgekd.runs.atomic import write_json

    write_json(args.out / "results.json", data)
    write_from_json(args.out / "results.json", write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
