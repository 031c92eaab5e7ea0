"""Load a generated kernel and run it: on a CUDA GPU, or on CPU through Triton's interpreter.

:class:`FusedKernel` owns everything one call needs — weights, output and scratch buffers on
the device, the grid — allocated once, so a call is one kernel launch and nothing else: no
allocation, no copy, no host synchronization. :meth:`FusedKernel.capture` records that one
launch in a CUDA graph for the lowest launch cost.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgekd.errors import ToolMissingError
from edgekd.targets.cuda_fused.codegen import KERNEL_NAME, GeneratedKernel

PROGRAMS_PER_SM = 4  # persistent-grid cap: about what fits at once (128 regs × 128 threads per program)


def triton_version() -> str | None:
    """The installed Triton's version, or None."""
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def require_triton(where: str = "target 'cuda-fused'") -> None:
    """Raise :class:`ToolMissingError` unless Triton can be imported."""
    if triton_version() is None:
        raise ToolMissingError("Triton is not installed (it compiles the fused kernel and, on CPU, interprets it)",
                               where=where, fix="pip install -e '.[gpu]' (Triton 3.7.1, the version torch 2.13 "
                                                "pins on Linux), or drop 'cuda-fused' from the recipe's targets")


@contextlib.contextmanager
def _interpret(on: bool):
    """Set TRITON_INTERPRET while ``triton.jit`` wraps the kernel (it decides then), then restore."""
    old = os.environ.get("TRITON_INTERPRET")
    if on:
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ.pop("TRITON_INTERPRET", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


def kernel_dir() -> Path:
    """Where generated sources are written (Triton's JIT reads a kernel's source from its file)."""
    d = Path(os.environ.get("EDGEKD_CUDA_FUSED_DIR", Path(tempfile.gettempdir()) / "edgekd-cuda-fused"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_kernel(gen: GeneratedKernel, *, interpret: bool, path: Path | None = None):
    """Write ``gen.source`` to a file (content-addressed) and return its jitted kernel."""
    require_triton()
    path = Path(path) if path is not None else kernel_dir() / f"fused_{gen.key}.py"
    if not path.exists() or path.read_text() != gen.source:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(gen.source)
        tmp.replace(path)
    mod_name = f"edgekd_cuda_fused_{gen.key}_{'interp' if interpret else 'gpu'}"
    with _interpret(interpret):
        spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        spec.loader.exec_module(mod)
    return getattr(mod, KERNEL_NAME)


class FusedKernel:
    """One generated kernel bound to a device and a batch size, ready to launch.

    ``device`` is ``"cpu"`` (Triton's interpreter: for correctness checks, slow) or a CUDA
    device. ``programs`` caps the persistent grid (default: one program per group of
    ``images_per_program`` images on CPU; at most ``PROGRAMS_PER_SM`` per multiprocessor on a GPU).
    """

    def __init__(self, gen: GeneratedKernel, batch_size: int, device: str | torch.device = "cpu",
                 programs: int | None = None):
        require_triton()
        self.gen = gen
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self.batch_size * max(gen.in_numel, gen.out_numel) >= 2**31:
            # image offsets are 32-bit in the kernel (cheaper index math): split larger batches
            raise ValueError(f"batch {batch_size} × {max(gen.in_numel, gen.out_numel)} values per image "
                             "exceeds 32-bit offsets; run it in smaller batches")
        interpret = self.device.type != "cuda"
        self.interpret = interpret
        self.kernel = load_kernel(gen, interpret=interpret)
        groups = -(-self.batch_size // gen.images_per_program)
        if programs is None:
            programs = groups
            if not interpret:
                sms = torch.cuda.get_device_properties(self.device).multi_processor_count
                programs = min(groups, max(1, sms * PROGRAMS_PER_SM // gen.split))
        # with a split image, each group (one image) takes gen.split programs
        self.programs = max(1, min(int(programs), groups)) * gen.split
        self.grid = (self.programs,)
        self.weights = torch.from_numpy(gen.weights).to(self.device)
        self.x = torch.zeros(self.batch_size, gen.in_numel, dtype=torch.float32, device=self.device)
        self.out = torch.empty(self.batch_size, *gen.out_shape, dtype=torch.float32, device=self.device)
        self.scratch = torch.empty(max(4, self.programs * gen.scratch_per_program), dtype=torch.float32,
                                   device=self.device)
        # split images: partial sums and one arrival counter per image; the kernel resets each
        # counter it completes, so these are zeroed once here and never again
        self.partials = torch.zeros(max(4, self.batch_size * gen.split * gen.partials), dtype=torch.float32,
                                    device=self.device)
        self.counters = torch.zeros(max(1, self.batch_size), dtype=torch.int32, device=self.device)

    def launch(self) -> torch.Tensor:
        """Run the kernel on the bound input buffer ``self.x``; returns ``self.out`` (no sync)."""
        self.kernel[self.grid](self.x, self.weights, self.out, self.scratch, self.partials, self.counters,
                               self.batch_size, num_warps=self.gen.num_warps)
        return self.out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Copy ``x`` (B×C×H×W, B = the bound batch size) into the input buffer and launch."""
        if x.shape[0] != self.batch_size or x[0].numel() != self.gen.in_numel:
            raise ValueError(f"expected a batch of {self.batch_size} inputs of {self.gen.in_numel} values, "
                             f"got shape {tuple(x.shape)}")
        self.x.copy_(x.reshape(self.batch_size, -1))
        return self.launch()

    def capture(self, warmup: int = 3) -> Callable[[], torch.Tensor]:
        """The single launch captured in a CUDA graph; returns its replay (GPU only)."""
        if self.interpret:
            raise ToolMissingError("CUDA graphs need a CUDA GPU", where="cuda-fused graph mode")
        s = torch.cuda.Stream(self.device)
        s.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(s):  # compile and warm up outside the capture
            for _ in range(warmup):
                self.launch()
        torch.cuda.current_stream(self.device).wait_stream(s)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.launch()
        self._graph = graph  # keep it alive with the runner
        out = self.out

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        return replay


def run_fused(gen: GeneratedKernel, x: np.ndarray | torch.Tensor, *, device: str | torch.device = "cpu",
              programs: int | None = None) -> np.ndarray:
    """Outputs of the generated kernel for the whole batch ``x`` (numpy, fp32)."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x).float()
    k = FusedKernel(gen, xt.shape[0], device, programs)
    out = k(xt.to(k.device))
    if k.device.type == "cuda":
        torch.cuda.synchronize(k.device)
    return out.cpu().numpy().copy()


__all__ = ["FusedKernel", "PROGRAMS_PER_SM", "kernel_dir", "load_kernel", "require_triton", "run_fused",
           "triton_version"]
