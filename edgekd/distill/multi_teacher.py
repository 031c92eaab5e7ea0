"""Multi-teacher distillation: several teachers, each cached like one, one weighted loss.

Teachers may be specialists on class subsets (teacher k outputs one logit per class in
``classes[k]``, in that order) or generalists (one logit per class), possibly at other
input resolutions. The ``mtkd`` loss is

    Σ_k w_k · τ² · KL(p_{t_k}^τ ‖ p_s^τ restricted to classes[k])

so a teacher never pushes on classes it does not know. Weights are fixed (``weights``,
uniform by default) or adaptive per sample (``adaptive: true``): w_{k,i} ∝ exp(−CE_k,i)
over the teachers whose subset contains the label y_i (CE_k,i is teacher k's own
cross-entropy on y_i within its subset), so a confident, correct teacher counts more
and a teacher that does not know y_i counts 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgekd.data.views import PairedViews
from edgekd.distill.functional import kl_per_sample
from edgekd.distill.losses import LossContext, LossMethod, register_loss
from edgekd.distill.signals import MultiTeacherSignal, TeacherSignal
from edgekd.distill.teacher_cache import build_teacher_cache
from edgekd.errors import ConfigError


def build_multi_teacher_signal(teachers: Sequence[nn.Module], views: PairedViews, augment: str, *,
                               inputs: Sequence[torch.Tensor | None] | None = None,
                               paths: Sequence[Path | None] | None = None,
                               progress: bool = False) -> MultiTeacherSignal:
    """Cache every teacher's logits on the same samples × transforms.

    ``inputs[k]`` is teacher k's view of the training split (another resolution),
    ``None`` for ``views.teacher``; ``paths[k]`` where its cache is stored.
    """
    n = len(teachers)
    inputs = list(inputs) if inputs is not None else [None] * n
    paths = list(paths) if paths is not None else [None] * n
    if len(inputs) != n or len(paths) != n:
        raise ValueError("inputs and paths need one entry per teacher")
    return MultiTeacherSignal([
        TeacherSignal(cache=build_teacher_cache(t, views, augment, path=p, inputs=x, progress=progress))
        for t, x, p in zip(teachers, inputs, paths)
    ])


@register_loss("mtkd")
class MultiTeacherKD(LossMethod):
    """Σ_k w_k·τ²·KL(p_{t_k}^τ‖p_s^τ) over each teacher's classes; pair with ``ce``."""

    needs_teacher = True
    defaults = {"tau": 4.0, "classes": None, "weights": None, "adaptive": False}

    def __init__(self, **params: Any):
        super().__init__(**params)
        classes = self.params["classes"]
        self.classes = None if classes is None else [None if c is None else [int(i) for i in c] for c in classes]
        w = self.params["weights"]
        self.fixed = None if w is None else [float(v) for v in w]
        if self.classes is not None and self.fixed is not None and len(self.classes) != len(self.fixed):
            raise ConfigError(f"mtkd: {len(self.classes)} class subsets but {len(self.fixed)} weights",
                              where="loss.mtkd", fix="give one weight per teacher")

    def _subset(self, k: int, num_classes: int) -> list[int]:
        if self.classes is None or self.classes[k] is None:
            return list(range(num_classes))
        return self.classes[k]

    def per_teacher(self, zs: torch.Tensor, teachers: list[torch.Tensor], targets: torch.Tensor):
        """Per-teacher per-sample τ²·KL (K × B) and teacher CE on the label (K × B, inf if unknown)."""
        tau = self.param("tau", positive=True)
        C = zs.shape[1]
        kls, ces = [], []
        for k, zt in enumerate(teachers):
            sub = self._subset(k, C)
            idx = torch.tensor(sub, device=zs.device)
            zt_k = zt if zt.shape[1] == len(sub) else zt[:, idx]
            if zt_k.shape[1] != len(sub):
                raise ConfigError(f"mtkd: teacher {k} has {zt.shape[1]} outputs, its class subset {sub} needs "
                                  f"{len(sub)} (or {C} for a generalist)", where="loss.mtkd.classes")
            zs_k = zs[:, idx]
            kls.append(kl_per_sample(F.log_softmax(zt_k / tau, 1), F.log_softmax(zs_k / tau, 1)) * tau * tau)
            # position of each label in the subset; −1 where the teacher does not know it
            pos = torch.full((C,), -1, dtype=torch.long, device=zs.device)
            pos[idx] = torch.arange(len(sub), device=zs.device)
            p = pos[targets]
            ce = -F.log_softmax(zt_k.detach(), 1).gather(1, p.clamp_min(0)[:, None])[:, 0]
            ces.append(torch.where(p >= 0, ce, torch.full_like(ce, float("inf"))))
        return torch.stack(kls), torch.stack(ces)

    def weights_for(self, ces: torch.Tensor) -> torch.Tensor:
        """K × B weights: fixed (broadcast) or adaptive softmax(−CE) over knowing teachers."""
        K, B = ces.shape
        if self.params["adaptive"]:
            w = torch.softmax(-ces, dim=0)
            return torch.nan_to_num(w, nan=0.0)  # a label no teacher knows: all −inf → 0
        fixed = self.fixed if self.fixed is not None else [1.0 / K] * K
        if len(fixed) != K:
            raise ConfigError(f"mtkd: {len(fixed)} weights for {K} teachers", where="loss.mtkd.weights")
        return torch.tensor(fixed, dtype=ces.dtype, device=ces.device)[:, None].expand(K, B)

    def forward(self, ctx: LossContext) -> torch.Tensor:
        teachers = ctx.teachers_logits if ctx.teachers_logits is not None else [ctx.teacher_logits]
        kls, ces = self.per_teacher(ctx.student_logits, teachers, ctx.targets)
        w = self.weights_for(ces).to(kls.dtype)
        return (w * kls).sum(dim=0).mean()
