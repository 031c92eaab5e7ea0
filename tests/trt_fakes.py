"""Stand-ins for the TensorRT Python bindings and the CUDA runtime (neither runs here).

They implement only the calls the bundle's scripts make, with TensorRT's documented
behaviour where the scripts depend on it:

* ``IBuilderConfig.set_timing_cache(cache, ignore_mismatch=False)`` returns False for a cache
  written on another GPU or TensorRT version, and ``get_timing_cache()`` then returns None;
* ``ICudaEngine.get_tensor_profile_shape(name, 0)`` returns the (min, opt, max) shapes the
  engine was built with, and ``set_input_shape`` returns False outside them;
* "device" memory is host memory, so ``execute_async_v3`` can compute the outputs with real
  ONNX Runtime on the bundle's ONNX file.
"""
from __future__ import annotations

import ctypes
import types

import numpy as np


class FakeCuda:
    """CudaRuntime with host buffers: malloc returns the address of a numpy buffer."""

    H2D, D2H = 1, 2

    def __init__(self, *a, **k):
        self.buffers = {}

    def device(self):
        return {"name": "Fake GPU", "compute_capability": "9.0"}

    def malloc(self, n):
        buf = np.zeros(max(n, 1), dtype=np.uint8)
        self.buffers[buf.ctypes.data] = buf
        return buf.ctypes.data

    def free(self, ptr):
        self.buffers.pop(ptr, None)

    def memcpy(self, dst, src, n, kind):
        ctypes.memmove(dst, src, n)

    def stream(self):
        return 0

    def sync(self, stream):
        pass


def _array_at(ptr: int, shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n,)).reshape(shape)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.shape, self.addr = engine, None, {}

    def set_input_shape(self, name, shape):
        lo, hi = self.engine.batch_range
        if not lo <= shape[0] <= hi:
            return False
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return (self.shape[0], self.engine.n_out)

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def execute_async_v3(self, stream):
        x = _array_at(self.addr[self.engine.in_name], self.shape).copy()
        self.engine.batches.append(len(x))
        y = self.engine.compute(x).astype(np.float32)
        _array_at(self.addr[self.engine.out_name], y.shape)[...] = y
        return True


class FakeEngine:
    """An engine built with batch profile ``batch_range``; ``compute`` gives its outputs."""

    def __init__(self, compute, batch_range, chw, n_out, in_name="input", out_name="logits"):
        self.compute, self.batch_range, self.chw, self.n_out = compute, batch_range, tuple(chw), n_out
        self.in_name, self.out_name = in_name, out_name
        self.batches = []

    def get_tensor_profile_shape(self, name, profile_index):
        assert name == self.in_name and profile_index == 0
        lo, hi = self.batch_range
        return [(lo, *self.chw), (lo, *self.chw), (hi, *self.chw)]

    def create_execution_context(self):
        return FakeContext(self)

    def get_tensor_dtype(self, name):
        return "float32"


class FakeTimingCache:
    def __init__(self, blob: bytes):
        self.blob = blob

    def serialize(self):
        return self.blob or b"fresh timing cache"


class FakeConfig:
    def __init__(self, trt):
        self.trt, self.flags, self.cache, self.profiles = trt, set(), None, []
        self.progress_monitor = None

    def set_memory_pool_limit(self, pool, size):
        self.workspace = size

    def set_flag(self, f):
        self.flags.add(f)

    def clear_flag(self, f):
        self.flags.discard(f)

    def add_optimization_profile(self, p):
        self.profiles.append(p)

    def create_timing_cache(self, blob):
        return FakeTimingCache(bytes(blob))

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache.blob and cache.blob != self.trt.cache_signature and not ignore_mismatch:
            return False  # TensorRT: header mismatch (other GPU or TensorRT version)
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache


def fake_tensorrt(version: str = "10.3.0", engine: FakeEngine | None = None) -> types.ModuleType:
    """A ``tensorrt`` module whose builder 'builds' ``b"ENGINE"`` and whose runtime returns ``engine``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.cache_signature = b"cache of sm90 trt" + version.encode()
    trt.built = []

    class Logger:
        WARNING = 2

        def __init__(self, level=None):
            pass

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            self.shape = (name, mn, opt, mx)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return types.SimpleNamespace(flags=flags)

        def create_builder_config(self):
            return FakeConfig(trt)

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.built.append((network, config))
            return b"ENGINE"

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse_from_file(self, path):
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return engine if engine is not None else object()

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=5, EXPLICIT_BATCH=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32", GPU_FALLBACK="GPU_FALLBACK")
    trt.DeviceType = types.SimpleNamespace(DLA="DLA", GPU="GPU")
    trt.nptype = lambda dt: np.float32
    return trt
