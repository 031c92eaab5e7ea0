"""Benchmark: the fpga-hls estimator against real hls4ml synthesis reports, leave-one-source-out → BENCHMARKS.md.

The corpus is ``hw/fpga/reports/*.json`` (:mod:`edgekd.profile.fpga_corpus`; every
record cites its repository@commit:path or paper). For every source (a repository or
paper) in turn, the calibration (:mod:`edgekd.profile.fpga_calibration`) is fitted on
all *other* sources and predicts the held-out one; nothing of the held-out source is
seen. Reported: median and 90th-percentile absolute relative error of latency, II,
LUT, FF, DSP and BRAM, split io_stream CNN / io_parallel CNN / dense, and how often the
stated 80 % interval contains the reported figure. The uncalibrated first model
(``estimate_hls_v0``, what edgekd shipped before) is run on the same records for
comparison (it has no fit, so nothing to hold out). Where ``hw/fpga/anchors/rule4ml.json`` exists
(``tools/rule4ml_anchor.py``, run in a venv of its own), rule4ml's error on the records it can express is
put next to edgekd's held-out error on the same records.

    python tools/bench_fpga_calibration.py            # writes the fpga-calibration section
    python tools/bench_fpga_calibration.py --no-write

Relative error = |estimate − reported| / max(reported, 1): a design reported at 0 or 1
cycle counts a one-cycle miss as 100 %.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECTION = "fpga-calibration"
SPLITS = ("all", "io_stream CNN", "io_parallel CNN", "dense")
NAMES = {"latency": "latency", "ii": "II", "lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "BRAM (18K)"}
TARGETS = {"latency": (0.15, 0.35), "ii": (0.15, 0.35), "lut": (0.30, None), "dsp": (0.30, None),
           "bram": (0.30, None), "ff": (0.40, None)}
ANCHOR_DIR = ROOT / "hw" / "fpga" / "anchors"  # predictor anchors, written by tools/rule4ml_anchor.py (own venv)
ANCHOR_KEYS = {"latency": "latency_cycles", "ii": "interval_cycles", "lut": "lut", "ff": "ff", "dsp": "dsp",
               "bram": "bram_18k"}
ANCHOR_SPLITS = ("all", "io_parallel CNN", "dense", "exact board part")


def load_anchor(path: Path) -> dict | None:
    """A predictor's stored predictions on the corpus (``hw/fpga/anchors/<tool>.json``), or None."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"anchor {path}: {exc}")
        return None
    return data if isinstance(data.get("predictions"), dict) else None


def anchor_comparison(rows, reported_of: dict[str, dict], anchor: dict) -> dict:
    """The anchor's error next to edgekd's held-out error on the same records and figures.

    ``rows``: edgekd's leave-one-source-out rows (``id``, ``metric``, ``regime``, ``abs_rel_error``);
    ``reported_of``: record id → its ``reported`` dict. A record/figure counts only where both edgekd
    and the anchor give a figure and the report states it. Error = |x − reported| / max(reported, 1), as
    for edgekd."""
    from edgekd.profile import fpga_calibration as cal

    preds = anchor["predictions"]
    out: dict[str, dict] = {}
    for m in cal.METRICS:
        for s in ANCHOR_SPLITS:
            ours, theirs, ids = [], [], set()
            for row in rows:
                p = preds.get(row.id)
                if row.metric != m or p is None or p.get(ANCHOR_KEYS[m]) is None:
                    continue
                if s == "exact board part" and p.get("board_match") != "exact":
                    continue
                if s not in ("all", "exact board part") and row.regime != s:
                    continue
                rep = reported_of.get(row.id, {}).get(cal.REPORTED[m])
                if rep is None:
                    continue
                ours.append(row.abs_rel_error)
                theirs.append(abs(float(p[ANCHOR_KEYS[m]]) - rep) / max(rep, 1))
                ids.add(row.id)
            if ours:
                out.setdefault(m, {})[s] = {"edgekd": stats(ours), "anchor": stats(theirs), "records": len(ids)}
    return out


def anchor_meta(anchor: dict) -> dict:
    """What the table says about an anchor besides its errors (everything but the predictions, and their count)."""
    return {**{k: v for k, v in anchor.items() if k != "predictions"}, "n_predictions": len(anchor["predictions"])}


def render_anchor(name: str, anchor: dict, cmp: dict) -> list[str]:
    """The side-by-side table (edgekd held out vs the anchor) as markdown lines; ``anchor`` is :func:`anchor_meta`."""
    n_rec = anchor["n_predictions"]
    sk = anchor.get("skipped", {})
    L = [f"**Predictor anchor: {name} {anchor.get('version', '')}** ({anchor.get('model', '')}; predictions "
         f"stored in `hw/fpga/anchors/{name}.json`, generated {anchor.get('generated', '?')} by "
         f"`tools/{name}_anchor.py` in a venv of its own — {name} is not a dependency of edgekd). It could express "
         f"{n_rec} of the corpus's records; skipped: "
         + ("; ".join(f"{k} {v}" for k, v in sk.items()) or "none") + ". Same records, same figures, same error "
         "measure; edgekd's column is its leave-one-source-out error on exactly these records. "
         f"{name}'s error is **not held out in that sense**: it was trained on its own synthesis data set "
         "(wa-hls4ml: hls4ml designs at a 10 ns clock, io_parallel), which may overlap designs like the hls4ml "
         "tutorial models here; most of these records were synthesised at 5 or 25 ns, and rule4ml's board input "
         "is one of four (a part that is the same die as one of them, e.g. xcvu13p as alveo-u250, counts; the row "
         "*exact board part* keeps only records on one of its four parts). Latency and II are compared with the "
         "report's max, as edgekd's are (rule4ml's CYCLES and INTERVAL are trained on the mean of min and max; the "
         "two are equal, or 1–2 cycles apart, in the records compared here); small designs of 0–13 cycles make a few cycles' miss a "
         "large relative error for either predictor.", "",
         f"| figure | records | n | edgekd median (held out) | edgekd p90 | {name} median | {name} p90 |",
         "|---|---|---|---|---|---|---|"]
    for m in ("latency", "ii", "lut", "ff", "dsp", "bram"):
        for s in ANCHOR_SPLITS:
            c = cmp.get(m, {}).get(s)
            if not c:
                continue
            e, a = c["edgekd"], c["anchor"]
            L.append(f"| {NAMES[m]} | {s} | {e['n']} | {_pct(e['median'])} | {_pct(e['p90'])} | "
                     f"{_pct(a['median'])} | {_pct(a['p90'])} |")
    return L


def old_estimates(rec) -> dict[str, float] | None:
    """The first (uncalibrated) model on one record, in the corpus's units."""
    from edgekd.errors import EdgekdError
    from edgekd.profile.fpga_estimate import HlsConfig, HlsLayer, estimate_hls_v0

    layers = []
    for l in rec.hls_layers():
        kind = l.kind if l.kind in ("dense", "conv1d", "conv2d", "pool", "softmax", "flatten") else "act"
        layers.append(HlsLayer(l.name, kind, l.in_shape, l.out_shape, kernel=l.kernel, stride=l.stride,
                               reuse_factor=l.reuse_factor, stream_words=l.stream_words))
    bits = max((l.weight_bits or 0 for l in rec.hls_layers()), default=0) or 16
    strat = rec.strategy if rec.strategy in ("Latency", "Resource") else "Latency"
    cfg = HlsConfig(io_type=rec.io_type, strategy=strat, reuse_factor=int(rec.hls4ml.get("reuse_factor") or 1),
                    weight_bits=bits, act_bits=bits)
    try:
        e = estimate_hls_v0(layers, cfg, clock_mhz=1000.0 / rec.clock_ns)
    except (EdgekdError, ValueError, ZeroDivisionError):
        return None
    return {"latency": e.latency_cycles, "ii": e.ii_cycles, "lut": e.lut, "ff": e.ff, "dsp": e.dsp,
            "bram": 2 * e.bram_36k}


def study_student() -> list[dict]:
    """The study's student (cellsort-cnn, 48×48) on the KU035 with the recipe's hls4ml settings
    (Vitis, io_stream, Resource, reuse_factor auto, 16 bits) and with the Latency strategy."""
    from edgekd.hwtargets import load_fpga
    from edgekd.nets.students import cellsort_cnn
    from edgekd.profile.first_pixel import fastest_fitting_reuse, stream_first_pixel
    from edgekd.profile.fpga_estimate import HlsConfig, estimate_hls_v0, layers_from_torch

    target = load_fpga("xcku035-fbva676-2-e")
    layers = layers_from_torch(cellsort_cnn(2, 1, 48), (1, 48, 48))
    out = []
    for strat in ("Resource", "Latency"):
        cfg = HlsConfig(io_type="io_stream", strategy=strat, reuse_factor=1, weight_bits=16, act_bits=16,
                        backend="Vitis")
        cfg.layer_reuse = fastest_fitting_reuse(layers, cfg, target)
        fp, est = stream_first_pixel(layers, cfg, target, model="cellsort-cnn")
        old = estimate_hls_v0(layers, cfg, target)
        out.append({"strategy": strat, "reuse": cfg.layer_reuse, "first_pixel_us": fp.first_pixel_to_decision_us,
                    "first_pixel_interval_us": fp.details["first_pixel_to_decision_interval_us"],
                    "csynth_range_us": fp.details.get("csynth_latency_range_us"),
                    "latency": est.interval_text("latency_cycles", "cycles"), "ii": est.interval_text("ii_cycles"),
                    "dsp": est.interval_text("dsp"), "lut": est.interval_text("lut"),
                    "bram_36k": est.interval_text("bram_36k"), "percent_upper": est.percent_upper(),
                    "fits": est.fits(), "old_latency_cycles": old.latency_cycles, "old_dsp": old.dsp})
    return out


def source_weighted(rows) -> dict:
    """Median, p90 and coverage with every source weighing the same (hls4ml's 60 CI designs count as one)."""
    import numpy as np

    if not rows:
        return {"n": 0}
    count: dict[str, int] = {}
    for r in rows:
        count[r.group] = count.get(r.group, 0) + 1
    e = np.array([r.abs_rel_error for r in rows])
    w = np.array([1.0 / count[r.group] for r in rows])
    order = np.argsort(e)
    cum = (np.cumsum(w[order]) - 0.5 * w[order]) / w.sum()
    q = lambda x: float(np.interp(x, cum, e[order]))  # noqa: E731
    return {"n": len(rows), "sources": len(count), "median": q(0.5), "p90": q(0.9),
            "coverage": float(sum(wi for r, wi in zip(rows, w) if r.inside) / w.sum())}


def stats(errs: list[float]) -> dict:
    import numpy as np

    if not errs:
        return {"n": 0}
    return {"n": len(errs), "median": float(np.median(errs)), "p90": float(np.quantile(errs, 0.9))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-fpga-calibration")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--anchors", type=Path, default=ANCHOR_DIR, help="folder of predictor anchors (<tool>.json)")
    args = ap.parse_args(argv)

    from edgekd.profile import fpga_calibration as cal
    from edgekd.profile.fpga_corpus import load_corpus

    t0 = time.perf_counter()
    corpus = load_corpus(user=False)
    recs = cal.usable(corpus)
    rows, _ = cal.cross_validate(recs)
    by_id = {r.id: r for r, _ in recs}
    new: dict[str, dict[str, list[float]]] = {s: {m: [] for m in cal.METRICS} for s in SPLITS}
    inside: dict[str, dict[str, list[bool]]] = {s: {m: [] for m in cal.METRICS} for s in SPLITS}
    per_source: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for s in ("all", row.regime):
            new[s][row.metric].append(row.abs_rel_error)
            inside[s][row.metric].append(row.inside)
        per_source.setdefault(row.group, {}).setdefault(row.metric, []).append(row.abs_rel_error)
    old: dict[str, dict[str, list[float]]] = {s: {m: [] for m in cal.METRICS} for s in SPLITS}
    old_rows = []
    for r, _ in recs:
        est = old_estimates(r)
        if est is None:
            continue
        for m in cal.METRICS:
            rep = r.reported.get(cal.REPORTED[m])
            if rep is None:
                continue
            e = abs(est[m] - rep) / max(rep, 1)
            old_rows.append({"id": r.id, "metric": m, "reported": rep, "estimated": est[m], "abs_rel_error": e})
            for s in ("all", r.regime):
                old[s][m].append(e)
    full_fit = cal.fit(recs)
    result = {
        "corrected": {m: bool(full_fit.corrected.get(m)) for m in cal.METRICS},
        "corpus": {"records": len(corpus), "used": len(recs), "excluded": [r.id for r in corpus if r.excluded],
                   "sources": sorted({r.group for r, _ in recs}),
                   "by_regime": {s: sum(1 for r, _ in recs if r.regime == s) for s in SPLITS[1:]},
                   "tools": sorted({f"{r.tool} {r.tool_version}" for r, _ in recs})},
        "new": {s: {m: {**stats(new[s][m]), "coverage": (sum(inside[s][m]) / len(inside[s][m]) if inside[s][m] else None)}
                    for m in cal.METRICS} for s in SPLITS},
        "old": {s: {m: stats(old[s][m]) for m in cal.METRICS} for s in SPLITS},
        "per_source": {g: {m: stats(v) for m, v in d.items()} for g, d in per_source.items()},
        "source_weighted": {m: source_weighted([row for row in rows if row.metric == m]) for m in cal.METRICS},
        "rows": [dict(vars(r), abs_rel_error=r.abs_rel_error, inside=r.inside) for r in rows],
        "old_rows": old_rows,
        "seconds": time.perf_counter() - t0,
        "anchors": {"rule4ml": "not run: rule4ml 0.2.0 pulls TensorFlow 2.21, Keras 3, torch-geometric and "
                               "pandas into the environment, so it is run in a venv of its own by "
                               "tools/rule4ml_anchor.py, and hw/fpga/anchors/rule4ml.json is not there",
                    "wa-hls4ml": "not on the package index (pip: no matching distribution)"},
    }
    r4 = load_anchor(args.anchors / "rule4ml.json")
    if r4 is not None:
        reported_of = {r.id: r.reported for r, _ in recs}
        result["anchor_rule4ml"] = {"meta": anchor_meta(r4),
                                    "comparison": anchor_comparison(rows, reported_of, r4)}
        result["anchors"]["rule4ml"] = (
            f"run ({r4.get('version')}, {str(r4.get('model', '')).split(' (')[0]}) on the "
            f"{len(r4['predictions'])} records it can express, table above")
    try:
        result["study"] = study_student()
    except Exception as exc:  # noqa: BLE001 - the table still stands
        result["study"] = []
        print(f"study student: {exc}")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(result, indent=1, default=str))
    body = render(result, by_id)
    print(body)
    if not args.no_write:
        from edgekd.report.benchmarks_md import write_section

        write_section(args.out, SECTION, body)
    return 0


def _pct(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:,.0f} %"


THIS_ROUND = (
    "How the figures above were reached, this round (branch issue14c): ten more sources, each first held out by the "
    "model as it stood (commit 1f4b3d1) — the fairest figure here of designs from new sources: uw-acme/HLS4ML_VS_MANUAL "
    "(an io_stream Resource QKeras CNN, Vivado HLS 2019.1; nine recurrent GRU/LSTM designs of the same repository are "
    "kept but excluded: hls4ml's recurrent templates are not modelled), uw-acme/HLS4ML_-NeutDetector (3 io_stream "
    "Conv1D designs, Vivado HLS 2019.2), abdennour-GUESSOUM/Lenet5-hls4ml (8-bit QKeras LeNet-5, Vitis HLS 2023.2), "
    "Spehic/Diplomska-hls4ml (4-bit pruned QKeras CNN, Vivado HLS 2020.1), Lrozzy/hls4ml-tutorial and "
    "MinhNguy3n/hls4ml-tutorial (pruned, quantized MLPs, Vitis HLS 2024.1 / 2024.2; their copies of the tutorial's "
    "committed CNN report are excluded), Thifjj/Iris_hls4ml_pynqZ2 (Iris MLP, Vitis HLS 2025.1 on the Zynq-7020), "
    "kojos03/fpga_cnn_hls4ml (a small CNN, Vitis HLS 2024.2), calwilee/hls4ml-automated-testing (SeparableConv2D "
    "with ParallelizationFactor 4, Vivado HLS 2020.1) and kendermag/hls4ml-tutorial (a 6-bit QKeras CNN, Vivado HLS "
    "2019.1 for the Zynq-7020); every one's firmware/nnet_utils is hls4ml's own (blob for blob, "
    "except kojos03's, which could only be read file by file: its report's instances are hls4ml's). Median over the "
    "ten new sources of each source's held-out median error, model as it stood → this round's model: latency 13 → 11 %, "
    "II 2 → 0 %, LUT 53 → 49 %, FF 69 → 55 %, DSP 51 → 51 %, BRAM 22 → 22 %; of their 72 held-out figures, 58 and 57 "
    "fall inside the stated 80 % interval. On the whole corpus (140 records, 25 sources) the model as it stood held "
    "out: latency 4 % / p90 67 % (each source weighted equally 17 % / 81 %), II 0 % / 29 % (0 % / 57 %), LUT 35 % / 91 % "
    "(41 % / 93 %), FF 46 % / 415 % (51 % / 400 %), DSP 10 % / 102 % (47 % / 8,550 %), BRAM 0 % / 50 % (29 % / 70 %). This round's changes, each kept only because the held-out "
    "error fell (figures as measured when each was adopted, on the corpus of that moment): (11) io_parallel convolutions follow hls4ml's ParallelizationFactor (`n_partitions` in parameters.h: "
    "conv_2d_latency_cl loops over n_partitions at II = RF, computing out_px / n_partitions pixels side by side; "
    "calwilee: II 36 → 9, as reported); (12) a part's speed grade scales the delays by the ratio of DSP48 datasheet "
    "Fmax to UltraScale+ -2 (Zynq-7020 -1 ×1.67, Kintex-7/Virtex-7 -2 ×1.19, UltraScale -2 ×1.17; latency p90 "
    "weighted by source 81 → 71 % and its coverage 74 → 78 %, FF neutral); (13) the per-regime correction is fitted "
    "by Huber's M-estimator instead of least squares, so that one design missed 10× no longer swings every other "
    "source's correction (adding calwilee's one record had moved pominiq's held-out FF by 2×): LUT median 35 → 32 %, "
    "FF 52 → 43 %, weighted by source LUT 40 → 34 %, FF 58 → 53 %, while the tails widen (LUT p90 91 → 101 %, FF p90 "
    "395 → 460 %); (14) parameters.h's hard_tanh / hard_sigmoid configs (a struct with no base) and layers named "
    "depthwise are read. Tried and dropped: the tool's default clock uncertainty as the io_parallel chaining budget "
    "(Vitis 27 %, Vivado 12.5 % of the period; latency weighted by source 10 → 13 %); a near-zero DSP share for "
    "products of two ≤ 8-bit operands (the corpus records no per-layer data width, and ML_FPGAonPixel's 8-bit "
    "weights on 16-bit data bind 22 % of their products to DSPs). The largest misses among the new sources, not "
    "modelled: kojos03's stream softmax spends 1,053 of its 1,072 cycles initialising its tables (hls4ml's 'stable' "
    "softmax, Vitis HLS 2024.2), which no other Vitis stream softmax in the corpus does (taitashaw 20 cycles in all, "
    "seanlipps, Lenet5); the Zynq-7020 MLPs of Thifjj and MinhNguy3n take 32 and 41 cycles where the model says 10 "
    "and 9 (with their FF 10× the model's): even with (12), Vitis pipelines them far deeper on the slow part; "
    "narrow-weight designs (Lenet5 8-bit, RHEED 8-bit, MinhNguy3n 7–9-bit, Lrozzy's HGQ layers) report 2–50 DSPs "
    "where the model binds hundreds.")


def still_worse(r: dict) -> str:
    """Which targets the held-out figures miss (from this run's table), and why."""
    miss = []
    for m in ("latency", "ii", "lut", "ff", "dsp", "bram"):
        tmed, tp90 = TARGETS[m]
        for label, v in (("by record", r["new"]["all"][m]), ("each source weighted equally", r["source_weighted"][m])):
            if not v.get("n"):
                continue
            if v["median"] > tmed:
                miss.append(f"{NAMES[m]} median {_pct(v['median'])} {label} (target {_pct(tmed)})")
            if tp90 is not None and v["p90"] > tp90:
                miss.append(f"{NAMES[m]} p90 {_pct(v['p90'])} {label} (target {_pct(tp90)})")
    return ("Where it is still worse than the targets, and why. Missed in this run: " + "; ".join(miss) + ". "
            "Latency p90 — most misses are designs of 0–7 cycles where one cycle is 15–100 % (whether the tool "
            "registers a chain that nearly fills a period is not predictable from a delay model: the 40 MHz MLPs of "
            "ML_FPGAonPixel are 0 or 1 cycle), the Zynq-7020 MLPs above, Vivado HLS 2020.1 'same'-padded average "
            "pooling dividing by the count of valid pixels (a ~21-cycle divider Vitis folds away; not modelled), "
            "kojos03's softmax tables, and two PokerML Latency-strategy CNNs at RF 256 that run at ~15 cycles a pixel "
            "where the allocation model says ~6. LUT and FF — narrow-weight and HGQ designs report a fraction (or, "
            "in LUTs, a multiple) of the model's figures: how the tool binds each constant product depends on the "
            "weight values and each layer's data width, which the corpus does not hold; very wide accumulators "
            "(calwilee's ap_fixed<78,40>: 734,783 LUT for a small SeparableConv2D) are not costed by width; FF counts "
            "vary 10× between tool versions and parts for the same structure (pipeline registers of the Zynq-7020 "
            "designs, io_parallel Resource convolutions over-counted 20×). DSP weighted by source — several "
            "single-design sources sit on a miss of their own (thaarres, Brainz22, RHEED, Lenet5, Lrozzy, MinhNguy3n "
            "report 0–50 DSPs for ≤ 9-bit or HGQ weights where the model binds some). BRAM weighted by source — "
            "line buffers and ROMs of small designs (tens of BRAMs) are off by a few, which is 30–60 %. No per-regime "
            "correction learned on other sources removes these, so their 80 % intervals are wide and are the honest "
            "figure. Neither the Vitis Resource numbers nor the study's student have been checked against a "
            "synthesis run by us: no Vivado/Vitis here.")


def render(r: dict, by_id: dict) -> str:
    c = r["corpus"]
    L = ["## FPGA estimate vs real hls4ml synthesis (`tools/bench_fpga_calibration.py`)", "",
         f"Corpus `hw/fpga/reports/`: {c['used']} C-synthesis results used ({c['records']} transcribed, "
         f"{len(c['excluded'])} kept but excluded with their reason) from {len(c['sources'])} sources "
         f"({', '.join(c['sources'])}); {c['by_regime']['io_stream CNN']} io_stream CNNs, "
         f"{c['by_regime']['io_parallel CNN']} io_parallel CNNs / pooling, {c['by_regime']['dense']} dense-only "
         f"designs; tools: {', '.join(c['tools'])}. Every record cites repository@commit:path.", "",
         "**New** = `edgekd.profile.fpga_estimate.estimate_hls`: the structural model of what hls4ml's "
         "templates generate (`edgekd.profile.hls_model`), with a per-regime ridge correction applied to a figure "
         "only where an inner leave-one-source-out on the training sources says it helps (in the fit on the whole "
         "corpus: " + (", ".join(NAMES[m] for m, v in r["corrected"].items() if v) or "none") + "; the others are "
         "the structural figure as is), **leave-one-source-out**: each repository is predicted by a fit on the "
         "others only. **Old** = the first, uncalibrated model (`estimate_hls_v0`) on the same records. Latency "
         "and II are compared with the report's max: where a design's latency is data-dependent (Resource-strategy "
         "stream convolutions), C synthesis states a min–max range and the estimate carries both "
         "(`latency_range_cycles`). Error = |estimate − reported| / max(reported, 1); *in 80 %* = share of "
         "held-out reports inside the stated 80 % interval (quantiles of the other sources' held-out residuals, "
         "every source weighted equally). The per-record figures are dominated by hls4ml's 60 small CI designs; "
         "the rows *each source weighted equally* are the fairer figure for a design from a new source. Targets (issue 14): latency and II median ≤ 15 %, p90 ≤ 35 %; "
         "LUT, DSP, BRAM median ≤ 30 %; FF median ≤ 40 %.", ""]
    L += ["| figure | split | n | new median | new p90 | in 80 % | old median | old p90 | target met |",
          "|---|---|---|---|---|---|---|---|---|"]
    for m in ("latency", "ii", "lut", "ff", "dsp", "bram"):
        for s in SPLITS:
            n = r["new"][s][m]
            o = r["old"][s][m]
            if not n.get("n"):
                continue
            tmed, tp90 = TARGETS[m]
            met = n["median"] <= tmed and (tp90 is None or n["p90"] <= tp90)
            L.append(f"| {NAMES[m]} | {s} | {n['n']} | {_pct(n['median'])} | {_pct(n['p90'])} | "
                     f"{_pct(n.get('coverage'))} | {_pct(o.get('median'))} | {_pct(o.get('p90'))} | "
                     f"{'yes' if met else '**no**'} |")
            if s == "all" and r.get("source_weighted", {}).get(m, {}).get("n"):
                w = r["source_weighted"][m]
                tmed, tp90 = TARGETS[m]
                met = w["median"] <= tmed and (tp90 is None or w["p90"] <= tp90)
                L.append(f"| {NAMES[m]} | all, each of the {w['sources']} sources weighted equally | {w['n']} | "
                         f"{_pct(w['median'])} | {_pct(w['p90'])} | {_pct(w['coverage'])} | | | "
                         f"{'yes' if met else '**no**'} |")
    L += ["", "Held-out latency error by source (median / p90, new model):", ""]
    L += ["| source | records | latency median | latency p90 | DSP median | LUT median |", "|---|---|---|---|---|---|"]
    for g, d in sorted(r["per_source"].items()):
        lat, dsp, lut = d.get("latency", {}), d.get("dsp", {}), d.get("lut", {})
        L.append(f"| {g} | {lat.get('n', 0)} | {_pct(lat.get('median'))} | {_pct(lat.get('p90'))} | "
                 f"{_pct(dsp.get('median'))} | {_pct(lut.get('median'))} |")
    L += ["", "**The study's student on the KU035** (cellsort-cnn, 48×48 camera image, 16-bit, Vitis HLS, "
          "io_stream, reuse factors chosen by `reuse_factor: auto` so that the *upper end* of the DSP interval fits; "
          "first pixel to decision over the target's pixel bus; the study measured 14.5 µs):", "",
          "| strategy | reuse (layer: RF) | first pixel → decision | latency | II | DSP | LUT | BRAM36 | "
          "upper end % LUT / DSP / BRAM | old model |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["study"]:
        lo, hi = x["first_pixel_interval_us"]
        pu = x["percent_upper"]
        cs = x.get("csynth_range_us")
        cs_s = f" (C synthesis would state {cs[0]:.1f}–{cs[1]:.1f} µs: data-dependent)" if cs else ""
        L.append(f"| {x['strategy']}{' (the recipe)' if x['strategy'] == 'Resource' else ''} | {x['reuse']} | "
                 f"**{x['first_pixel_us']:.1f} µs [{lo:.1f}–{hi:.1f}], 80 %**{cs_s} | {x['latency']} | {x['ii']} | "
                 f"{x['dsp']} | {x['lut']} | {x['bram_36k']} | {pu.get('lut', 0):.0f} / {pu.get('dsp', 0):.0f} / "
                 f"{pu.get('bram_36k', 0):.0f} % ({'fits' if x['fits'] else 'does not fit'}) | "
                 f"{x['old_latency_cycles']:,} cycles, {x['old_dsp']:,} DSP |")
    a = r["anchors"]
    if r.get("anchor_rule4ml"):
        L += [""] + render_anchor("rule4ml", r["anchor_rule4ml"]["meta"], r["anchor_rule4ml"]["comparison"])
        L += ["", f"Predictor anchors: rule4ml — {a['rule4ml']}; wa-hls4ml — {a['wa-hls4ml']} (its data set is "
              "what rule4ml's estimators were trained on).", ""]
    else:
        L += ["", f"Predictor anchors: rule4ml — {a['rule4ml']}; wa-hls4ml — {a['wa-hls4ml']}. Neither appears in "
              "the table.", ""]
    L += [
          THIS_ROUND, "",
          "Earlier rounds, and what is not independent: the corpus grew by three sources "
          "(ChiRuiChen/Face_detection_HLS, taitashaw/hls4ml-fpga-classifier with Vitis HLS 2025.2, thaarres/dnd_hls4ml); "
          "Face_detection_HLS, ChiRuiChen/Deepcalo_Linchi and crimson1256/hls4ml_modified_yolo_v3_tiny are kept but "
          "excluded: their reports' instances (conv_2d_cl_me, relu_me, pooling2d_large_cl_nopad_pad_me) come from a "
          "modified hls4ml with element-serial templates that hls4ml 1.3.0 does not contain. Held out by the model "
          "as it stood before that round, the two new usable sources were off by: taitashaw latency 15 %, II 86 %, "
          "LUT 33 %, FF 1,123 %, DSP 11 %; thaarres latency 0 %, LUT 93 %, FF 46 %, DSP 79 vs 0 reported. On that "
          "corpus the previous calibrated model (commit 69f334b) "
          "had, held out: latency 18 % / p90 100 % (77 % inside its 80 % interval), II 8 % / 100 %, LUT 70 % / 179 %, "
          "FF 68 % / 606 %, DSP 25 % / 67 %, BRAM 25 % / 111 %. The changes since, each kept only because the held-out "
          "error fell (for (5): the interval coverage rose): (1) the correction is used per figure only where an inner leave-one-source-out says it helps — "
          "held out, the old correction had made latency, II, LUT, DSP and BRAM worse than the structural model "
          "alone; (2) C synthesis's data-dependent range for Resource-strategy stream convolutions (RF + 5 Vitis / "
          "RF + 6 Vivado cycles for a pixel through the RF loop, 4 for the others; the report's max assumes every "
          "pixel goes through it — the issue's mechanism 1, seen in the per-layer min/max of pominiq, PokerML and "
          "ML_FPGAonPixel); (3) Vitis HLS restarts a stream process only when its call is done, so its interval is "
          "the slowest process's latency + 1 (seen in taitashaw and the hls4ml CI Vitis reports); (4) the Latency "
          "strategy at RF > 1 is bounded by hls4ml's `ALLOCATION mul limit=multiplier_limit`, not by II = RF (read "
          "in nnet_dense_latency.h, checked on pominiq, PokerML, Hector-Plata), and io_parallel pointwise "
          "convolutions compute all pixels in one call (Brainz22); (5) interval quantiles weight each source "
          "equally; (6) io_parallel layers that fit a clock period chain with their neighbours (the 40 MHz MLPs "
          "of ML_FPGAonPixel run in 0–1 cycles); chaining with only floor or only ceil rounding was tried and "
          "dropped; (7) LUT: the Latency strategy at RF > 1 keeps its whole unrolled adder tree and multiplexes "
          "both operands into the allocated multipliers, the Resource strategy multiplexes the data operand and reads "
          "weights from a LUT ROM (both read in the templates); (8) BRAM: stream FIFOs map onto 18K BRAM by aspect "
          "ratio, one FIFO per channel in Vivado HLS and one packed FIFO in Vitis HLS (the FIFO tables of pominiq's "
          "and taitashaw's reports); (9) FF: ~46 per Vivado FIFO and ~99 per Vitis FIFO whatever its width (same "
          "tables), and none for pipeline stages in a design that schedules in 0 cycles (hls4ml CI); (10) the "
          "interval's quantile levels are widened by (n + 1)/n over the n sources (split-conformal correction). "
          "Tried and dropped for no held-out gain: accumulator-width (accum_t) adders, io_parallel convolution "
          "output registers counted once, 0.1 FF per product for stream dense layers. The sources named in (2)–(4) and (6)–(9) are therefore not independent of those mechanisms; the other "
          "constants come from hls4ml's templates or were fixed before (Vitis Resource at RF 1: 2.5 / 1.5 cycles, "
          "ML_FPGAonPixel; Vitis Latency floor of 3 cycles a pixel, ECE226_CoDesign; narrow variable multiplies in "
          "DSPs, PokerML).",
          "",
          still_worse(r),
          "", "The `fpga` section (`tools/bench_fpga.py`) shows the registry's students with these intervals.",
          "", f"Reproduce: `python tools/bench_fpga_calibration.py` ({r['seconds']:.0f} s).", ""]
    return "\n".join(L)


if __name__ == "__main__":
    raise SystemExit(main())
