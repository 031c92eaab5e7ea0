"""Resource counts of generated Verilog from Yosys ``synth_xilinx``, against the part's budget.

No vendor tool runs here; Yosys (Debian package ``yosys``) maps the design onto Xilinx
primitives of the family closest to the target part (LUT1–6, flip-flops, carry chains,
DSP and block RAM cells). The counts are post-synthesis, before place and route: Vivado
usually packs LUTs somewhat tighter, so read them as an upper-side estimate of the same
logic, not as a vendor report.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError, ToolMissingError
from edgekd.hwtargets import FpgaTarget

# hw/fpga ``family`` → synth_xilinx -family; UltraScale+ and UltraScale have their own
# mappings, everything 7-series (Zynq-7000, Artix/Kintex/Virtex-7, Spartan-7) is xc7.
FAMILY_MAP = {
    "kintexu": "xcu", "virtexu": "xcu",
    "kintexuplus": "xcup", "virtexuplus": "xcup", "zynquplus": "xcup", "artixuplus": "xcup",
    "zynq7": "xc7", "artix7": "xc7", "kintex7": "xc7", "virtex7": "xc7", "spartan7": "xc7",
}

_LUT = re.compile(r"^LUT[1-6](_2)?$")
_FF = re.compile(r"^FD[A-Z]*$")
_CARRY = re.compile(r"^CARRY[48]$")
_DSP = re.compile(r"^DSP48")
_BRAM36 = re.compile(r"^RAMB36")
_BRAM18 = re.compile(r"^RAMB18")


@dataclass
class YosysResources:
    """Post-synthesis primitive counts and their share of the part."""

    top: str
    family: str  # synth_xilinx family used
    part: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram_36k: float
    cells: dict[str, int] = field(default_factory=dict)
    budget: dict[str, int] = field(default_factory=dict)
    yosys_version: str = ""
    wall_s: float = 0.0
    notes: str = ("Yosys synth_xilinx counts before place and route; LUT counts LUT1–LUT6, "
                  "FF all FD* cells, carry CARRY4/CARRY8 cells")

    def percent(self) -> dict[str, float]:
        """Share of the part's LUT/FF/DSP/BRAM budget, in %."""
        used = {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram_36k": self.bram_36k}
        return {k: 100.0 * used[k] / v for k, v in self.budget.items() if v}

    def fits(self) -> bool:
        return all(p <= 100.0 for p in self.percent().values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percent"] = self.percent()
        d["fits"] = self.fits()
        return d


def yosys_family(target: FpgaTarget) -> str:
    """The ``synth_xilinx -family`` closest to the target part (refuses non-AMD parts)."""
    if target.vendor.lower() not in ("amd", "xilinx"):
        raise EdgekdError(f"Yosys resource mapping supports AMD/Xilinx parts, not vendor '{target.vendor}'",
                          where=f"hw/fpga/{target.name}.yaml", fix="use an AMD/Xilinx target for resource counts")
    fam = FAMILY_MAP.get(target.family.lower())
    if fam is None:
        raise EdgekdError(f"no Yosys family known for FPGA family '{target.family}'",
                          where=f"hw/fpga/{target.name}.yaml: family",
                          fix=f"use one of {sorted(FAMILY_MAP)} or add it to edgekd.profile.yosys.FAMILY_MAP")
    return fam


def _yosys() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise ToolMissingError("yosys is not installed; resource counts need it", where="profile.yosys",
                               fix="apt-get install yosys")
    return exe


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts from the last ``stat`` block of a Yosys log."""
    block = text.rsplit("Number of cells:", 1)
    if len(block) != 2:
        raise EdgekdError("no 'Number of cells' in the Yosys statistics", where="profile.yosys")
    cells: dict[str, int] = {}
    for line in block[1].splitlines()[1:]:
        m = re.match(r"^\s+(\S+)\s+(\d+)\s*$", line)
        if not m:
            if line.strip():
                break
            continue
        cells[m.group(1)] = int(m.group(2))
    return cells


def synth_resources(verilog: list[Path], top: str, target: FpgaTarget, *, log_dir: Path | None = None,
                    timeout_s: float = 3600.0) -> YosysResources:
    """Run ``synth_xilinx`` on ``verilog`` files with ``top`` as the top module; count primitives."""
    exe = _yosys()
    fam = yosys_family(target)
    files = [str(Path(p).resolve()) for p in verilog]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise EdgekdError(f"Verilog file(s) not found: {missing}", where="profile.yosys")
    stat_file = (log_dir or Path(files[0]).parent) / f"{top}.yosys_stat.txt"
    log_file = stat_file.with_suffix(".log")
    # -noiopad: count the design, not the I/O buffers a top-level board wrapper would own
    script = (f"read_verilog -sv {' '.join(files)}; synth_xilinx -family {fam} -top {top} -flatten -noiopad; "
              f"tee -q -o {stat_file} stat")
    t0 = time.perf_counter()
    try:
        r = subprocess.run([exe, "-q", "-p", script], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise EdgekdError(f"yosys did not finish within {timeout_s:.0f} s", where=f"profile.yosys {top}",
                          fix="the design is very large; count resources on a smaller student") from None
    log_file.write_text(r.stdout + r.stderr)
    if r.returncode != 0 or not stat_file.is_file():
        raise EdgekdError(f"yosys failed (exit {r.returncode}): {(r.stderr or r.stdout)[-1500:]}",
                          where=f"profile.yosys {top}", fix=f"see {log_file}")
    cells = parse_stat(stat_file.read_text())
    version = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout.strip()

    def count(rx: re.Pattern) -> int:
        return sum(n for c, n in cells.items() if rx.match(c))

    res = target.resources
    return YosysResources(
        top=top, family=fam, part=target.part, lut=count(_LUT), ff=count(_FF), carry=count(_CARRY),
        dsp=count(_DSP), bram_36k=count(_BRAM36) + 0.5 * count(_BRAM18), cells=cells,
        budget={"lut": res.lut, "ff": res.ff, "dsp": res.dsp, "bram_36k": res.bram_36k},
        yosys_version=version, wall_s=time.perf_counter() - t0)


def synth_rtl_design(design_dir: str | Path, target: FpgaTarget, *, top: str = "edgekd_net",
                     timeout_s: float = 3600.0) -> YosysResources:
    """Resource counts of a da4ml project written by :func:`edgekd.export.rtl.generate`."""
    src = Path(design_dir) / "src"
    stages = sorted(src.glob(f"{top}_stage*.v"))
    main = src / f"{top}.v"
    if not main.is_file():
        raise EdgekdError(f"no {main.name} in {src}", where="profile.yosys",
                          fix="generate the design first (edgekd.export.rtl.generate)")
    static = sorted((src / "static").glob("*.v"))
    if not any((src / "memfiles").glob("*")):
        # the lookup-table module reads a memory file at elaboration; unused without tables
        static = [p for p in static if p.name != "lookup_table.v"]
    return synth_resources(static + stages + [main], top, target, log_dir=Path(design_dir), timeout_s=timeout_s)
