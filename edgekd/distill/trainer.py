"""Training loop shared by teachers and students (float, and later quantization-aware).

One epoch = one pass over the training split in a seeded order. A checkpoint is written
atomically after every epoch (model, optimizer, scheduler, RNG, loss state, history), so
a killed run resumes from its last completed epoch and ends with the same weights.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from edgekd.config.schema import TrainConfig
from edgekd.data.views import Batch, PairedViews, iterate_batches
from edgekd.distill.losses import CompositeLoss, LossContext
from edgekd.distill.teacher_cache import TeacherCache
from edgekd.errors import EdgekdError, TrainingError
from edgekd.runs.atomic import save_torch


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int | None = None

    @property
    def val_accuracy(self) -> float:
        return self.history[-1]["val_acc"] if self.history else float("nan")


@dataclass
class TeacherSignal:
    """Where a student's teacher logits come from: the cache, or a live forward pass."""

    cache: TeacherCache | None = None
    model: nn.Module | None = None

    def logits(self, batch: Batch) -> torch.Tensor:
        if self.cache is not None:
            return self.cache.lookup(batch.index, batch.transforms)
        if self.model is None or batch.teacher is None:
            raise RuntimeError("no teacher signal available")
        with torch.no_grad():
            return self.model(batch.teacher)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else torch.empty(0)
    model.train(was_training)
    return out


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    o = cfg.optim
    if o.name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                              nesterov=True)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = o.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if o.schedule == "constant":
            return 1.0
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def load_checkpoint(path: Path, expect: dict[str, Any]) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only``) and check it belongs to this model."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user-facing error
        raise EdgekdError(f"cannot load checkpoint: {exc}", where=str(path),
                          fix="delete it to start that model again, or restore a good copy") from None
    meta = blob.get("meta", {}) if isinstance(blob, dict) else {}
    for k, v in expect.items():
        if meta.get(k) != v:
            raise EdgekdError(
                f"checkpoint is for a different model: {k} is {meta.get(k)!r}, this recipe needs {v!r}",
                where=str(path),
                fix="use another --out directory, or delete the checkpoint to retrain",
            )
    return blob


def train(model: nn.Module, train_views: PairedViews, val_views: PairedViews, cfg: TrainConfig,
          loss_fn: CompositeLoss, *, seed: int, view: str = "student",
          teacher: TeacherSignal | None = None, checkpoint: Path | None = None,
          meta: dict[str, Any] | None = None, desc: str = "train", progress: bool = True,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` in place; resume from ``checkpoint`` if one exists."""
    meta = dict(meta or {})
    if loss_fn.needs_teacher and teacher is None:
        raise RuntimeError(f"{desc}: loss needs a teacher but none was given")
    steps = math.ceil(len(train_views) / cfg.batch_size)
    opt, sched = make_optimizer(model, cfg, steps)
    result = TrainResult()
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        blob = load_checkpoint(checkpoint, meta)
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["rng"])
        loss_fn.load_extra_state(blob.get("loss_state", []))
        result.history = list(blob.get("history", []))
        start_epoch = int(blob["epoch"])
        result.resumed_from_epoch = start_epoch if start_epoch < cfg.epochs else None
    x_val = val_views.teacher if view == "teacher" else val_views.student
    need_live_teacher = teacher is not None and teacher.cache is None and loss_fn.needs_teacher
    t_start = time.perf_counter()
    bar = None
    if progress and start_epoch < cfg.epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=desc, unit="ep", leave=True, dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        tot_loss = tot_correct = tot_n = 0.0
        for b, batch in enumerate(iterate_batches(train_views, cfg.batch_size, seed=seed, epoch=epoch,
                                                  shuffle=True, augment=cfg.augment,
                                                  with_teacher=view == "teacher" or need_live_teacher)):
            x = batch.teacher if view == "teacher" else batch.student
            logits = model(x)
            ctx = LossContext(
                student_logits=logits, targets=batch.labels,
                teacher_logits=teacher.logits(batch) if loss_fn.needs_teacher else None,
                epoch=epoch, num_epochs=cfg.epochs, index=batch.index,
            )
            loss, _ = loss_fn(ctx)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {float(loss)} at epoch {epoch + 1}, batch {b + 1}",
                    where=desc,
                    fix="lower the learning rate, check the data for NaN/Inf, or check the loss weights",
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n = len(batch.labels)
            tot_loss += float(loss.detach()) * n
            tot_correct += float((logits.detach().argmax(1) == batch.labels).sum())
            tot_n += n
        loss_fn.on_epoch_end(epoch)
        val_acc = accuracy(predict_logits(model, x_val), val_views.labels)
        row = {"epoch": epoch + 1, "loss": tot_loss / tot_n, "train_acc": tot_correct / tot_n,
               "val_acc": val_acc, "seconds": time.perf_counter() - t0, "lr": sched.get_last_lr()[0]}
        result.history.append(row)
        if checkpoint is not None:
            save_torch(checkpoint, {
                "meta": meta, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch + 1,
                "history": result.history, "loss_state": loss_fn.extra_state(),
                "done": epoch + 1 == cfg.epochs,
            })
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{val_acc:.3f}")
            bar.update(1)
        if on_epoch is not None:
            on_epoch(epoch, row)
    if bar is not None:
        bar.close()
    result.seconds = time.perf_counter() - t_start
    model.eval()
    return result


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
