"""Distributed data parallel training on PyTorch's own engine.

``torchrun --nproc_per_node=N -m edgekd run RECIPE`` starts N processes; each calls
:func:`init_from_env`, which joins the process group (gloo on CPU, NCCL on GPU).

Global batch semantics: a recipe's ``batch_size`` is the *global* batch. Every rank
draws the same seeded permutation and augmentation, takes its contiguous slice of each
global batch (``batch_size / world_size`` samples), and DDP averages the gradients —
so N processes take the same optimizer steps as one process with the same batch size
(exactly so when the batch divides evenly; BatchNorm statistics are per rank).
Rank 0 alone logs, checkpoints and writes artifacts; metrics are all-reduced.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistContext:
    """The process group this process belongs to (world size 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def init_from_env() -> DistContext:
    """Join the process group torchrun describes in the environment (no-op otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return current()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def wrap(model: nn.Module) -> nn.Module:
    """DDP-wrap a model that is being trained (never the frozen teacher)."""
    if not current().enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def shard(index_count: int) -> slice:
    """This rank's contiguous slice of a global batch of ``index_count`` samples."""
    ctx = current()
    if not ctx.enabled:
        return slice(0, index_count)
    per = -(-index_count // ctx.world_size)  # ceil
    start = min(ctx.rank * per, index_count)
    return slice(start, min(start + per, index_count))


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum floats over ranks (identity when not distributed)."""
    if not current().enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()
