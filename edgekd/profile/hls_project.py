"""Per-layer facts of a generated hls4ml project, read from its ``firmware/parameters.h``.

hls4ml writes every layer's configuration as a C++ struct (``struct config2 :
nnet::conv2d_config { static const unsigned in_height = 34; ... }``) plus the layer
precisions as typedefs in ``firmware/defines.h``. Those structs are what the HLS tool
compiles, so they are the facts the estimator should start from (the reuse factor hls4ml
actually chose, the strategy, the padding it inserted, the conv implementation, the
weight widths) instead of re-deriving them from the PyTorch model.

:func:`read_project` returns :class:`edgekd.profile.fpga_estimate.HlsLayer` objects in
layer order (hls4ml numbers its configs in graph order), the project's io_type, default
strategy and precision. It understands the formats written by hls4ml 0.5 to 1.3.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekd.errors import EdgekdError

_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+(.+?)\s*$", re.M)
_TYPEDEF = re.compile(r"typedef\s+(ap_u?fixed<[^;]*?>|ap_u?int<\s*\d+\s*>|\w+)\s+(\w+)\s*;")
# hls4ml's hard activations (hard_sigmoid, hard_tanh) write a config struct with no base
_STRUCT = re.compile(r"(?:^//\s*([^\n]*)\n)?struct\s+(\w+)\s*(?::\s*nnet::(\w+)\s*)?\{", re.M)
# the top function's layer calls: nnet::dense<layer7_t, result_t, config5>(...) — input type, output type, config
_CALL = re.compile(r"nnet::\w+<\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*>\s*\(")
_ANY_TYPEDEF = re.compile(r"typedef\s+([^;]+?)\s+(\w+)\s*;")
_CONST = re.compile(r"static\s+const\s+(?:unsigned|int|bool|float|double|nnet::\w+(?:::\w+)?)\s+(\w+)\s*=\s*([^;]+);")


@dataclass
class HlsProject:
    """What :func:`read_project` found."""

    path: str
    io_type: str | None
    strategy: str | None  # the most common strategy of the compute layers
    layers: list[Any]  # HlsLayer
    precision_bits: int | None  # the widest weight width of the compute layers
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _eval(expr: str, env: dict[str, Any]) -> Any:
    e = expr.strip()
    e = re.sub(r"nnet::(?:\w+::)?(\w+)", r"'\1'", e)
    e = e.replace("DIV_ROUNDUP", "_divup")
    for k in sorted(env, key=len, reverse=True):
        if isinstance(env[k], (int, float)) and re.search(rf"\b{k}\b", e):
            e = re.sub(rf"\b{k}\b", str(env[k]), e)
    if e in ("true", "false"):
        return e == "true"
    try:
        return eval(e, {"__builtins__": {}}, {"_divup": lambda a, b: -(-a // b)})  # noqa: S307 - numeric only
    except Exception:  # noqa: BLE001 - unknown symbol: keep the text
        return e


def _resolve(type_text: str, typedefs: dict[str, str]) -> str:
    """A type name followed through ``typedefs`` (at most 8 steps) to what it names."""
    t, seen = type_text, 0
    while t in typedefs and seen < 8:
        t, seen = typedefs[t], seen + 1
    return t


def _bits(type_text: str, typedefs: dict[str, str]) -> int | None:
    t = _resolve(type_text, typedefs)
    m = re.search(r"ap_u?(?:fixed|int)<\s*(\d+)", t)  # search: also inside nnet::array<ap_fixed<…>, N>
    return int(m.group(1)) if m else None


def call_widths(cpp: str, defines: str) -> dict[str, tuple[int | None, int | None]]:
    """Config struct name → (input width, output width) of the layer calls in the top function
    (``firmware/myproject.cpp``), the widths resolved through ``defines.h``'s typedefs (an io_stream
    ``nnet::array<ap_fixed<16,6>, 4*1>`` counts its element type)."""
    types = {m.group(2): m.group(1) for m in _ANY_TYPEDEF.finditer(defines)}
    return {m.group(3): (_bits(m.group(1), types), _bits(m.group(2), types)) for m in _CALL.finditer(cpp)}


_WEIGHT_ARRAY = re.compile(r"\n\s*(\w+)\s+(w\d+)\s*\[\s*\d+\s*\]\s*=\s*\{([^}]*)\}")
_CALL_ARGS = re.compile(r"nnet::\w+<[^;]*?,\s*(\w+)\s*>\s*\(([^;]*)\)\s*;")


def csd_digits(q: int) -> int:
    """Nonzero digits of ``q`` in canonical signed-digit form (a constant multiply's shift-adds + 1)."""
    n, digits = abs(int(q)), 0
    while n:
        if n & 1:
            n -= 2 - (n & 3)  # a run of ones becomes +2^k … −1
            digits += 1
        n >>= 1
    return digits


def weight_csd(values: list[float], type_text: str) -> tuple[int, int, int, int] | None:
    """Nonzero weights counted by CSD digits [1, 2, 3, ≥ 4] once quantized to ``type_text`` (ap_fixed<W,I[,Q…]>:
    truncation by default, rounding under AP_RND*), or None for a type that is not fixed point."""
    m = re.search(r"ap_(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(\w+))?", type_text)
    if not m:
        return None
    width, frac = int(m.group(2)), int(m.group(2)) - int(m.group(3))
    lo, hi = (0, 2 ** width - 1) if m.group(1) else (-(2 ** (width - 1)), 2 ** (width - 1) - 1)
    rounding = (m.group(4) or "").startswith("AP_RND")
    counts = [0, 0, 0, 0]
    for v in values:
        x = v * 2.0 ** frac
        q = min(hi, max(lo, math.floor(x + 0.5) if rounding else math.floor(x)))
        if q:
            counts[min(csd_digits(q), 4) - 1] += 1
    return counts[0], counts[1], counts[2], counts[3]


def weight_stats(cpp: str, defines: str, params: str, read: Callable[[str], str]) -> dict[str, tuple[int, ...]]:
    """Config struct name → ``weight_csd`` of the weight array its call in the top function passes (``w2``…),
    the array read by ``read(name)`` (the text of ``firmware/weights/<name>.h``; "" when absent)."""
    typedefs = {t.group(2): t.group(1) for t in _ANY_TYPEDEF.finditer(defines + "\n" + params)}
    out: dict[str, tuple[int, ...]] = {}
    for call in _CALL_ARGS.finditer(cpp):
        arrays = [a.strip() for a in call.group(2).split(",") if re.fullmatch(r"w\d+", a.strip())]
        if not arrays:
            continue
        m = _WEIGHT_ARRAY.search(read(arrays[0]) or "")
        if not m:
            continue
        t = _resolve(m.group(1), typedefs)
        try:
            values = [float(v) for v in m.group(3).replace("\n", " ").split(",") if v.strip()]
        except ValueError:
            continue
        stats = weight_csd(values, t)
        if stats is not None:
            out[call.group(1)] = stats
    return out


def _structs(text: str, env: dict[str, Any], typedefs: dict[str, str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for m in _STRUCT.finditer(text):
        comment, name, base = (m.group(1) or "").strip(), m.group(2), m.group(3)
        if base is None:
            if not re.match(r"hard_\w+_config\d+$", name):
                continue
            base = "activ_config"  # hard_activ_config_template: n_in, slope, shift, io_type
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[m.end():i - 1]
        vals: dict[str, Any] = {}
        local = dict(env)
        for c in _CONST.finditer(body):
            v = _eval(c.group(2), local)
            vals[c.group(1)] = v
            if isinstance(v, (int, float)):
                local[c.group(1)] = v
        for t in _TYPEDEF.finditer(body):
            vals[f"{t.group(2)}_bits"] = _bits(t.group(1), typedefs)
            vals[t.group(2)] = t.group(1)
        out.append((comment, name, base, vals))
    return out


def _common(name: str, base: str, v: dict[str, Any], mult: dict[str, Any], lname: str) -> dict[str, Any]:
    """What every weighted layer's config says: reuse, strategy, widths, zeros, implementation."""
    strategy = str(v.get("strategy", mult.get("strategy", ""))).lower() or None
    rf = v.get("reuse_factor")
    common = dict(reuse_factor=int(rf) if isinstance(rf, (int, float)) else None, strategy=strategy,
                  weight_bits=v.get("weight_t_bits") or mult.get("weight_t_bits"),
                  accum_bits=v.get("accum_t_bits") or mult.get("accum_t_bits"),
                  n_zeros=int(v.get("n_zeros", 0)) if isinstance(v.get("n_zeros", 0), (int, float)) else 0,
                  implementation=str(v.get("implementation", "")) or None)
    parts = v.get("n_partitions")
    if base in ("conv2d_config", "conv1d_config") and isinstance(parts, (int, float)):
        out_px = int(v.get("out_height", 1)) * int(v.get("out_width", 1))
        if 0 < parts < out_px:  # a ParallelizationFactor > 1 (the default writes n_partitions = out_px)
            common["n_partitions"] = int(parts)
    if base == "conv2d_config" and "depthwise" in lname.lower():
        common["implementation"] = "depthwise"
    return common


def _conv2d(L: Any, lname: str, v: dict[str, Any], common: dict[str, Any]) -> Any:
    pads = tuple(int(v.get(k, 0)) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
    # hls4ml's own padding: the conv's in_height already includes it when a ZeroPadding layer precedes
    inh, inw = int(v["in_height"]), int(v["in_width"])
    return L(lname, "conv2d", (inh, inw, int(v["n_chan"])), (int(v["out_height"]), int(v["out_width"]), int(v["n_filt"])),
             kernel=int(v["filt_height"]), stride=int(v.get("stride_height", 1)), padding=max(pads),
             kernel_w=int(v.get("filt_width", v["filt_height"])),
             stride_w=int(v.get("stride_width", v.get("stride_height", 1))), **common)


def _conv1d(L: Any, lname: str, v: dict[str, Any], common: dict[str, Any]) -> Any:
    return L(lname, "conv1d", (int(v["in_width"]), int(v["n_chan"])), (int(v["out_width"]), int(v["n_filt"])),
             kernel=int(v["filt_width"]), stride=int(v.get("stride_width", 1)),
             padding=max(int(v.get("pad_left", 0)), int(v.get("pad_right", 0))), **common)


def _pool2d(L: Any, lname: str, v: dict[str, Any]) -> Any:
    h, w, c = int(v["in_height"]), int(v["in_width"]), int(v.get("n_filt", v.get("n_chan", 1)))
    oh, ow = int(v.get("out_height", h // int(v["pool_height"]))), int(v.get("out_width", w // int(v["pool_width"])))
    return L(lname, "pool", (h, w, c), (oh, ow, c), kernel=int(v["pool_height"]),
             stride=int(v.get("stride_height", v["pool_height"])), pool_op=str(v.get("pool_op", "")) or None)


def _pool1d(L: Any, lname: str, v: dict[str, Any]) -> Any:
    n, c = int(v.get("n_in", v.get("in_width", 1))), int(v.get("n_filt", v.get("n_chan", 1)))
    return L(lname, "pool", (n, c), (int(v.get("n_out", v.get("out_width", 1))), c),
             kernel=int(v.get("pool_width", 1)), stride=int(v.get("stride_width", 1)),
             pool_op=str(v.get("pool_op", "")) or None)


def _activation(L: Any, lname: str, name: str, v: dict[str, Any]) -> Any:
    n = int(v["n_in"]) if isinstance(v.get("n_in"), (int, float)) else 1
    act = re.sub(r"_?config\d*$", "", name) or "act"
    rf = v.get("reuse_factor")
    return L(lname, "softmax" if act.startswith("softmax") else "act", (n,), (n,), activation=act,
             reuse_factor=int(rf) if isinstance(rf, (int, float)) else None)


def _padding(L: Any, lname: str, base: str, v: dict[str, Any]) -> Any:
    if base == "padding2d_config":
        s = (int(v["in_height"]), int(v["in_width"]), int(v["n_chan"]))
        o = (int(v["out_height"]), int(v["out_width"]), int(v["n_chan"]))
    else:
        s, o = (int(v["in_width"]), int(v["n_chan"])), (int(v["out_width"]), int(v["n_chan"]))
    return L(lname, "pad", s, o)


def _other(L: Any, lname: str, base: str, v: dict[str, Any]) -> Any:
    if base == "resize_config" and "in_height" in v:
        return L(lname, "other", (int(v["in_height"]), int(v["in_width"]), int(v["n_chan"])),
                 (int(v["out_height"]), int(v["out_width"]), int(v["n_chan"])), activation=base)
    n = next((int(v[k]) for k in ("n_in", "n_elem", "n_inp1") if isinstance(v.get(k), (int, float))), 1)
    return L(lname, "other", (n,), (n,), activation=base)


def _layer_of(L: Any, name: str, base: str, v: dict[str, Any], configs: dict[str, dict[str, Any]],
              comment: str) -> Any | None:
    """The HlsLayer one config struct describes, or None (a multiplier config, a depthwise half)."""
    if name.endswith("_mult") or base in ("product_config",):
        return None
    mult = configs.get(f"{name}_mult", {})
    lname = comment or mult.get("_comment") or name
    if base in ("conv2d_config", "conv1d_config", "dense_config"):
        common = _common(name, base, v, mult, lname)
        if base == "conv2d_config":
            return _conv2d(L, lname, v, common)
        if base == "conv1d_config":
            return _conv1d(L, lname, v, common)
        return L(lname, "dense", (int(v["n_in"]),), (int(v["n_out"]),), **common)
    if base in ("depthwise_conv2d_config",):
        return None
    if base in ("pooling2d_config", "pooling1d_config"):
        return _pool2d(L, lname, v) if base == "pooling2d_config" else _pool1d(L, lname, v)
    if base == "activ_config":
        return _activation(L, lname, name, v)
    if base in ("padding2d_config", "padding1d_config"):
        return _padding(L, lname, base, v)
    return _other(L, lname, base, v)


def parse_parameters(params: str, defines: str = "", cpp: str = "",
                     weights: Callable[[str], str] | None = None) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """Layers (HlsLayer) from the text of ``parameters.h`` (and ``defines.h``; with the top function's
    ``myproject.cpp``, each layer's input and output widths; with ``weights`` (array name → the text of
    ``firmware/weights/<name>.h``), each weighted layer's ``weight_csd``)."""
    from edgekd.profile.fpga_estimate import HlsLayer

    env: dict[str, Any] = {}
    for m in _DEFINE.finditer(defines + "\n" + params):
        v = _eval(m.group(2), env)
        if isinstance(v, (int, float)):
            env[m.group(1)] = v
    typedefs = {t.group(2): t.group(1) for t in _TYPEDEF.finditer(defines + "\n" + params)}
    structs = _structs(params, env, typedefs)
    configs = {name: dict(vals, _base=base, _comment=comment) for comment, name, base, vals in structs}
    widths = call_widths(cpp, defines) if cpp else {}
    digits = weight_stats(cpp, defines, params, weights) if cpp and weights else {}
    layers = []
    for comment, name, base, v in structs:  # hls4ml writes them in graph order
        layer = _layer_of(HlsLayer, name, base, v, configs, comment)
        if layer is None:
            continue
        if name in widths:
            layer.data_bits, layer.result_bits = widths[name]
        if name in digits and layer.kind in ("dense", "conv1d", "conv2d"):
            layer.weight_csd = tuple(digits[name])
        layers.append(layer)
    _link_shapes(layers)
    return layers, configs


def _link_shapes(layers: list[Any]) -> None:
    """Activations only know their element count: give them the previous layer's spatial shape."""
    prev = None
    for l in layers:
        if l.kind in ("act", "softmax", "other") and prev is not None and len(l.in_shape) == 1:
            if math.prod(prev.out_shape) == l.in_shape[0] and len(prev.out_shape) > 1:
                l.in_shape = l.out_shape = tuple(prev.out_shape)
        prev = l


def with_da_layers(layers: list[Any], cpp: str, code_gen: str, params: str = "") -> list[Any]:
    """``layers`` with the distributed-arithmetic dense layers put where the top function calls their generated
    kernels — directly (io_parallel: no config struct in ``parameters.h``) or through a config whose ``dense_da``
    names one (io_stream) — each with its adder graph's adders and bits. A DA convolution is refused: its
    kernel computes one output pixel, which the layer list cannot say yet."""
    from edgekd.profile.da_codegen import kernel_calls, parse_kernels, struct_kernels
    from edgekd.profile.fpga_estimate import HlsLayer

    kernels = parse_kernels(code_gen)
    if not kernels:
        return layers
    via = struct_kernels(params)
    calls = kernel_calls(cpp)
    order = {lname: float(i) for i, (_, lname, _) in enumerate(calls)}
    da: list[tuple[float, Any]] = []
    for i, (fn, lname, targs) in enumerate(calls):
        kname, conv = next((via[a] for a in targs if a in via), (fn, False))
        k = kernels.get(kname)
        if k is None:
            continue
        if conv:
            raise EdgekdError(f"layer {lname}: a distributed-arithmetic convolution is not read yet",
                              where="firmware/parameters.h",
                              fix="profile it without --reports (the estimate then comes from the model), "
                                  "or export it with Latency/Resource")
        da.append((float(i), HlsLayer(lname, "dense", (k.n_in,), (k.n_out,), strategy="distributed_arithmetic",
                                      da_adders=k.adders, da_adder_bits=k.adder_bits)))
    names = {l.name for _, l in da}
    keyed: list[tuple[float, Any]] = []
    last = -1.0
    for l in layers:  # a layer the top function does not name stays after its predecessor
        if l.name in names:
            continue  # read from parameters.h without its graph: the DA reading replaces it
        last = order.get(l.name, last + 1e-3)
        keyed.append((last, l))
    out = [l for _, l in sorted(keyed + da, key=lambda t: t[0])]
    _link_shapes(out)
    return out


def read_project(path: str | Path) -> HlsProject:
    """Read ``<path>/firmware/parameters.h`` (and ``defines.h``, ``hls4ml_config.yml``)."""
    import yaml

    p = Path(path)
    fw = p / "firmware" if (p / "firmware").is_dir() else p
    params = fw / "parameters.h"
    if not params.is_file():
        raise EdgekdError("no firmware/parameters.h: not an hls4ml project", where=str(p),
                          fix="point at the folder hls4ml wrote (the one holding firmware/ and build_prj.tcl)")
    defines = fw / "defines.h"
    tops = sorted(fw.glob("*.cpp"), key=lambda f: f.name != "myproject.cpp")  # the top function (any project name)
    cpp = next((text for text in (t.read_text(errors="replace") for t in tops) if "nnet::" in text), "")

    def weights(name: str) -> str:
        f = fw / "weights" / f"{name}.h"
        return f.read_text(errors="replace") if f.is_file() else ""

    layers, configs = parse_parameters(params.read_text(errors="replace"),
                                       defines.read_text(errors="replace") if defines.is_file() else "", cpp, weights)
    code_gen = fw / "nnet_utils" / "nnet_code_gen.h"
    if code_gen.is_file() and cpp:
        layers = with_da_layers(layers, cpp, code_gen.read_text(errors="replace"), params.read_text(errors="replace"))
    io_type = strategy = None
    cfg_file = p / "hls4ml_config.yml"
    if cfg_file.is_file():
        try:
            class _L(yaml.SafeLoader):
                pass

            _L.add_multi_constructor("", lambda loader, suffix, node: None)
            cfg = yaml.load(cfg_file.read_text(errors="replace"), Loader=_L) or {}
            io_type = cfg.get("IOType")
            strategy = ((cfg.get("HLSConfig") or {}).get("Model") or {}).get("Strategy")
        except yaml.YAMLError:
            pass
    if io_type is None:
        ios = [str(c.get("io_type")) for c in configs.values() if c.get("io_type")]
        io_type = max(set(ios), key=ios.count) if ios else None
    comp = [l for l in layers if l.kind in ("dense", "conv1d", "conv2d")]
    if strategy is None and comp:
        ss = [l.strategy or "latency" for l in comp]
        strategy = max(set(ss), key=ss.count)
    bits = max((l.weight_bits or 0 for l in comp), default=0) or None
    return HlsProject(str(p), io_type, (strategy or "latency").capitalize() if strategy else None, layers, bits,
                      configs)
