"""The FPGA calibration corpus: real hls4ml synthesis results, one JSON file per source.

``hw/fpga/reports/<source>.json`` holds every published result taken from one
repository (or paper); a user's own points go to a user calibration file
(:data:`USER_CORPUS`, ``~/.config/edgekd/fpga_calibration.json`` unless
``EDGEKD_FPGA_CALIBRATION`` names another) with the same schema. Each file::

    {"source": {"id": "hls4ml-ci", "repository": "fastmachinelearning/hls4ml", "commit": "...",
                "license_note": "facts and numbers only"},
     "records": [{
        "id": "...", "source": "owner/repo@commit:path (or paper, table)",
        "tool": "Vivado HLS" | "Vitis HLS", "tool_version": "2020.1", "part": "...", "clock_ns": 5.0,
        "hls4ml": {"version": "...", "backend": "Vivado", "io_type": "io_parallel", "strategy": "Latency",
                   "reuse_factor": 1, "precision": "ap_fixed<16,6>"},
        "layers": [{"kind": "conv2d", "name": "...", "in_shape": [..], "out_shape": [..], "kernel": 3,
                    "stride": 1, "reuse_factor": 9, "strategy": "resource", "weight_bits": 16}, ...],
        "reported": {"latency_min": 1055, "latency_max": 1055, "ii_min": 1029, "ii_max": 1029,
                     "lut": .., "ff": .., "dsp": .., "bram_18k": .., "uram": ..},
        "notes": "..."}]}

Only facts and numbers are transcribed from the sources; every record names its
source. :func:`load_corpus` validates the schema and returns :class:`CalibrationRecord`
objects whose :meth:`~CalibrationRecord.hls_layers` feed the estimator.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgekd.errors import ConfigError
from edgekd.hwtargets import HW_DIR

CORPUS_DIR = HW_DIR / "fpga" / "reports"
USER_CORPUS = Path(os.environ.get("EDGEKD_FPGA_CALIBRATION",
                                  Path.home() / ".config" / "edgekd" / "fpga_calibration.json"))
REPORTED_KEYS = ("latency_min", "latency_max", "ii_min", "ii_max", "lut", "ff", "dsp", "bram_18k", "uram")
LAYER_KINDS = ("conv1d", "conv2d", "dense", "pool", "act", "softmax", "flatten", "pad", "other")
IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = ("Latency", "Resource", "distributed_arithmetic")
TOOLS = ("Vivado HLS", "Vitis HLS")


@dataclass
class CalibrationRecord:
    id: str
    group: str  # the source held out together in cross-validation (a repository or paper)
    source: str
    tool: str
    tool_version: str
    part: str
    clock_ns: float
    hls4ml: dict[str, Any]
    layers: list[dict[str, Any]]
    reported: dict[str, int | None]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def excluded(self) -> str | None:
        """Why the record is kept for provenance but not used (``exclude`` in the file), or None."""
        return self.extra.get("exclude")

    @property
    def io_type(self) -> str:
        return self.hls4ml["io_type"]

    @property
    def strategy(self) -> str:
        return self.hls4ml.get("strategy") or "Latency"

    @property
    def family(self) -> str:
        """``vivado`` (Vivado HLS ≤ 2020.1) or ``vitis`` (Vitis HLS 2020.2+)."""
        return "vitis" if self.tool.lower().startswith("vitis") else "vivado"

    @property
    def regime(self) -> str:
        """The split the benchmark reports: io_stream CNN / io_parallel CNN / dense."""
        conv = any(l["kind"] in ("conv1d", "conv2d", "pool") for l in self.layers)
        if not conv:
            return "dense"
        return "io_stream CNN" if self.io_type == "io_stream" else "io_parallel CNN"

    def hls_layers(self) -> list[Any]:
        from edgekd.profile.fpga_estimate import HlsLayer

        out = []
        for l in self.layers:
            kw = {k: l[k] for k in ("kernel", "stride", "reuse_factor", "padding", "strategy", "weight_bits",
                                    "accum_bits", "n_zeros", "implementation", "pool_op", "activation",
                                    "stream_words", "n_partitions", "data_bits", "result_bits", "da_adders",
                                    "da_adder_bits") if l.get(k) is not None}
            if l.get("weight_csd") is not None:
                kw["weight_csd"] = tuple(int(x) for x in l["weight_csd"])
            out.append(HlsLayer(l.get("name", l["kind"]), l["kind"], tuple(l["in_shape"]), tuple(l["out_shape"]), **kw))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("id", "source", "tool", "tool_version", "part", "clock_ns", "hls4ml",
                                           "layers", "reported", "notes")}
        d.update(self.extra)
        return d


def _check(rec: dict[str, Any], where: str) -> None:
    for key in ("id", "source", "tool", "tool_version", "clock_ns", "hls4ml", "layers", "reported"):
        if key not in rec:
            raise ConfigError(f"record without '{key}'", where=where)
    if rec["tool"] not in TOOLS:
        raise ConfigError(f"tool '{rec['tool']}' not one of {TOOLS}", where=where)
    h = rec["hls4ml"]
    if h.get("io_type") not in IO_TYPES:
        raise ConfigError(f"hls4ml.io_type '{h.get('io_type')}' not one of {IO_TYPES}", where=where)
    if h.get("strategy") not in STRATEGIES:
        raise ConfigError(f"hls4ml.strategy '{h.get('strategy')}' not one of {STRATEGIES}", where=where)
    if not isinstance(rec["layers"], list) or not rec["layers"]:
        raise ConfigError("record without layers", where=where)
    for i, l in enumerate(rec["layers"]):
        if l.get("kind") not in LAYER_KINDS:
            raise ConfigError(f"layer {i} kind '{l.get('kind')}' not one of {LAYER_KINDS}", where=where)
        for k in ("in_shape", "out_shape"):
            if not isinstance(l.get(k), list) or not all(isinstance(v, int) and v > 0 for v in l[k]):
                raise ConfigError(f"layer {i} {k} must be a list of positive integers", where=where)
    rep = rec["reported"]
    unknown = set(rep) - set(REPORTED_KEYS)
    if unknown:
        raise ConfigError(f"unknown reported keys {sorted(unknown)}", where=where)
    if rep.get("latency_max") is None and rep.get("lut") is None:
        raise ConfigError("reported holds neither latency nor resources", where=where)
    for k, v in rep.items():
        if v is not None and (not isinstance(v, int) or v < 0):
            raise ConfigError(f"reported.{k} must be a non-negative integer or null", where=where)
    if not any(t in rec["source"] for t in ("@", "arXiv", "https://", "user")):
        raise ConfigError("source must name repository@commit:path, a paper or 'user'", where=where)


def load_file(path: str | Path, group: str | None = None) -> list[CalibrationRecord]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read calibration file: {exc}", where=str(p)) from None
    src = data.get("source", {})
    grp = group or src.get("id") or p.stem
    out, seen = [], set()
    for i, rec in enumerate(data.get("records", [])):
        where = f"{p.name} record {i} ({rec.get('id', '?')})"
        _check(rec, where)
        if rec["id"] in seen:
            raise ConfigError(f"duplicate record id '{rec['id']}'", where=where)
        seen.add(rec["id"])
        known = {"id", "source", "tool", "tool_version", "part", "clock_ns", "hls4ml", "layers", "reported", "notes"}
        out.append(CalibrationRecord(
            id=rec["id"], group=rec.get("group", grp), source=rec["source"], tool=rec["tool"],
            tool_version=str(rec["tool_version"]), part=rec.get("part", ""), clock_ns=float(rec["clock_ns"]),
            hls4ml=rec["hls4ml"], layers=rec["layers"], reported={k: rec["reported"].get(k) for k in REPORTED_KEYS},
            notes=rec.get("notes", ""), extra={k: v for k, v in rec.items() if k not in known and k != "group"}))
    return out


def load_corpus(directory: str | Path = CORPUS_DIR, *, user: str | Path | None | bool = True) -> list[CalibrationRecord]:
    """Every record of ``directory/*.json`` (plus the user calibration file when it exists)."""
    d = Path(directory)
    recs: list[CalibrationRecord] = []
    for f in sorted(d.glob("*.json")):
        recs += load_file(f)
    if user:
        up = USER_CORPUS if user is True else Path(user)  # type: ignore[arg-type]
        if up.is_file():
            recs += load_file(up, group="user")
    ids = [r.id for r in recs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ConfigError(f"record ids used twice: {sorted(dup)[:5]}", where=str(d))
    return recs


def layer_dicts(layers: Iterable[Any]) -> list[dict[str, Any]]:
    """HlsLayer objects in the corpus's compact form (defaults left out)."""
    out = []
    for l in layers:
        d: dict[str, Any] = {"kind": l.kind, "name": l.name, "in_shape": list(l.in_shape),
                             "out_shape": list(l.out_shape)}
        if l.kind in ("conv1d", "conv2d", "pool"):
            d["kernel"], d["stride"] = l.kernel, l.stride
        for k in ("reuse_factor", "strategy", "weight_bits", "accum_bits", "implementation", "pool_op",
                  "activation", "stream_words", "n_partitions", "data_bits", "result_bits", "da_adders",
                  "da_adder_bits"):
            v = getattr(l, k, None)
            if v is not None:
                d[k] = v
        if getattr(l, "padding", 0):
            d["padding"] = l.padding
        if getattr(l, "n_zeros", 0):
            d["n_zeros"] = l.n_zeros
        out.append(d)
    return out


def append_user_point(record: dict[str, Any], path: str | Path | None = None) -> Path:
    """Append (or replace, by id) one record in the user calibration file."""
    from edgekd.runs.atomic import write_text

    p = Path(path) if path else USER_CORPUS
    _check(record, f"{p.name} (new record {record.get('id')})")
    data = json.loads(p.read_text()) if p.is_file() else {
        "source": {"id": "user", "repository": "user", "note": "the user's own synthesis reports"}, "records": []}
    data["records"] = [r for r in data["records"] if r.get("id") != record["id"]] + [record]
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text(p, json.dumps(data, indent=1) + "\n")
    return p
