#!/usr/bin/env python3
"""Compare the engine's outputs with the golden outputs edgekd recorded at export.

    python3 check.py                          # default precision, TensorRT engine
    python3 check.py --precision all
    python3 check.py --backend onnxruntime    # check the ONNX files themselves (no GPU needed)

The golden inputs are real, preprocessed images (golden.npz ``input``); the references are
PyTorch's float outputs (fp32/fp16) and the Brevitas INT8 model's outputs (int8). A
precision passes when every output is within ``atol + rtol·|reference|`` and the argmax
agrees on at least ``min_argmax_agreement`` of the inputs (metadata.json ``precisions``).
Writes ``check-<precision>-<backend>.json``. Exit codes: 0 pass, 1 fail, 2 usage,
3 TensorRT/CUDA/ONNX Runtime missing, 4 bundle problem.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trt_common import (EXIT_CHECK_FAILED, EXIT_NO_TENSORRT, EXIT_OK, HERE, BundleError,  # noqa: E402
                        CudaRuntime, engine_name, fail, import_tensorrt, load_metadata, verify_files)


def parse_args(argv, meta: dict) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", choices=sorted(meta["precisions"]) + ["all"], default=meta["default_precision"])
    p.add_argument("--backend", choices=["tensorrt", "onnxruntime"], default="tensorrt")
    p.add_argument("--engine", type=Path, help="engine file (default: the one build_engine.py writes)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def compare(out: np.ndarray, ref: np.ndarray, tol: dict) -> dict:
    """Tolerance check of ``out`` against ``ref`` (N×C logits); a JSON-ready summary."""
    out = np.asarray(out, dtype=np.float64).reshape(ref.shape)
    ref = np.asarray(ref, dtype=np.float64)
    diff = np.abs(out - ref)
    bound = tol["atol"] + tol["rtol"] * np.abs(ref)
    within = bool(np.all(diff <= bound)) and bool(np.isfinite(out).all())
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    worst = int(np.argmax((diff - bound).reshape(len(ref), -1).max(1)))
    return {"passed": within and agree >= tol["min_argmax_agreement"], "within_tolerance": within,
            "max_abs_diff": float(diff.max()), "argmax_agreement": agree, "n_inputs": int(len(ref)),
            "worst_input": worst, "tolerance": tol}


def run_onnxruntime(onnx_path: Path, x: np.ndarray, int8_kernels: bool) -> np.ndarray:
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError:
        raise BundleError("onnxruntime is not installed (pip install onnxruntime)", EXIT_NO_TENSORRT) from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if int8_kernels
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def engine_batch_range(engine, in_name: str):
    """(min, max) batch of the engine's optimization profile 0, read from the engine itself.

    The engine may have been built with other limits than metadata.json's (``build_engine.py
    --max-batch 32``): only the engine knows. ``get_tensor_profile_shape`` is TensorRT >= 8.5's
    name-based call; it returns the (min, opt, max) shapes.
    """
    if hasattr(engine, "get_tensor_profile_shape"):
        shapes = engine.get_tensor_profile_shape(in_name, 0)
    else:  # binding-based API of older bindings
        shapes = engine.get_profile_shape(0, in_name)
    lo, hi = int(shapes[0][0]), int(shapes[2][0])
    if not 1 <= lo <= hi:
        raise BundleError(f"engine profile batch range [{lo}, {hi}] is not usable", EXIT_CHECK_FAILED)
    return lo, hi


def _run_chunk(ctx, engine, trt, cuda, stream, xb: np.ndarray, in_name: str, out_name: str) -> np.ndarray:
    """One execute_async_v3 on ``xb`` (a batch inside the profile); outputs as float32."""
    if not ctx.set_input_shape(in_name, tuple(xb.shape)):
        raise BundleError(f"engine rejects input shape {xb.shape} (outside its optimization profile)",
                          EXIT_CHECK_FAILED)
    out_shape = tuple(ctx.get_tensor_shape(out_name))
    out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(out_name)))
    yb = np.empty(out_shape, dtype=out_dtype)
    d_in, d_out = cuda.malloc(xb.nbytes), cuda.malloc(yb.nbytes)
    try:
        cuda.memcpy(d_in, xb.ctypes.data, xb.nbytes, CudaRuntime.H2D)
        ctx.set_tensor_address(in_name, d_in)
        ctx.set_tensor_address(out_name, d_out)
        if not ctx.execute_async_v3(stream):
            raise BundleError("execute_async_v3 failed", EXIT_CHECK_FAILED)
        cuda.sync(stream)
        cuda.memcpy(yb.ctypes.data, d_out, yb.nbytes, CudaRuntime.D2H)
    finally:
        cuda.free(d_in)
        cuda.free(d_out)
    return yb.astype(np.float32)


def run_tensorrt(engine_path: Path, x: np.ndarray, meta: dict) -> np.ndarray:
    """Run the engine on ``x`` in chunks its own profile accepts (name-based API, TRT >= 8.5)."""
    trt, _ = import_tensorrt()
    if not engine_path.is_file():
        raise BundleError(f"{engine_path}: no engine; build it first with python3 build_engine.py", EXIT_CHECK_FAILED)
    cuda = CudaRuntime()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise BundleError(f"{engine_path}: TensorRT {trt.__version__} cannot load it (built with another TensorRT "
                          "version or GPU?); rebuild with python3 build_engine.py --force", EXIT_CHECK_FAILED)
    ctx = engine.create_execution_context()
    in_name, out_name = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
    lo, hi = engine_batch_range(engine, in_name)
    stream = cuda.stream()
    outs = []
    for i in range(0, len(x), hi):
        xb = np.ascontiguousarray(x[i : i + hi], dtype=np.float32)
        n = len(xb)
        if n < lo:  # a last chunk below the profile's minimum: pad with copies, keep the first n rows
            xb = np.ascontiguousarray(np.concatenate([xb, np.repeat(xb[-1:], lo - n, axis=0)]))
        outs.append(_run_chunk(ctx, engine, trt, cuda, stream, xb, in_name, out_name)[:n])
    return np.concatenate(outs)


def check_one(meta: dict, golden: dict, precision: str, backend: str, engine: Path | None) -> dict:
    prec = meta["precisions"][precision]
    x = golden["input"]
    ref = golden[prec["golden_output"]]
    if backend == "onnxruntime":
        onnx_name = prec["onnx_strongly_typed"]
        verify_files(meta, names=[onnx_name])
        out = run_onnxruntime(HERE / onnx_name, x, int8_kernels=precision == "int8")
        what = onnx_name
    else:
        eng = engine or HERE / engine_name(meta, precision)
        out = run_tensorrt(eng, x, meta)
        what = str(eng)
    res = compare(out, ref, prec["tolerance"])
    res.update({"precision": precision, "backend": backend, "artifact": what, "reference": prec["reference"]})
    return res


def main(argv=None) -> int:
    try:
        meta = load_metadata()
        args = parse_args(argv, meta)
        verify_files(meta, names=[meta["golden"]["file"]])
        with np.load(HERE / meta["golden"]["file"]) as z:
            golden = {k: z[k] for k in z.files}
        precisions = sorted(meta["precisions"]) if args.precision == "all" else [args.precision]
        ok = True
        for p in precisions:
            res = check_one(meta, golden, p, args.backend, args.engine)
            (HERE / f"check-{p}-{args.backend}.json").write_text(json.dumps(res, indent=2) + "\n")
            ok &= res["passed"]
            if not args.quiet:
                print(f"{p:5s} {args.backend}: {'PASS' if res['passed'] else 'FAIL'}  max|Δ|={res['max_abs_diff']:.3g} "
                      f"(atol {res['tolerance']['atol']:.3g}, rtol {res['tolerance']['rtol']:.3g}), argmax "
                      f"agreement {100 * res['argmax_agreement']:.2f}% on {res['n_inputs']} golden inputs "
                      f"vs {res['reference']}")
        return EXIT_OK if ok else EXIT_CHECK_FAILED
    except BundleError as exc:
        return fail(exc)


if __name__ == "__main__":
    sys.exit(main())
