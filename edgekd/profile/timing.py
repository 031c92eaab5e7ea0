"""Wall-clock timing of a callable: warm-up, then one ``perf_counter_ns`` pair per call."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def time_calls(fn: Callable[[], object], *, runs: int, warmup: int) -> np.ndarray:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times timed; seconds per call."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        fn()
        out[i] = (clock() - t0) * 1e-9
    return out
