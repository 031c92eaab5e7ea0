"""Vendor HLS report parsing and the build hand-off (no vendor tool is installed here)."""
import os
import stat
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError, ToolMissingError
from edgekd.export import vendor_reports as vr

# Layout and tags as written by Vivado HLS 2020.1 (DSP48E) for an hls4ml project.
VIVADO_XML = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <ReportVersion><Version>2020.1</Version></ReportVersion>
  <UserAssignments>
    <unit>ns</unit><ProductFamily>kintexu</ProductFamily><Part>xcku035-fbva676-2-e</Part>
    <TopModelName>edgekd_student</TopModelName><TargetClockPeriod>5.00</TargetClockPeriod>
    <ClockUncertainty>0.62</ClockUncertainty><FlowTarget>vivado</FlowTarget>
  </UserAssignments>
  <PerformanceEstimates>
    <PipelineType>dataflow</PipelineType>
    <SummaryOfTimingAnalysis><unit>ns</unit><EstimatedClockPeriod>4.371</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <unit>clock cycles</unit><Best-caseLatency>2418</Best-caseLatency><Average-caseLatency>2418</Average-caseLatency>
      <Worst-caseLatency>2431</Worst-caseLatency><Best-caseRealTimeLatency>12.090 us</Best-caseRealTimeLatency>
      <Worst-caseRealTimeLatency>12.155 us</Worst-caseRealTimeLatency>
      <Interval-min>2117</Interval-min><Interval-max>2117</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>6</BRAM_18K><DSP48E>48</DSP48E><FF>17322</FF><LUT>25610</LUT><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>1080</BRAM_18K><DSP48E>1700</DSP48E><FF>406256</FF><LUT>203128</LUT>
      <URAM>0</URAM></AvailableResources>
  </AreaEstimates>
</profile>
"""

# Vitis HLS 2022.2 writes <DSP> instead of <DSP48E>.
VITIS_XML = VIVADO_XML.replace("DSP48E", "DSP").replace("2020.1", "2022.2").replace(
    "<Worst-caseLatency>2431", "<Worst-caseLatency>2440")

VITIS_RPT = """\


================================================================
== Synthesis Summary Report of 'edgekd_student'
================================================================
+ General Information:
    * Date:           Tue Jun  3 10:12:01 2025
    * Version:        2022.2 (Build 3670227 on Oct 13 2022)
    * Project:        edgekd_student_prj
    * Solution:       solution1 (Vivado IP Flow Target)
    * Product family: kintexu
    * Target device:  xcku035-fbva676-2-e

================================================================
== Performance Estimates
================================================================
+ Timing:
    * Summary:
    +--------+---------+----------+------------+
    |  Clock |  Target | Estimated| Uncertainty|
    +--------+---------+----------+------------+
    |ap_clk  |  5.00 ns|  4.371 ns|     1.35 ns|
    +--------+---------+----------+------------+

+ Latency:
    * Summary:
    +---------+---------+-----------+-----------+------+------+----------+
    |  Latency (cycles) |   Latency (absolute)  |    Interval | Pipeline |
    |   min   |   max   |    min    |    max    |  min |  max |   Type   |
    +---------+---------+-----------+-----------+------+------+----------+
    |     2418|     2440|  12.090 us|  12.200 us|  2117|  2117|  dataflow|
    +---------+---------+-----------+-----------+------+------+----------+

================================================================
== Utilization Estimates
================================================================
* Summary:
+---------------------+---------+------+---------+---------+-----+
|         Name        | BRAM_18K|  DSP |    FF   |   LUT   | URAM|
+---------------------+---------+------+---------+---------+-----+
|DSP                  |        -|     -|        -|        -|    -|
|Expression           |        -|     -|        0|       12|    -|
|FIFO                 |        6|     -|      318|      622|    -|
|Instance             |        0|    48|    17004|    24976|    0|
|Memory               |        -|     -|        -|        -|    -|
|Multiplexer          |        -|     -|        -|        -|    -|
|Register             |        -|     -|        -|        -|    -|
+---------------------+---------+------+---------+---------+-----+
|Total                |        6|    48|    17322|    25610|    0|
+---------------------+---------+------+---------+---------+-----+
|Available            |     1080|  1700|   406256|   203128|    0|
+---------------------+---------+------+---------+---------+-----+
|Utilization (%)      |       ~0|     2|        4|       12|    0|
+---------------------+---------+------+---------+---------+-----+
"""

VIVADO_RPT = """\
================================================================
== Vivado HLS Report for 'edgekd_student'
================================================================
* Date:           Mon Mar  2 11:03:44 2020

* Version:        2019.2 (Build 2704478 on Wed Nov 06 22:10:23 MST 2019)
* Project:        edgekd_student_prj
* Solution:       solution1
* Product family: virtexuplus
* Target device:  xcvu9p-flga2104-2L-e

================================================================
== Performance Estimates
================================================================
+ Timing:
    * Summary:
    +--------+-------+----------+------------+
    |  Clock | Target| Estimated| Uncertainty|
    +--------+-------+----------+------------+
    |ap_clk  |   5.00|     4.144|        0.62|
    +--------+-------+----------+------------+

+ Latency:
    * Summary:
    +---------+---------+-----------+-----------+-----+-----+----------+
    |  Latency (cycles) |   Latency (absolute)  |  Interval | Pipeline |
    |   min   |   max   |    min    |    max    | min | max |   Type   |
    +---------+---------+-----------+-----------+-----+-----+----------+
    |        9|        9| 45.000 ns | 45.000 ns |    1|    1| function |
    +---------+---------+-----------+-----------+-----+-----+----------+

================================================================
== Utilization Estimates
================================================================
* Summary:
+-----------------+---------+-------+--------+--------+-----+
|       Name      | BRAM_18K| DSP48E|   FF   |   LUT  | URAM|
+-----------------+---------+-------+--------+--------+-----+
|DSP              |        -|      -|       -|       -|    -|
|Expression       |        -|      -|       0|       6|    -|
|Instance         |        0|     85|    3211|    9870|    0|
|Register         |        -|      -|     344|       -|    -|
+-----------------+---------+-------+--------+--------+-----+
|Total            |        0|     85|    3555|    9876|    0|
+-----------------+---------+-------+--------+--------+-----+
|Available        |     4320|   6840| 2364480| 1182240|  960|
+-----------------+---------+-------+--------+--------+-----+
"""


def _project(tmp_path: Path, name="edgekd_student", ext="xml", text=VIVADO_XML) -> Path:
    rep = tmp_path / f"{name}_prj" / "solution1" / "syn" / "report"
    rep.mkdir(parents=True)
    (rep / f"{name}_csynth.{ext}").write_text(text)
    (rep / f"{name}_a_dense_csynth.{ext}").write_text(text.replace("2431", "7"))  # a sub-function report
    return tmp_path


def test_parse_vivado_xml(tmp_path):
    r = vr.read_reports(_project(tmp_path), "edgekd_student")
    assert (r.latency_min, r.latency_max, r.interval_min, r.interval_max) == (2418, 2431, 2117, 2117)
    assert (r.lut, r.ff, r.dsp, r.bram_18k, r.uram) == (25610, 17322, 48, 6, 0)
    assert r.available["dsp"] == 1700 and r.part == "xcku035-fbva676-2-e" and r.tool_version == "2020.1"
    assert r.target_clock_ns == 5.0 and r.estimated_clock_ns == pytest.approx(4.371)
    assert r.latency_ns == pytest.approx(2431 * 5.0)
    assert r.to_dict()["latency_ns"] == pytest.approx(12155.0)


def test_parse_vitis_xml_uses_dsp_tag(tmp_path):
    p = tmp_path / "x_csynth.xml"
    p.write_text(VITIS_XML)
    r = vr.parse_csynth_xml(p)
    assert r.dsp == 48 and r.latency_max == 2440 and r.tool_version == "2022.2"


def test_parse_vitis_rpt(tmp_path):
    r = vr.read_reports(_project(tmp_path, ext="rpt", text=VITIS_RPT))
    assert (r.latency_min, r.latency_max, r.interval_min, r.interval_max) == (2418, 2440, 2117, 2117)
    assert (r.lut, r.ff, r.dsp, r.bram_18k, r.uram) == (25610, 17322, 48, 6, 0)
    assert r.available == {"bram_18k": 1080, "dsp": 1700, "ff": 406256, "lut": 203128, "uram": 0}
    assert r.target_clock_ns == 5.0 and r.estimated_clock_ns == pytest.approx(4.371)
    assert r.part == "xcku035-fbva676-2-e"


def test_parse_vivado_rpt(tmp_path):
    p = tmp_path / "edgekd_student_csynth.rpt"
    p.write_text(VIVADO_RPT)
    r = vr.parse_csynth_rpt(p)
    assert (r.latency_min, r.latency_max, r.interval_min, r.interval_max) == (9, 9, 1, 1)
    assert (r.lut, r.ff, r.dsp, r.bram_18k) == (9876, 3555, 85, 0)
    assert r.tool_version.startswith("2019.2") and r.part == "xcvu9p-flga2104-2L-e"


def test_no_report_and_broken_report(tmp_path):
    assert vr.read_reports(tmp_path) is None
    bad = tmp_path / "b_csynth.xml"
    bad.write_text("<profile><PerformanceEstimates>")  # truncated by a killed build
    with pytest.raises(EdgekdError, match="cannot read"):
        vr.parse_csynth_xml(bad)
    empty = tmp_path / "e_csynth.rpt"
    empty.write_text("== Vivado HLS Report\n")
    with pytest.raises(EdgekdError, match="no latency"):
        vr.parse_csynth_rpt(empty)


def _fake_tool(bindir: Path, name: str, script: str) -> None:
    """A stand-in executable: the real vendor tools cannot be installed here."""
    p = bindir / name
    p.write_text("#!/bin/sh\n" + script)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def test_vendor_build_checks_tool_exit_status_and_report(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "build_prj.tcl").write_text("# hls4ml build script\n")
    monkeypatch.setenv("PATH", os.environ["PATH"].replace(str(tmp_path / "bin") + ":", ""))
    if not __import__("shutil").which("vitis_hls"):
        with pytest.raises(ToolMissingError, match="vitis_hls is not installed"):
            vr.run_vendor_build(proj, backend="Vitis")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    _fake_tool(bindir, "vitis_hls", "echo 'ERROR: [HLS 200-70] license'; exit 3\n")
    with pytest.raises(EdgekdError, match="exit status 3") as ei:
        vr.run_vendor_build(proj, backend="Vitis")
    assert "license" in str(ei.value)
    _fake_tool(bindir, "vitis_hls", "exit 0\n")
    with pytest.raises(EdgekdError, match="wrote no csynth report"):
        vr.run_vendor_build(proj, backend="Vitis")
    rep = proj / "edgekd_student_prj" / "solution1" / "syn" / "report"
    xml = tmp_path / "src.xml"
    xml.write_text(VITIS_XML)
    _fake_tool(bindir, "vitis_hls", f'test "$1" = "-f" && test "$2" = build_prj.tcl || exit 9\n'
                                    f'mkdir -p {rep} && cp {xml} {rep}/edgekd_student_csynth.xml\n')
    r = vr.run_vendor_build(proj, backend="Vitis")
    assert r.latency_max == 2440 and r.dsp == 48
    with pytest.raises(EdgekdError, match="no vendor build"):
        vr.run_vendor_build(proj, backend="Quartus")
