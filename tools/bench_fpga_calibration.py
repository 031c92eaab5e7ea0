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
    "How the figures above were reached, this round (2026-11-30, fifth session; no new sources, 173 records from 36 "
    "sources as before, then 174 with (31); two changes to the FF model and one to distributed arithmetic, "
    "each read off named reports and hls4ml's templates or generated code, then checked on this cross-validation — the sources that suggested them are not independent of it; nothing fitted "
    "by search). At the start of the round FF held out 42 % / p90 221 % by record, 43 % / 239 % each source "
    "weighted equally (target: median 40 %). (29) io_parallel: a layer other than a convolution registers its "
    "output (about half its bits) at each clock edge the schedule places in it — none where it chains with its "
    "neighbours inside one period, one where its chain fills a period, its own cycles where it is registered on its "
    "own (Vitis HLS at RF > 1: the c cycles of its own II = RF pipeline; Vivado HLS: its RF 1 chain's) — not at "
    "every stage of its own pipeline depth, which counted 11 register stages for Lrozzy's 4-cycle HGQ MLP (333 FF "
    "reported, 2,767 modelled) and every layer of the 40 MHz MLPs. FF 42 / 221 → 37 / 223 % by record, 43 / 239 "
    "→ 41 / 245 % each source weighted equally; latency and the other figures unchanged. (30) A constant product "
    "in an io_stream layer (Latency strategy, RF 1: the stream convolution calls the same dense_latency kernel on "
    "each window under PIPELINE II=1) is registered like io_parallel's, 0.1 of its bits at 4 adder levels a cycle "
    "(more where fewer levels fit), not 0.6 like a real multiplier's (Resource strategy, shared multipliers at RF "
    "> 1, which keep 0.6): hls4ml's tutorial CNNs (Vivado HLS 2020.1, RF 1) had been modelled at 3.2–3.6× their "
    "reported FF (155,707 vs 52,549–54,997), taitashaw's MLP at 16×. FF 37 / 223 → 33 / 170 % by record, 41 / 245 "
    "→ 34 / 258 % each source weighted equally; the FF median target is met both ways. The per-regime correction "
    "moves with it: io_parallel CNNs, whose structural FF is close, 13 → 27 % (the correction, learned mostly on "
    "the others, now lifts them 25 %); the structural FF alone holds out 41 % / p90 89 % by record. Tried and "
    "dropped this round: a dense layer's adder tree sized by its nonzero weights per output rather than its "
    "inputs (latency each source weighted equally 10 → 12 %, FF 37 → 39 %); fabric-only products (no DSP) taking "
    "one to three adder delays instead of a multiplier's (latency 4 → 3–4 % by record, 10 → 9–11 % each source "
    "weighted equally, FF 37 → 38 %: within noise); the stream registers (kernel window, dense input vector, accumulators) sized by the "
    "layer's declared input and accumulator types instead of the design width (FF 36–39 % by record, 40–41 % "
    "each source weighted equally: no gain). (31) Distributed arithmetic, read from the generated code: with "
    "Strategy: distributed_arithmetic the installed hls4ml (1.3.0, with da4ml) writes no config struct for a dense "
    "layer but a kernel of explicit additions in firmware/nnet_utils/nnet_code_gen.h; edgekd.profile.da_codegen "
    "counts its adders and their bits (and the rounding of its quantized inputs), hls_project.read_project puts the "
    "layers where the top function calls them, and the model costs each adder as C synthesis does — W LUTs for W "
    "bits, or W + 7: a mean of W + 3.0 over the 7,542 adders of the expression tables of Lrozzy's, seanlipps's and "
    "tsopeter's Vitis HLS reports (not fitted to any DA design) — with no multiplier. The corpus's one DA design "
    "(lolbraa's HGQ2 jet MLP, Vitis HLS 2023.2: 468 adders, 5,115 bits read from its nnet_code_gen.h) is now used "
    "(174 records): held out, LUT 6,625 [inside its interval] vs 9,838 reported (structural 7,948; 596,223 "
    "before, from the products' shift-add cost at the 16-bit default width), DSP 0 vs 0, 8 vs 6 cycles (the "
    "graph's depth, 4 adder levels a layer, at one adder delay a level would give 2: timing keeps the "
    "constant-product model), FF 2,529 vs 1,746. One design: DA's error is stated, not established. io_stream "
    "DA dense layers are found through their config's dense_da; a DA convolution (its kernel computes one output "
    "pixel) is refused by name, not read. LUT median "
    "27 → 28 % by record, 29 → 30 % each source weighted equally (the new record sits at 33 %). The round "
    "before (2026-11-30, fourth session; no new sources, 173 "
    "records from 36 sources as before; each change read off named reports, then checked on this cross-validation "
    "— the sources that suggested a change are not independent of it). At the start of that round the model held out "
    "latency 8 % / p90 52 %, II 0 % / 38 %, FF 43 % / 303 % by record (sources weighted equally: latency 14 % / "
    "50 %, II 0 % / 50 %). (23) The io_parallel chaining budget loses, besides the fixed 2.3 ns overhead of (17), "
    "the tool's default clock uncertainty at slow clocks: 27 % of the period in Vitis HLS, 12.5 % in Vivado HLS, on "
    "the model's delay scale (fixed at 5 ns, where the 2.7 ns left stand for the 3.65 ns Vitis HLS schedules "
    "into); nothing fitted — the shares are the tools' defaults. ML_FPGAonPixel's 40 MHz MLPs: three chained dense "
    "layers now fill one period (1 cycle reported, 0 estimated before), two do not (0 reported and estimated); "
    "a 1-cycle design keeps only its input registers, like a 0-cycle one (613–931 FF reported). Held out: latency "
    "8 / 52 → 5 / 49 %. (24) The Latency strategy at RF > 1 in io_parallel: hls4ml inlines the layers into the top "
    "function's PIPELINE, so the layer keeps its RF 1 chain and adds the c − 1 cycles its true multiplies take on "
    "the allocated multipliers (ALLOCATION limit = ⌈n_in·n_out / RF⌉ − ⌊n_zeros / RF⌋); where the weights are "
    "known, the true multiplies are the constants of ≥ 3 canonical signed digits (the digit rule of (22)), "
    "whatever the input width. Vivado HLS pipelines the top at that pace (II = max c, not RF: Hector-Plata's "
    "PYNQ MLP at RF 64 reports II 15 = ⌈58 / 4⌉, the tutorial MLP at RF 2 II 2; pominiq's RF 16 and RF 8 MLPs at "
    "25 ns report 12 and 6 where this gives 16 and 8), with the RF 1 pipeline's registers (the tutorial MLP: "
    "8,756–8,878 FF at RF 2, 10,961–11,100 at RF 1); Vitis HLS keeps II = RF (baranyusuf's RF 16 MLP: II 16). "
    "Held out: latency 5 / 49 → 4 / 34 %, II 0 / 38 → 0 / 33 %, FF p90 303 → 258 %. The same digit count now "
    "sets io_stream Latency convolutions' allocation at RF > 1 (sources weighted equally: latency p90 45 → 41 %, "
    "II p90 49 → 43 %; PokerML's RF 128 CNN 4,332 → 8,366 cycles vs 14,674). (25) io_parallel constant products' "
    "pipeline registers scale with 4 / (adder levels a cycle): a Zynq-7020 -1 at 5 ns registers every level "
    "(tanvirana's, Thifjj's and MinhNguy3n's MLPs report 3–12× the FF the model had) — FF p90 258 → 245 %. (26) "
    "Vivado HLS io_stream Latency layers at RF > 1 register each nonzero product at about half its accumulator "
    "width until the unrolled tree takes it (pominiq's per-process report, RF 16: a 3×3×4→8 convolution 5,991 FF "
    "and a 32→10 dense 4,950, modelled 1,746 and 1,436) — FF 43 / 245 → 42 / 221 % by record, 42 / 275 → 43 / 239 % "
    "each source weighted equally; the same term in io_parallel made FF worse each source weighted equally "
    "(42 → 46 %) and was left out. (27) Vitis HLS Latency stream convolutions on ≤ 5-bit inputs reach 2 cycles a "
    "pixel, not 3 (lolbraa's HGQ2 CNNs on 4-bit inputs: 1,569 cycles for 784 pixels, their 16-bit twin 2,352; one "
    "source) — latency p90 34 → 33 %, II 33 → 32 %, II p90 each source weighted equally 43 → 38 %. (28) A dense "
    "layer registered on its own takes its multiply's whole cycles, then as many adder levels a cycle as fit (an "
    "operation is not split across a register; the delay over the period, as before, assumed it was): the "
    "Zynq-7020 -1 MLPs at 5 ns, where a period holds one adder level, come to 45 / 29 / 32 cycles (tanvirana "
    "39–47, Thifjj 32, MinhNguy3n 41 reported; 31 / 19 / 27 before); a softmax or table activation takes at least "
    "its delay over the period; and at RF > 1 (24)'s c multiply cycles overlap the RF 1 chain — the layer takes "
    "the longer of the two, not their sum (Hector-Plata's PYNQ MLP at RF 64: 53 vs 52–54 reported, 72 with the "
    "sum once (28)'s packing is in; Gabriele-bot's at RF 16–64: 76 vs 89). Held out: latency 5 / 33 → 4 / 33 % "
    "by record, 14 / 41 → 10 / 40 % each source weighted equally. Tried and "
    "dropped this round: a proportional budget without the fixed overhead (the 75 % of (17): worse, as then); "
    "the stream convolution's 2-cycle floor wherever the model binds no DSP (contradicted by Lenet5, 8-bit, 3 "
    "cycles a pixel; ML_FPGAonPixel's pruned CNN and alex-yang's Conv1D also run at ~2 with 16-bit inputs, "
    "unexplained). kojos03's 1,053-cycle softmax (a table initialisation loop in hls4ml's stream softmax, which "
    "Vitis HLS folds into a ROM in alex-yang's, seanlipps's and taitashaw's designs but not there) stays a miss. "
    "The round before (2026-11-30, third session). Four more sources (branch "
    "corpus4), each held out by the model as it stood before they were added (this round's (19)–(21) in place): "
    "Gabriele-bot/PYNQ_IA (5: io_parallel jet-tagging MLPs with the Resource strategy at RF 8–32 or Latency at RF "
    "16–64, io_stream Resource QKeras CNNs at RF 40–1,152 with 4–6-bit weights; Vivado HLS 2020.1, Zynq-7020) — "
    "latency median 25 % / p90 64 %, DSP 25 %, LUT 65 %; Lrozzy/hls4ml_OpenML (6: io_parallel Latency MLPs at RF 1, "
    "five of them HGQ with 7–16-bit weight types; Vitis HLS 2024.1, Alveo U50) — latency 17 % / 67 %, LUT 24 %, "
    "DSP 4,460 % (0–60 DSPs reported where the model binds 47–1,333: HGQ's per-weight widths sit far below the "
    "layer's type); EmileBrt/CNNKDD (2: io_stream Latency QKeras CNNs; Vivado HLS 2019.2, Zynq-7020 at 10 and 5 ns) "
    "— latency 8 % / 12 %, LUT 6 %, DSP 121 %; Fiwo735/Transformer_Neural_Network_HLS (1 used: the tutorial jet MLP "
    "at RF 2, Vivado HLS 2019.2; 3 excluded: hand-written transformer templates) — latency 46 %, LUT 29 %, DSP 1 %. "
    "Also the corpus's first distributed-arithmetic design (lolbraa: the HGQ2 jet MLP with "
    "Strategy: distributed_arithmetic, Vitis HLS 2023.2: 6 cycles, 9,838 LUT, 0 DSP), kept but excluded: its "
    "weights live in the generated adder graph, so no weight width is recorded; the DA branch added to the model "
    "this round (0 DSP; products as shift-adds) gets its DSPs (0) and cycles (8 vs 6) but, at the 16-bit default "
    "width, 596,223 LUT vs 9,838 — a DA design's cost must be read from its adder graph, which the model does not "
    "do yet, so DA figures are unmeasured. Held out on the whole corpus, the four sources moved latency 5 → 8 % "
    "median (p90 52 %), LUT 30 → 27 %, DSP 13 → 17 % (p90 100 → 133 %, mostly Lrozzy's HGQ MLPs); FF and BRAM "
    "stayed. The tool that transcribes a repository (tools/fpga_corpus_from_git.py) now reads each layer's widths "
    "from the top function too. (22) The weights decide: hls4ml commits each project's weights "
    "(firmware/weights/w*.h); quantized to the layer's weight type, a constant of 1–2 nonzero canonical-signed-digit "
    "digits is one shift-add, one of 3 or more takes a DSP when the layer's input has ≥ 11 bits. "
    "tools/fpga_corpus_weight_csd.py read them at each report's commit: 98 of the 173 records used, from 28 sources (every layer whose repository "
    "is mirrored; `weight_csd` on the record's layers), and `hls_project.read_project` reads a user's project the "
    "same way. Checked before any fit: the 16-bit jet taggers of tanvirana (3,650 nonzero weights × 41 % with ≥ 3 "
    "digits = 1,497 vs 1,500 DSPs reported), Hector-Plata (1,492 vs 1,450), nrp-nautilus (2,592 vs 2,557), "
    "astitwlathe (3,438 vs 3,317), the pruned twins (925 vs 922, 807 vs 803), seanlipps (465 vs 467), Thifjj (107 "
    "vs 110), ML_FPGAonPixel's 8–10-bit MLPs on 12–16-bit inputs (350 vs 335, 826 vs 820, 4,296 vs 4,207), and the "
    "same 10-bit weights on a 10-bit input 31 DSPs (the gate). Held out: DSP 17 % / p90 133 % → 5 % / 80 % by "
    "record, 30 % / 4,991 % → 15 % / 262 % each source weighted equally; the width rule of (19) remains where no "
    "weights are known (hls4ml's CI designs, reports without their weights). LUT keeps the width-based split: "
    "re-costing the fabric products by their digits made it worse (27 → 30 % by record, 29 → 37 % each source "
    "weighted equally) with the present adder-tree width (the 16-bit jet taggers' tree is already counted 30–60 % "
    "high), so those constants need re-deriving together. The same digits also explain the Latency strategy's "
    "allocation at RF > 1 in one source (Hector-Plata's PYNQ MLP at RF 64: ⌈58 three-digit weights / 4 multipliers⌉ "
    "= 15 cycles, its II exactly) but not in two others (pominiq's RF 16 / 8 fit ≥ 4 digits instead), so the II "
    "model is unchanged. Three earlier changes to "
    "the structural model, each read off the corpus's per-layer widths or paired reports, not chosen among "
    "variants on this cross-validation except where said (their before/after figures are on the 159 records "
    "before the four sources). (19) DSP binding by the layer's true widths: a "
    "constant-weight product (Latency strategy at RF 1) stays in fabric when the constant has ≤ 8 bits or the "
    "layer's input ≤ 5 bits, half of them at 9–10-bit weights, all above — in the corpus, designs whose products are "
    "all of the first kind report 0–7 % of them in DSPs (lolbraa's HGQ2 CNNs, jeanleos's 4-bit U-Net, alex-yang's, "
    "thaarres's and Hector-Plata's 6-bit QKeras nets, Lenet5 and HG-DREAM at 8 bits, MinhNguy3n's 7–9-bit MLP), "
    "while 16-bit weights on a 6-bit input still bind (the QKeras tutorial CNN's last layer in PokerML and "
    "alex-yang: ~400 of its 640 products); shared multipliers (Resource strategy, or the Latency strategy's "
    "allocation at RF > 1) bind a DSP each whatever the width (tsopeter's 6-bit and Spehic's 4-bit Resource CNNs, "
    "PokerML's 6-bit layers: about one DSP a multiplier; 0.5 before for < 10 bits); a product left in fabric "
    "costs the shift-adds of a canonical-signed-digit constant ((wb + 1)/3 − 1 adders of about db + wb/2 bits) "
    "instead of 0.5·wb·ab — held out, DSP median 12 → 13 % by record but 47 → 29 % each source weighted equally, "
    "p90 182 → 100 %; LUT p90 99 → 92 % (median 30 → 32 %: the correction learned on the corrected narrow designs "
    "now lifts the 16-bit ones). The width thresholds come from those reports; the first variant tried "
    "(min(weight, input) ≤ 8 bits) held out about the same (DSP 10 / 100 %, LUT 32 / 92 %) but contradicts the "
    "16-bit-weight-on-6-bit-input layers, so it was not kept. (20) Vivado HLS's per-channel FIFO of a one-word "
    "stream (a dense layer's output) keeps ~2 FF, not the 46 of a deep one: hls4ml's CI reports 326 FF in all "
    "for a Dense(64) + ReLU with two such 64-channel streams (Vivado HLS 2020.1) where the model counted 7,500 — FF "
    "p90 387 → 309 %, median 42 → 43 % by record, 44 → 42 % each source weighted equally. (21) A table activation "
    "(sigmoid, tanh, elu, …) costs 80 LUT a channel for its index logic, not 20: hls4ml's CI reports the same "
    "Dense(64) with sigmoid or elu 27–128 LUT a channel above its ReLU twin (median 72 over 12 pairs, Vivado HLS "
    "2020.1 and Vitis HLS 2023.1 / 2024.1) — LUT median 32 → 30 % by record, 37 → 34 % each source weighted "
    "equally. Tried and dropped this round: a per-design feature (the share of products in fabric) in the "
    "correction (LUT 32 → 32 %, FF 43 → 46 % each source weighted equally); io_parallel convolution output "
    "registers counted once per pixel loop (FF p90 309 → 212–237 % but median 43 → 48–57 %); a smaller per-process "
    "FF constant (100 or 50 instead of 200: FF median 43 → 47–49 %); the Resource strategy at RF 1 treated as "
    "constant products (contradicted by Berk-Bilgin's 8-bit Resource CNNs at RF 1–2, ~1 DSP a product); fewer "
    "pipeline FF for products bound to DSPs (their own registers; 0.2 instead of 0.6 a product bit, from the "
    "tutorial CNN: FF median 43 → 48 %). "
    "The round before (branches corpus3 and widths): seven more sources, "
    "each first held out by the model as it stood (commit 14095c6) — SpAllen0726/HG-DREAM-Pulse-Detection-Project "
    "(an io_stream QKeras Conv1D with upsampling, Vitis HLS 2023.1, RFSoC), tsopeter/753-FPGA (3 io_stream "
    "Resource QKeras CNNs, Vitis HLS 2024.2, Artix-7 at 30 ns), jeanleos/umons (2 io_stream Resource U-Nets with "
    "concatenation, Vivado HLS 2020.1, Zynq-7020), lolbraa/HLS4ML_testbench_KV260 (3 io_stream Latency CNNs, two of "
    "them HGQ2 with 2–9-bit weights and 0 DSPs, Vitis HLS 2025.2, K26), alex-yang-upenn/accelerator_wrapper (6 "
    "QKeras designs, io_stream and io_parallel, Vitis HLS 2022.2, Alveo U55C at 3.33 ns), "
    "baranyusuf/fpga-vs-cpu-mlp-power-performance-benchmark (an MLP at RF 16, Vitis HLS 2024.1) and "
    "tanvirana/heterogeneous-hls4ml-testing (3 jet-tagging MLPs, Vivado HLS 2020.1, Zynq-7020); a further 35 QKeras "
    "MLPs (ArgyKokk/hls4ml_MLP_estimator) are kept but excluded: their build scripts force every multiplier into DSPs "
    "or fabric. Held out by the model as it stood, the new sources' median errors were latency 0–69 %, II 0–57 %, "
    "LUT 18–92 %, FF 47–130 %, DSP 0 % to 103,500 % (designs with 0–29 DSPs where the model binds hundreds), "
    "BRAM 0–62 %; on the whole corpus (159 records, 32 sources) that model held out latency 5 % / p90 67 %, II "
    "0 % / 43 %, LUT 32 % / 101 %, FF 57 % / 405 %, DSP 12 % / 182 %, BRAM 5 % / 59 %. Every layer of 155 of the "
    "159 records now carries its activation widths (`data_bits`, `result_bits`), read from the type each layer's "
    "call passes in the project's top function and defines.h (hls4ml's CI designs: its default ap_fixed<16,6>, "
    "said in each record); `edgekd.profile.hls_project` reads the same from a user's project. That round's changes: "
    "(15) a layer's result width sizes its stream FIFOs and output registers; using the input width as the "
    "multiplier operand as well made held-out LUT (30 → 36 %) and DSP (12 → 22 %) worse with the present product "
    "and adder-tree constants, so the operand keeps the design width; (16) Vivado HLS average pooling with padding "
    "builds a divider per output (nnet_pooling.h divides by a run-time count of unpadded pixels; hls4ml's CI "
    "reports: 21 cycles, ~500 LUT an output; Vitis HLS and unpadded pooling: 0 cycles) — latency p90 by record "
    "59 → 58 %, LUT 32 → 31 %; (17) the io_parallel chaining budget is the period minus a fixed 2.3 ns overhead "
    "(clock uncertainty, setup, routing; on the UltraScale+ -2 scale) instead of 75 % of it, so a slow part at a "
    "fast clock registers every adder level: the Zynq-7020 MLPs (Thifjj 10 → 19 cycles vs 32 reported, MinhNguy3n "
    "9 → 27 vs 41, tanvirana 13 → 31 vs 39–47) and the U55C at 3.33 ns (12 → 23 vs 30) come closer while the "
    "5 ns Alveo designs keep their figures; the overhead was chosen among 2.0 / 2.3 / 2.5 ns on this "
    "cross-validation (latency p90 52 % for each, 59 % before) — a constant picked on the corpus, so the p90 "
    "is not fully independent of it, and the adder levels a cycle of the RF > 1 and stream schedules now use the "
    "same overhead (4 at 5 ns, 1 on the Zynq-7020 -1 at 5 ns; II p90 43 → 40 %); (18) FF: the arrays hls4ml's templates partition completely are registers "
    "whatever the reuse factor — the RF loop's accumulators acc[n_out], the stream dense's input vector "
    "data[n_in], the stream convolution's kernel window — FF median 54 → 42 % by record, 59 → 44 % each source "
    "weighted equally, in-80 % 76 → 80 % (the three were added together). Tried and dropped: the input width as "
    "the operand of the DSP binding alone (DSP median 12 → 22 %); the correction's ridge strength (1–30: LUT "
    "and FF move by a few points either way; kept at 10, not re-chosen on this cross-validation); the Resource "
    "strategy at RF 1 binding narrow products like the Latency strategy's constants (DSP median in io_stream CNNs "
    "37 → 27 %, but LUT 30 → 32 % overall).")


def still_worse(r: dict) -> str:
    """Which targets the held-out figures miss (from this run's table), and why."""
    miss = []
    for m in ("latency", "ii", "lut", "ff", "dsp", "bram"):
        tmed, tp90 = TARGETS[m]
        splits = [("by record", r["new"]["all"][m]), ("each source weighted equally", r["source_weighted"][m])]
        splits += [(f"in the {g} split", r["new"][g][m]) for g in SPLITS[1:] if m in r["new"].get(g, {})]
        for label, v in splits:
            if not v.get("n"):
                continue
            if v["median"] > tmed:
                miss.append(f"{NAMES[m]} median {_pct(v['median'])} {label} (target {_pct(tmed)})")
            if tp90 is not None and v["p90"] > tp90:
                miss.append(f"{NAMES[m]} p90 {_pct(v['p90'])} {label} (target {_pct(tp90)})")
    return ("Where it is still worse than the targets, and why. Missed in this run: " + "; ".join(miss) + ". "
            "Latency and II p90 with sources weighted equally — single-design sources that sit on a miss of their "
            "own weigh as much as the hls4ml CI's 60 designs: kojos03 (a 1,053-cycle softmax table initialisation, "
            "1,072 cycles where 208 are estimated), hls4ml's CI Vitis 2020.1 dense designs (1–16 cycles, a few "
            "cycles off), HG-DREAM's Conv1D with upsampling (7 cycles a pixel reported, 3 modelled), alex-yang's "
            "Conv1D (2 cycles a pixel where the Vitis floor says 3) and io_parallel CNNs at 3.33 ns (~1.8 cycles an "
            "output pixel where the model says 1), Berk-Bilgin's Vivado Conv1D at RF 1 (2 cycles a pixel, 1 modelled), "
            "ML_FPGAonPixel's 40 MHz MLP with softmax (3 vs 5), "
            "and PokerML's Latency CNNs at RF 128/256 (14–15 cycles a pixel, 8–12 from the allocation) and at RF 1 in "
            "Vivado HLS 2019.2 (1.8 cycles a pixel, 1 modelled); most of these are io_stream CNNs, whose own p90 is "
            "the one split missed; over all records both p90s are met. LUT and FF — designs whose products sit in fabric report less than "
            "the model's figure for 16-bit designs of the same size, and the per-regime correction, learned on both, "
            "lands between them (Hector-Plata's and tanvirana's 16-bit jet taggers 35–90 % over, ML_FPGAonPixel's "
            "10-bit MLPs 20–60 % over); very wide accumulators "
            "(calwilee's ap_fixed<78,40>: 734,783 LUT for a small SeparableConv2D) are not costed by width; FF counts "
            "vary 10× between tool versions and parts for the same structure (pipeline registers of the Zynq-7020 "
            "designs, io_parallel Resource convolutions over-counted 20×), and Vivado HLS io_stream processes hold 2–4× the FF "
            "the model gives them (pominiq's per-process report: a 4×4 max pooling 2,770 FF vs 384, the softmax 856 vs "
            "220), which the per-regime correction only partly lifts, while the same correction lifts io_parallel "
            "CNNs whose structural FF is close. DSP — a few single-design sources still sit "
            "on a miss of their own: jeanleos's 4-bit U-Net at RF 1 with the Resource strategy (0 DSPs; the model binds "
            "its weight-array products like shared ones, as Berk-Bilgin's 8-bit Resource CNNs and hls4ml's CI Resource "
            "convolution ask), RHEED (0 at RF 8–15, 8 bits, Vivado HLS 2019.1, against tsopeter's and Spehic's one a "
            "multiplier), Brainz22's RF 2 pointwise convolutions (0), Lrozzy's tutorial MLP (181 where it reports 50), "
            "Lenet5 (18 DSPs on 8-bit inputs, where the input gate binds none) and HG-DREAM (29; its weights are not "
            "committed and the width rule binds none); a "
            "relative error on 0–50 DSPs is thousands of per cent for a few dozen DSPs. "
            "BRAM weighted by source — "
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
          "The round before (branch issue14c) added ten sources (uw-acme ×2, abdennour-GUESSOUM, Spehic, Lrozzy, MinhNguy3n, Thifjj, kojos03, calwilee, kendermag) and changes (11)–(14): io_parallel ParallelizationFactor, the part's speed grade (DSP48 datasheet Fmax ratio), a Huber-robust correction fit, hard activations and depthwise layers read from parameters.h. Earlier rounds, and what is not independent: the corpus grew by three sources "
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
