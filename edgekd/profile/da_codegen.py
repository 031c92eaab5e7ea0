"""The adder graphs of a distributed-arithmetic hls4ml project, read from its generated code.

With ``Strategy: distributed_arithmetic`` (hls4ml ≥ 1.2 with da4ml), a dense or convolution kernel is no longer
a template with a config struct: hls4ml writes one function per layer into
``firmware/nnet_utils/nnet_code_gen.h`` (``dense_da_<index>``; da4ml's ``hls_logic_and_bridge_gen`` with
``print_latency=True``), one line per operation::

    ap_fixed<12,7> v52 = v1 + bit_shift<2>(v1); // 1.0

— a ``W``-bit adder (``W`` = the result type's width) at adder level 1.0 of the graph. The layer's cost is that
graph: its adders' bits (LUTs: one LUT a bit on a carry chain) and its depth (levels), not its weights' count or
width. The top function calls each kernel with the layer's name in a comment::

    nnet::dense_da_3<input_layer_t, dense_0_t>(input_layer, layer3_out); // dense_0
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"void\s+(\w+)\s*\(\s*[\w:<>, ]+?\s+\w+\[(\d+)\]\s*,\s*[\w:<>, ]+?\s+\w+\[(\d+)\]\s*\)")
_OP = re.compile(r"^\s*ap_u?fixed<\s*(\d+)\s*,\s*-?\d+\s*>\s+v\d+\s*=\s*(.+?);\s*//\s*(-?[\d.]+)\s*$")
_BINARY = re.compile(r"\S\s+[+-]\s+\S")  # a sum or difference of two operands (not a sign, not a literal)
# an input quantized with rounding (``ap_fixed<8, 4, AP_RND, AP_WRAP> model_inp_q_0 = model_inp[0];``): an incrementer
_ROUND = re.compile(r"^\s*ap_u?fixed<\s*(\d+)\s*,\s*-?\d+\s*,\s*AP_RND\w*[^>]*>\s+\w+\s*=\s*\w+\[\d+\]\s*;")
_CALL = re.compile(r"nnet::(\w+)\s*<[^;]*?>\s*\(([^;]*?)\)\s*;\s*//\s*(\w+)")


@dataclass
class DaKernel:
    """One generated kernel: its input and output lengths, its adders (those of the graph and the rounding of its
    quantized inputs), their bits, and the graph's depth."""

    name: str
    n_in: int
    n_out: int
    adders: int = 0
    adder_bits: int = 0
    depth: float = 0.0  # adder levels from input to output


def parse_kernels(code: str) -> dict[str, DaKernel]:
    """Function name → DaKernel for every generated function of ``nnet_code_gen.h`` that holds an adder graph."""
    kernels: dict[str, DaKernel] = {}
    current: DaKernel | None = None
    for line in code.splitlines():
        h = _HEADER.search(line)
        if h:
            current = DaKernel(h.group(1), int(h.group(2)), int(h.group(3)))
            kernels[current.name] = current
            continue
        if current is None:
            continue
        r = _ROUND.match(line)
        if r:
            current.adders += 1
            current.adder_bits += int(r.group(1))
            continue
        m = _OP.match(line)
        if not m:
            continue
        current.depth = max(current.depth, float(m.group(3)))
        if _BINARY.search(m.group(2)):
            current.adders += 1
            current.adder_bits += int(m.group(1))
    return {k: v for k, v in kernels.items() if v.adders or v.depth}


def kernel_calls(cpp: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(function, layer name, template arguments — types and the config struct where there is one) of every
    ``nnet::`` call of the top function, in order."""
    return [(m.group(1), m.group(3), _template_args(m.group(0))) for m in _CALL.finditer(cpp)]


def _template_args(call: str) -> tuple[str, ...]:
    inner = call[call.index("<") + 1:call.rindex(">", 0, call.index("("))]
    return tuple(a.strip() for a in inner.split(","))


_STRUCT_DA = re.compile(r"struct\s+(\w+)\s*(?::[^{]*)?\{(?:(?!\};).)*?dense_da\s*=\s*nnet::(\w+)", re.S)


def struct_kernels(params: str) -> dict[str, tuple[str, bool]]:
    """Config struct → (the generated kernel its ``dense_da`` names, whether the struct is a convolution's) in
    ``parameters.h``: hls4ml's io_stream dense and its convolutions call a DA kernel through their config."""
    out = {}
    for m in _STRUCT_DA.finditer(params):
        body = params[m.start():params.find("};", m.end())]
        out[m.group(1)] = (m.group(2), "n_filt" in body or "filt_width" in body)
    return out
