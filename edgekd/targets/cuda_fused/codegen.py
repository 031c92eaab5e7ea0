"""Plan → the source of one Triton kernel computing the whole student, and its packed weights.

The kernel (one per plan and ``num_warps``) has the signature::

    fused_student(x_ptr, w_ptr, out_ptr, scratch_ptr, B)

``x`` is the contiguous fp32 batch (B×C×H×W), ``w`` every stage's folded weights and biases
packed into one flat fp32 buffer at offsets written into the source as literals, ``out`` the
B×out_numel result and ``scratch`` two ping-pong slices per program for the pooled
activations a following convolution reads through its window (see the package docstring
for why a slice, not registers). Every shape, stride, offset and block size is a literal:
nothing about the network is decided at run time except the batch size.

Program ``pid`` computes images ``pid, pid + nprog, …`` (a persistent grid: one program per
image when ``nprog == B``). Within an image each stage runs over blocks of output positions
held in registers as ``[channels, positions, pool window]`` tensors; the pool reduces the
window axis in registers, so a pre-pool map is never stored.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from edgekd.targets.cuda_fused.plan import ConvStage, DenseStage, FusedPlan, Pool, PoolStage

KERNEL_NAME = "fused_student"
ACC_REGS_PER_THREAD = 32  # fp32 accumulator registers per thread a stage's block may use
GENERATOR_VERSION = 1


def _p2(n: int) -> int:
    """Smallest power of two ≥ n (≥ 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _round32(n: int) -> int:
    return -(-int(n) // 32) * 32


def _p2_floor(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


@dataclass
class GeneratedKernel:
    """The generated source, its packed weights and what the launcher needs to know."""

    source: str
    weights: np.ndarray  # flat fp32
    in_numel: int
    out_shape: tuple[int, ...]
    scratch_per_program: int  # fp32 elements
    num_warps: int
    images_per_program: int
    stage_blocks: list[dict]  # per stage: block shapes chosen (for the record)
    split: int = 1  # programs per image (batch-1 latency variant)
    partials: int = 0  # fp32 partial sums per program when split (the first dense layer's outputs)

    @property
    def out_numel(self) -> int:
        return math.prod(self.out_shape)

    @property
    def key(self) -> str:
        """Content hash of the source: the kernel's cache key and file name."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


class _Emitter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.indent = 0

    def __call__(self, line: str = "") -> None:
        self.lines.append(("    " * self.indent + line) if line else "")

    def block(self):
        em = self

        class _B:
            def __enter__(self):
                em.indent += 1

            def __exit__(self, *a):
                em.indent -= 1

        return _B()


def _loop(n_iter: int, static_limit: int = 2) -> str:
    """``tl.static_range`` for short loops (unrolled: more independent work in flight at batch 1),
    a plain ``range`` (an ``scf.for``) for long ones, to bound code size."""
    return "tl.static_range" if n_iter <= static_limit else "range"


def split_point(plan: FusedPlan) -> tuple[int, int] | None:
    """(last conv stage, first dense stage after it) when one image can be split over programs by
    the last conv's output channels: only per-channel pools may sit between them. Else None."""
    convs = [i for i, st in enumerate(plan.stages) if isinstance(st, ConvStage)]
    if not convs:
        return None
    last = convs[-1]
    for j in range(last + 1, len(plan.stages)):
        st = plan.stages[j]
        if isinstance(st, DenseStage):
            return last, j
        if not isinstance(st, PoolStage):
            return None
    return None


def generate(plan: FusedPlan, num_warps: int = 4, images_per_program: int = 1,
             block_elems: int | None = None, split: int = 1) -> GeneratedKernel:
    """The Triton source and packed weights for ``plan``.

    ``num_warps``: warps per program. ``images_per_program`` (a power of two, G): images one
    program computes together (each weight load then serves G images; G = 1 is the batch-1
    latency kernel). ``block_elems``: the fp32 elements one stage's register block may hold
    (default ``ACC_REGS_PER_THREAD`` × threads); larger blocks mean fewer, bigger operations,
    which is what Triton's interpreter wants.

    ``split`` (S > 1, with one image per program): S programs share one image to cut batch-1
    latency. Each computes the stages before the last conv in full (recomputation: they are
    the cheap ones), its 1/S of the last conv's output channels and the pools after it, and
    its features' partial sums of the first dense layer; the last program to arrive (an
    atomic counter per image, reset by that program, so repeated launches and graph replays
    need no memset) adds the S partials in a fixed order and runs the rest of the head.
    """
    if num_warps not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"num_warps must be a power of two from 1 to 32, got {num_warps}")
    G = int(images_per_program)
    if G < 1 or G & (G - 1) or G > 256:
        raise ValueError(f"images_per_program must be a power of two from 1 to 256, got {images_per_program}")
    budget = int(block_elems) if block_elems else ACC_REGS_PER_THREAD * 32 * num_warps
    S = int(split)
    sp = None
    if S < 1:
        raise ValueError(f"split must be >= 1, got {split}")
    if S > 1:
        sp = split_point(plan)
        if sp is None:
            raise ValueError("split needs a conv stage followed (after per-channel pools only) by a dense stage")
        if G != 1:
            raise ValueError("split > 1 needs images_per_program == 1")
        S = min(S, plan.stages[sp[0]].cout)
    chunks: list[np.ndarray] = []
    offset = 0

    def pack(a: np.ndarray) -> int:
        nonlocal offset
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
        pad = (-a.size) % 4  # keep every block 16-byte aligned
        chunks.append(np.concatenate([a, np.zeros(pad, np.float32)]))
        off = offset
        offset += a.size + pad
        return off

    n = len(plan.stages)
    inter = [math.prod(s.out_shape) for s in plan.stages[:-1]]
    # Ping-pong slices per image: stage i writes slice i % 2. Each sized for the largest
    # activation it ever holds, rounded to 128 bytes (the study's CNN: 8,464 + 1,600 floats).
    size_a = _round32(max(inter[0::2], default=0))
    size_b = _round32(max(inter[1::2], default=0))
    slot = size_a + size_b
    in_numel = math.prod(plan.input_shape)
    e = _Emitter()
    e("import triton")
    e("import triton.language as tl")
    e("")
    # Reductions are tl.reduce with Triton's own combine functions rather than tl.max/tl.sum (and
    # tl.full rather than tl.zeros): those helpers are jitted at triton's import, so they fail in
    # the interpreter unless TRITON_INTERPRET=1 was set before; the interpreter also fast-paths
    # exactly these combine functions (numpy) and loops in Python over any other.
    e("_add = tl.standard._sum_combine")
    e("_max = tl.standard._elementwise_max")
    e("")
    e("")
    # B is a plain run-time value: no recompilation per batch size (Triton would otherwise
    # specialize on B == 1 and on B's divisibility by 16).
    e('@triton.jit(do_not_specialize=["B"])')
    e(f"def {KERNEL_NAME}(x_ptr, w_ptr, out_ptr, scratch_ptr, part_ptr, cnt_ptr, B):")
    blocks: list[dict] = []
    with e.block():
        e(f'"""Generated by edgekd.targets.cuda_fused (v{GENERATOR_VERSION}); do not edit.')
        e(f"{G} image(s) per program, {num_warps} warps, blocks of <= {budget} fp32"
          + (f", each image split over {S} programs" if S > 1 else "") + ". Stages:")
        for d in plan.describe():
            e(f"  {d}")
        e('"""')
        e("pid = tl.program_id(0)")
        e("nprog = tl.num_programs(0)")
        e(f"g = tl.arange(0, {G})")
        if slot:
            e(f"s_base = scratch_ptr + pid.to(tl.int64) * {slot * G} + g * {slot}")
        if S > 1:
            e(f"sidx = pid % {S}  # which share of the image this program computes")
            e(f"for grp in range(pid // {S}, B, nprog // {S}):")
        else:
            e(f"for grp in range(pid, (B + {G - 1}) // {G}, nprog):" if G > 1 else "for grp in range(pid, B, nprog):")
        with e.block():
            e(f"img = grp * {G} + g")
            e("im = img < B")
            e(f"x_base = x_ptr + img * {in_numel}")
            e(f"o_base = out_ptr + img * {plan.out_numel}")
            for i, st in enumerate(plan.stages):
                src = "x_base" if i == 0 else f"(s_base + {0 if (i - 1) % 2 == 0 else size_a})"
                dst = "o_base" if i == n - 1 else f"(s_base + {0 if i % 2 == 0 else size_a})"
                share = None
                if sp is not None and sp[0] <= i < sp[1]:
                    share = (S, -(-plan.stages[sp[0]].cout // S))  # (programs, channels each)
                e(f"# ---- stage {i}: {plan.describe()[i]}  [{st.source}]"
                  + (f" (channels of share sidx)" if share else "") + (" (partial sums, then the last program)"
                                                                       if sp is not None and i == sp[1] else ""))
                if isinstance(st, ConvStage):
                    blocks.append(_emit_conv(e, st, i, src, dst, budget, G, pack, share))
                elif isinstance(st, PoolStage):
                    blocks.append(_emit_pool(e, st, i, src, dst, budget, G, share))
                elif sp is not None and i == sp[1]:
                    prev = plan.stages[i - 1].out_shape
                    per_chan = math.prod(prev[1:])
                    blocks.append(_emit_dense_split(e, st, i, src, dst, budget, pack, S,
                                                    -(-plan.stages[sp[0]].cout // S) * per_chan))
                    e.indent += 1  # the rest of the head runs inside "if last program"
                else:
                    blocks.append(_emit_dense(e, st, i, src, dst, budget, G, pack))
                if i < n - 1:
                    # the next stage reads what other threads of this program just wrote
                    e("tl.debug_barrier()")
            if sp is not None:
                e.indent -= 1
            if n >= 2:
                e("tl.debug_barrier()  # the next group overwrites the slice this one read last")
    weights = np.concatenate(chunks) if chunks else np.zeros(4, np.float32)
    return GeneratedKernel("\n".join(e.lines) + "\n", weights, in_numel, tuple(plan.out_shape),
                           slot * G, num_warps, G, blocks, S,
                           plan.stages[sp[1]].fout if sp is not None else 0)


def _pool_geometry(pool: Pool | None) -> tuple[int, int, int, int, int]:
    """(window rows, window cols, stride rows, stride cols, window size) — 1×1/1 without a pool."""
    if pool is None:
        return 1, 1, 1, 1, 1
    return pool.kh, pool.kw, pool.sh, pool.sw, pool.kh * pool.kw


def _emit_positions(e: _Emitter, v: str, np_: int, bp: int, pw_out: int, pkw: int, psh: int, psw: int,
                    win: int, winp: int) -> None:
    """Output positions p (a block of bp) and, per pool-window slot, the pre-pool row/col."""
    e(f"{v}p = p0 + tl.arange(0, {bp})")
    e(f"{v}pm = {v}p < {np_}")
    e(f"{v}win = tl.arange(0, {winp})")
    e(f"{v}oh = ({v}p // {pw_out})[:, None] * {psh} + ({v}win // {pkw})[None, :]")
    e(f"{v}ow = ({v}p % {pw_out})[:, None] * {psw} + ({v}win % {pkw})[None, :]")
    e(f"{v}vm = {v}pm[:, None] & ({v}win < {win})[None, :]")


def _emit_reduce(e: _Emitter, v: str, acc: str, kind: str | None, win: int, winp: int) -> None:
    """Reduce the pool-window axis (the last, 3) of ``acc`` into ``{v}r``."""
    wmask = f"({v}win < {win})[None, None, None, :]"
    if kind is None:
        e(f"{v}r = tl.reduce({acc}, 3, _add)")  # window of one
    elif kind == "max":
        inner = acc if win == winp else f"tl.where({wmask}, {acc}, float('-inf'))"
        e(f"{v}r = tl.reduce({inner}, 3, _max)")
    else:
        inner = acc if win == winp else f"tl.where({wmask}, {acc}, 0.0)"
        e(f"{v}r = tl.reduce({inner}, 3, _add) / {float(win)!r}")


def _blocks(budget: int, G: int, c: int, winp: int, np_: int) -> tuple[int, int]:
    """(channel block, position block) with G × channels × positions × window ≤ budget."""
    cp = _p2(c)
    bc = cp if G * cp * winp * 16 <= budget else max(1, _p2_floor(budget // (G * winp * 16)))
    bp = max(1, min(_p2(np_), _p2_floor(budget // (G * bc * winp))))
    return bc, bp


def _emit_channels(e: _Emitter, name: str, mask: str, blk: int, total: int, share) -> None:
    """Channel indices of block ``cb``: all channels, or those of share ``sidx``."""
    if share is None:
        e(f"{name} = cb * {blk} + tl.arange(0, {blk})")
        e(f"{mask} = {name} < {total}")
    else:
        _, per = share
        e(f"{name}_l = cb * {blk} + tl.arange(0, {blk})")
        e(f"{name} = sidx * {per} + {name}_l")
        e(f"{mask} = ({name}_l < {per}) & ({name} < {total})")


def _emit_conv(e: _Emitter, st: ConvStage, i: int, src: str, dst: str, budget: int, G: int, pack,
               share=None) -> dict:
    v = f"s{i}_"
    w_off = pack(st.weight)
    b_off = pack(st.bias)
    pkh, pkw, psh, psw, win = _pool_geometry(st.pool)
    winp = _p2(win)
    _, ph_out, pw_out = st.out_shape
    np_ = ph_out * pw_out
    cout = share[1] if share else st.cout  # channels this program computes
    bco, bp = _blocks(budget, G, cout, winp, np_)
    ncb, nch = -(-cout // bco), -(-np_ // bp)
    taps = st.kh * st.kw
    k_all = st.cin * taps
    hw = st.h * st.w
    need_h = st.ph > 0 or (st.oh - 1) * st.sh + st.dh * (st.kh - 1) - st.ph >= st.h
    need_w = st.pw > 0 or (st.ow - 1) * st.sw + st.dw * (st.kw - 1) - st.pw >= st.w
    # Taps (kh, kw) are always unrolled; channels only when few: each tap already gives every
    # thread G·bco·bp·win/threads independent FMAs, and a fully unrolled 16-channel conv took
    # minutes to compile for sm_90 (measured: 338 s on a loaded 2-core machine).
    ci_static = k_all * ncb * nch <= 64
    e(f"for cb in {_loop(ncb)}({ncb}):")
    with e.block():
        _emit_channels(e, f"{v}co", f"{v}com", bco, st.cout, share)
        e(f"{v}bias = tl.load(w_ptr + {b_off} + {v}co, mask={v}com, other=0.0)")
        e(f"{v}wrow = w_ptr + {w_off} + {v}co * {k_all}")
        e(f"for p0 in {_loop(nch)}(0, {nch * bp}, {bp}):")
        with e.block():
            _emit_positions(e, v, np_, bp, pw_out, pkw, psh, psw, win, winp)
            e(f"{v}vm = im[:, None, None] & {v}vm[None, :, :]")
            e(f"{v}acc = tl.full([{G}, {bco}, {bp}, {winp}], 0.0, tl.float32)")
            e(f"for ci in {'tl.static_range' if ci_static else 'range'}({st.cin}):")
            with e.block():
                e(f"{v}xc = {src}[:, None, None] + ci * {hw}")
                e(f"{v}wc = {v}wrow + ci * {taps}")
                for kh in range(st.kh):
                    dy = kh * st.dh - st.ph
                    e(f"{v}ih = {v}oh * {st.sh} + {dy}" if st.sh != 1 else f"{v}ih = {v}oh + {dy}")
                    mask_h = f" & (({v}ih >= 0) & ({v}ih < {st.h}))[None, :, :]" if need_h else ""
                    for kw in range(st.kw):
                        dx = kw * st.dw - st.pw
                        iw = f"({v}ow * {st.sw} + {dx})" if st.sw != 1 else f"({v}ow + {dx})"
                        mask_w = f" & (({iw} >= 0) & ({iw} < {st.w}))[None, :, :]" if need_w else ""
                        e(f"{v}xv = tl.load({v}xc + ({v}ih * {st.w} + {iw})[None, :, :], "
                          f"mask={v}vm{mask_h}{mask_w}, other=0.0)")
                        e(f"{v}wv = tl.load({v}wc + {kh * st.kw + kw}, mask={v}com, other=0.0)")
                        e(f"{v}acc += {v}wv[None, :, None, None] * {v}xv[:, None, :, :]")
            e(f"{v}acc = {v}acc + {v}bias[None, :, None, None]")
            if st.relu_before_pool:
                e(f"{v}acc = tl.maximum({v}acc, 0.0)")
            _emit_reduce(e, v, f"{v}acc", st.pool.kind if st.pool else None, win, winp)
            if st.relu_after_pool:
                e(f"{v}r = tl.maximum({v}r, 0.0)")
            e(f"tl.store({dst}[:, None, None] + ({v}co[:, None] * {np_} + {v}p[None, :])[None, :, :], {v}r, "
              f"mask=im[:, None, None] & ({v}com[:, None] & {v}pm[None, :])[None, :, :])")
    return {"stage": i, "kind": "conv", "block": [G, bco, bp, winp], "co_blocks": ncb, "position_blocks": nch,
            "channels_unrolled": ci_static, "weight_offset": w_off, "bias_offset": b_off}


def _emit_pool(e: _Emitter, st: PoolStage, i: int, src: str, dst: str, budget: int, G: int, share=None) -> dict:
    v = f"s{i}_"
    pkh, pkw, psh, psw, win = _pool_geometry(st.pool)
    winp = _p2(win)
    _, ph_out, pw_out = st.out_shape
    np_ = ph_out * pw_out
    c = share[1] if share else st.c
    bc, bp = _blocks(budget, G, c, winp, np_)
    ncb, nch = -(-c // bc), -(-np_ // bp)
    fill = "float('-inf')" if st.pool.kind == "max" else "0.0"
    e(f"for cb in {_loop(ncb)}({ncb}):")
    with e.block():
        _emit_channels(e, f"{v}c", f"{v}cm", bc, st.c, share)
        e(f"for p0 in {_loop(nch)}(0, {nch * bp}, {bp}):")
        with e.block():
            _emit_positions(e, v, np_, bp, pw_out, pkw, psh, psw, win, winp)
            e(f"{v}xv = tl.load({src}[:, None, None, None] + ({v}c[:, None, None] * {st.h * st.w} "
              f"+ ({v}oh * {st.w} + {v}ow)[None, :, :])[None, :, :, :], "
              f"mask=im[:, None, None, None] & ({v}cm[:, None, None] & {v}vm[None, :, :])[None, :, :, :], "
              f"other={fill})")
            if st.pool.kind == "max":
                e(f"{v}r = tl.reduce({v}xv, 3, _max)")
            else:
                e(f"{v}r = tl.reduce({v}xv, 3, _add) / {float(win)!r}")
            if st.relu_after:
                e(f"{v}r = tl.maximum({v}r, 0.0)")
            e(f"tl.store({dst}[:, None, None] + ({v}c[:, None] * {np_} + {v}p[None, :])[None, :, :], {v}r, "
              f"mask=im[:, None, None] & ({v}cm[:, None] & {v}pm[None, :])[None, :, :])")
    return {"stage": i, "kind": "pool", "block": [G, bc, bp, winp], "c_blocks": ncb, "position_blocks": nch}


def _emit_dense(e: _Emitter, st: DenseStage, i: int, src: str, dst: str, budget: int, G: int, pack) -> dict:
    v = f"s{i}_"
    w_off = pack(st.weight)
    b_off = pack(st.bias)
    bn = min(_p2(st.fout), 64)
    bk = max(1, min(_p2(st.fin), _p2_floor(budget // (G * bn))))
    nnb, nkb = -(-st.fout // bn), -(-st.fin // bk)
    e(f"for nb in {_loop(nnb)}({nnb}):")
    with e.block():
        e(f"{v}n = nb * {bn} + tl.arange(0, {bn})")
        e(f"{v}nm = {v}n < {st.fout}")
        e(f"{v}acc = tl.full([{G}, {bn}], 0.0, tl.float32)")
        e(f"for k0 in {_loop(nkb)}(0, {nkb * bk}, {bk}):")
        with e.block():
            e(f"{v}k = k0 + tl.arange(0, {bk})")
            e(f"{v}km = {v}k < {st.fin}")
            e(f"{v}xv = tl.load({src}[:, None] + {v}k[None, :], mask=im[:, None] & {v}km[None, :], other=0.0)")
            e(f"{v}wv = tl.load(w_ptr + {w_off} + {v}n[:, None] * {st.fin} + {v}k[None, :], "
              f"mask={v}nm[:, None] & {v}km[None, :], other=0.0)")
            e(f"{v}acc += tl.reduce({v}wv[None, :, :] * {v}xv[:, None, :], 2, _add)")
        e(f"{v}acc += tl.load(w_ptr + {b_off} + {v}n, mask={v}nm, other=0.0)[None, :]")
        if st.relu:
            e(f"{v}acc = tl.maximum({v}acc, 0.0)")
        e(f"tl.store({dst}[:, None] + {v}n[None, :], {v}acc, mask=im[:, None] & {v}nm[None, :])")
    return {"stage": i, "kind": "dense", "block": [G, bn, bk], "n_blocks": nnb, "k_blocks": nkb,
            "weight_offset": w_off, "bias_offset": b_off}


def _emit_dense_split(e: _Emitter, st: DenseStage, i: int, src: str, dst: str, budget: int, pack, S: int,
                      k_share: int) -> dict:
    """The first dense layer of a split image: this program's partial sums over its features
    (k_share of them), then — in the last program to arrive — the fixed-order sum, bias, ReLU.
    Leaves the emitter inside ``if last:`` (the caller emits the rest of the head there)."""
    v = f"s{i}_"
    w_off = pack(st.weight)
    b_off = pack(st.bias)
    bn = min(_p2(st.fout), 64)
    bk = max(1, min(_p2(k_share), _p2_floor(budget // bn)))
    nnb, nkb = -(-st.fout // bn), -(-k_share // bk)
    e(f"{v}pp = part_ptr + grp * {S * st.fout}")
    e(f"for nb in {_loop(nnb)}({nnb}):")
    with e.block():
        e(f"{v}n = nb * {bn} + tl.arange(0, {bn})")
        e(f"{v}nm = {v}n < {st.fout}")
        e(f"{v}acc = tl.full([{bn}], 0.0, tl.float32)")
        e(f"for k0 in {_loop(nkb)}(0, {nkb * bk}, {bk}):")
        with e.block():
            e(f"{v}kl = k0 + tl.arange(0, {bk})")
            e(f"{v}k = sidx * {k_share} + {v}kl")
            e(f"{v}km = ({v}kl < {k_share}) & ({v}k < {st.fin})")
            e(f"{v}xv = tl.load({src} + {v}k[None, :], mask={v}km[None, :], other=0.0)")
            e(f"{v}wv = tl.load(w_ptr + {w_off} + {v}n[:, None] * {st.fin} + {v}k[None, :], "
              f"mask={v}nm[:, None] & {v}km[None, :], other=0.0)")
            e(f"{v}acc += tl.reduce({v}wv * {v}xv, 1, _add)")
        e(f"tl.store({v}pp + sidx * {st.fout} + {v}n, {v}acc, mask={v}nm)")
    e("tl.debug_barrier()  # every thread's partial sums are written before the arrival is counted")
    e(f"{v}arrived = tl.atomic_add(cnt_ptr + grp, 1, sem='acq_rel', scope='gpu')")
    e(f"if {v}arrived == {S - 1}:  # the last of the image's {S} programs finishes the head")
    with e.block():
        e(f"tl.atomic_xchg(cnt_ptr + grp, 0, sem='relaxed', scope='gpu')  # ready for the next launch")
        e(f"for nb in {_loop(nnb)}({nnb}):")
        with e.block():
            e(f"{v}n = nb * {bn} + tl.arange(0, {bn})")
            e(f"{v}nm = {v}n < {st.fout}")
            e(f"{v}acc = tl.full([{bn}], 0.0, tl.float32)")
            e(f"for sj in tl.static_range({S}):  # fixed order: the same sum whoever arrives last")
            with e.block():
                # .cg: read from L2, where the other programs' partials are (L1 is per SM)
                e(f"{v}acc += tl.load({v}pp + sj * {st.fout} + {v}n, mask={v}nm, other=0.0, cache_modifier='.cg')")
            e(f"{v}acc += tl.load(w_ptr + {b_off} + {v}n, mask={v}nm, other=0.0)")
            if st.relu:
                e(f"{v}acc = tl.maximum({v}acc, 0.0)")
            e(f"tl.store({dst}[:, None] + {v}n[None, :], {v}acc[None, :], "
              f"mask=im[:, None] & {v}nm[None, :])")
    return {"stage": i, "kind": "dense-split", "block": [bn, bk], "n_blocks": nnb, "k_blocks": nkb, "split": S,
            "features_per_program": k_share, "weight_offset": w_off, "bias_offset": b_off}


__all__ = ["ACC_REGS_PER_THREAD", "GENERATOR_VERSION", "GeneratedKernel", "KERNEL_NAME", "generate", "split_point"]
