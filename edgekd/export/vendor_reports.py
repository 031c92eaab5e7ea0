"""The vendor-tool hand-off: run the HLS build when the tool exists, read its reports.

hls4ml writes ``build_prj.tcl`` into every project; Vivado HLS (``vivado_hls``) or Vitis
HLS (``vitis_hls``) runs it and leaves ``<project>_prj/solution1/syn/report/
<project>_csynth.xml`` (and ``.rpt``). :func:`parse_csynth` reads latency (cycles), the
initiation interval and LUT/FF/DSP/BRAM from either file; :func:`run_vendor_build`
runs the build, checks its exit status, and fails clearly when the report is missing
(a failed build that hls4ml's ``build()`` would report only as "report not found").
"""
from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError, ToolMissingError

TOOLS = {"Vitis": "vitis_hls", "Vivado": "vivado_hls"}


@dataclass
class SynthReport:
    """Numbers from one C-synthesis report (HLS estimates, before place and route)."""

    path: str
    tool_version: str | None = None
    part: str | None = None
    top: str | None = None
    target_clock_ns: float | None = None
    estimated_clock_ns: float | None = None
    latency_min: int | None = None  # cycles
    latency_max: int | None = None
    interval_min: int | None = None  # initiation interval (II), cycles
    interval_max: int | None = None
    lut: int | None = None
    ff: int | None = None
    dsp: int | None = None
    bram_18k: int | None = None
    uram: int | None = None
    available: dict[str, int] = field(default_factory=dict)

    @property
    def latency_ns(self) -> float | None:
        if self.latency_max is None or self.target_clock_ns is None:
            return None
        return self.latency_max * max(self.target_clock_ns, self.estimated_clock_ns or 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_ns"] = self.latency_ns
        return d


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text or text in ("-", "?", "undef"):
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.match(r"\s*([0-9.]+)", text)
    return float(m.group(1)) if m else None


def _res_key(tag: str) -> str | None:
    t = tag.upper()
    if t.startswith("DSP"):  # DSP48E (Vivado HLS) or DSP (Vitis HLS)
        return "dsp"
    return {"LUT": "lut", "FF": "ff", "BRAM_18K": "bram_18k", "URAM": "uram"}.get(t)


def parse_csynth_xml(path: Path) -> SynthReport:
    """Read a ``*_csynth.xml`` (Vivado HLS and Vitis HLS write the same schema)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise EdgekdError(f"cannot read the synthesis report: {exc}", where=str(path),
                          fix="rerun the vendor build; the report may be truncated") from None
    r = SynthReport(str(path))
    r.tool_version = root.findtext("ReportVersion/Version")
    r.part = root.findtext("UserAssignments/Part")
    r.top = root.findtext("UserAssignments/TopModelName")
    r.target_clock_ns = _float(root.findtext("UserAssignments/TargetClockPeriod"))
    perf = root.find("PerformanceEstimates")
    scope = perf if perf is not None else root
    r.estimated_clock_ns = _float(scope.findtext(".//SummaryOfTimingAnalysis/EstimatedClockPeriod"))
    lat = scope.find(".//SummaryOfOverallLatency")
    if lat is not None:
        r.latency_min = _int(lat.findtext("Best-caseLatency"))
        r.latency_max = _int(lat.findtext("Worst-caseLatency"))
        r.interval_min = _int(lat.findtext("Interval-min"))
        r.interval_max = _int(lat.findtext("Interval-max"))
    res = root.find("AreaEstimates/Resources")
    for el in list(res) if res is not None else []:
        key = _res_key(el.tag)
        if key:
            setattr(r, key, _int(el.text))
    avail = root.find("AreaEstimates/AvailableResources")
    for el in list(avail) if avail is not None else []:
        key = _res_key(el.tag)
        if key and _int(el.text) is not None:
            r.available[key] = _int(el.text)
    if r.latency_max is None and r.lut is None:
        raise EdgekdError("the report holds neither latency nor resource estimates", where=str(path),
                          fix="check the vendor log: synthesis probably stopped early")
    return r


def _table_rows(lines: list[str], start: int) -> list[list[str]]:
    """Rows ``|a|b|c|`` of the first table after line ``start`` (stops at the first blank line)."""
    rows, seen = [], False
    for line in lines[start:]:
        s = line.strip()
        if s.startswith("|"):
            seen = True
            rows.append([c.strip() for c in s.strip("|").split("|")])
        elif seen and not s.startswith("+"):
            break
    return rows


def parse_csynth_rpt(path: Path) -> SynthReport:
    """Read the text ``*_csynth.rpt`` (fallback when the XML is absent)."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        raise EdgekdError(f"cannot read the synthesis report: {exc}", where=str(path)) from None
    r = SynthReport(str(path))
    for line in lines[:40]:
        m = re.search(r"\*\s*(?:Version|Tool Version):\s*(\S.*)$", line)
        if m and r.tool_version is None:
            r.tool_version = m.group(1).strip()
        m = re.search(r"\*\s*(?:Target device|FPGA Target|Part):\s*(\S+)", line)
        if m and r.part is None:
            r.part = m.group(1)
        m = re.search(r"\*\s*Project:\s*(\S+)", line)
        if m and r.top is None:
            r.top = m.group(1)
    for i, line in enumerate(lines):
        if "+ Timing" in line and r.target_clock_ns is None:
            for row in _table_rows(lines, i):
                if row and row[0].startswith("ap_clk"):
                    r.target_clock_ns = _float(row[1])
                    r.estimated_clock_ns = _float(row[2])
                    break
        if "+ Latency" in line and r.latency_max is None:
            nums = [row for row in _table_rows(lines, i) if row and _int(row[0]) is not None]
            if nums:
                row = nums[0]
                r.latency_min, r.latency_max = _int(row[0]), _int(row[1])
                # Vitis adds two absolute-latency columns ("55.000 ns") before the interval
                ints = [c for c in row[2:] if not c.endswith("s") or _int(c) is not None]
                ints = [c for c in ints if re.fullmatch(r"\d+", c)]
                if len(ints) >= 2:
                    r.interval_min, r.interval_max = int(ints[0]), int(ints[1])
        if "== Utilization Estimates" in line and r.lut is None:
            j = next((k for k in range(i, len(lines)) if "* Summary" in lines[k]), None)
            if j is None:
                continue
            rows = _table_rows(lines, j)
            header = rows[0] if rows else []
            for row in rows[1:]:
                if row[0] in ("Total", "Available"):
                    vals = {}
                    for name, cell in zip(header[1:], row[1:]):
                        key = _res_key(name)
                        if key:
                            vals[key] = _int(cell)
                    if row[0] == "Total":
                        for k, v in vals.items():
                            setattr(r, k, v)
                    else:
                        r.available = {k: v for k, v in vals.items() if v is not None}
    if r.latency_max is None and r.lut is None:
        raise EdgekdError("no latency or utilization table found in the report", where=str(path),
                          fix="check the vendor log: synthesis probably stopped early")
    return r


def find_report(project: Path, project_name: str | None = None) -> Path | None:
    """The top-level csynth report in an hls4ml project (XML preferred), or None."""
    project = Path(project)
    cands = []
    for ext in ("xml", "rpt"):
        if project_name:
            rep = project / f"{project_name}_prj" / "solution1" / "syn" / "report"
            cands.append(rep / f"{project_name}_csynth.{ext}")
        # <name>_prj holds the top's <name>_csynth.* next to per-function <name>_<sub>_csynth.*
        for prj in sorted(project.glob("*_prj")):
            top = prj.name[: -len("_prj")]
            cands.append(prj / "solution1" / "syn" / "report" / f"{top}_csynth.{ext}")
        cands += sorted(project.glob(f"*_prj/solution1/syn/report/csynth.{ext}"))
    return next((c for c in cands if c.is_file()), None)


def read_reports(project: Path, project_name: str | None = None) -> SynthReport | None:
    """Parse the project's synthesis report if the vendor build has produced one."""
    path = find_report(project, project_name)
    if path is None:
        return None
    return parse_csynth_xml(path) if path.suffix == ".xml" else parse_csynth_rpt(path)


def run_vendor_build(project: Path, *, backend: str = "Vitis", project_name: str = "edgekd_student",
                     csim: bool = False, synth: bool = True, cosim: bool = False, export: bool = False,
                     vsynth: bool = False, timeout_s: float | None = None) -> SynthReport:
    """Run hls4ml's ``build_prj.tcl`` with the vendor HLS tool; check its exit status; parse the report.

    Raises :class:`ToolMissingError` when the tool is not on PATH and :class:`EdgekdError`
    when it fails (exit status, log tail) or leaves no report.
    """
    project = Path(project)
    tool = TOOLS.get(backend)
    if tool is None:
        raise EdgekdError(f"no vendor build for backend '{backend}'", where="export.hls.backend",
                          fix=f"use one of {sorted(TOOLS)}")
    exe = shutil.which(tool)
    if exe is None:
        raise ToolMissingError(f"{tool} is not installed; the {backend} HLS build cannot run here",
                               where=str(project),
                               fix=f"copy the project to a machine with {tool} and follow its README.md")
    tcl = project / "build_prj.tcl"
    if not tcl.is_file():
        raise EdgekdError("build_prj.tcl is missing", where=str(project), fix="re-export the hls4ml project")
    flags = " ".join(f"{k}={int(v)}" for k, v in (("reset", True), ("csim", csim), ("synth", synth),
                                                   ("cosim", cosim), ("validation", False), ("export", export),
                                                   ("vsynth", vsynth)))
    log = project / "vendor_build.log"
    with open(log, "w") as fh:
        try:
            proc = subprocess.run([exe, "-f", "build_prj.tcl", flags], cwd=project, stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise EdgekdError(f"{tool} did not finish within {timeout_s} s", where=str(log),
                              fix="raise the timeout or the reuse factor") from None
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise EdgekdError(f"{tool} failed with exit status {proc.returncode}:\n{tail}", where=str(log),
                          fix="read the full log; common causes: unsupported part, license, loop unroll limits")
    rep = read_reports(project, project_name)
    if rep is None:
        raise EdgekdError(f"{tool} exited 0 but wrote no csynth report", where=str(project),
                          fix=f"read {log.name}: synthesis was probably not requested or stopped early")
    return rep
