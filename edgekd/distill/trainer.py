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
from edgekd.distill.hooks import FeatureTaps
from edgekd.distill.losses import CompositeLoss, LossContext, PrepareInfo
from edgekd.distill.signals import MultiTeacherSignal, TeacherSignal
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


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits for ``x`` in eval mode, in chunks; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else torch.empty(0)
    model.train(was_training)
    return out


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (NaN for an empty split)."""
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int,
                   extra_params: list[nn.Parameter] | None = None):
    """Optimizer and per-step LR schedule; ``extra_params`` (learned loss modules) train too."""
    o = cfg.optim
    params = list(model.parameters())
    seen = {id(p) for p in params}
    params += [p for p in (extra_params or []) if p.requires_grad and id(p) not in seen]
    if o.name == "sgd":
        opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=True)
    else:
        opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
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


def _probe_batch(views: PairedViews, with_teacher: bool) -> Batch:
    """The first two training samples, untransformed: only used to read feature shapes."""
    n = min(2, len(views))
    idx = torch.arange(n)
    return Batch(idx, views.teacher[:n] if with_teacher else None, views.student[:n], views.labels[:n],
                 torch.zeros(n, dtype=torch.long))


@torch.no_grad()
def _probe(model: nn.Module, taps: FeatureTaps | None, x: torch.Tensor) -> tuple[int, dict[str, tuple[int, ...]]]:
    """(number of outputs, per-sample shape of each tapped student feature)."""
    was_training = model.training
    model.eval()  # eval: a shape probe must not update BatchNorm statistics
    try:
        out = model(x)
    finally:
        model.train(was_training)
    shapes = {k: tuple(v.shape[1:]) for k, v in taps.pop().items()} if taps is not None else {}
    return int(out.shape[1]), shapes


def train(model: nn.Module, train_views: PairedViews, val_views: PairedViews, cfg: TrainConfig,
          loss_fn: CompositeLoss, *, seed: int, view: str = "student",
          teacher: TeacherSignal | MultiTeacherSignal | None = None, checkpoint: Path | None = None,
          meta: dict[str, Any] | None = None, desc: str = "train", progress: bool = True,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` in place; resume from ``checkpoint`` if one exists.

    Loss methods that read features declare module paths (:meth:`LossMethod.student_taps`,
    :meth:`LossMethod.teacher_taps`); they are captured with forward hooks on the
    unwrapped model. Learned loss modules (regressors, projectors) are built by
    :meth:`CompositeLoss.prepare` before the optimizer, which trains them with the model,
    and are saved in the checkpoint with the loss methods' adaptive state.
    """
    meta = dict(meta or {})
    s_paths = loss_fn.student_taps()
    t_specs = loss_fn.teacher_taps()
    if (loss_fn.needs_teacher or t_specs) and teacher is None:
        raise RuntimeError(f"{desc}: loss needs a teacher but none was given")
    steps = math.ceil(len(train_views) / cfg.batch_size)
    total_steps = steps * cfg.epochs
    need_live_teacher = teacher is not None and teacher.live and (loss_fn.needs_teacher or bool(t_specs))
    with_teacher_view = view == "teacher" or need_live_teacher
    taps = FeatureTaps(model, s_paths, where=f"{desc}: student feature path") if s_paths else None
    try:
        probe = _probe_batch(train_views, with_teacher_view)
        x_probe = probe.teacher if view == "teacher" else probe.student
        n_out, s_shapes = _probe(model, taps, x_probe)
        spec_by_key = {sp.key: sp for sp in t_specs}
        info = PrepareInfo(
            num_classes=n_out, n_train=len(train_views), train_labels=train_views.labels, epochs=cfg.epochs,
            steps_per_epoch=steps, student_shapes=s_shapes,
            teacher_shapes=teacher.feature_shapes(t_specs, probe) if t_specs else {},
            teacher_features=(lambda key: teacher.all_features(spec_by_key[key], train_views, cfg.augment))
            if t_specs else None,
        )
        # learned loss modules get an initialisation that depends on the seed only, and
        # building them must not shift the global RNG stream the rest of training uses
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            loss_fn.prepare(info)
        return _train_loop(model, train_views, val_views, cfg, loss_fn, seed=seed, view=view, teacher=teacher,
                           checkpoint=checkpoint, meta=meta, desc=desc, progress=progress, on_epoch=on_epoch,
                           steps=steps, total_steps=total_steps, taps=taps, t_specs=t_specs,
                           with_teacher_view=with_teacher_view)
    finally:
        if taps is not None:
            taps.close()


def _train_loop(model, train_views, val_views, cfg, loss_fn, *, seed, view, teacher, checkpoint, meta, desc,
                progress, on_epoch, steps, total_steps, taps, t_specs, with_teacher_view) -> TrainResult:
    from edgekd.distill import distributed as D

    ddp = D.current()
    net = D.wrap(model)  # gradients are averaged over ranks; the teacher is never wrapped
    if not ddp.is_main:
        checkpoint_write = None
        progress = False
    else:
        checkpoint_write = checkpoint
    opt, sched = make_optimizer(model, cfg, steps, list(loss_fn.parameters()))
    loss_fn.train()
    result = TrainResult()
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        blob = load_checkpoint(checkpoint, meta)
        model.load_state_dict(blob["model"])
        if blob.get("loss_module"):
            loss_fn.load_state_dict(blob["loss_module"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["rng"])
        loss_fn.load_extra_state(blob.get("loss_state", []))
        result.history = list(blob.get("history", []))
        start_epoch = int(blob["epoch"])
        result.resumed_from_epoch = start_epoch if start_epoch < cfg.epochs else None
    x_val = val_views.teacher if view == "teacher" else val_views.student
    uses_teacher = teacher is not None and (loss_fn.needs_teacher or bool(t_specs))
    multi = isinstance(teacher, MultiTeacherSignal)
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
                                                  shuffle=True, augment=cfg.augment, balanced=cfg.balanced,
                                                  with_teacher=with_teacher_view)):
            if ddp.enabled:  # this rank's slice of the global batch (same permutation on every rank)
                if len(batch.labels) < ddp.world_size:
                    continue  # a trailing batch too small to give every rank a sample: skipped by all
                part = D.shard(len(batch.labels))
                batch = Batch(batch.index[part], None if batch.teacher is None else batch.teacher[part],
                              batch.student[part], batch.labels[part], batch.transforms[part])
            x = batch.teacher if view == "teacher" else batch.student
            logits = net(x)
            t_logits, t_feats, t_all = None, {}, None
            if uses_teacher:
                t_logits, t_feats = teacher.outputs(batch, t_specs)
                t_all = teacher.all_logits(batch) if multi else None
            ctx = LossContext(
                student_logits=logits, targets=batch.labels, teacher_logits=t_logits,
                epoch=epoch, num_epochs=cfg.epochs, index=batch.index,
                student_features=taps.pop() if taps is not None else {}, teacher_features=t_feats,
                step=epoch * steps + b, total_steps=total_steps, teachers_logits=t_all,
            )
            loss, _ = loss_fn(ctx)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {float(loss.detach())} at epoch {epoch + 1}, batch {b + 1}",
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
        tot_loss, tot_correct, tot_n = D.all_reduce_sum([tot_loss, tot_correct, tot_n])
        train_seconds = time.perf_counter() - t0  # optimisation only, before validation
        loss_fn.on_epoch_end(epoch)
        val_acc = accuracy(predict_logits(model, x_val), val_views.labels)
        if taps is not None:
            taps.pop()  # drop the validation pass's captures
        row = {"epoch": epoch + 1, "loss": tot_loss / tot_n, "train_acc": tot_correct / tot_n,
               "val_acc": val_acc, "seconds": time.perf_counter() - t0, "train_seconds": train_seconds, "samples": int(tot_n),
               "lr": sched.get_last_lr()[0]}
        result.history.append(row)
        if checkpoint_write is not None:
            save_torch(checkpoint_write, {
                "meta": meta, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch + 1,
                "history": result.history, "loss_state": loss_fn.extra_state(),
                "loss_module": loss_fn.state_dict(), "done": epoch + 1 == cfg.epochs,
            })
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{val_acc:.3f}")
            bar.update(1)
        D.barrier()  # no rank runs ahead of rank 0's checkpoint
        if on_epoch is not None:
            on_epoch(epoch, row)
    if bar is not None:
        bar.close()
    result.seconds = time.perf_counter() - t_start
    model.eval()
    return result


def seed_everything(seed: int) -> None:
    """Seed torch and NumPy's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
