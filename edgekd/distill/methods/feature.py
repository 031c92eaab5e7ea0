"""Feature-based distillation: FitNet hints, attention transfer, ND.

Features are captured by forward hooks at module paths (``student:`` on the student,
``teacher:`` on the teacher; see :mod:`edgekd.distill.hooks`), never by rewriting a
``forward``. Learned modules (FitNet's regressor, ND's projector) are built in
:meth:`prepare`, when the trainer knows the feature shapes, and the trainer hands
their parameters to the optimizer.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from edgekd.distill import functional as KF
from edgekd.distill.hooks import TapSpec
from edgekd.distill.losses import LossContext, LossMethod, PrepareInfo, register_loss
from edgekd.errors import ConfigError


def _paths(v: Any, name: str, method: str) -> list[str]:
    if v is None:
        raise ConfigError(f"loss '{method}' needs parameter '{name}' (a module path)", where=f"loss.{method}",
                          fix="e.g. student: '5', teacher: 'stages.1' (see edgekd.distill.hooks)")
    return [v] if isinstance(v, str) else [str(p) for p in v]


def _get(ctx_feats: dict[str, torch.Tensor], key: str, method: str, side: str) -> torch.Tensor:
    try:
        return ctx_feats[key]
    except KeyError:
        raise ConfigError(f"{method}: no {side} feature '{key}' in this batch (have {sorted(ctx_feats)})",
                          where=f"loss.{method}",
                          fix="train through edgekd.distill.train, which captures the declared taps") from None


def make_regressor(kind: str, s_shape: tuple[int, ...], t_shape: tuple[int, ...], where: str) -> nn.Module:
    """A module mapping a student feature (shape ``s_shape``) onto ``t_shape``.

    ``auto``: identity when shapes match, a 1×1 conv (+ resize) between conv maps, a
    linear layer when the teacher feature is a vector. ``none``: shapes must match.
    """
    if kind not in ("auto", "none", "conv", "linear"):
        raise ConfigError(f"unknown regressor '{kind}'", where=where, fix="use auto, none, conv or linear")
    if kind in ("auto", "none") and tuple(s_shape) == tuple(t_shape):
        return nn.Identity()
    if kind == "none":
        raise ConfigError(f"student feature {tuple(s_shape)} and teacher feature {tuple(t_shape)} differ and "
                          "regressor is 'none'", where=where, fix="set regressor: auto (a learned 1×1 conv/linear)")
    if len(t_shape) == 3 and len(s_shape) == 3 and kind in ("auto", "conv"):
        return _ConvRegressor(s_shape[0], t_shape[0], (t_shape[1], t_shape[2]))
    if len(t_shape) == 1 and kind in ("auto", "linear"):
        n_in = 1
        for d in s_shape:
            n_in *= d
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, t_shape[0]))
    raise ConfigError(f"cannot map student feature {tuple(s_shape)} onto teacher feature {tuple(t_shape)} with "
                      f"regressor '{kind}'", where=where,
                      fix="pair conv maps with conv maps, or tap a vector (e.g. 'features') on the teacher")


class _ConvRegressor(nn.Module):
    """1×1 conv to the teacher's channels, then resample to its spatial size."""

    def __init__(self, c_in: int, c_out: int, size: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return KF.resize_map(self.conv(x), self.size)


@register_loss("fitnet")
class FitNet(LossMethod):
    """FitNet hints (Romero et al., 2015): ½·mean (u_teacher − r(v_student))².

    ``r`` is learned (see :func:`make_regressor`); typical weight 100 for one stage.
    """

    needs_teacher = True
    defaults = {"student": None, "teacher": None, "regressor": "auto"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.s_path = _paths(self.params["student"], "student", self.name)[0]
        self.t_spec = TapSpec(_paths(self.params["teacher"], "teacher", self.name)[0])
        self.regressor: nn.Module | None = None

    def student_taps(self) -> list[str]:
        return [self.s_path]

    def teacher_taps(self) -> list[TapSpec]:
        return [self.t_spec]

    def prepare(self, info: PrepareInfo) -> None:
        self.build(info.student_shapes[self.s_path], info.teacher_shapes[self.t_spec.key])

    def build(self, s_shape: tuple[int, ...], t_shape: tuple[int, ...]) -> None:
        """Create the regressor for these per-sample shapes."""
        self.regressor = make_regressor(str(self.params["regressor"]), s_shape, t_shape, "loss.fitnet")

    def forward(self, ctx: LossContext) -> torch.Tensor:
        v = _get(ctx.student_features, self.s_path, self.name, "student")
        u = _get(ctx.teacher_features, self.t_spec.key, self.name, "teacher")
        if self.regressor is None:
            self.build(tuple(v.shape[1:]), tuple(u.shape[1:]))
            if not isinstance(self.regressor, nn.Identity):
                raise ConfigError("fitnet's regressor must be built before training (shapes differ)",
                                  where="loss.fitnet", fix="call prepare() (edgekd.distill.train does)")
        return KF.hint_loss(self.regressor(v), u.to(v.dtype))


@register_loss("at")
class AttentionTransfer(LossMethod):
    """Attention transfer (Zagoruyko & Komodakis, 2017): mean ‖Q_s − Q_t‖², β≈1000 as weight.

    ``student``/``teacher`` are one path each or equal-length lists (pairs summed). The
    teacher side is cached as its B×H×W attention map only; when sizes differ the
    teacher map is resampled to the student's.
    """

    needs_teacher = True
    defaults = {"student": None, "teacher": None, "p": 2.0}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.s_paths = _paths(self.params["student"], "student", self.name)
        t_paths = _paths(self.params["teacher"], "teacher", self.name)
        if len(t_paths) != len(self.s_paths):
            raise ConfigError(f"at: {len(self.s_paths)} student paths but {len(t_paths)} teacher paths",
                              where="loss.at", fix="give one teacher path per student path")
        p = self.param("p", positive=True)
        self.t_specs = [TapSpec(t, "attention", p) for t in t_paths]

    def student_taps(self) -> list[str]:
        return list(self.s_paths)

    def teacher_taps(self) -> list[TapSpec]:
        return list(self.t_specs)

    def forward(self, ctx: LossContext) -> torch.Tensor:
        total = ctx.student_logits.new_zeros(())
        for s_path, spec in zip(self.s_paths, self.t_specs):
            fs = _get(ctx.student_features, s_path, self.name, "student")
            if fs.ndim != 4:
                raise ConfigError(f"at: student feature at '{s_path}' has shape {tuple(fs.shape)}, not B×C×H×W",
                                  where="loss.at", fix="tap a convolutional layer")
            a_s = KF.attention_map(fs, spec.p)
            a_t = _get(ctx.teacher_features, spec.key, self.name, "teacher").to(a_s.dtype)
            a_t = KF.resize_map(a_t, tuple(a_s.shape[-2:]))
            total = total + KF.at_loss(a_s, a_t)
        return total


@register_loss("nd")
class NormDirection(LossMethod):
    """ND (Wang et al., 2023, "KD++"): align student features with the teacher's class means.

    e_c = unit mean of the teacher's ``teacher`` features over training samples of
    class c (all cached transforms), precomputed once in :meth:`prepare`. When the
    student feature has another size, a learned linear projector maps it first.
    Used as CE + 3.5·KD + 2·ND in the paper.
    """

    needs_teacher = True
    defaults = {"student": None, "teacher": "features", "projector": "auto"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.s_path = _paths(self.params["student"], "student", self.name)[0]
        self.t_spec = TapSpec(_paths(self.params["teacher"], "teacher", self.name)[0])
        self.projector: nn.Module | None = None
        self.register_buffer("class_dirs", torch.empty(0), persistent=True)

    def student_taps(self) -> list[str]:
        return [self.s_path]

    def teacher_taps(self) -> list[TapSpec]:
        return [self.t_spec]

    def prepare(self, info: PrepareInfo) -> None:
        t_shape = info.teacher_shapes[self.t_spec.key]
        if len(t_shape) != 1:
            raise ConfigError(f"nd needs a feature vector on the teacher, '{self.t_spec.path}' gives {t_shape}",
                              where="loss.nd", fix="tap the penultimate layer (resnet-mini: 'features')")
        kind = str(self.params["projector"])
        self.projector = make_regressor("linear" if kind == "auto" else kind,
                                        info.student_shapes[self.s_path], t_shape, "loss.nd") \
            if tuple(info.student_shapes[self.s_path]) != tuple(t_shape) else nn.Identity()
        if info.teacher_features is None:
            raise ConfigError("nd needs the teacher's features over the training split", where="loss.nd")
        self.set_class_means(info.teacher_features(self.t_spec.key), info.train_labels, info.num_classes)

    def set_class_means(self, feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
        """e_c from teacher features N × K × D (or N × D) and labels N."""
        f = feats.float()
        if f.ndim == 3:  # average over the transforms first: each sample counts once
            f = f.mean(dim=1)
        sums = torch.zeros(num_classes, f.shape[1]).index_add_(0, labels, f)
        counts = torch.bincount(labels, minlength=num_classes).clamp_min(1)[:, None]
        self.class_dirs = nn.functional.normalize(sums / counts, dim=1)

    def forward(self, ctx: LossContext) -> torch.Tensor:
        if self.class_dirs.numel() == 0:
            raise ConfigError("nd's class directions were not computed", where="loss.nd",
                              fix="call prepare() (edgekd.distill.train does) or set_class_means()")
        fs = _get(ctx.student_features, self.s_path, self.name, "student")
        ft = _get(ctx.teacher_features, self.t_spec.key, self.name, "teacher").to(fs.dtype)
        proj = self.projector if self.projector is not None else nn.Identity()
        return KF.nd_loss(proj(fs.flatten(1)), ft.flatten(1), self.class_dirs.to(fs.dtype), ctx.targets)
