"""report.json and report.md from the typed results of the earlier stages."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.export.artifact import Artifact
from edgekd.profile.result import LatencyResult
from edgekd.report import plots
from edgekd.runs.atomic import write_json, write_text


@dataclass
class ModelResult:
    """One trained model for one seed."""

    name: str
    role: str  # teacher | student
    arch: str
    params: int
    seed: int
    test_acc: float
    val_acc: float
    train_seconds: float
    loss: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    metrics: dict[str, Any] | None = None  # ClassMetrics.to_dict() on the test split


@dataclass
class RunResults:
    name: str
    status: str
    quick: bool
    seeds: list[int]
    data: dict[str, Any]
    models: list[ModelResult]
    artifacts: list[Artifact]
    latencies: list[LatencyResult]
    environment: dict[str, Any]
    stage_seconds: dict[str, float]
    problems: list[str] = field(default_factory=list)
    fpga: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, Any] | None = None  # the recipe's measured reference figure, if it names one


def accuracy_rows(models: list[ModelResult]) -> list[dict[str, Any]]:
    """Per model name: mean ± std (population std over seeds, ddof=0 when one seed)."""
    rows = []
    for name in dict.fromkeys(m.name for m in models):
        ms = [m for m in models if m.name == name]
        accs = np.array([m.test_acc for m in ms])
        rows.append({
            "name": name, "role": ms[0].role, "arch": ms[0].arch, "params": ms[0].params,
            "acc_mean": float(accs.mean()), "acc_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "acc_per_seed": {str(m.seed): m.test_acc for m in ms}, "n_seeds": len(ms),
            "loss": ms[0].loss, "train_seconds_mean": float(np.mean([m.train_seconds for m in ms])),
        })
    return rows


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.2f}"


def _loss_str(loss: list[dict[str, Any]]) -> str:
    if not loss:
        return "ce"
    parts = []
    for t in loss:
        p = ", ".join(f"{k}={v}" for k, v in t.get("params", {}).items())
        parts.append(f"{t['weight']:g}·{t['method']}" + (f"({p})" if p else ""))
    return " + ".join(parts)


def latency_table(measured: list) -> list[str]:
    """The measured-latency table: each row says which clock its percentiles are read from.

    Host figures (a caller's wall time) and device figures (CUDA events, e.g. trtexec's GPU
    Compute Time) are not alike; rows that have both (the ``cuda`` target) show both.
    """
    from edgekd.profile.result import CLOCK_MEANING

    L = ["## Latency (measured)\n",
         "Clock: " + "; ".join(f"**{k}** = {v}" for k, v in CLOCK_MEANING.items())
         + ". Compare rows on the same clock only.\n",
         "| model | target | batch | clock | p50 µs | p90 µs | p99 µs | host p50 µs | device p50 µs | throughput /s "
         "| threads | runs |",
         "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(measured, key=lambda r: (r.model != "teacher", r.model, r.target, r.batch_size)):
        mode = " ".join(str(r.details[k]) for k in ("mode", "dtype") if r.details.get(k))
        if r.target == "tensorrt" and (r.details.get("environment") or {}).get("precision"):
            mode = r.details["environment"]["precision"]
        cell = {k: "—" if v is None else f"{v:,.1f}" for k, v in r.p50_by_clock().items()}
        L.append(f"| {r.model} | {r.target}{f' ({mode})' if mode else ''} | {r.batch_size} | {r.clock} | "
                 f"{r.p50_us:,.1f} | {r.p90_us:,.1f} | {r.p99_us:,.1f} | {cell['host']} | {cell['device']} | "
                 f"{r.throughput_per_s:,.0f} | {r.threads} | {r.runs} |")
    L.append("")
    return L


def _size_str(size: Any) -> str:
    return f"{size}×{size}" if isinstance(size, int) else "×".join(str(v) for v in size)


def per_class_markdown(res: RunResults, plot_files: dict[str, str]) -> list[str]:
    """Balanced accuracy, macro F1 and per-class recall/precision of each model (first seed)."""
    ms = [m for m in res.models if m.seed == res.seeds[0] and m.metrics]
    if not ms:
        return []
    names = ms[0].metrics["class_names"]
    L = [f"## Per-class metrics (test split, seed {res.seeds[0]})\n",
         f"Test samples per class: {dict(zip(names, ms[0].metrics['support']))}.\n",
         "| model | accuracy % | balanced accuracy % | macro F1 % | " + " | ".join(
             f"{c} recall / precision %" for c in names) + " |",
         "|---|---:|---:|---:|" + "---:|" * len(names)]
    for m in ms:
        x = m.metrics
        cells = [f"{_pct(r)} / {_pct(p)}" for r, p in zip(x["recall"], x["precision"])]
        L.append(f"| {m.name} | {_pct(x['accuracy'])} | {_pct(x['balanced_accuracy'])} | {_pct(x['macro_f1'])} | "
                 + " | ".join(cells) + " |")
    L.append("")
    L += [f"![confusion matrix of {m.name}]({plot_files[f'confusion_{m.name}']})" for m in ms
          if f"confusion_{m.name}" in plot_files]
    L.append("")
    return L


def render_markdown(res: RunResults, acc: list[dict[str, Any]], plot_files: dict[str, str]) -> str:
    L: list[str] = []
    L.append(f"# edgekd report — {res.name}{' (quick)' if res.quick else ''}\n")
    L.append(f"**Status: {res.status}**" + ("" if not res.problems else " — " + "; ".join(res.problems)) + "\n")
    d = res.data
    L.append(f"Data: {d['source']}, classes {d['classes']}, train/val/test = "
             f"{d['sizes']['train']}/{d['sizes']['val']}/{d['sizes']['test']}; teacher input "
             f"{_size_str(d['teacher_size'])}, student input {_size_str(d['student_size'])}. "
             f"Seeds: {res.seeds}.\n")

    L.append("## Accuracy (test split)\n")
    L.append("| model | role | arch | params | loss | test acc % (mean ± std) | per seed | vs scratch |")
    L.append("|---|---|---|---:|---|---:|---|---:|")
    scratch = {r["arch"]: r for r in acc if r["role"] == "student" and
               [t["method"] for t in r["loss"]] == ["ce"]}
    for r in acc:
        base = scratch.get(r["arch"])
        gain = ("" if base is None or base is r or r["role"] == "teacher"
                else f"{100 * (r['acc_mean'] - base['acc_mean']):+.2f} pts")
        per = ", ".join(_pct(v) for v in r["acc_per_seed"].values())
        L.append(f"| {r['name']} | {r['role']} | {r['arch']} | {r['params']:,} | "
                 f"{'ce' if r['role'] == 'teacher' else _loss_str(r['loss'])} | "
                 f"{_pct(r['acc_mean'])} ± {_pct(r['acc_std'])} | {per} | {gain} |")
    L.append("")
    if "accuracy_vs_params" in plot_files:
        L.append(f"![accuracy vs parameters]({plot_files['accuracy_vs_params']})\n")

    L += per_class_markdown(res, plot_files)
    L.append("## Exported artifacts and fidelity\n")
    L.append("Each artifact is checked against the model it was exported from, on held-out inputs.\n")
    L.append("| model | target | format | status | inputs | max abs diff | argmax agreement | notes |")
    L.append("|---|---|---|---|---:|---:|---:|---|")
    for a in res.artifacts:
        f = a.fidelity
        if f is None:
            L.append(f"| {a.model} | {a.target} | {a.format} | **FAILED** | – | – | – | {a.error} |")
        else:
            L.append(f"| {a.model} | {a.target} | {a.format} | {'ok' if a.deployable else '**FAILED**'} | "
                     f"{f.n_inputs} | {f.max_abs_diff:.3g} | {_pct(f.argmax_agreement)} % | {f.notes} |")
    L.append("")
    hls = [a for a in res.artifacts if a.target == "fpga-hls" and a.metadata.get("layers")]
    for a in hls:
        L.append(f"### hls4ml precision for {a.model} ({a.metadata['io_type']}, {a.metadata['part']}, "
                 f"{a.metadata['clock_mhz']:g} MHz)\n")
        L.append("| layer | kind | observed max |x| | result | weight | bias |")
        L.append("|---|---|---:|---|---|---|")
        for lp in a.metadata["layers"]:
            L.append(f"| {lp['layer']} ({lp['module']}) | {lp['kind']} | {lp['max_abs']:.3g} | `{lp['result']}` | "
                     f"`{lp['weight'] or '–'}` | `{lp['bias'] or '–'}` |")
        if a.metadata.get("width_search"):
            tried = ", ".join(f"{w['width']} bits → {_pct(w['agreement'])} %" for w in a.metadata["width_search"])
            L.append(f"\nWidth search: {tried}.\n")

    L += latency_table([r for r in res.latencies if r.method == "measured"])
    if "latency" in plot_files:
        L.append(f"![latency per target]({plot_files['latency']})\n")
    if "training" in plot_files:
        L.append(f"![training curves]({plot_files['training']})\n")

    if res.fpga:
        acc_by = {r["name"]: r for r in acc}
        L.append("## FPGA (estimated or simulated — never measured here)\n")
        L.append("| model | acc % | target | method | design | latency | II (cycles) | LUT | FF | DSP | BRAM36 | "
                 "% of part (LUT/DSP) | first pixel → decision |")
        L.append("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
        ref = res.reference
        ref_note = f" ({ref['name']}: {ref['first_pixel_to_decision_us']:g} µs measured)" if ref else ""
        for f in res.fpga:
            a = acc_by.get(f["model"])
            pc = f["percent"]
            fp = f["first_pixel_to_decision_us"]
            iv = f.get("intervals") or {}

            def _iv(key: str, v: float, fmt: str = ",.0f") -> str:  # "v [lo–hi]" when estimated with an interval
                return f"{v:{fmt}} [{iv[key][0]:{fmt}}–{iv[key][1]:{fmt}}]" if key in iv else f"{v:{fmt}}"

            lat_s = ("refused (does not fit)" if f["details"].get("refused")
                     else f"{_iv('latency_cycles', f['latency_cycles'])} cycles = "
                          f"{_iv('latency_us', f['latency_us'], '.3g')} µs")
            pu = f["details"].get("percent_upper") if iv else None
            pct_s = (f"{pc.get('lut', 0):.1f} / {pc.get('dsp', 0):.1f}"
                     + (f" (upper end {pu.get('lut', 0):.0f} / {pu.get('dsp', 0):.0f})" if pu else ""))
            fp_s = "–" if fp is None else f"{_iv('first_pixel_to_decision_us', fp, '.2f')} µs{ref_note}"
            L.append(f"| {f['model']} | {_pct(a['acc_mean']) if a else '–'} | {f['target']} ({f['part']}) | "
                     f"{f['method']} | {f['design']} | {lat_s} | "
                     f"{_iv('ii_cycles', f['ii_cycles'])} | {_iv('lut', f['resources']['lut'])} | "
                     f"{_iv('ff', f['resources']['ff'])} | {_iv('dsp', f['resources']['dsp'])} | "
                     f"{_iv('bram_36k', f['resources']['bram_36k'])} | {pct_s}"
                     f"{'' if f['details'].get('fits_part', True) else ' **does not fit**'} | {fp_s} |")
        if any(f.get("intervals") for f in res.fpga):
            cov = next(f.get("coverage") for f in res.fpga if f.get("intervals"))
            L.append(f"\n[low–high] = {100 * (cov or 0.8):.0f} % interval from leave-one-source-out cross-validation "
                     "on real hls4ml synthesis reports (`BENCHMARKS.md`, section fpga-calibration); whether a design "
                     "fits the part is judged on the upper end.")
        L.append("")
        for f in res.fpga:
            if f["details"].get("refused"):
                L.append(f"- {f['model']} ({f['target']}): refused — {f['source']}.")
            elif not f["details"].get("fits_part", True):
                L.append(f"- {f['model']}: the configured design exceeds the part (upper end of the 80 % interval); "
                         f"reuse factors whose DSPs fit: `{f['details'].get('fitting_reuse_factors')}`"
                         + (f"; {f['details']['reuse_alone_insufficient']}"
                            if f['details'].get('reuse_alone_insufficient') else "") + ".")
        L.append("\nSources: " + "; ".join(sorted({f['source'] for f in res.fpga})) + ".\n")
        if "fpga" in plot_files:
            L.append(f"![FPGA figures with their intervals]({plot_files['fpga']})\n")

    e = res.environment
    L.append("## Environment\n")
    L.append(f"CPU: {e.get('cpu')} ({e.get('affinity_cpus')} usable of {e.get('logical_cpus')} logical); "
             f"{e.get('os')}.  ")
    L.append("Versions: " + ", ".join(f"{k} {v}" for k, v in e.get("versions", {}).items()) + ".\n")
    L.append("Stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res.stage_seconds.items()) + ".\n")
    return "\n".join(L)


def write_report(res: RunResults, root: Path) -> dict[str, Path]:
    """Write plots, ``report.json`` and ``report.md`` under ``root``."""
    acc = accuracy_rows(res.models)
    plot_dir = root / "plots"
    files: dict[str, str] = {}
    plots.accuracy_vs_params(acc, plot_dir / "accuracy_vs_params.png")
    files["accuracy_vs_params"] = "plots/accuracy_vs_params.png"
    lat = [r.to_dict() for r in res.latencies]
    measured = [r for r in lat if r["method"] == "measured"]
    if measured:
        plots.latency_per_target(measured, plot_dir / "latency.png", batch_size=1)
        files["latency"] = "plots/latency.png"
    first = {m.name: m.history for m in res.models if m.seed == res.seeds[0]}
    plots.training_curves(first, plot_dir / "training_curves.png")
    files["training"] = "plots/training_curves.png"
    if res.fpga:
        plots.fpga_figures(res.fpga, plot_dir / "fpga.png")
        files["fpga"] = "plots/fpga.png"
    for m in res.models:
        if m.seed == res.seeds[0] and m.metrics:
            plots.confusion_matrix(m.metrics["confusion"], m.metrics["class_names"],
                                   plot_dir / f"confusion_{m.name}.png", title=f"{m.name}: test split")
            files[f"confusion_{m.name}"] = f"plots/confusion_{m.name}.png"

    payload = {
        "name": res.name, "status": res.status, "problems": res.problems, "quick": res.quick,
        "seeds": res.seeds, "data": res.data, "accuracy": acc,
        "models": [asdict(m) for m in res.models],
        "artifacts": [a.to_dict() for a in res.artifacts],
        "latency": lat, "fpga": res.fpga, "environment": res.environment, "stage_seconds": res.stage_seconds,
        "plots": files,
    }
    write_json(root / "report.json", payload)
    write_text(root / "report.md", render_markdown(res, acc, files))
    return {"json": root / "report.json", "md": root / "report.md"}
