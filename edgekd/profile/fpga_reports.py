"""Close the loop: the user's own synthesis reports next to edgekd's estimate, and back into the calibration.

``edgekd profile RUN_DIR --target fpga-hls --reports DIR`` reads, for every exported hls4ml
student of the run, the Vivado HLS / Vitis HLS C-synthesis report the user produced with
the exported project (``*_csynth.xml`` or ``.rpt``, anywhere under ``DIR/<model>/``,
``DIR/<model>-hls/`` or, with a single student, ``DIR``) and, where present, Vivado's
post-synthesis utilisation (``vivado_synth.rpt`` or ``*utilization*.rpt``). It prints
estimate (with its interval) and report side by side and, with ``--append-calibration``,
adds the point — the project's layers from its ``firmware/parameters.h``, the tool, the
reported numbers — to the user calibration file
(:data:`edgekd.profile.fpga_corpus.USER_CORPUS`), which every later estimate is fitted on
(as its own source, ``user``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.export.vendor_reports import SynthReport, parse_csynth_rpt, parse_csynth_xml


def _top_reports(root: Path) -> list[Path]:
    """Top-level csynth reports under ``root`` (``<top>_prj/solution1/syn/report/<top>_csynth``), XML first."""
    out = []
    for ext in ("xml", "rpt"):
        for p in sorted(root.rglob(f"*_csynth.{ext}")):
            parts = p.parts
            if len(parts) >= 5 and parts[-5].endswith("_prj") and p.name == f"{parts[-5][:-4]}_csynth.{ext}":
                out.append(p)
        if not out:
            out += [p for p in sorted(root.rglob(f"csynth.{ext}"))]
    return out


def find_user_report(reports: Path, model: str, single: bool) -> tuple[SynthReport | None, dict[str, int]]:
    """The C-synthesis report (and Vivado utilisation, if any) the user made for ``model``."""
    cands = [reports / model, reports / f"{model}-hls"] + ([reports] if single else [])
    for d in cands:
        if not d.is_dir():
            continue
        tops = _top_reports(d)
        if tops:
            p = tops[0]
            rep = parse_csynth_xml(p) if p.suffix == ".xml" else parse_csynth_rpt(p)
            util = {}
            for u in sorted(d.rglob("vivado_synth.rpt")) + sorted(d.rglob("*utilization*.rpt")):
                util = parse_vivado_utilization(u)
                if util:
                    break
            return rep, util
    return None, {}


def parse_vivado_utilization(path: Path) -> dict[str, int]:
    """LUT / FF / DSP / BRAM (36K tiles) from a Vivado ``report_utilization`` text report."""
    text = Path(path).read_text(errors="replace")
    keys = {"lut": r"(?:CLB|Slice) LUTs\*?", "ff": r"(?:CLB|Slice) Registers", "dsp": r"DSPs",
            "bram_36k": r"Block RAM Tile"}
    out = {}
    for k, pat in keys.items():
        m = re.search(rf"^\|\s*{pat}\s*\|\s*([0-9.]+)\s*\|", text, re.M)
        if m:
            out[k] = int(float(m.group(1)))
    return out


def side_by_side(fig: dict[str, Any], rep: SynthReport, util: dict[str, int]) -> list[tuple[str, str, str, str]]:
    """(figure, estimate [interval], report, inside the interval?) rows."""
    iv = fig.get("intervals") or {}
    rows = []
    pairs = [("latency (cycles)", "latency_cycles", fig["latency_cycles"], rep.latency_max,
              f"{rep.latency_min:,}–{rep.latency_max:,}" if rep.latency_min is not None and rep.latency_max is not None
              and rep.latency_min != rep.latency_max else None),
             ("II (cycles)", "ii_cycles", fig["ii_cycles"], rep.interval_max, None),
             ("LUT", "lut", fig["resources"]["lut"], rep.lut, None),
             ("FF", "ff", fig["resources"]["ff"], rep.ff, None),
             ("DSP", "dsp", fig["resources"]["dsp"], rep.dsp, None),
             ("BRAM36", "bram_36k", fig["resources"]["bram_36k"],
              None if rep.bram_18k is None else (rep.bram_18k + 1) // 2, None)]
    rng = (fig.get("details") or {}).get("latency_range_cycles")
    for label, key, est, got, got_text in pairs:
        e = f"{est:,}" + (f" [{iv[key][0]:,.0f}–{iv[key][1]:,.0f}]" if key in iv else "")
        if key == "latency_cycles" and rng:
            e = f"{rng[0]:,}–{e}"  # data-dependent: C synthesis's min–max, the max with its interval
        g = "–" if got is None else (got_text or f"{got:,}")
        inside = "–" if got is None or key not in iv else ("yes" if iv[key][0] <= got <= iv[key][1] else "NO")
        rows.append((label, e, g, inside))
    for key, label in (("lut", "LUT (Vivado synth)"), ("ff", "FF (Vivado synth)"), ("dsp", "DSP (Vivado synth)"),
                       ("bram_36k", "BRAM36 (Vivado synth)")):
        if key in util:
            rows.append((label, f"{fig['resources'][key]:,}", f"{util[key]:,}", "–"))
    return rows


def record_from_project(project: Path, rep: SynthReport, model: str, run: str) -> dict[str, Any]:
    """A corpus record for the user's point: layers from the exported project's parameters.h."""
    from edgekd.profile.fpga_corpus import layer_dicts
    from edgekd.profile.hls_project import read_project

    prj = read_project(project)
    ver = re.search(r"(\d{4}\.\d)", rep.tool_version or "")
    version = ver.group(1) if ver else "unknown"
    tool = "Vivado HLS" if version != "unknown" and version <= "2020.1" and "vitis" not in (rep.tool_version or "").lower() \
        else "Vitis HLS"
    strat = prj.strategy or "Latency"
    strat = "distributed_arithmetic" if strat.lower().startswith("distributed") else strat.capitalize()
    return {
        "id": f"user-{run}-{model}", "source": f"user: {rep.path}",
        "tool": tool, "tool_version": version, "part": rep.part or "", "clock_ns": float(rep.target_clock_ns or 5.0),
        "hls4ml": {"backend": "Vitis" if tool == "Vitis HLS" else "Vivado", "io_type": prj.io_type or "io_stream",
                   "strategy": strat, "reuse_factor": None, "precision": None},
        "layers": layer_dicts(prj.layers),
        "reported": {"latency_min": rep.latency_min, "latency_max": rep.latency_max, "ii_min": rep.interval_min,
                     "ii_max": rep.interval_max, "lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp,
                     "bram_18k": rep.bram_18k, "uram": rep.uram},
        "notes": f"edgekd run {run}, student {model}; appended by `edgekd profile --reports`",
    }


def compare_run(run_dir: Path, reports: Path, *, append: bool = False, calibration: Path | None = None) -> int:
    """Print estimate vs the user's reports for every fpga-hls student of ``run_dir``; optionally append."""
    from edgekd.profile.fpga_corpus import append_user_point

    rep_path = run_dir / "report.json"
    if not rep_path.is_file():
        raise EdgekdError("no report.json in this folder", where=str(run_dir),
                          fix="give a run directory written by `edgekd run` (runs/<name>)")
    if not reports.is_dir():
        raise EdgekdError("--reports must be a folder", where=str(reports),
                          fix="the folder holding <model>/…/<top>_prj/solution1/syn/report/<top>_csynth.xml")
    run = json.loads(rep_path.read_text())
    figs = [f for f in run.get("fpga", []) if f["target"] == "fpga-hls"]
    if not figs:
        raise EdgekdError("the run has no fpga-hls results", where=str(run_dir), fix="enable export.hls and rerun")
    arts = {a["name"]: a for a in run.get("artifacts", []) if a.get("target") == "fpga-hls"}
    found = 0
    for f in figs:
        rep, util = find_user_report(reports, f["model"], single=len(figs) == 1)
        if rep is None:
            print(f"{f['model']}: no csynth report under {reports}/{f['model']}/ (or {f['model']}-hls/)")
            continue
        found += 1
        print(f"{f['model']}: {rep.path} ({rep.tool_version or 'HLS'}, {rep.part or '?'})")
        print(f"  {'figure':<22} {'edgekd estimate [80 %]':>30} {'report':>16}  inside")
        for label, e, g, inside in side_by_side(f, rep, util):
            print(f"  {label:<22} {e:>30} {g:>16}  {inside}")
        if append:
            art = arts.get(f["model"])
            project = Path(art["path"]) if art else None
            if project is not None and not project.is_absolute():
                project = (run_dir / project) if (run_dir / project).exists() else Path.cwd() / project
            if project is None or not (project / "firmware" / "parameters.h").is_file():
                print(f"  not appended: the exported project ({project}) has no firmware/parameters.h")
                continue
            rec = record_from_project(project, rep, f["model"], run_dir.name)
            p = append_user_point(rec, calibration)
            print(f"  appended to {p} (later estimates are fitted on it)")
    if not found:
        raise EdgekdError("no csynth report found for any student", where=str(reports),
                          fix="put each student's report under DIR/<model>/ (any depth)")
    return 0
