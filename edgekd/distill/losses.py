"""Loss registry: distillation methods as weighted terms of the student loss.

Levels (as in torchdistill): tensor functions in :mod:`edgekd.distill.functional`;
methods here, each a small ``nn.Module`` reading what it needs from a
:class:`LossContext`; and :class:`CompositeLoss`, the weighted sum a recipe describes.
A method registers itself with ``@register_loss``; nothing central is edited.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgekd.distill import functional as KF
from edgekd.distill.hooks import TapSpec
from edgekd.errors import ConfigError


@dataclass
class LossContext:
    """Everything a loss method may read for one batch."""

    student_logits: torch.Tensor
    targets: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    epoch: int = 0
    num_epochs: int = 1
    index: torch.Tensor | None = None  # sample indices in the training split
    student_features: dict[str, torch.Tensor] = field(default_factory=dict)  # by module path
    teacher_features: dict[str, torch.Tensor] = field(default_factory=dict)  # by TapSpec.key
    step: int = 0  # optimizer steps done before this batch
    total_steps: int = 1
    teachers_logits: list[torch.Tensor] | None = None  # one entry per teacher (multi-teacher)


@dataclass
class PrepareInfo:
    """What a method may need once, before training starts (shapes, data, teacher).

    Methods build learned modules here (so the trainer can hand their parameters to the
    optimizer) and precompute constants (e.g. ND's class-mean directions).
    """

    num_classes: int
    n_train: int
    train_labels: torch.Tensor
    epochs: int = 1
    steps_per_epoch: int = 1
    student_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per sample, by path
    teacher_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per sample, by TapSpec.key
    # N × K × ... teacher feature for every training sample and transform, by TapSpec.key
    teacher_features: Callable[[str], torch.Tensor] | None = None


class LossMethod(nn.Module):
    """Base class. Subclasses declare ``name``, ``needs_teacher`` and ``defaults``."""

    name: ClassVar[str] = ""
    needs_teacher: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    positive_params: ClassVar[tuple[str, ...]] = ("tau",)

    def __init__(self, **params: Any):
        super().__init__()
        bad = self.unknown_params(params)
        if bad:
            raise ConfigError(f"unknown parameter(s) {bad} for loss '{self.name}'",
                              fix=f"valid parameters: {self.param_names()}")
        self.params = {**self.defaults, **params}
        for key in self.positive_params:  # a zero temperature divides by zero: refuse it at load time
            if key in self.params and self.params[key] is not None:
                self.param(key, positive=True)

    @classmethod
    def param_names(cls) -> list[str]:
        """The parameter names this method accepts."""
        return sorted(cls.defaults)

    @classmethod
    def unknown_params(cls, params: dict[str, Any]) -> list[str]:
        """Names in ``params`` this method does not accept (used by recipe validation)."""
        return sorted(set(params) - set(cls.defaults))

    def param(self, name: str, kind: type = float, *, positive: bool = False, required: bool = False) -> Any:
        """A parameter converted to ``kind``, with a clear error naming method and key."""
        v = self.params.get(name)
        if v is None:
            if required:
                raise ConfigError(f"loss '{self.name}' needs parameter '{name}'", where=f"loss.{self.name}",
                                  fix=f"add {name}: ... (valid parameters: {self.param_names()})")
            return None
        try:
            out = kind(v)
        except (TypeError, ValueError):
            raise ConfigError(f"parameter '{name}' of loss '{self.name}' must be {kind.__name__}, got {v!r}",
                              where=f"loss.{self.name}.{name}") from None
        if positive and not out > 0:
            raise ConfigError(f"parameter '{name}' of loss '{self.name}' must be > 0, got {v!r}",
                              where=f"loss.{self.name}.{name}")
        return out

    # What a method reads besides logits: student module paths and teacher taps.
    def student_taps(self) -> list[str]:
        return []

    def teacher_taps(self) -> list[TapSpec]:
        return []

    def prepare(self, info: PrepareInfo) -> None:
        """Called once by the trainer before the optimizer is built."""
        return None

    def forward(self, ctx: LossContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # Hooks for methods with state (adaptive schedules, memories); no-ops by default.
    def on_epoch_end(self, epoch: int) -> None:
        return None

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        return None


LOSSES: dict[str, type[LossMethod]] = {}


def register_loss(name: str):
    """Class decorator: register a :class:`LossMethod` under ``name`` (unique)."""
    def deco(cls: type[LossMethod]) -> type[LossMethod]:
        if name in LOSSES:
            raise ValueError(f"loss '{name}' registered twice")
        cls.name = name
        LOSSES[name] = cls
        return cls

    return deco


def loss_needs_teacher(name: str) -> bool:
    """Whether the registered method ``name`` reads teacher outputs."""
    cls = LOSSES.get(name)
    return bool(cls and cls.needs_teacher)


@register_loss("ce")
class CrossEntropy(LossMethod):
    """Cross-entropy with the labels (optionally label-smoothed)."""

    defaults = {"label_smoothing": 0.0}

    def forward(self, ctx: LossContext) -> torch.Tensor:
        return F.cross_entropy(ctx.student_logits, ctx.targets,
                               label_smoothing=float(self.params["label_smoothing"]))


@register_loss("kd")
class HintonKD(LossMethod):
    """Hinton et al. 2015: τ²·KL(p_t^τ‖p_s^τ), ``batchmean``. Pair with ``ce`` for α·CE."""

    needs_teacher = True
    defaults = {"tau": 4.0}

    def forward(self, ctx: LossContext) -> torch.Tensor:
        return KF.kd_kl(ctx.student_logits, ctx.teacher_logits, self.param("tau", positive=True))


class CompositeLoss(nn.Module):
    """Weighted sum of loss methods, as written in the recipe."""

    def __init__(self, terms: list[tuple[str, float, dict[str, Any]]]):
        super().__init__()
        if not terms:
            raise ConfigError("a student needs at least one loss term", where="loss")
        self.names: list[str] = []
        self.weights: list[float] = []
        mods = []
        for i, (method, weight, params) in enumerate(terms):
            if method not in LOSSES:
                raise ConfigError(f"unknown loss method '{method}'", where=f"loss[{i}]",
                                  fix=f"valid methods: {sorted(LOSSES)}")
            self.names.append(method)
            self.weights.append(float(weight))
            mods.append(LOSSES[method](**params))
        self.methods = nn.ModuleList(mods)

    @classmethod
    def from_config(cls, terms) -> "CompositeLoss":
        return cls([(t.method, t.weight, t.params) for t in terms])

    @property
    def needs_teacher(self) -> bool:
        return any(m.needs_teacher for m in self.methods)

    def forward(self, ctx: LossContext) -> tuple[torch.Tensor, dict[str, float]]:
        total = ctx.student_logits.new_zeros(())
        parts = {}
        for i, (name, w, m) in enumerate(zip(self.names, self.weights, self.methods)):
            value = m(ctx)
            parts[name if name not in parts else f"{name}[{i}]"] = float(value.detach())
            total = total + w * value
        return total, parts

    def student_taps(self) -> list[str]:
        return list(dict.fromkeys(p for m in self.methods for p in m.student_taps()))

    def teacher_taps(self) -> list[TapSpec]:
        return list(dict.fromkeys(t for m in self.methods for t in m.teacher_taps()))

    def prepare(self, info: PrepareInfo) -> None:
        for m in self.methods:
            m.prepare(info)

    def on_epoch_end(self, epoch: int) -> None:
        for m in self.methods:
            m.on_epoch_end(epoch)

    def extra_state(self) -> list[dict[str, Any]]:
        return [m.extra_state() for m in self.methods]

    def load_extra_state(self, states: list[dict[str, Any]]) -> None:
        for m, s in zip(self.methods, states):
            m.load_extra_state(s)


def teacher_taps_for(terms) -> list[TapSpec]:
    """Teacher features a recipe's loss terms need (for building the teacher cache).

    ``terms`` are ``LossTermConfig`` objects or (method, weight, params) tuples.
    """
    specs: list[TapSpec] = []
    for t in terms:
        method, params = (t.method, t.params) if hasattr(t, "method") else (t[0], t[2])
        specs += LOSSES[method](**params).teacher_taps()
    return list(dict.fromkeys(specs))
