"""Shared helpers of an edgekd TensorRT bundle (runs on the Jetson: Python >= 3.8, numpy).

Nothing here imports edgekd, TensorRT or a CUDA Python package at import time: the
bundle must work on a stock JetPack image. CUDA memory and streams go through the CUDA
runtime library (libcudart) with ctypes, which every JetPack installs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import json
import os
import site
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METADATA = "metadata.json"

# Exit codes shared by the bundle's scripts (bench.sh uses the same numbers).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_TENSORRT = 3
EXIT_BUNDLE = 4
EXIT_BUILD = 5


class BundleError(Exception):
    """A problem the user can fix; printed as one message, with the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_BUNDLE):
        super().__init__(message)
        self.code = code


def load_metadata(bundle: Path = HERE) -> dict:
    path = Path(bundle) / METADATA
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot read bundle metadata ({exc}); copy the whole bundle folder") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_files(meta: dict, bundle: Path = HERE, names=None) -> None:
    """Check SHA-256 of the bundle's files against metadata.json (all, or ``names``)."""
    files = meta.get("files", {})
    for name in (names if names is not None else sorted(files)):
        if name not in files:
            raise BundleError(f"{name}: not listed in metadata.json files")
        p = Path(bundle) / name
        if not p.is_file():
            raise BundleError(f"{p}: missing from the bundle; copy the whole bundle folder")
        if sha256_file(p) != files[name]:
            raise BundleError(f"{p}: SHA-256 differs from metadata.json; the file changed after export "
                              "(re-export with edgekd, do not edit bundle files)")


# TensorRT 9 introduced strongly typed networks; from 11 on every network is strongly typed.
# build_engine.py's Python build and its trtexec command both decide with this one test.
STRONGLY_TYPED_FROM = 9


def tensorrt_major(version: str) -> int:
    return int(str(version).split(".")[0])


def strongly_typed(major: int) -> bool:
    """Whether the bundle builds a strongly typed network for TensorRT ``major``."""
    return major >= STRONGLY_TYPED_FROM


def engine_name(meta: dict, precision: str) -> str:
    """The engine file for ``precision``: ``<model>.<precision>.engine``, whatever ONNX it came from.

    On TensorRT 8 fp32 and fp16 engines are both built from the FP32 ONNX, so a name derived
    from the ONNX file would make the fp16 build overwrite the fp32 engine.
    """
    return "%s.%s.engine" % (meta["model"], precision)


def import_tensorrt():
    """``tensorrt`` and its major version; BundleError(EXIT_NO_TENSORRT) when it is missing."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional, only on the device
    except ImportError as exc:
        raise BundleError(
            f"cannot import tensorrt ({exc}). On a Jetson it comes with JetPack "
            "(sudo apt install nvidia-jetpack, or python3-libnvinfer); in a venv create it with "
            "--system-site-packages. The ONNX files can be checked without TensorRT: "
            "python3 check.py --backend onnxruntime", EXIT_NO_TENSORRT) from None
    major = tensorrt_major(trt.__version__)
    if major < 8 or (major == 8 and int(trt.__version__.split(".")[1]) < 5):
        raise BundleError(f"TensorRT {trt.__version__} is too old: the bundle needs 8.5 (JetPack 5.1) or newer",
                          EXIT_NO_TENSORRT)
    return trt, major


# -- CUDA runtime through ctypes ------------------------------------------------------------

_CUDART_CANDIDATES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
# Where pip puts the CUDA runtime: nvidia-cuda-runtime-cu12 in nvidia/cuda_runtime/lib, the CUDA 13
# wheels (TensorRT 11's pip install) in nvidia/cu13/lib. Nothing preloads them for ctypes.
_WHEEL_CUDART_GLOBS = ("nvidia/cuda_runtime/lib/libcudart.so*", "nvidia/cu*/lib/libcudart.so*")
_SYSTEM_CUDART_GLOBS = ("/usr/local/cuda/lib64/libcudart.so*", "/usr/local/cuda/targets/*/lib/libcudart.so*")


def _site_dirs() -> list:
    """site-packages folders to search for pip-installed CUDA libraries (venv, user, system)."""
    dirs = []
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # some embedded interpreters lack it
        pass
    try:
        dirs.append(site.getusersitepackages())
    except AttributeError:
        pass
    dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    seen, out = set(), []
    for d in dirs:
        if d and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _newest(paths) -> str | None:
    """The path with the highest libcudart soname version (libcudart.so.13 over .12)."""
    def key(p):
        tail = os.path.basename(p).split(".so", 1)[1].lstrip(".")
        return tuple(int(x) if x.isdigit() else -1 for x in tail.split(".")) if tail else (-1,)
    paths = sorted(set(paths), key=key)
    return paths[-1] if paths else None


def _find_cudart() -> str | None:
    for name in _CUDART_CANDIDATES:
        try:
            ctypes.CDLL(name)
            return name
        except OSError:
            continue
    found = ctypes.util.find_library("cudart")
    if found:
        return found
    wheel_hits = [h for d in _site_dirs() for g in _WHEEL_CUDART_GLOBS for h in glob.glob(os.path.join(d, g))]
    if wheel_hits:
        return _newest(wheel_hits)
    for pattern in _SYSTEM_CUDART_GLOBS:
        hits = glob.glob(pattern)
        if hits:
            return _newest(hits)
    return None


class CudaRuntime:
    """The handful of CUDA runtime calls the bundle needs, each checked for errors."""

    H2D, D2H = 1, 2

    def __init__(self, path: str | None = None):
        path = path or os.environ.get("EDGEKD_CUDART") or _find_cudart()
        if path is None:
            raise BundleError("cannot find libcudart (the CUDA runtime library); on a Jetson it is in "
                              "/usr/local/cuda/lib64 (install JetPack's cuda-runtime); pip installs it under "
                              "site-packages/nvidia/cuda_runtime/lib or nvidia/cu13/lib; or set EDGEKD_CUDART",
                              EXIT_NO_TENSORRT)
        self.lib = ctypes.CDLL(path)
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            msg = self.lib.cudaGetErrorString(status).decode()
            raise BundleError(f"CUDA {what} failed: {msg} (error {status})", EXIT_BUILD)

    def device(self) -> dict:
        dev = ctypes.c_int(0)
        self._check(self.lib.cudaGetDevice(ctypes.byref(dev)), "cudaGetDevice")
        major, minor = ctypes.c_int(), ctypes.c_int()
        # cudaDevAttrComputeCapabilityMajor = 75, ...Minor = 76
        self._check(self.lib.cudaDeviceGetAttribute(ctypes.byref(major), 75, dev), "cudaDeviceGetAttribute")
        self._check(self.lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, dev), "cudaDeviceGetAttribute")
        # The device name is the first field (char[256]) of cudaDeviceProp in every CUDA version;
        # a generous buffer covers the rest of the struct, whose size changes between versions.
        buf = ctypes.create_string_buffer(16384)
        self._check(self.lib.cudaGetDeviceProperties(buf, dev), "cudaGetDeviceProperties")
        name = buf.raw[:256].split(b"\0", 1)[0].decode(errors="replace")
        return {"name": name, "compute_capability": f"{major.value}.{minor.value}"}

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))), "cudaMalloc")
        return ptr.value

    def free(self, ptr: int) -> None:
        self._check(self.lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def memcpy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        self._check(self.lib.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
                                        ctypes.c_int(kind)), "cudaMemcpy")

    def stream(self) -> int:
        s = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return s.value or 0

    def sync(self, stream: int) -> None:
        self._check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def fail(exc: BundleError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return exc.code
