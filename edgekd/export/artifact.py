"""Typed results of the export stage: an artifact and its fidelity record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class FidelityRecord:
    """How closely an artifact reproduces the model it was exported from, on real inputs."""

    reference: str  # what it was compared with, e.g. "pytorch float32"
    inputs: str  # which inputs, e.g. "test split, first 1000 images"
    n_inputs: int
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    exact_match_rate: float | None = None  # integer designs: fraction of outputs bit-identical
    thresholds: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    notes: str = ""

    @classmethod
    def compare(cls, out: np.ndarray, ref: np.ndarray, *, reference: str, inputs: str,
                max_abs: float | None = None, min_agreement: float | None = None,
                exact: bool = False, notes: str = "") -> "FidelityRecord":
        out = np.asarray(out, dtype=np.float64).reshape(ref.shape)
        ref = np.asarray(ref, dtype=np.float64)
        diff = np.abs(out - ref)
        agree = float((out.argmax(1) == ref.argmax(1)).mean())
        exact_rate = float((diff.reshape(len(ref), -1).max(1) == 0).mean()) if exact else None
        th: dict[str, float] = {}
        ok = bool(np.isfinite(out).all())
        if max_abs is not None:
            th["max_abs_diff"] = max_abs
            ok &= float(diff.max()) <= max_abs
        if min_agreement is not None:
            th["argmax_agreement"] = min_agreement
            ok &= agree >= min_agreement
        if exact:
            th["exact_match_rate"] = 1.0
            ok &= exact_rate == 1.0
        return cls(reference, inputs, int(len(ref)), float(diff.max()), float(diff.mean()), agree,
                   exact_rate, th, bool(ok), notes)

    def summary(self) -> str:
        s = (f"max|Δ|={self.max_abs_diff:.3g}, agreement={100 * self.argmax_agreement:.2f}% "
             f"on {self.n_inputs} inputs")
        if self.exact_match_rate is not None:
            s += f", exact={100 * self.exact_match_rate:.2f}%"
        return s + (" [PASS]" if self.passed else " [FAIL]")


@dataclass
class Artifact:
    """One exported file or project, what it came from, and whether it is deployable."""

    model: str  # e.g. "cnn-kd"
    target: str  # e.g. "onnxruntime", "fpga-hls"
    format: str  # e.g. "onnx", "hls4ml-vitis"
    path: Path
    fidelity: FidelityRecord | None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None or self.fidelity is None or not self.fidelity.passed:
            return "failed"
        return "ok"

    @property
    def deployable(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["status"] = self.status
        return d
