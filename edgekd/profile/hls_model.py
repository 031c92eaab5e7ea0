"""What hls4ml generates, layer by layer: the structural model behind the calibrated FPGA estimate.

Every rule here was read from hls4ml's templates (``hls4ml/templates/{vivado,vitis}/
nnet_utils``, hls4ml 1.3.0) and checked against the synthesis reports of the
calibration corpus (``hw/fpga/reports``); the constants it cannot know (how far a given
HLS tool gets from these schedules, how it maps multipliers and FIFOs) are left to
:mod:`edgekd.profile.fpga_calibration`, which fits a handful of corrections per regime
and states the error left over.

io_stream (every layer a DATAFLOW process, FIFOs between them)
  * conv, Latency strategy: ``conv_2d_buffer_cl`` asks for ``II = reuse_factor`` on its
    pixel loop, but at RF > 1 what bounds it is ``dense_latency``'s ``ALLOCATION mul
    limit=multiplier_limit``: the true multiplies (the DSP-bound share of the nonzero
    products) over that limit; Vitis HLS 2023+ does not get below about 3 cycles a pixel
    (depthwise kernels excepted).
  * conv, Resource strategy: the pixel loop is *not* pipelined (no PIPELINE pragma for
    Resource in ``conv_2d_buffer_cl``); ``compute_output_buffer_2d`` is INLINE OFF and
    runs the ``dense_resource`` RF loop only for pixels that complete a window (strides
    skip windows): ``RF + 5`` (Vitis) / ``RF + 6`` (Vivado) cycles, the others ``4``
    (Vitis at RF 1: ``2.5`` and ``1.5``). The branch depends on the pixel's position,
    which the scheduler cannot bound: C synthesis reports a data-dependent min–max (every
    pixel short / every pixel through the RF loop), and the corpus holds that max.
  * dense (``nnet_dense_stream.h``): reads its input words at one per cycle (after a
    Flatten: one word per pixel of the flattened image), then runs the dense block
    (Latency: adder-tree depth, Resource: RF + depth) and writes **one word** (the whole
    vector; ``res_T::size = n_out``).
  * pooling, activations, padding, resize: one word per cycle; tables (sigmoid, tanh,
    ELU, softmax) a few cycles of depth.
  * the design latency is the time the last result leaves a schedule of first/last word
    times through the chain; the II between images is the busiest process (Vitis HLS: at
    least the slowest process's own latency + 1, as it restarts a process only when done).

io_parallel (each layer one pipelined function, called in sequence)
  * dense, Latency strategy, RF 1: multiply + adder-tree delay per layer; layers that fit a
    clock period chain with their neighbours (a register each time a period fills), longer
    ones are registered on their own; the period left for logic loses a fixed overhead and,
    at slow clocks, the tool's clock uncertainty (Vitis 27 %, Vivado 12.5 %); a layer
    registered on its own takes its multiply's whole cycles, then as many adder levels a
    cycle as fit. RF > 1 keeps the unrolled tree: the layer takes the longer of its RF 1
    cycles and the c cycles its true multiplies (where the weights are known: constants of
    ≥ 3 signed digits) take on the allocated multipliers; Vivado HLS pipelines the inlined
    top at that pace (II = c), Vitis HLS at II = RF.
  * dense, Resource: the RF loop: ``RF + 3`` cycles, II = RF.
  * conv (``conv_2d_latency_cl`` / ``conv_2d_resource_cl``): output pixels one after
    another through one kernel: ``II ≈ out_pixels × RF``.
  * ReLU 0 cycles, table activations 2, softmax 4, pooling 1.

Resources
  * multipliers: ``ceil(n_in·n_out·(1 − sparsity) / RF)`` per dense block (one block per
    conv layer); DSPs from the multiplier width (below 10 bits most land in LUTs).
  * BRAM (18K): io_stream FIFOs (hls4ml sizes each to its tensor; by BRAM aspect ratio,
    one FIFO per channel in Vivado HLS, one packed FIFO in Vitis HLS), conv line buffers,
    Resource-strategy weights with RF ≥ 4, lookup tables of table activations (one
    18K per two parallel lookups).
  * LUT / FF: multiplier and accumulator logic (at RF > 1: the Latency strategy's whole
    adder tree and operand multiplexers, the Resource strategy's data multiplexer and
    weight ROM), per-element logic of the parallel activations, per-process control and
    FIFO registers; a design scheduled in 0 cycles has no pipeline registers.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

TABLE_ACTS = ("sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "hard_sigmoid")
# io_parallel: hls4ml inlines every layer into one pipeline, so the tool chains combinational
# logic across layers; these are typical UltraScale delays the schedule packs into clock periods
MUL_NS = 2.0  # a DSP (or LUT) multiply by a constant weight
ADD_NS = 0.45  # one 16-bit adder level
RELU_NS = 0.3
TABLE_NS = 2.5  # a ROM lookup (registered: at least one cycle)
CLOCK_UNCERTAINTY = {"vitis": 0.27, "vivado": 0.125}  # the tools' default share of the period
# C synthesis's LUT estimate of a W-bit adder beyond its W bits, Vitis HLS: W (53 % of them) or W + 7 (41 %), mean
# W + 3.0 over the 7,542 adders of the expression tables of Lrozzy's, seanlipps's and tsopeter's reports
DA_ADDER_LUT = 3.0
OVERHEAD_NS = 2.3  # io_parallel chaining: the part of each period not available to logic (see _parallel_latency)


@dataclass
class LayerFigures:
    name: str
    kind: str
    reuse_factor: int
    words_in: int  # stream words in (io_stream) or 1
    cycles_per_word: float  # io_stream: average input-word cost; io_parallel: 0
    depth: float  # cycles from the last needed input to the output
    ii: float  # io_parallel: layer II; io_stream: busy cycles per image
    multipliers: int
    dsp: float
    lut: float
    ff: float
    bram_18k: float
    first_out: float = 0.0
    last_out: float = 0.0
    delay_ns: float = 0.0
    serial: float = 0.0  # io_parallel, Latency at RF > 1: c − 1, c the cycles its multiplies take on the allocation
    cpw_min: float | None = None  # io_stream: per-word cost bounds C synthesis reports (None: = cycles_per_word)
    cpw_max: float | None = None
    out_bits: float = 0.0  # io_parallel: the output array's bits
    cuts: float = 0.0  # io_parallel: the clock edges at which this layer's output is registered (_parallel_latency)


@dataclass
class Structural:
    """The uncalibrated design figures."""

    latency: float
    ii: float
    multipliers: int
    dsp: float
    lut: float
    ff: float
    bram_18k: float
    layers: list[LayerFigures] = field(default_factory=list)
    bottleneck: str = ""
    # C synthesis's static view where a process's pace is branch-dependent (io_stream Resource convs):
    # ``latency``/``ii`` above are the expected run; these are what the report states as min and max
    latency_min: float | None = None
    latency_max: float | None = None
    ii_max: float | None = None


def _log2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def _dsp_share(bits: int) -> float:
    """Share of multipliers that land in DSPs at this width (Vivado/Vitis ``mul`` binding)."""
    if bits >= 11:
        return 1.0
    if bits >= 9:
        return 0.5
    if bits >= 7:
        return 0.15
    return 0.05


def _constant_dsp_share(wb: int, db: int) -> float:
    """Share of a layer's constant-weight products (Latency strategy at RF 1) the tool binds to DSPs, from the
    weight width ``wb`` and the width ``db`` of the layer's input. A constant of ≤ 8 bits becomes a few
    shift-adds, and any product of a ≤ 5-bit input is a LUT6 a bit: both stay in fabric. In the corpus, designs
    whose products are all of that kind report 0–7 % of them in DSPs (lolbraa's HGQ2 CNNs, jeanleos's 4-bit
    U-Net, alex-yang's, thaarres's and Hector-Plata's 6-bit QKeras nets, Lenet5 and HG-DREAM at 8 bits,
    MinhNguy3n's 7–9-bit MLP), while 16-bit weights on a 6-bit input still land in DSPs (the QKeras tutorial
    CNN's last layer: ~400 of its 640 products, in PokerML and alex-yang alike). 9–10-bit weights: half, as
    ML_FPGAonPixel's 10-bit MLPs (3–79 %) show."""
    if wb <= 8 or db <= 5:
        return 0.0
    return 0.5 if wb <= 10 else 1.0


def _constant_mult_lut(wb: int, db: int) -> float:
    """LUTs of one product by a ``wb``-bit constant in fabric: a canonical-signed-digit constant has about
    (wb + 1) / 3 nonzero digits, so that many less one shift-adds, each about ``db`` + wb / 2 bits wide."""
    return max(0.0, (wb + 1) / 3.0 - 1.0) * (db + wb / 2.0)


def _alloc_cycles(n_in: int, n_out: int, n_zeros: int, rf: int, wb: int, ab: int,
                  csd: tuple[int, ...] | None = None) -> float:
    """Latency strategy with RF > 1: ``dense_latency`` asks for PIPELINE II=RF but what bounds its
    schedule is ``ALLOCATION operation instances=mul limit=multiplier_limit`` (hls4ml's
    ``ceil(n_in·n_out / RF) − n_zeros / RF``): the true multiplies spread over ``ceil(multiplies / limit)``
    cycles. Where the weights are known (``csd``: their canonical-signed-digit counts [1, 2, 3, ≥ 4]), a
    constant of 1–2 digits is a shift-add, no ``mul``, whatever the input width; otherwise the DSP-bound share
    of the nonzero products by width."""
    limit = max(1, math.ceil(n_in * n_out / rf) - n_zeros // rf)
    if csd and sum(csd):
        return float(max(1, math.ceil((csd[2] + csd[3]) / limit)))
    share = _dsp_share(min(wb, ab) if min(wb, ab) < 11 else max(wb, ab))
    return float(max(1, math.ceil((n_in * n_out - n_zeros) * share / limit)))


def _fifo_bram(words: int, width_bits: int) -> float:
    """18K BRAMs for one FIFO of ``words`` × ``width_bits`` (short FIFOs become SRLs)."""
    if words <= 32 or words * width_bits <= 1024:
        return 0.0
    # an 18K BRAM is 512×36, 1K×18, 2K×9, 4K×4, 8K×2 or 16K×1
    for depth, width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)):
        if words <= depth:
            return float(math.ceil(width_bits / width))
    return float(width_bits * math.ceil(words / 16384))


def speed_factor(part: str | None, default_grade: int | str | None = None) -> float:
    """How much slower the part's DSP and fabric are than the UltraScale+ -2 the delays above describe:
    the ratio of the DSP slice's datasheet Fmax (DSP48E2 -2: 775 MHz) to the part's (Artix-7 / Zynq-7010/20
    DSP48E1: 464 / 551 / 629 MHz at -1 / -2 / -3; Kintex-7, Virtex-7, Zynq-7030+: 550 / 650 / 741;
    UltraScale DSP48E2: 600 / 661 / 741; UltraScale+: 645 / 775 / 891 — the Xilinx data sheets' values as
    recalled, not re-checked against the documents here). HLS schedules with a delay library per family and
    speed grade, so fewer adder levels fit a cycle on a slower part. The grade is the part name's (``-1``,
    ``-2L``…), else ``default_grade`` (a target's ``speed_grade``), else -2."""
    p = (part or "").lower()
    m = re.search(r"-(\d)", p.split("-", 1)[1] if "-" in p else "")
    dm = re.match(r"-?(\d)", str(default_grade or ""))
    grade = int(m.group(1)) if m else int(dm.group(1)) if dm else 2
    if p.startswith("xc7z0") and p[5:7] in ("07", "10", "14", "20") or p.startswith(("xc7a", "xc7s")):
        fmax = {1: 464.0, 2: 551.0, 3: 629.0}
    elif p.startswith("xc7"):
        fmax = {1: 550.0, 2: 650.0, 3: 741.0}
    elif p.startswith(("xcku0", "xcku1", "xcvu0", "xcvu1", "xcvu440")) and not re.match(r"xc(ku|vu)\d+p", p):
        fmax = {1: 600.0, 2: 661.0, 3: 741.0}
    else:  # UltraScale+ (xczu, xcvu*p, xcku*p, Alveo xcu*) and unknown parts
        fmax = {1: 645.0, 2: 775.0, 3: 891.0}
    return 775.0 / fmax.get(grade, fmax[2])


@dataclass
class _Design:
    """What every layer's figures depend on besides the layer itself."""

    stream: bool
    family: str
    bits: int
    levels: int  # adder levels a cycle
    strategy: str  # the design's default, lower case


@dataclass
class _Work:
    """One layer's figures while they are being built (see LayerFigures for their meaning)."""

    rf: int
    strat: str
    wb: int  # weight width
    ab: int  # the multiplier's activation operand: the design's width (see structural)
    ob: int  # the layer's result width
    chans: int
    in_px: int
    words: int
    m: float = 0.0
    n_in: int = 0  # inputs to one output (dense: all; conv: the kernel window)
    dsp: float = 0.0
    lut: float = 0.0
    ff: float = 0.0
    bram: float = 0.0
    depth: float = 1.0
    per_word: float = 1.0
    ii: float = 1.0
    busy_min: float | None = None  # io_stream: the tool's static bounds where the pace is branch-dependent
    busy_max: float | None = None
    delay: float = 0.0  # io_parallel combinational delay (ns) chained with the neighbours
    serial: float = 0.0  # io_parallel, Latency at RF > 1: c − 1 (see LayerFigures.serial)
    pipe_ff: float = 0.0  # io_parallel: the multipliers' pipeline registers
    out_bits: float = 0.0


def _stream_conv(l: Any, d: _Design, w: _Work, n_out: int, out_px: int, tree: int, depthwise: bool) -> None:
    """An io_stream convolution's pace: cycles per input pixel and the tool's static bounds."""
    if w.strat == "resource":
        # the pixel loop is not pipelined and ``compute_output_buffer_*`` runs the RF loop
        # only for pixels that complete a window: RF + 5 (Vitis) / RF + 6 (Vivado) cycles
        # of RF loop, call and fill; the other pixels 4. The branch depends on the pixel's
        # position, which the scheduler cannot bound, so C synthesis reports a min-max
        # range: every pixel short (min) to every pixel through the RF loop (max).
        win, other = (w.rf + 5.0 if d.family == "vitis" else w.rf + 6.0), 4.0
        if d.family == "vitis" and w.rf == 1:
            # Vitis HLS 2023.1 at RF 1 (ML_FPGAonPixel per-layer reports): ~2.5 cycles a
            # window, 1.5 otherwise, and min = max
            win, other = 2.5, 1.5
        busy = out_px * win + max(0, w.in_px - out_px) * other
        if w.rf > 1:  # an RF loop to branch into
            w.busy_min, w.busy_max = w.in_px * other, w.in_px * win
        w.depth = win
    else:
        # Vivado HLS reaches II = RF per pixel; Vitis HLS 2023+ does not get below ~3 on a
        # (non-depthwise) Latency stream conv (seanlipps/ECE226_CoDesign, 2024.1: 390 cycles
        # for 130 pixels; hls4ml's depthwise kernel still reaches 1)
        px = _alloc_cycles(w.n_in, n_out, l.n_zeros, w.rf, w.wb, w.ab, l.weight_csd) if w.rf > 1 else w.rf
        # ... except where the input has ≤ 5 bits: each product is a LUT6 a bit, and the pixel loop reaches 2
        # (lolbraa's HGQ2 CNNs on 4-bit inputs, Vitis HLS 2025.2: 1,569 cycles for 784 pixels, where its 16-bit
        # twin takes 2,352)
        floor = 2 if (l.data_bits or w.ab) <= 5 else 3
        px = max(px, floor) if d.family == "vitis" and not depthwise else px
        busy = w.in_px * px
        w.depth = tree + 2
    w.per_word = busy / max(w.in_px, 1)
    w.ii = busy
    k = l.kernel
    if l.kind == "conv2d" and k > 1 and l.in_shape[1] * w.ab > 1024:
        w.bram += (k - 1) * w.chans  # ap_shift_reg line buffers, partitioned by channel


def _products(l: Any, w: _Work, n_out: int) -> None:
    """The layer's multipliers: its nonzero products (``w.n_in`` × ``n_out``) shared RF ways."""
    sparsity = min(0.95, l.n_zeros / max(1, w.n_in * n_out))
    w.m = math.ceil(w.n_in * n_out * (1 - sparsity) / w.rf)


def _weight_rom(w: _Work) -> None:
    """The Resource strategy's reshaped weight array: BRAM from RF 4 on."""
    if w.strat == "resource" and w.rf >= 4:
        w.bram += math.ceil(w.m * w.wb / 36) * math.ceil(w.rf / 1024)


def _conv(l: Any, d: _Design, w: _Work) -> None:
    k = l.kernel
    depthwise = (l.implementation or "") == "depthwise"
    w.n_in = (k * k if l.kind == "conv2d" else k) * (1 if depthwise else w.chans)
    n_out = l.out_shape[-1]
    _products(l, w, n_out)
    out_px = int(math.prod(l.out_shape[:-1]))
    tree = 1 + math.ceil(_log2(w.n_in) / d.levels)
    if d.stream:
        _stream_conv(l, d, w, n_out, out_px, tree, depthwise)
    elif (l.implementation or "") == "pointwise" and w.strat == "latency":
        # pointwise_conv_*_latency_cl: every output pixel in one pipelined call (II = RF),
        # its multiplies spread over the allocation limit like a dense layer's
        c = (_alloc_cycles(w.n_in * out_px, n_out, l.n_zeros * out_px, w.rf, w.wb, w.ab,
                           tuple(x * out_px for x in l.weight_csd) if l.weight_csd else None) if w.rf > 1
             else 1.0)
        w.ii, w.depth = float(w.rf), c + tree
    else:
        # conv_*d_latency_cl: a loop over n_partitions (PIPELINE II=RF), each iteration computing
        # n_pixels = out_px / n_partitions output pixels side by side (ParallelizationFactor)
        parts = max(1, min(out_px, l.n_partitions or out_px))
        w.m *= math.ceil(out_px / parts)
        w.ii = parts * w.rf
        w.depth = w.ii + tree
    _weight_rom(w)


def _dense(l: Any, d: _Design, w: _Work) -> None:
    w.n_in, n_out = int(math.prod(l.in_shape)), int(math.prod(l.out_shape))
    _products(l, w, n_out)
    tree = math.ceil(_log2(w.n_in) / d.levels)
    w.delay = (MUL_NS if w.n_in > 1 or w.wb > 1 else 0.0) + ADD_NS * math.ceil(math.log2(max(w.n_in, 1)))
    _weight_rom(w)
    if w.strat == "resource":
        w.depth, w.ii = w.rf + 3, w.rf
        w.delay = 0.0
    elif w.rf > 1:
        # the unrolled tree is kept, issued every RF cycles; its multiplies spread over the allocation
        c = _alloc_cycles(w.n_in, n_out, l.n_zeros, w.rf, w.wb, w.ab, l.weight_csd)
        w.depth, w.ii = c + tree, w.rf
        if not d.stream:
            # io_parallel: the top function's PIPELINE (its layers inlined) schedules the whole network; the
            # layer keeps its RF 1 combinational chain (and pipeline registers) and its multiplies spread over c
            # cycles (_parallel_latency takes the longer of the two)
            w.serial = c - 1.0
            if d.family != "vitis":
                # Vivado HLS pipelines the top at the allocation's pace, not at the II = RF asked inside
                # (Hector-Plata's PYNQ MLP at RF 64: II 15; the tutorial MLP at RF 2: II 2), with the RF 1
                # pipeline's registers (the tutorial MLP: 8,756–8,878 FF at RF 2, 10,961–11,100 at RF 1)
                w.ii, w.depth = c, tree + 1
        else:
            w.delay = 0.0
    else:
        w.depth, w.ii = (tree + 1 if w.n_in > 1 else 0), 1
    if d.stream:
        w.words = l.stream_words or w.words
        w.per_word = 1.0
        w.ii = max(w.ii, w.words)
        w.depth += 1  # read the last word, write the result word
    w.chans = n_out
    if getattr(l, "da_adder_bits", None) is not None:
        _da_graph(l, w)


def _da_graph(l: Any, w: _Work) -> None:
    """A distributed-arithmetic layer whose generated adder graph was read (edgekd.profile.da_codegen): no
    multiplier at all; its adders cost what C synthesis charges an adder, W LUTs for W bits or W + 7 (mean
    W + DA_ADDER_LUT), instead of the shift-add cost of its products. Its timing stays the constant-product layer's
    (the graph's depth in adder levels, at one adder delay a level, would give lolbraa's HGQ2 MLP 2 cycles where
    Vitis HLS reports 6; the products-then-tree delay gives 8)."""
    w.m = 0.0
    w.lut += float(l.da_adder_bits) + DA_ADDER_LUT * float(getattr(l, "da_adders", None) or 0)


def _pool(l: Any, d: _Design, w: _Work) -> None:
    k = l.kernel
    w.depth, w.per_word, w.ii = (2.0, 1.0, w.in_px) if d.stream else (0.0, 0.0, 1.0)
    w.delay = 0.5 * _log2(k * k)
    window = k ** max(1, len(l.in_shape) - 1)
    w.lut += (w.chans if d.stream else int(math.prod(l.out_shape))) * window * w.ab * 0.8
    if (not d.stream and d.family != "vitis" and (l.pool_op or "").lower().startswith("av")
            and l.padding > 0):
        # nnet_pooling.h divides each window's sum by the count of its unpadded pixels, a run-time
        # ``unsigned``; Vivado HLS builds a pipelined divider per output (≈ W stages of a W-bit
        # subtractor) where padding makes the count vary — hls4ml's CI reports (Vivado HLS 2020.1,
        # 'same' average pooling): 21 cycles, ~500 LUT and ~800 FF an output at 16 bits; Vitis HLS
        # folds the constant counts (0 cycles), as both tools do without padding
        n_outs = int(math.prod(l.out_shape))
        w.depth, w.delay = w.ab + 5.0, 0.0
        w.lut += n_outs * 2.0 * w.ab * w.ab
        w.ff += n_outs * 3.0 * w.ab * w.ab


def _activation(l: Any, d: _Design, w: _Work) -> None:
    act = (l.activation or "relu").lower()
    n_par = w.chans if d.stream else int(math.prod(l.in_shape))
    if l.kind == "softmax":
        w.depth = 4.0
        w.delay = 2 * TABLE_NS + ADD_NS * _log2(n_par) + MUL_NS
        w.bram += 2 * max(1, math.ceil(n_par / 2))
        w.lut += n_par * 150
    elif any(act.startswith(t) for t in TABLE_ACTS):
        w.depth = 2.0 + (1.0 if d.stream else 0.0)
        w.delay = TABLE_NS
        w.bram += max(1, math.ceil(n_par / 2))
        # the table index (scale, offset, clamp) and its read, per channel: hls4ml's CI reports the same
        # Dense(64) with sigmoid or elu 27–128 LUT a channel above its ReLU twin (median 72, 12 pairs
        # over Vivado HLS 2020.1 and Vitis HLS 2023.1 / 2024.1), plus the ~10 a ReLU costs
        w.lut += n_par * 80
    else:
        w.depth = 0.0 if not d.stream else 1.0
        w.delay = RELU_NS if act in ("relu", "linear", "leakyrelu", "leaky_relu", "prelu") else MUL_NS
        w.lut += n_par * w.ab * 0.6
    w.ii = w.in_px if d.stream else 1.0


def _simple(l: Any, d: _Design, w: _Work) -> None:
    """Pad, resize, batchnorm, merges: one word a cycle through simple logic."""
    out_px = int(math.prod(l.out_shape[:-1])) if len(l.out_shape) > 1 else 1
    w.depth, w.ii = (1.0, max(w.in_px, out_px)) if d.stream else (0.0, 1.0)
    w.delay = MUL_NS if "batchnorm" in (l.activation or "") else 0.0
    w.per_word = max(w.in_px, out_px) / max(w.in_px, 1)
    w.lut += w.chans * w.ab * 0.5


def _digit_dsp_share(csd: tuple[int, int, int, int], db: int) -> float | None:
    """Share of a layer's constant products bound to DSPs, from its quantized weights' canonical-signed-digit
    counts [1, 2, 3, ≥ 4] (``HlsLayer.weight_csd``): a constant of 1–2 nonzero digits is one shift-add, one of
    3 or more takes a DSP — if the input is wide enough (≥ 11 bits) to make shift-adds dear. Read off the
    corpus's committed weights (tools/fpga_corpus_weight_csd.py): the 16-bit jet taggers of tanvirana
    (3,650 nonzero weights × 41 % with ≥ 3 digits = 1,497 vs 1,500 DSPs reported), Hector-Plata (1,492 vs 1,450),
    nrp-nautilus (2,592 vs 2,557), astitwlathe (3,438 vs 3,317), their pruned twins (925 vs 922, 807 vs 803),
    seanlipps (465 vs 467), Thifjj (107 vs 110), ML_FPGAonPixel's 8–10-bit MLPs on 12–16-bit inputs (350 vs
    335, 826 vs 820, 4,296 vs 4,207) — and the same 10-bit weights on a 10-bit input: 31 DSPs, as 6-bit
    weights on 8-bit inputs (Hector-Plata, tanvirana: 23–28). None: no weights known."""
    nz = sum(csd)
    if not nz:
        return None
    return (csd[2] + csd[3]) / nz if db >= 11 else 0.0


def _binding(l: Any, w: _Work) -> tuple[float, float, float]:
    """(share of the products in DSPs, the share the LUT costs assume, LUTs of one product left in fabric)."""
    if w.strat == "resource" or w.rf > 1:
        # weights read from memory, or products shared under the Latency strategy's multiplier allocation:
        # real multipliers, bound to DSPs even when narrow (tsopeter's 6-bit and Spehic's 4-bit Resource
        # CNNs, PokerML's 6-bit RF 108–784 layers and Latency RF 128/256 CNNs report about one DSP a
        # multiplier)
        return 1.0, 1.0, 0.0
    db = l.data_bits or w.ab
    if w.strat.startswith("distributed"):
        # distributed arithmetic (hls4ml ≥ 1.2 with da4ml, RF 1 only): the layer becomes one shift-add
        # graph, no multiplier at all. Its cost lives in that graph (nnet_code_gen.h): where a project's graph was
        # read, _da_graph costs its adders; without it (a model not yet exported) the products are costed as
        # shift-adds of the layer's width, which for lolbraa's HGQ2 MLP at the 16-bit default width gave 596,223
        # LUT where Vitis HLS reports 9,838 (its graph: 7,948) — an upper bound, not an estimate
        return 0.0, 0.0, _constant_mult_lut(w.wb, db)
    # constant weights: narrow products become LUT shift-adds; the layer's true input width decides. Where the
    # weights are known, their digits decide the DSPs; the LUT constants were set with the width-based split
    # (re-costing the fabric products by their digits made held-out LUT worse, 27 → 30 % by record and 29 → 37 %
    # each source weighted equally, with the present adder-tree width), so the LUT figure keeps that split
    by_width = _constant_dsp_share(w.wb, db)
    by_digits = _digit_dsp_share(l.weight_csd, db) if l.weight_csd else None
    return (by_width if by_digits is None else by_digits), by_width, _constant_mult_lut(w.wb, db)


def _multipliers(l: Any, d: _Design, w: _Work) -> None:
    """DSPs, the adder tree's LUTs and the registers of a layer's ``w.m`` products."""
    m, rf, wb, ab = w.m, w.rf, w.wb, w.ab
    share, lut_share, mult_lut = _binding(l, w)
    w.dsp = m * share
    acc = wb + ab
    # the adder tree (one accumulator-wide adder per product) plus the products left in fabric
    w.lut += m * acc * 1.0 + m * (1 - lut_share) * mult_lut
    if rf > 1:
        if w.strat != "resource":
            # Latency strategy: the Accum loops stay fully unrolled, so the whole adder tree is kept
            # however few multipliers the allocation leaves; both operands of each allocated
            # multiplier are multiplexed from RF sources (an RF:1 mux ≈ (RF − 1)/3 LUT6 a bit)
            w.lut += m * (rf - 1) * acc * 1.0 + m * (wb + ab) * (rf - 1) / 3.0
        else:
            # Resource strategy: the data operand is multiplexed, the weights read from a
            # reshaped array (a LUT ROM of depth RF, 64 deep per LUT6)
            w.lut += m * ab * (rf - 1) / 3.0 + m * wb * math.ceil(rf / 64)
    # multipliers shared under the allocation keep a pipeline of their own: Vitis HLS's II = RF layer (see _dense),
    # and every io_stream layer at RF > 1
    shared = rf > 1 and (d.stream or d.family == "vitis")
    # a constant product (the Latency strategy at RF 1, io_parallel or io_stream alike: the stream convolution
    # calls the same dense_latency kernel on each window under PIPELINE II=1) is registered like logic: 0.1 of its
    # bits at 4 adder levels a cycle (the Alveo / UltraScale+ designs at 5 ns); a part that fits fewer levels a
    # cycle registers its partial sums at every level (the Zynq-7020 MLPs at 5 ns, 1 level a cycle: 3–12× the FF
    # of the model with 0.1). A real multiplier (Resource strategy, shared) keeps 0.6 of its product's bits.
    # Charging io_stream's constant products 0.6 as well counted hls4ml's tutorial CNNs at 3.2–3.6× their
    # FF (Vivado HLS 2020.1, RF 1); with 0.1 held out FF 37 / 223 → 33 / 170 % by record, 41 / 245 → 34 / 258 %
    # each source weighted equally
    ff_mult = m * acc * (0.6 if (w.strat == "resource" or shared) else 0.1 * max(1.0, 4.0 / d.levels))
    w.ff += ff_mult
    w.pipe_ff = ff_mult if not d.stream else 0.0
    # arrays the templates partition completely, so registers whatever the reuse factor:
    # dense_resource's ``accum_t acc[n_out]`` (and dense_latency's at RF > 1), the stream dense's
    # ``data[n_in]`` collected word by word, the stream conv's ``static kernel_data[k·k·n_chan]``
    # (nnet_dense_resource.h, nnet_dense_stream.h, nnet_conv_stream.h). Added together; held-out FF
    # median 54 → 42 % by record, 59 → 44 % each source weighted equally, in-80 % 76 → 80 %. The stream ones are
    # added in _layer (a DA layer has them too); the accumulators here
    if rf > 1:
        w.ff += l.out_shape[-1] * acc
    if rf > 1 and d.stream and w.strat == "latency" and d.family != "vitis":
        # the Latency strategy's unrolled tree under the allocation: Vivado HLS registers every nonzero product
        # (about half its accumulator width) until the tree takes it — pominiq's per-process report (RF 16,
        # Vivado HLS 2020.1): a 3×3×4→8 conv 5,991 FF and a 32→10 dense 4,950 where the model had 1,746 and
        # 1,436. Held out: FF p90 245 → 221 % by record, 275 → 239 % each source weighted equally (median 43 →
        # 42 % / 42 → 43 %). In io_parallel the same term made FF worse each source weighted equally (42 → 46 %)
        w.ff += m * rf * acc * 0.5


def _stream_output(l: Any, d: _Design, w: _Work) -> None:
    """An io_stream layer's output FIFOs and its process's control."""
    out_words = 1 if l.kind == "dense" else int(math.prod(l.out_shape[:-1])) if len(l.out_shape) > 1 else 1
    out_width = (l.out_shape[-1]) * w.ob
    if d.family != "vitis":
        # Vivado HLS: an nnet::array stream is one FIFO per channel (layerN_out_V_data_K_V in
        # its reports), each mapped on its own
        w.bram += l.out_shape[-1] * _fifo_bram(out_words, w.ob)
    else:  # Vitis HLS packs the whole word into one FIFO
        w.bram += _fifo_bram(out_words, out_width)
    w.lut += 300 + 1.0 * out_width
    # the FIFOs' own registers (pointers and output register: ~46 FF for each per-channel FIFO in
    # Vivado HLS reports, ~99 for Vitis HLS's one packed FIFO, whatever its width) and the process's control
    n_fifo = l.out_shape[-1] if d.family != "vitis" else 1
    per_fifo = 46.0 if d.family != "vitis" else 99.0
    if d.family != "vitis" and out_words <= 1:
        # a one-word stream (a dense layer's output): Vivado HLS's per-channel FIFOs of depth 1 keep
        # little more than a full flag — hls4ml's CI reports 326 FF in all for a Dense(64) + ReLU with
        # two such 64-channel streams (Vivado HLS 2020.1; 46 each would be 5,900)
        per_fifo = 2.0
    w.ff += per_fifo * n_fifo + 200.0


def _parallel_output(l: Any, w: _Work) -> None:
    """An io_parallel layer's output registers: a convolution's here; the others' once the schedule has placed
    the clock edges (_output_registers)."""
    w.lut += 20
    w.out_bits = int(math.prod(l.out_shape)) * w.ob
    if l.kind in ("conv1d", "conv2d"):
        # a convolution's pixel loop runs one pixel after another (depth ≈ pixels × cycles a pixel): its output
        # array is not registered once per cycle of that loop (which gave 3·10^8 FF for a 48×48 CNN): at most
        # 64 stages (cap chosen among 2, 8 and 64 on the cross-validation: FF median 64 %, 53 %, 46 %; 47 %
        # without a cap, whose p90 was worse and whose figures for large designs were absurd)
        w.ff += w.out_bits * min(max(w.depth, 0.0), 64.0) * 0.5


def _output_registers(figs: list[LayerFigures]) -> None:
    """io_parallel, after _parallel_latency: a layer other than a convolution registers its output (about half
    its bits: the tool keeps what later stages still need) at each clock edge the schedule places in it — none
    for a layer chained with its neighbours inside one period, one for the layer whose chain fills a period, its
    own cycles for a layer registered on its own. Charging every layer its own pipeline depth instead counted 11
    stages for Lrozzy's 4-cycle HGQ MLP (333 FF reported, 2,767 modelled). Held out: FF median 42 → 37 % by
    record, 43 → 41 % each source weighted equally (p90 221 → 223 %)."""
    for f in figs:
        if f.kind not in ("conv1d", "conv2d"):
            f.ff += f.out_bits * 0.5 * f.cuts


_KINDS = {"conv1d": _conv, "conv2d": _conv, "dense": _dense, "pool": _pool, "act": _activation,
          "softmax": _activation}


def _layer(l: Any, d: _Design, rf: int, words: int) -> _Work:
    """One layer's figures (not a Flatten's)."""
    spatial = l.in_shape[:-1] if len(l.in_shape) > 1 else ()
    # the multiplier's activation operand: the design's width, not the layer's input type (``data_bits``) — the
    # product and adder-tree constants were set with it, and using the input type made the held-out
    # LUT and DSP errors worse (bench_fpga_calibration, 2026-11-30: LUT median 30 → 36 %, DSP 12 → 22 %);
    # the DSP binding of constant products does use the input type (_binding)
    w = _Work(rf=rf, strat=(l.strategy or d.strategy).lower(), wb=l.weight_bits or d.bits, ab=d.bits,
              ob=l.result_bits or d.bits, chans=l.in_shape[-1] if len(l.in_shape) > 1 else l.in_shape[0],
              in_px=int(math.prod(spatial)) if spatial else 1, words=words)
    _KINDS.get(l.kind, _simple)(l, d, w)
    if w.m:
        _multipliers(l, d, w)
    if d.stream and l.kind in ("dense", "conv1d", "conv2d"):
        # the stream dense's ``data[n_in]`` collected word by word, the stream conv's kernel window (see
        # _multipliers: partitioned completely), with or without multipliers (a DA layer's graph)
        w.ff += w.n_in * w.ab
    if d.stream:
        _stream_output(l, d, w)
    else:
        _parallel_output(l, w)
    return w


def _figures(layers: list[Any], d: _Design, reuse: dict[str, int]) -> tuple[list[LayerFigures], float]:
    """Every layer's figures, and the io_parallel multipliers' pipeline registers."""
    figs: list[LayerFigures] = []
    words_next: int | None = None  # stream words of the next layer's input (None: its pixels)
    pipe_ff = 0.0
    prev_out: tuple[int, ...] = ()
    for l in layers:
        if d.stream and l.kind == "dense" and words_next is None and len(prev_out) > 1:
            # a Flatten that left no config of its own (hls4ml's Reshape): still one word per pixel
            words_next = int(math.prod(prev_out[:-1]))
        prev_out = tuple(l.out_shape)
        rf = max(1, int(reuse.get(l.name, l.reuse_factor or 1)))
        spatial = l.in_shape[:-1] if len(l.in_shape) > 1 else ()
        in_px = int(math.prod(spatial)) if spatial else 1
        words = words_next if words_next is not None else (in_px if d.stream else 1)
        words_next = None
        if l.kind == "flatten":
            if d.stream:
                words_next = in_px  # hls4ml's stream still carries one pixel per word after Flatten
                figs.append(LayerFigures(l.name, l.kind, 1, words, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0))
                continue
            w = _Work(rf=rf, strat="", wb=0, ab=d.bits, ob=d.bits, chans=0, in_px=in_px, words=words,
                      depth=0.0, ii=1.0)
            _parallel_output(l, w)
        else:
            w = _layer(l, d, rf, words)
        pipe_ff += w.pipe_ff
        f_ = LayerFigures(l.name, l.kind, rf, int(w.words), float(w.per_word), float(w.depth), float(w.ii),
                          int(w.m), w.dsp, w.lut, w.ff, w.bram, delay_ns=w.delay, serial=w.serial,
                          out_bits=w.out_bits)
        if w.busy_max is not None:
            f_.cpw_min, f_.cpw_max = w.busy_min / max(in_px, 1), w.busy_max / max(in_px, 1)
        figs.append(f_)
    return figs, pipe_ff


def _stream_bounds(figs: list[LayerFigures], arrival: tuple[float, float] | None, vitis: bool,
                   scale: float) -> tuple[float | None, float | None, float | None]:
    """C synthesis's static (latency min, latency max, II max) where a process's pace is branch-dependent."""
    if not any(f.cpw_max is not None for f in figs):
        return None, None, None
    lat_min = lat_max = ii_max = None
    saved = [(f.cycles_per_word, f.ii) for f in figs]
    for bound in ("cpw_min", "cpw_max"):
        for f in figs:
            v = getattr(f, bound)
            if v is not None:
                f.cycles_per_word, f.ii = v * scale, v * max(f.words_in, 1)
        lat_b, ii_b, _ = _schedule(figs, arrival, vitis)
        if bound == "cpw_min":
            lat_min = lat_b
        else:
            lat_max, ii_max = lat_b, ii_b
    for f, (c, i) in zip(figs, saved):
        f.cycles_per_word, f.ii = c, i
    return lat_min, lat_max, ii_max


def structural(layers: list[Any], *, io_type: str, strategy: str, reuse: dict[str, int], bits: int,
               clock_mhz: float, arrival: tuple[float, float] | None = None, scale: float = 1.0,
               family: str = "vitis", speed: float = 1.0) -> Structural:
    """Design figures of ``layers`` (HlsLayer) as hls4ml generates them; ``reuse``: layer name → RF used.

    ``arrival``: (first, last) input word times (io_stream); ``scale`` multiplies every
    process's pace and depth (the calibrated correction, applied inside the schedule so an
    arrival-bound design stays arrival-bound)."""
    stream = io_type == "io_stream"
    clock_mhz = clock_mhz * speed  # a slower part: the delays take a larger share of each period
    # adder levels a cycle: 4 at 5 ns on an UltraScale+ -2, in what is left of the period after the fixed
    # overhead and the clock uncertainty (_logic_budget), so a Zynq-7020 -1 at 5 ns fits one
    levels = max(1, round(4 * _logic_budget(1000.0 / clock_mhz, family) / (5.0 - OVERHEAD_NS)))
    d = _Design(stream, family, bits, levels, (strategy or "Latency").lower())
    figs, pipe_ff = _figures(layers, d, reuse)
    if not stream and layers:
        # hls4ml's io_parallel top level registers its whole input vector
        figs[0].ff += int(math.prod(layers[0].in_shape)) * bits
    lat_min = lat_max = ii_max = None
    if stream:
        if scale != 1.0:
            for f in figs:
                f.cycles_per_word *= scale
                f.depth *= scale
        lat_min, lat_max, ii_max = _stream_bounds(figs, arrival, family == "vitis", scale)
        latency, ii_total, bottleneck = _schedule(figs, arrival, family == "vitis")
    else:
        latency = _parallel_latency(figs, 1000.0 / clock_mhz, family)
        _output_registers(figs)
        if latency <= 1 and figs:
            # a combinational design has no pipeline registers, only its input's; a 1-cycle one registers one cut
            # of its chain, about its input's width (ML_FPGAonPixel's 40 MHz MLPs: 613–931 FF, 848 input bits)
            figs[0].ff -= pipe_ff
        ii_total = max((f.ii for f in figs), default=1.0)
        bottleneck = max(figs, key=lambda f: f.ii).name if figs else ""
    out = Structural(latency=latency, ii=ii_total, multipliers=sum(f.multipliers for f in figs),
                     dsp=sum(f.dsp for f in figs), lut=sum(f.lut for f in figs), ff=sum(f.ff for f in figs),
                     bram_18k=sum(f.bram_18k for f in figs), layers=figs, bottleneck=bottleneck)
    if stream and lat_max is not None:
        out.latency_min, out.latency_max, out.ii_max = lat_min, lat_max, ii_max
    return out


def _parallel_latency(figs: list[LayerFigures], period_ns: float, family: str = "vitis") -> float:
    """io_parallel: hls4ml inlines the layers into one pipeline, so the tool chains their logic.
    A dense layer whose multiply + adder-tree delay exceeds the usable period is registered on
    its own (_registered_dense_cycles); layers that fit in a period (dense layers at a slow
    clock, ReLU, batch norm, pooling, padding) chain with their neighbours and cost a register
    only each time the chained delay fills a period (floor); lookup tables, softmax,
    convolutions and RF > 1 / Resource layers add their own cycles. Sets each layer's ``cuts``."""
    # a cycle's fixed overhead — clock uncertainty (Vitis HLS's default: 27 % of the period, 1.35 ns at 5 ns),
    # register setup and clock-to-out, routing — is not a share of the period: at 5 ns on an UltraScale+ -2 about
    # 2.7 ns is left for logic, on a Zynq-7020 -1 at 5 ns (3 ns on this scale) under 1 ns, where the reports show
    # one adder level a cycle and multi-cycle multipliers (Thifjj, MinhNguy3n, tanvirana: 32-47 cycles for MLPs
    # that take 9-13 on an Alveo). OVERHEAD_NS was chosen among 2.0 / 2.3 / 2.5 ns on the leave-one-source-out
    # (latency p90 52 % for each, 59 % with the 75 % of the period it replaces; 2.3 the best source-weighted)
    budget = _logic_budget(period_ns, family)
    total, chain = 0.0, 0.0
    members: list[LayerFigures] = []  # the layers of the open chain

    def close(counted: bool) -> float:
        nonlocal chain, members
        cycles = math.floor(chain / budget) if counted else 0
        if not counted:
            for m in members:
                m.cuts = 0.0
        chain, members = 0.0, []
        return cycles

    for f in figs:
        f.cuts = 0.0
        if f.serial > 0:
            # Latency strategy at RF > 1: its c = serial + 1 cycles of multiplies overlap the adder tree (the tool
            # balances the tree so late products join near its root), so the layer takes the longer of the two
            # (Hector-Plata's PYNQ MLP at RF 64: 53 vs 52–54 reported; RF 1 chain plus c − 1 gave 72)
            own = _registered_dense_cycles(f.delay_ns, budget) if f.delay_ns >= budget else 0
            # Vitis HLS runs the layer's own II = RF pipeline, its output registered each of those cycles; Vivado HLS
            # pipelines the top at II = c, the c cycles accumulating into acc[n_out] (_multipliers), the output
            # registered as at RF 1 (pominiq's RF 8 / 16 MLPs at 25 ns report 2,994 / 3,892 FF;
            # c edges estimated 14,800 / 23,241)
            f.cuts = max(own, f.serial + 1) if family == "vitis" else max(own, 1)
            total += close(True) + max(own, f.serial + 1)
        elif f.kind == "dense" and f.delay_ns >= budget:
            f.cuts = _registered_dense_cycles(f.delay_ns, budget)
            total += close(True) + f.cuts
        elif f.delay_ns > 0 and (f.kind == "dense" or f.depth <= 1):
            f.cuts = math.floor((chain + f.delay_ns) / budget) - math.floor(chain / budget)
            chain += f.delay_ns
            members.append(f)
        else:
            # a table lookup or softmax takes its own cycles, more where the period holds less of its delay
            own = max(f.depth, math.ceil(f.delay_ns / budget)) if f.delay_ns > 0 and f.depth > 0 else f.depth
            f.cuts = own
            total += close(chain > MUL_NS) + own
    return total + close(chain > MUL_NS)


def _registered_dense_cycles(delay_ns: float, budget: float) -> int:
    """Cycles of a dense layer registered on its own: the multiply (over as many whole cycles as it needs), then
    the adder levels, as many a cycle as fit — an operation is not split across a register. Where a period holds
    less than two adder levels (a Zynq-7020 -1 at 5 ns) this is more than the delay over the period: tanvirana's
    jet MLP 36 + softmax vs 31 before (39–47 reported)."""
    if delay_ns < MUL_NS:
        return math.ceil(delay_ns / budget)
    levels = max(0, round((delay_ns - MUL_NS) / ADD_NS))
    mul = math.ceil(MUL_NS / budget)
    spare = mul * budget - MUL_NS  # what the multiply's last cycle leaves for the first adder levels
    first = min(levels, int(spare // ADD_NS))
    per = max(1, int(budget // ADD_NS))
    return mul + math.ceil((levels - first) / per)


def _logic_budget(period_ns: float, family: str) -> float:
    """The part of a clock period the io_parallel schedule fills with logic, on this module's delay scale.
    At a fast clock a fixed overhead dominates (OVERHEAD_NS: setup, clock-to-out, routing); at a slow one the
    tool's default clock uncertainty, a share of the period (Vitis HLS 27 %, Vivado HLS 12.5 %), does: at 25 ns
    Vitis HLS schedules into 18.25 of the 25 ns. The delay scale is fixed at 5 ns, where the 2.7 ns left after
    OVERHEAD_NS stand for the 3.65 ns Vitis HLS schedules into (× 0.74). Without the share, the 40 MHz MLPs of
    ML_FPGAonPixel chained three dense layers into 0 cycles where Vitis HLS reports 1 (two layers: 0)."""
    scale = (5.0 - OVERHEAD_NS) / (5.0 * (1.0 - CLOCK_UNCERTAINTY["vitis"]))
    share = (1.0 - CLOCK_UNCERTAINTY.get(family, CLOCK_UNCERTAINTY["vitis"])) * scale
    return max(0.3, min(period_ns - OVERHEAD_NS, share * period_ns))


def _schedule(figs: list[LayerFigures], arrival: tuple[float, float] | None,
              serial_processes: bool = False) -> tuple[float, float, str]:
    """First/last output of each DATAFLOW process; returns (latency, II between images, bottleneck).

    ``serial_processes`` (Vitis HLS): hls4ml's stream functions pipeline their loops but not
    the function itself, and Vitis HLS starts a process again only when its previous call
    has finished, so a process's interval is at least its own latency + 1 (the Vitis reports'
    dataflow interval = the slowest process's latency + 1; Vivado HLS overlaps calls)."""
    first, last = arrival if arrival is not None else (0.0, None)  # type: ignore[assignment]
    ii = 1.0
    bottleneck = ""
    for f in figs:
        if f.kind == "flatten":
            f.first_out, f.last_out = first, (last if last is not None else first)
            continue
        n = max(f.words_in, 1)
        busy = (n - 1) * f.cycles_per_word
        if last is None:
            last = first + busy
        f_ii = max(f.ii, busy + f.depth + 1.0) if serial_processes else f.ii
        if f_ii >= ii:
            ii, bottleneck = max(f_ii, 1.0), f.name
        done = max(last, first + busy)
        if f.kind == "dense":
            f.first_out = f.last_out = done + f.depth
        elif f.kind in ("conv1d", "conv2d", "pool"):
            # the first window completes after about (k-1) rows: a fraction of the input
            frac = min(1.0, 0.15 if n > 1 else 1.0)
            f.first_out = first + frac * (done - first) + f.depth
            f.last_out = done + f.depth
        else:
            f.first_out = first + f.depth
            f.last_out = done + f.depth
        first, last = f.first_out, f.last_out
    return float(last if last is not None else 0.0), float(ii), bottleneck


def features(s: Structural) -> dict[str, float]:
    """The structural figures the calibration maps to reported ones."""
    # the corpus holds what C synthesis reports (latency_max, ii_max): its static upper bound
    lat = s.latency_max if s.latency_max is not None else s.latency
    ii = s.ii_max if s.ii_max is not None else s.ii
    return {"latency": lat, "ii": ii, "lut": s.lut, "ff": s.ff, "dsp": s.dsp, "bram": s.bram_18k}
