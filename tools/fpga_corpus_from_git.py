"""Transcribe the synthesis results committed in a git repository into the FPGA calibration corpus.

Many public repositories commit a whole hls4ml project next to its C-synthesis report
(``<prj>/firmware/parameters.h``, ``<prj>/hls4ml_config.yml``,
``<prj>/myproject_prj/solution1/syn/report/myproject_csynth.rpt``). This walks a bare git
directory's history, and for every distinct top-level report whose project files exist at
the same commit writes one corpus record: the layers as hls4ml configured them (from
``parameters.h``, via :mod:`edgekd.profile.hls_project`), the configuration, the tool
and the reported numbers, citing ``repository@commit:path``. Only facts and numbers
are written; nothing of the repository's code.

    python tools/fpga_corpus_from_git.py GIT_DIR owner/name --out hw/fpga/reports/owner_name.json
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPORT = re.compile(r"(^|.*/)(\w+)_prj/solution1/syn/report/(\2)_csynth\.(rpt|xml)$")


def git(gd: str, *args: str) -> str:
    return subprocess.run(["git", "-C", gd, *args], capture_output=True, text=True, check=False).stdout


def tool_of(text: str) -> tuple[str, str]:
    tool = "Vitis HLS" if "Vitis HLS Report" in text or "<ProductFamily" in text and "vitis" in text.lower() else "Vivado HLS"
    m = re.search(r"Version:\s*(\d{4}\.\d)", text) or re.search(r"<Version>(\d{4}\.\d)", text)
    ver = m.group(1) if m else "unknown"
    if tool == "Vivado HLS" and ver >= "2020.2" and ver != "unknown":
        tool = "Vitis HLS"
    return tool, ver


def record(gd: str, repo: str, commit: str, rpt_path: str) -> dict | None:
    from edgekd.export.vendor_reports import parse_csynth_rpt, parse_csynth_xml
    from edgekd.profile.fpga_corpus import layer_dicts
    from edgekd.profile.hls_project import parse_parameters

    m = REPORT.match(rpt_path)
    prj = m.group(1) if m else ""
    params = git(gd, "show", f"{commit}:{prj}firmware/parameters.h")
    if not params:
        return None
    defines = git(gd, "show", f"{commit}:{prj}firmware/defines.h")
    top = m.group(2) if m else "myproject"
    cpp = git(gd, "show", f"{commit}:{prj}firmware/{top}.cpp")  # the calls give each layer's data/result widths
    text = git(gd, "show", f"{commit}:{rpt_path}")
    with tempfile.NamedTemporaryFile("w", suffix=Path(rpt_path).suffix, delete=False) as fh:
        fh.write(text)
    try:
        rep = parse_csynth_xml(Path(fh.name)) if rpt_path.endswith(".xml") else parse_csynth_rpt(Path(fh.name))
    except Exception as exc:  # noqa: BLE001
        print(f"skip {commit[:8]}:{rpt_path}: {exc}", file=sys.stderr)
        return None
    finally:
        Path(fh.name).unlink()
    try:
        layers, _ = parse_parameters(params, defines, cpp)
    except (ValueError, KeyError, TypeError) as exc:  # a layout parameters.h reader does not know: skip, invent nothing
        print(f"skip {commit[:8]}:{rpt_path}: parameters.h not read ({exc})", file=sys.stderr)
        return None
    code_gen = git(gd, "show", f"{commit}:{prj}firmware/nnet_utils/nnet_code_gen.h")
    if code_gen and cpp:  # distributed arithmetic: its dense layers live in the generated kernels
        from edgekd.profile.hls_project import with_da_layers

        layers = with_da_layers(layers, cpp, code_gen, params)
    if not layers:
        return None
    import yaml

    class _L(yaml.SafeLoader):
        pass

    _L.add_multi_constructor("", lambda loader, suffix, node: None)
    try:
        cfg = yaml.load(git(gd, "show", f"{commit}:{prj}hls4ml_config.yml") or "{}", Loader=_L) or {}
    except yaml.YAMLError:
        cfg = {}
    model = (cfg.get("HLSConfig") or {}).get("Model") or {}
    comp = [l for l in layers if l.kind in ("dense", "conv1d", "conv2d")]
    # what hls4ml wrote into the compute layers' configs wins over the model-level setting
    layer_strats = [l.strategy for l in comp if l.strategy]
    strat = (max(set(layer_strats), key=layer_strats.count) if layer_strats
             else model.get("Strategy") or "latency")
    strat = {"latency": "Latency", "resource": "Resource"}.get(str(strat).lower(), strat)
    if str(strat).lower().startswith("distributed"):
        strat = "distributed_arithmetic"
    io = cfg.get("IOType")
    if io is None:
        io = "io_stream" if "io_stream" in params else "io_parallel"
    tool, ver = tool_of(text)
    date = git(gd, "log", "-1", "--format=%cs", commit).strip()  # (git show -s fails where a snapshot lacks a big blob)
    return {
        "id": f"{repo.replace('/', '_')}-{prj.strip('/').replace('/', '_') or 'root'}-{commit[:8]}",
        "source": f"{repo}@{commit}:{rpt_path}",
        "tool": tool, "tool_version": ver, "part": rep.part or cfg.get("Part") or cfg.get("XilinxPart") or "",
        "clock_ns": float(rep.target_clock_ns or cfg.get("ClockPeriod") or 5.0),
        "hls4ml": {"backend": cfg.get("Backend", "Vivado"), "io_type": io, "strategy": strat,
                   "reuse_factor": model.get("ReuseFactor"), "precision": model.get("Precision")},
        "layers": layer_dicts(layers),
        "reported": {"latency_min": rep.latency_min, "latency_max": rep.latency_max, "ii_min": rep.interval_min,
                     "ii_max": rep.interval_max, "lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp,
                     "bram_18k": rep.bram_18k, "uram": rep.uram},
        "notes": f"project files and report at the same commit ({date}); layers read from {prj}firmware/parameters.h"
                 + (f" (widths from defines.h and the calls in {prj}firmware/{top}.cpp)" if cpp else ""),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("git_dir")
    ap.add_argument("repo", help="owner/name, for the citation")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--id", default=None, help="source id (default: owner_name)")
    args = ap.parse_args(argv)
    gd = args.git_dir
    seen_blobs: set[str] = set()
    recs = []
    commits = git(gd, "log", "--all", "--format=%H").split()
    for c in commits:
        for line in git(gd, "ls-tree", "-r", c).splitlines():
            meta, path = line.split("\t", 1)
            if not REPORT.match(path) or not path.endswith(".rpt"):
                continue
            blob = meta.split()[2]
            if blob in seen_blobs:
                continue
            seen_blobs.add(blob)
            r = record(gd, args.repo, c, path)
            if r is not None and r["reported"]["latency_max"] is not None:
                recs.append(r)
    # the same report and project at several commits: keep one record per distinct result
    uniq, keys = [], set()
    for r in recs:
        k = json.dumps([r["layers"], r["reported"]], sort_keys=True)
        if k not in keys:
            keys.add(k)
            uniq.append(r)
    sid = args.id or args.repo.replace("/", "_")
    data = {"source": {"id": sid, "repository": args.repo,
                       "note": "numbers transcribed from committed csynth reports; layers from the project's "
                               "parameters.h at the same commit"},
            "records": uniq}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(uniq)} records -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
