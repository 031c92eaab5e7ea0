"""``cpu-torch`` target: the PyTorch module on the CPU, eager, ``torch.inference_mode``."""
from __future__ import annotations

import torch
import torch.nn as nn

from edgekd.profile.result import LatencyResult, summarize
from edgekd.profile.timing import time_calls


def profile_torch(model: nn.Module, name: str, example: torch.Tensor, *, batch_size: int, runs: int,
                  warmup: int, threads: int) -> LatencyResult:
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval()
        x = example[:1].repeat(batch_size, *([1] * (example.ndim - 1))).contiguous()
        with torch.inference_mode():
            samples = time_calls(lambda: model(x), runs=runs, warmup=warmup)
    finally:
        torch.set_num_threads(prev)
    return summarize(samples, model=name, target="cpu-torch", batch_size=batch_size, warmup=warmup,
                     threads=threads, timer="time.perf_counter_ns around model(x), inference_mode",
                     details={"torch": torch.__version__})
