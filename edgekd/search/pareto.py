"""Pareto front of search points: accuracy up, latency and resources down."""
from __future__ import annotations

from typing import Any, Sequence

#: objective name → +1 to maximise, -1 to minimise
OBJECTIVES: dict[str, int] = {"accuracy": +1, "latency_us": -1, "resource": -1}


def dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[int]) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y, s in zip(a, b, signs):
        x, y = s * x, s * y
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(points: list[dict[str, Any]], objectives: dict[str, int] = OBJECTIVES) -> list[dict[str, Any]]:
    """The non-dominated points (duplicates of a front point are kept), in increasing latency."""
    keys, signs = list(objectives), list(objectives.values())
    vec = [[float(p[k]) for k in keys] for p in points]
    front = [p for i, p in enumerate(points)
             if not any(dominates(vec[j], vec[i], signs) for j in range(len(points)) if j != i)]
    return sorted(front, key=lambda p: tuple(-s * float(p[k]) for k, s in zip(keys[1:] + keys[:1],
                                                                              signs[1:] + signs[:1])))
