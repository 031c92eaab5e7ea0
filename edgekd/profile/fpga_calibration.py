"""Calibration of the hls4ml structural model on real synthesis reports, and its stated error.

For each figure (latency, II, LUT, FF, DSP, BRAM) the calibrated estimate is

    log(1 + reported) ≈ log(1 + structural) + a + c·log(1 + structural) + Σ_k b_k·regime_k

where ``structural`` is :func:`edgekd.profile.hls_model.structural` and the regime
indicators are the tool family (Vitis HLS vs Vivado HLS), io_stream, the Resource
strategy, Vitis × io_stream, Vitis × Resource, convolutional (vs dense-only) and Vitis ×
convolutional. The nine coefficients per figure are a ridge fit that
shrinks towards "the structural model is right" (all zero), weighted so that every
source counts about the same however many records it has.

A figure gets the correction only where an inner leave-one-source-out on the training
sources says it beats the structural figure (:func:`fit`, ``Fit.corrected``); on this
corpus that is FF only.

The error is measured by leave-one-source-out cross-validation (:func:`cross_validate`):
the fit never sees the held-out repository or paper. The 10th–90th percentile of the
held-out log residuals of comparable designs from the other sources — every source
weighted equally, the levels widened by (n + 1)/n over n sources — gives every estimate
an 80 % interval (:meth:`Fit.interval`).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from edgekd.profile import hls_model
from edgekd.profile.fpga_corpus import CalibrationRecord, load_corpus

METRICS = ("latency", "ii", "lut", "ff", "dsp", "bram")
REGIMES = ("io_stream CNN", "io_parallel CNN", "dense")
REPORTED = {"latency": "latency_max", "ii": "ii_max", "lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram_18k"}
COVERAGE = 0.80
MIN_REGIME = 10  # held-out residuals a regime needs for its own interval
MAGNITUDE = 30.0  # 'comparable' designs: estimates within this factor
RIDGE = float(__import__("os").environ.get("EDGEKD_RIDGE", "10"))
SLOPE_RIDGE = float(__import__('os').environ.get('EDGEKD_SLOPE_RIDGE', '1e6'))
# choose per figure, by an inner leave-one-source-out, whether the correction is applied at all
SELECT = __import__("os").environ.get("EDGEKD_FPGA_SELECT", "1") != "0"
SOURCE_WEIGHTED = __import__("os").environ.get("EDGEKD_FPGA_SOURCE_WEIGHTED", "1") != "0"


@dataclass
class Design:
    """What the calibration needs to know about one design besides its layers."""

    family: str  # vivado | vitis
    io_type: str
    strategy: str
    cnn: bool = False  # has convolution or pooling layers

    def regime(self) -> np.ndarray:
        vitis = 1.0 if self.family == "vitis" else 0.0
        stream = 1.0 if self.io_type == "io_stream" else 0.0
        res = 1.0 if self.strategy == "Resource" else 0.0
        cnn = 1.0 if self.cnn else 0.0
        return np.array([vitis, stream, res, vitis * stream, vitis * res, cnn, vitis * cnn])


def record_structural(r: CalibrationRecord) -> hls_model.Structural:
    layers = r.hls_layers()
    bits = max((l.weight_bits or 0 for l in layers), default=0) or 16
    reuse = {l.name: l.reuse_factor or int(r.hls4ml.get("reuse_factor") or 1) for l in layers}
    return hls_model.structural(layers, io_type=r.io_type, strategy=r.strategy, reuse=reuse, bits=max(bits, 8),
                                clock_mhz=1000.0 / r.clock_ns, family=r.family,
                                speed=hls_model.speed_factor(r.part))


def _row(x: float, d: Design) -> np.ndarray:
    lx = math.log1p(max(x, 0.0))
    return np.concatenate([[1.0, lx], d.regime()])


@dataclass
class Fit:
    coef: dict[str, np.ndarray]
    residuals: dict[str, np.ndarray] = field(default_factory=dict)  # held-out log residuals (CV)
    n: dict[str, int] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    n_records: int = 0
    corrected: dict[str, bool] = field(default_factory=dict)  # figure → correction applied (else structural as is)
    # figure → the largest structural figure the correction was fitted on: beyond it the correction is held at
    # its value there (a log-linear correction extrapolated 1000× past the corpus gave 281 M FF for a 48×48
    # io_parallel CNN)
    x_max: dict[str, float] = field(default_factory=dict)

    def predict(self, metric: str, x: float, d: Design) -> float:
        lx = math.log1p(max(x, 0.0))
        xc = min(x, self.x_max[metric]) if metric in self.x_max else x
        return float(round(math.expm1(lx + float(_row(xc, d) @ self.coef[metric]))))  # whole cycles and cells

    def interval(self, metric: str, value: float, coverage: float = COVERAGE,
                 regime: str | None = None) -> tuple[float, float]:
        """The ``coverage`` interval around ``value`` from held-out residuals of comparable designs:
        the same regime (io_stream CNN / io_parallel CNN / dense) and an estimate within a factor
        of :data:`MAGNITUDE` of ``value`` (a one-cycle miss on a 2-cycle design says nothing about a
        10,000-cycle one); widened to the regime, then to all, when fewer than :data:`MIN_REGIME`."""
        pts = self.residuals.get(f"{metric}/points")
        res = _neighbours(pts, value, regime) if pts is not None else self.residuals.get(metric)
        if res is None or len(res) < 5:
            return (value / 2, value * 2)
        return _apply(value, res, coverage)


def _neighbours(pts: np.ndarray, value: float, regime: str | None, exclude_group: str | None = None) -> np.ndarray:
    """Residuals (column 1) of the rows of ``pts`` = [(estimate, residual, regime index, group index)]."""
    keep = np.ones(len(pts), dtype=bool) if exclude_group is None else pts[:, 3] != float(zlib.crc32(exclude_group.encode()))
    reg = pts[:, 2] == (REGIMES.index(regime) if regime in REGIMES else -1)
    near = (pts[:, 0] + 1 >= (value + 1) / MAGNITUDE) & (pts[:, 0] + 1 <= (value + 1) * MAGNITUDE)
    for mask in (keep & reg & near, keep & reg, keep):
        if mask.sum() >= MIN_REGIME:
            return pts[mask][:, [1, 3]]
    return pts[keep][:, [1, 3]]


def _quantiles(res: np.ndarray, qs: list[float]) -> np.ndarray:
    """Quantiles of held-out residuals; with a group column (``[residual, group]`` rows) every
    source weighs the same however many records it has — a new design comes from a new source,
    and one large source of easy designs must not narrow everyone's interval — and the levels
    are widened for the number of sources."""
    if res.ndim == 1 or not SOURCE_WEIGHTED:
        return np.quantile(res if res.ndim == 1 else res[:, 0], qs)
    r, g = res[:, 0], res[:, 1]
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    # the sources are the exchangeable units: with n of them, widen the levels by (n + 1) / n
    # (the split-conformal finite-sample correction), or a handful of sources under-covers
    n = len(counts)
    qs = [min(1.0, max(0.0, 0.5 + (q - 0.5) * (n + 1) / n)) for q in qs]
    w = 1.0 / counts[inv]
    order = np.argsort(r)
    r, w = r[order], w[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()  # mid-point plotting positions
    return np.interp(qs, cum, r)


def _apply(value: float, res: np.ndarray, coverage: float = COVERAGE) -> tuple[float, float]:
    lo_q, hi_q = _quantiles(res, [(1 - coverage) / 2, 1 - (1 - coverage) / 2])
    lv = math.log1p(max(value, 0.0))
    return (float(math.floor(max(0.0, math.expm1(lv + lo_q)))), float(math.ceil(math.expm1(lv + hi_q))))


def _fit(points: list[tuple[float, float, Design, float]]) -> np.ndarray:
    """Ridge fit of the correction (log reported − log structural) on (structural, reported, design, weight)."""
    if not points:
        return np.zeros(9)
    X = np.array([_row(x, d) for x, _, d, _ in points])
    y = np.array([math.log1p(max(r, 0.0)) - math.log1p(max(x, 0.0)) for x, r, _, _ in points])
    w0 = np.array([wt for *_, wt in points])
    P = RIDGE * np.diag([0.05, SLOPE_RIDGE, 1, 1, 1, 1, 1, 1, 1])

    def solve(w: np.ndarray) -> np.ndarray:
        W = np.sqrt(w)[:, None]
        return np.linalg.solve((X * W).T @ (X * W) + P, (X * W).T @ (y * W[:, 0]))

    c = solve(w0)
    # Huber's M-estimator by iterated reweighting (the usual 1.345 × the residuals' MAD scale): a design the
    # structural model misses by 10× (a tool quirk, an unusual precision) must not swing every other
    # source's correction
    for _ in range(20):
        r = y - X @ c
        # the residuals' scale, floored at 5 % (closer than that, a report's own rounding)
        s = max(0.05, 1.4826 * float(np.median(np.abs(r - np.median(r)))))
        h = np.minimum(1.0, 1.345 * s / np.maximum(np.abs(r), 1e-12))
        w = w0 * h
        c_new = solve(w * (w0.sum() / w.sum()))  # the same total weight against the ridge
        if np.allclose(c_new, c, atol=1e-6):
            c = c_new
            break
        c = c_new
    return c


def _points(recs: list[tuple[CalibrationRecord, dict[str, float]]], metric: str):
    counts: dict[str, int] = {}
    for r, _ in recs:
        counts[r.group] = counts.get(r.group, 0) + 1
    out = []
    for r, feats in recs:
        rep = r.reported.get(REPORTED[metric])
        if rep is None:
            continue
        out.append((feats[metric], float(rep), Design(r.family, r.io_type, r.strategy, r.regime != "dense"), 1.0 / math.sqrt(counts[r.group]),
                    r))
    return out


def _inner_error(pts: list, coef: np.ndarray | None) -> list[float]:
    """|estimate − reported| / max(reported, 1) of ``pts`` with the correction ``coef`` (None: the structural figure)."""
    out = []
    for x, rep, d, _, _ in pts:
        lx = math.log1p(max(x, 0.0))
        est = x if coef is None else math.expm1(lx + float(_row(x, d) @ coef))
        out.append(abs(round(est) - rep) / max(rep, 1.0))
    return out


def _select(pts: list) -> bool:
    """Whether the ridge correction helps on sources it was not fitted on: an inner
    leave-one-source-out over ``pts`` only (the held-out source of the outer cross-validation
    is never among them). The correction is kept when it lowers the median held-out error."""
    groups = sorted({p[4].group for p in pts})
    if len(groups) < 3:
        return True
    corrected, plain = [], []
    for g in groups:
        test = [p for p in pts if p[4].group == g]
        coef = _fit([p[:4] for p in pts if p[4].group != g])
        corrected += _inner_error(test, coef)
        plain += _inner_error(test, None)
    return float(np.median(corrected)) < float(np.median(plain))


def fit(recs: list[tuple[CalibrationRecord, dict[str, float]]], *, select: bool = SELECT) -> Fit:
    """Per figure, the ridge correction of the structural model, or none where an inner
    leave-one-source-out on ``recs`` says the structural figure does better without it."""
    coef, used, x_max = {}, {}, {}
    for m in METRICS:
        pts = _points(recs, m)
        c = _fit([p[:4] for p in pts])
        used[m] = (not select) or _select(pts)
        coef[m] = c if used[m] else np.zeros_like(c)
        if pts:
            x_max[m] = max(p[0] for p in pts)
    return Fit(coef, corrected=used, x_max=x_max)


@dataclass
class CvRow:
    id: str
    group: str
    regime: str
    metric: str
    reported: float
    estimated: float
    lo: float
    hi: float
    structural: float

    @property
    def abs_rel_error(self) -> float:
        return abs(self.estimated - self.reported) / max(self.reported, 1.0)

    @property
    def inside(self) -> bool:
        return self.lo <= self.reported <= self.hi


def usable(recs: Iterable[CalibrationRecord]) -> list[tuple[CalibrationRecord, dict[str, float]]]:
    out = []
    for r in recs:
        if r.excluded:
            continue
        out.append((r, hls_model.features(record_structural(r))))
    return out


def cross_validate(recs: list[tuple[CalibrationRecord, dict[str, float]]]) -> tuple[list[CvRow], dict[str, np.ndarray]]:
    """Leave one source out: fit on the others, predict the held-out source. Returns rows and
    the held-out log residuals per metric (what the intervals are made of)."""
    groups = sorted({r.group for r, _ in recs})
    preds: list[tuple[CalibrationRecord, str, float, float, float]] = []
    for g in groups:
        train = [p for p in recs if p[0].group != g]
        test = [p for p in recs if p[0].group == g]
        f = fit(train)
        for r, feats in test:
            for m in METRICS:
                rep = r.reported.get(REPORTED[m])
                if rep is None:
                    continue
                est = f.predict(m, feats[m], Design(r.family, r.io_type, r.strategy, r.regime != "dense"))
                preds.append((r, m, float(rep), est, feats[m]))
    residuals: dict[str, np.ndarray] = {
        m: np.array([math.log1p(rep) - math.log1p(max(est, 0)) for r, mm, rep, est, _ in preds if mm == m])
        for m in METRICS}
    for m in METRICS:
        residuals[f"{m}/points"] = np.array(
            [(est, math.log1p(rep) - math.log1p(max(est, 0)), REGIMES.index(r.regime), float(zlib.crc32(r.group.encode())))
             for r, mm, rep, est, _ in preds if mm == m]).reshape(-1, 4)
    # the interval of each held-out prediction comes from the other sources' residuals only
    rows = []
    for r, m, rep, est, x in preds:
        res = _neighbours(residuals[f"{m}/points"], est, r.regime, exclude_group=r.group)
        lo, hi = _apply(est, res) if len(res) >= 5 else (est / 2, est * 2)
        rows.append(CvRow(r.id, r.group, r.regime, m, rep, est, lo, hi, x))
    return rows, residuals


@lru_cache(maxsize=4)
def _calibrated(user_key: str) -> Fit:
    recs = usable(load_corpus(user=True))
    f = fit(recs)
    f.groups = tuple(sorted({r.group for r, _ in recs}))
    f.n_records = len(recs)
    _, res = cross_validate(recs)
    f.residuals = res
    f.n = {m: len(v) for m, v in res.items()}
    return f


def calibration(refresh: bool = False) -> Fit:
    """The fit on the whole corpus (plus the user's points), with its cross-validated residuals."""
    from edgekd.profile.fpga_corpus import USER_CORPUS

    key = f"{USER_CORPUS}:{USER_CORPUS.stat().st_mtime if USER_CORPUS.is_file() else 0}"
    if refresh:
        _calibrated.cache_clear()
    return _calibrated(key)


def summarize(rows: list[CvRow], metric: str, regime: str | None = None) -> dict[str, Any]:
    errs = sorted(r.abs_rel_error for r in rows if r.metric == metric and (regime is None or r.regime == regime))
    inside = [r.inside for r in rows if r.metric == metric and (regime is None or r.regime == regime)]
    if not errs:
        return {"n": 0}
    return {"n": len(errs), "median": float(np.median(errs)), "p90": float(np.quantile(errs, 0.9)),
            "coverage": float(np.mean(inside))}


def regime_of(layers: list[Any], io_type: str) -> str:
    """The benchmark's split for a design: io_stream CNN / io_parallel CNN / dense."""
    if not any(l.kind in ("conv1d", "conv2d", "pool") for l in layers):
        return "dense"
    return "io_stream CNN" if io_type == "io_stream" else "io_parallel CNN"


def format_interval(value: float, lo: float, hi: float, unit: str = "", coverage: float = COVERAGE) -> str:
    """``4,480 cycles [3,700–5,600], 80 %``."""
    u = f" {unit}" if unit else ""
    return f"{value:,.0f}{u} [{lo:,.0f}–{hi:,.0f}], {100 * coverage:.0f} %"
