#!/usr/bin/env python3
"""Build a TensorRT engine from this bundle's ONNX, on the device that will run it.

Engines are tied to the GPU and the TensorRT version, so the bundle ships ONNX and this
script, never an engine. It detects the TensorRT major version and uses the matching API:

* TensorRT >= 9: strongly typed network (the Python build and the trtexec command agree).
  INT8 comes from the Q/DQ nodes of ``*.int8.qdq.onnx``; FP16 from ``*.fp16.onnx`` (converted
  by edgekd at export time, because TensorRT 11 has no FP16 builder flag and strongly typed
  10.x ignores it); FP32 from ``*.fp32.onnx``. On 11 the strongly-typed flag is implicit.
* TensorRT 8.5/8.6 (JetPack 5): weakly typed; INT8 from the same Q/DQ ONNX with the INT8
  flag (explicit quantization), FP16 with the FP16 flag on the FP32 ONNX.

Engines are named ``<model>.<precision>.engine`` whatever ONNX they came from (on TensorRT 8
fp32 and fp16 share the FP32 ONNX). Every build has a dynamic-batch optimization profile, a
workspace limit and a timing cache kept per GPU and TensorRT version
(``timing.sm<cc>.trt<version>.cache``: TensorRT refuses a cache from another GPU or version).
An engine already built from the same ONNX by the same TensorRT on the same GPU is reused
unless --force; its ``.json`` sidecar records the optimization profile, which ``bench.sh``
reads. Every ONNX parser error is printed.

    python3 build_engine.py                     # default precision from metadata.json
    python3 build_engine.py --precision fp16 --max-batch 64
    python3 build_engine.py --dry-run           # print the plan and trtexec command only
    python3 build_engine.py --print-trtexec --tensorrt-major 8

Exit codes: 0 ok, 2 usage, 3 TensorRT/CUDA missing, 4 bundle problem, 5 build failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trt_common import (EXIT_BUILD, EXIT_OK, EXIT_USAGE, HERE, BundleError, CudaRuntime,  # noqa: E402
                        engine_name, fail, import_tensorrt, load_metadata, sha256_file, strongly_typed,
                        verify_files)


# trtexec keeps its own cache file, apart from the per-GPU caches of the Python build.
TRTEXEC_TIMING_CACHE = "timing.cache"


def parse_args(argv, meta: dict) -> argparse.Namespace:
    prof = meta["optimization_profile"]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", choices=sorted(meta["precisions"]), default=meta["default_precision"])
    p.add_argument("--min-batch", type=int, default=prof["min_batch"])
    p.add_argument("--opt-batch", type=int, default=prof["opt_batch"])
    p.add_argument("--max-batch", type=int, default=prof["max_batch"])
    p.add_argument("--workspace-mib", type=int, default=meta.get("workspace_mib", 1024),
                   help="builder workspace limit; lower it if the build runs out of memory on a small module")
    p.add_argument("--engine", type=Path, help="engine path (default: <model>.<precision>.engine in the bundle)")
    p.add_argument("--timing-cache", type=Path, default=None,
                   help="timing cache file (default: timing.sm<cc>.trt<version>.cache in the bundle, one per GPU "
                        "and TensorRT version)")
    p.add_argument("--dla-core", type=int, default=None, help="build for this DLA core (GPU fallback on)")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")
    p.add_argument("--dry-run", action="store_true", help="print the build plan and trtexec command, build nothing")
    p.add_argument("--print-trtexec", action="store_true", help="print only the equivalent trtexec command")
    p.add_argument("--tensorrt-major", type=int, default=None,
                   help="plan for this TensorRT major version instead of the installed one (dry runs)")
    a = p.parse_args(argv)
    if not (1 <= a.min_batch <= a.opt_batch <= a.max_batch):
        p.error(f"need 1 <= --min-batch <= --opt-batch <= --max-batch, got {a.min_batch}, {a.opt_batch}, "
                f"{a.max_batch}")
    if a.workspace_mib < 16:
        p.error("--workspace-mib must be at least 16")
    return a


def build_plan(meta: dict, args: argparse.Namespace, major: int) -> dict:
    """What to build and how, for TensorRT ``major``: a pure function of metadata and arguments."""
    prec = meta["precisions"][args.precision]
    typed = strongly_typed(major)
    flags = []
    if typed:
        onnx_name = prec["onnx_strongly_typed"]
    else:
        onnx_name = prec["onnx_weakly_typed"]
        flags = list(prec.get("weak_flags", []))
    inp = meta["inputs"][0]
    chw = [int(d) for d in inp["shape"][1:]]
    engine = args.engine or HERE / engine_name(meta, args.precision)
    return {
        "precision": args.precision, "tensorrt_major": major, "onnx": onnx_name, "engine": str(engine),
        "strongly_typed": typed, "builder_flags": flags,
        "input": inp["name"],
        "profile": {"min": [args.min_batch] + chw, "opt": [args.opt_batch] + chw, "max": [args.max_batch] + chw},
        "workspace_mib": args.workspace_mib,
        # None: one cache per GPU and TensorRT version, named when the device is known (see build)
        "timing_cache": None if args.timing_cache is None else str(args.timing_cache),
        "dla_core": args.dla_core,
    }


def trtexec_command(plan: dict) -> list:
    """The trtexec command that builds the same engine as :func:`build`."""
    shp = {k: "x".join(str(d) for d in v) for k, v in plan["profile"].items()}
    name = plan["input"]
    cmd = ["trtexec", f"--onnx={plan['onnx']}", f"--saveEngine={plan['engine']}",
           f"--minShapes={name}:{shp['min']}", f"--optShapes={name}:{shp['opt']}", f"--maxShapes={name}:{shp['max']}",
           f"--memPoolSize=workspace:{plan['workspace_mib']}",
           f"--timingCacheFile={plan['timing_cache'] or TRTEXEC_TIMING_CACHE}"]
    major = plan["tensorrt_major"]
    if plan["strongly_typed"] and major < 11:
        cmd.append("--stronglyTyped")  # default (and the flag gone) on TensorRT 11
    for f in plan["builder_flags"]:
        cmd.append({"INT8": "--int8", "FP16": "--fp16"}[f])
    if plan["dla_core"] is not None:
        cmd += [f"--useDLACore={plan['dla_core']}", "--allowGPUFallback"]
    cmd.append("--skipInference" if major >= 10 else "--buildOnly")
    return cmd


def _engine_key(plan: dict, meta: dict, trt_version: str, device: dict) -> dict:
    return {"tensorrt": trt_version, "device": device, "onnx_sha256": meta["files"][plan["onnx"]],
            "precision": plan["precision"], "profile": plan["profile"], "dla_core": plan["dla_core"],
            "builder_flags": plan["builder_flags"], "strongly_typed": plan["strongly_typed"]}


def _progress_monitor(trt):
    """A TensorRT >= 10 progress monitor printing build phases, so long builds are not silent."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.t0 = time.time()

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                print(f"  [{time.time() - self.t0:6.1f}s] {phase_name} ({num_steps} steps)", flush=True)

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            pass

    return Monitor()


def _reusable(engine_path: Path, sidecar: Path, key: dict) -> bool:
    """Whether the engine on disk was built from exactly ``key`` (same ONNX, TensorRT, GPU, profile)."""
    if not (engine_path.is_file() and sidecar.is_file()):
        return False
    try:
        old = json.loads(sidecar.read_text())
    except ValueError:
        return False
    return old == key


def _parse_onnx(trt, builder, plan: dict, logger):
    """The network parsed from the plan's ONNX; every parser error is reported."""
    net_flags = 0
    if plan["strongly_typed"]:
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(net_flags)
    parser = trt.OnnxParser(network, logger)
    onnx_path = HERE / plan["onnx"]
    ok = parser.parse_from_file(str(onnx_path)) if hasattr(parser, "parse_from_file") else \
        parser.parse(onnx_path.read_bytes(), path=str(onnx_path))
    if not ok:
        lines = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            node = getattr(err, "node_name", lambda: "")() or str(getattr(err, "node", lambda: "?")())
            lines.append(f"  [{i}] node {node}: {err.desc()} (code {err.code()})")
        raise BundleError(f"TensorRT {trt.__version__} ONNX parser rejected {onnx_path.name} "
                          f"with {parser.num_errors} error(s):\n" + "\n".join(lines), EXIT_BUILD)
    return network, parser


def _builder_config(trt, builder, plan: dict):
    """Builder config: workspace, precision flags, TF32 off for fp32, the batch profile, DLA, progress."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan["workspace_mib"] << 20)
    for f in plan["builder_flags"]:
        config.set_flag(getattr(trt.BuilderFlag, f))
    if plan["precision"] == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # FP32 means FP32: TF32 tensor cores (on by default on Ampere+) would round to 10 bits.
        try:
            config.clear_flag(trt.BuilderFlag.TF32)
        except Exception as exc:  # noqa: BLE001 - report and go on; the golden check will tell
            print(f"note: could not clear TF32 ({exc}); FP32 layers may use TF32")
    profile = builder.create_optimization_profile()
    p = plan["profile"]
    profile.set_shape(plan["input"], p["min"], p["opt"], p["max"])
    config.add_optimization_profile(profile)
    if plan["dla_core"] is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan["dla_core"]
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        try:
            config.progress_monitor = monitor
        except (AttributeError, TypeError):  # a TensorRT without the attribute: build silently
            pass
    return config


def timing_cache_path(plan: dict, trt_version: str, device: dict) -> Path:
    """The plan's timing cache, or the bundle's one for this GPU and TensorRT version."""
    if plan["timing_cache"]:
        return Path(plan["timing_cache"])
    cc = str(device["compute_capability"]).replace(".", "")
    return HERE / f"timing.sm{cc}.trt{trt_version}.cache"


def attach_timing_cache(config, path: Path) -> bool:
    """Load ``path`` into the builder config; a cache TensorRT refuses is replaced by an empty one.

    ``set_timing_cache(..., ignore_mismatch=False)`` returns False for a cache written on another
    GPU or TensorRT version (using it anyway risks wrong tactics). Returns whether a cache is set.
    """
    data = path.read_bytes() if path.is_file() else b""
    for blob in ((data, b"") if data else (b"",)):
        try:
            cache = config.create_timing_cache(blob)
            ok = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False) is not False
        except Exception as exc:  # noqa: BLE001 - a corrupt cache file must not stop the build
            print(f"note: timing cache {path.name} not usable ({exc})")
            ok = False
        if ok:
            return True
        if blob:
            print(f"note: {path.name} was written by another GPU or TensorRT version (or is damaged); "
                  "starting a new timing cache")
    print("note: TensorRT accepted no timing cache; building without one")
    return False


def save_timing_cache(config, path: Path) -> None:
    """Write the builder's timing cache, if it has one (``get_timing_cache`` may return None)."""
    cache = config.get_timing_cache()
    if cache is None:
        print(f"note: TensorRT returned no timing cache; {path.name} not written")
        return
    _atomic_write(path, bytes(cache.serialize()))


def build(plan: dict, meta: dict, trt, *, force: bool = False) -> Path:
    """Build (or reuse) the engine described by ``plan`` with the installed TensorRT."""
    verify_files(meta, names=[plan["onnx"]])
    engine_path = Path(plan["engine"])
    sidecar = engine_path.with_name(engine_path.name + ".json")
    device = CudaRuntime().device()
    key = _engine_key(plan, meta, trt.__version__, device)
    if not force and _reusable(engine_path, sidecar, key):
        print(f"reusing {engine_path} (same ONNX, TensorRT {trt.__version__}, {device['name']}); --force rebuilds")
        return engine_path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, plan, logger)  # the parser must outlive the build
    config = _builder_config(trt, builder, plan)
    cache_path = timing_cache_path(plan, trt.__version__, device)
    attach_timing_cache(config, cache_path)
    print(f"building {engine_path.name} with TensorRT {trt.__version__} on {device['name']} "
          f"(sm {device['compute_capability']}); first builds can take minutes on small modules", flush=True)
    t0 = time.time()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BundleError("TensorRT could not build the engine (see the errors above); on a small module try "
                          "--workspace-mib 256 and close other GPU programs", EXIT_BUILD)
    data = bytes(serialized)
    runtime = trt.Runtime(logger)
    if runtime.deserialize_cuda_engine(data) is None:
        raise BundleError("the built engine does not deserialize", EXIT_BUILD)
    _atomic_write(engine_path, data)
    save_timing_cache(config, cache_path)
    _atomic_write(sidecar, (json.dumps(key, indent=2) + "\n").encode())
    print(f"wrote {engine_path} ({len(data) / 1024:.0f} KiB) in {time.time() - t0:.1f} s; "
          f"engine SHA-256 {sha256_file(engine_path)[:16]}…")
    return engine_path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv=None) -> int:
    try:
        meta = load_metadata()
        args = parse_args(argv, meta)
        if args.tensorrt_major is not None:
            major, trt = args.tensorrt_major, None
        elif args.dry_run or args.print_trtexec:
            try:
                import tensorrt as trt  # noqa: PLC0415
                major = int(trt.__version__.split(".")[0])
            except ImportError:
                trt, major = None, 10
                print("note: tensorrt not importable; planning for TensorRT 10 (use --tensorrt-major)",
                      file=sys.stderr)
        else:
            trt, major = import_tensorrt()
        plan = build_plan(meta, args, major)
        if args.print_trtexec:
            print(" ".join(trtexec_command(plan)))
            return EXIT_OK
        if args.dry_run:
            print(json.dumps({"plan": plan, "trtexec": " ".join(trtexec_command(plan))}, indent=2))
            return EXIT_OK
        if trt is None:
            raise BundleError("--tensorrt-major is for --dry-run/--print-trtexec only", EXIT_USAGE)
        build(plan, meta, trt, force=args.force)
        return EXIT_OK
    except BundleError as exc:
        return fail(exc)


if __name__ == "__main__":
    sys.exit(main())
