"""``--budget latency_us=2,lut=0.8``: what a chosen student must meet, by the target's own figures.

Keys (per target family):

* every target: ``latency_us`` (upper bound), ``accuracy`` (lower bound on validation accuracy, 0–1)
* FPGA targets: ``lut``, ``ff``, ``dsp``, ``bram`` — fractions of the part (``0.8`` or ``80%``).
  Estimated figures are judged on the *upper end* of their cross-validated 80 % interval.
* CPU/GPU targets: ``params`` (parameter count).

For FPGA targets ``latency_us`` is first pixel to decision over the part's pixel bus.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgekd.errors import ConfigError

FPGA_KEYS = ("latency_us", "accuracy", "lut", "ff", "dsp", "bram")
MEASURED_KEYS = ("latency_us", "accuracy", "params")
LOWER_BOUNDS = ("accuracy",)  # every other key is an upper bound
FRACTIONS = ("lut", "ff", "dsp", "bram", "accuracy")


def keys_for(target: str) -> tuple[str, ...]:
    return FPGA_KEYS if target.startswith("fpga") else MEASURED_KEYS


@dataclass(frozen=True)
class Budget:
    limits: dict[str, float] = field(default_factory=dict)
    #: "upper": estimated figures are judged on the upper end of their interval (default); "point": on the
    #: estimate itself (measured and simulated figures are the same either way, except p90 vs p50 latency)
    on: str = "upper"

    def violations(self, figures: dict[str, float | None]) -> dict[str, float]:
        """Relative violation per key (> 0: over budget); a missing figure counts as a violation of 1."""
        out = {}
        for key, limit in self.limits.items():
            v = figures.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                out[key] = 1.0
            elif key in LOWER_BOUNDS:
                out[key] = (limit - v) / max(limit, 1e-12)
            else:
                out[key] = (v - limit) / max(limit, 1e-12)
        return out

    def met(self, figures: dict[str, float | None]) -> bool:
        return all(v <= 0 for v in self.violations(figures).values())

    def distance(self, figures: dict[str, float | None]) -> float:
        """How far outside the budget (0 inside): the largest relative violation."""
        return max([0.0] + [v for v in self.violations(figures).values() if v > 0])

    def text(self) -> str:
        text = ", ".join(f"{k} {'≥' if k in LOWER_BOUNDS else '≤'} {v:g}" for k, v in self.limits.items()) or "none"
        return text + (" (judged on the estimates themselves)" if self.on == "point" and self.limits else "")


def _number(key: str, raw: Any) -> float:
    text = str(raw).strip()
    pct = text.endswith("%")
    try:
        v = float(text[:-1] if pct else text)
    except ValueError:
        raise ConfigError(f"budget '{key}': '{raw}' is not a number", where="--budget",
                          fix="write key=value, e.g. latency_us=2,lut=0.8") from None
    if pct:
        if key not in FRACTIONS:
            raise ConfigError(f"budget '{key}' does not take a percentage", where="--budget",
                              fix=f"percentages are for {', '.join(FRACTIONS)}")
        v /= 100
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"budget '{key}' must be a positive number, got {raw}", where="--budget",
                          fix="a budget is a limit: latency_us=2, lut=0.8, dsp=50%")
    if key in FRACTIONS and v > 1:
        raise ConfigError(f"budget '{key}' = {raw} is more than the whole part" if key != "accuracy"
                          else f"budget accuracy = {raw} is above 1", where="--budget",
                          fix=f"{key} is a fraction: 0.8 or 80%")
    return v


def parse_budget(spec: str | dict[str, Any] | None, target: str, on: str = "upper") -> Budget:
    """Parse ``"latency_us=2,lut=0.8"`` (or a mapping) for ``target``; unknown keys are refused."""
    if on not in ("upper", "point"):
        raise ConfigError(f"--budget-on must be 'upper' or 'point', got {on!r}", where="--budget-on")
    if spec is None or spec == "" or spec == {}:
        return Budget(on=on)
    items: list[tuple[str, Any]]
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"budget item '{part.strip()}' has no '='", where="--budget",
                                  fix="write key=value pairs separated by commas: latency_us=2,lut=0.8")
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    allowed = keys_for(target)
    limits: dict[str, float] = {}
    for key, raw in items:
        if key not in allowed:
            raise ConfigError(f"unknown budget '{key}' for target {target}", where="--budget",
                              fix=f"budgets for {target}: {', '.join(allowed)}")
        if key in limits:
            raise ConfigError(f"budget '{key}' is given twice", where="--budget", fix="give each key once")
        limits[key] = _number(key, raw)
    return Budget(limits, on)
