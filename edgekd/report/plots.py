"""Plots for the run report (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from edgekd.runs.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_vs_params(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy (mean ± std over seeds) against parameter count, log x axis."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        marker = "s" if r["role"] == "teacher" else "o"
        ax.errorbar(r["params"], 100 * r["acc_mean"], yerr=100 * r["acc_std"], fmt=marker, capsize=4,
                    label=f"{r['name']} ({r['arch']})")
        ax.annotate(r["name"], (r["params"], 100 * r["acc_mean"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy (%) — mean ± std over seeds")
    ax.set_title("Accuracy vs size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def latency_per_target(latencies: list[dict[str, Any]], path: Path, batch_size: int = 1) -> Path:
    """p50 latency (bar) with p99 (whisker) per model and target at one batch size; log y."""
    rows = [r for r in latencies if r["batch_size"] == batch_size]
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != "teacher", m))
    targets = sorted({r["target"] for r in rows})
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(models) * max(1, len(targets))), 4.2))
    width = 0.8 / max(1, len(targets))
    for j, t in enumerate(targets):
        xs, p50, err = [], [], []
        for i, m in enumerate(models):
            hit = [r for r in rows if r["model"] == m and r["target"] == t]
            if hit:
                xs.append(i + (j - (len(targets) - 1) / 2) * width)
                p50.append(hit[0]["p50_us"])
                err.append(max(0.0, hit[0]["p99_us"] - hit[0]["p50_us"]))
        clocks = sorted({r.get("clock", "host") for r in rows if r["target"] == t})
        ax.bar(xs, p50, width=width, yerr=[[0] * len(err), err], capsize=3,
               label=f"{t} (measured, {'/'.join(clocks)} time)")
    ax.set_xticks(range(len(models)), models, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel(f"latency at batch {batch_size} (µs): bar p50, whisker p99")
    ax.set_title("Latency per target")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def training_curves(histories: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Validation accuracy per epoch for each model (first seed)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, hist in histories.items():
        if hist:
            ax.plot([h["epoch"] for h in hist], [100 * h["val_acc"] for h in hist], marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Training curves (first seed)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrix(cm: list[list[int]], class_names: list[str], path: Path, title: str = "Confusion matrix") -> Path:
    """Row-normalized confusion matrix (recall on the diagonal) with the counts written in each cell."""
    import numpy as np

    counts = np.asarray(cm, dtype=np.int64)
    rows = counts.sum(1, keepdims=True)
    frac = np.divide(counts, np.maximum(rows, 1))
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * n, 1.0 + 0.6 * n))
    im = ax.imshow(frac, vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{counts[i, j]}\n{100 * frac[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), class_names, rotation=30, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    return _save(fig, path)


def fpga_figures(rows: list[dict[str, Any]], path: Path) -> Path:
    """FPGA figures per model (``FpgaFigures.to_dict()`` rows) with their intervals as error bars.

    Left: latency (µs) and, where modelled, first pixel → decision (µs), each with its
    cross-validated interval; a data-dependent latency (C synthesis min–max) is drawn as a
    second, thin bar. Right: LUT / FF / DSP / BRAM as % of the part with the interval's ends:
    'fits the part' is judged on the upper end, so the 100 % line is drawn."""
    import numpy as np

    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(max(9.0, 2.2 * len(rows) + 5), 4.2))
    xs = np.arange(len(rows))
    series = (("latency_us", "latency", "o"), ("first_pixel_to_decision_us", "first pixel → decision", "s"))
    for j, (key, label, marker) in enumerate(series):
        x, y, lo, hi = [], [], [], []
        for i, r in enumerate(rows):
            v = r.get(key)
            if v is None:
                continue
            iv = (r.get("intervals") or {}).get(key)
            x.append(i + (j - 0.5) * 0.25)
            y.append(v)
            lo.append(max(0.0, v - iv[0]) if iv else 0.0)
            hi.append(max(0.0, iv[1] - v) if iv else 0.0)
        if x:
            ax_t.errorbar(x, y, yerr=[lo, hi], fmt=marker, capsize=4, label=label)
    labelled = False
    for i, r in enumerate(rows):
        rng = (r.get("details") or {}).get("latency_range_cycles")
        if rng and r.get("clock_mhz"):
            ax_t.vlines(i - 0.25, rng[0] / r["clock_mhz"], rng[1] / r["clock_mhz"], colors="grey", lw=2,
                        label=None if labelled else "C synthesis min–max (data-dependent)")
            labelled = True
    ax_t.set_xticks(xs, [r["model"] for r in rows], rotation=15)
    ax_t.set_yscale("log")
    ax_t.set_ylabel("µs (estimated: point and 80 % interval)")
    ax_t.set_title("FPGA latency")
    ax_t.grid(True, axis="y", which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    keys = ("lut", "ff", "dsp", "bram_36k")
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        x, y, lo, hi = [], [], [], []
        for i, r in enumerate(rows):
            pct = (r.get("percent") or {}).get(k)
            v = (r.get("resources") or {}).get(k)
            if pct is None or v is None:
                continue
            iv = (r.get("intervals") or {}).get(k)
            x.append(i + (j - (len(keys) - 1) / 2) * width)
            y.append(pct)
            if iv and v:
                lo.append(max(0.0, pct - pct * iv[0] / v))
                hi.append(max(0.0, pct * iv[1] / v - pct))
            else:
                lo.append(0.0)
                hi.append(0.0)
        if x:
            ax_r.bar(x, y, width=width, yerr=[lo, hi], capsize=3, label=k.upper().replace("_36K", " (36K)"))
    ax_r.axhline(100.0, color="red", lw=1, ls="--", label="the part")
    ax_r.set_xticks(xs, [r["model"] for r in rows], rotation=15)
    ax_r.set_ylabel("% of the part (bar: estimate, whisker: 80 % interval)")
    ax_r.set_title("FPGA resources (fits: upper end < 100 %)")
    ax_r.grid(True, axis="y", alpha=0.3)
    ax_r.legend(fontsize=7)
    return _save(fig, path)
