"""Where a student's teacher outputs come from: a cache, or a live forward pass.

:class:`TeacherSignal` is one teacher; :class:`MultiTeacherSignal` several (class-subset
specialists, or teachers at other resolutions), each cached like a single teacher.
Both answer the same questions for a batch: logits, every teacher's logits, and the
teacher features a loss declared (:class:`~edgekd.distill.hooks.TapSpec`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from edgekd.data.views import Batch, PairedViews, resize
from edgekd.distill.hooks import TapSpec, run_with_taps
from edgekd.data.augment import make_augmenter
from edgekd.distill.teacher_cache import TeacherCache, compute_teacher_outputs


@dataclass
class TeacherSignal:
    """One teacher: its ``cache`` when there is one, else a live forward of ``model``.

    Live only: ``view`` is the batch view the teacher reads (``"teacher"``, or
    ``"student"`` for a teacher at the student's resolution); ``input_size`` resamples
    that view when the teacher runs at yet another resolution.
    """

    cache: TeacherCache | None = None
    model: nn.Module | None = None
    input_size: int | tuple[int, int] | None = None
    view: str = "teacher"

    @property
    def live(self) -> bool:
        return self.cache is None

    def _input(self, batch: Batch) -> torch.Tensor:
        x = batch.student if self.view == "student" else batch.teacher
        if self.model is None or x is None:
            raise RuntimeError("no teacher signal available (no cache, and no live teacher or teacher view)")
        if self.input_size is not None:  # resize() is a no-op at the right size
            x = resize(x, self.input_size)
        return x

    def outputs(self, batch: Batch, specs: list[TapSpec] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, {spec.key: feature}) for the batch."""
        specs = list(specs)
        if self.cache is not None:
            feats = self.cache.lookup_features([s.key for s in specs], batch.index, batch.transforms) \
                if specs else {}
            return self.cache.lookup(batch.index, batch.transforms), feats
        self.model.eval()
        with torch.no_grad():
            return run_with_taps(self.model, self._input(batch), specs)

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.outputs(batch)[0]

    def all_logits(self, batch: Batch) -> list[torch.Tensor]:
        return [self.logits(batch)]

    def feature_shapes(self, specs: list[TapSpec], probe: Batch) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of each requested feature."""
        if not specs:
            return {}
        return {k: tuple(v.shape[1:]) for k, v in self.outputs(probe, specs)[1].items()}

    def all_features(self, spec: TapSpec, views: PairedViews, augment: str) -> torch.Tensor:
        """The feature for every training sample under every transform (N × K × ...)."""
        if self.cache is not None:
            if spec.key not in self.cache.features:  # lookup_features raises the clear error
                empty = torch.zeros(0, dtype=torch.long)
                self.cache.lookup_features([spec.key], empty, empty)
            return self.cache.features[spec.key]
        x = views.student if self.view == "student" else views.teacher
        if self.input_size is not None:  # resize() is a no-op at the right size
            x = resize(x, self.input_size)
        return compute_teacher_outputs(self.model, x, make_augmenter(augment), [spec])[1][spec.key]


@dataclass
class MultiTeacherSignal:
    """Several teachers, each a :class:`TeacherSignal` (cached or live).

    ``logits`` is the ensemble (log of the mean probability of the teachers that cover
    all classes), so single-teacher methods still work; ``all_logits`` gives each
    teacher's own logits for the ``mtkd`` loss. Features come from the first teacher.
    """

    signals: list[TeacherSignal] = field(default_factory=list)

    def __post_init__(self):
        if not self.signals:
            raise ValueError("a multi-teacher signal needs at least one teacher")

    @property
    def live(self) -> bool:
        return any(s.live for s in self.signals)

    def all_logits(self, batch: Batch) -> list[torch.Tensor]:
        return [s.logits(batch) for s in self.signals]

    def outputs(self, batch: Batch, specs: list[TapSpec] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _, feats = self.signals[0].outputs(batch, specs)
        return ensemble_logits(self.all_logits(batch)), feats

    def logits(self, batch: Batch) -> torch.Tensor:
        return ensemble_logits(self.all_logits(batch))

    def feature_shapes(self, specs: list[TapSpec], probe: Batch) -> dict[str, tuple[int, ...]]:
        return self.signals[0].feature_shapes(specs, probe)

    def all_features(self, spec: TapSpec, views: PairedViews, augment: str) -> torch.Tensor:
        return self.signals[0].all_features(spec, views, augment)


def ensemble_logits(logits: list[torch.Tensor]) -> torch.Tensor:
    """log of the mean softmax of the teachers with the most outputs (the generalists)."""
    width = max(z.shape[1] for z in logits)
    full = [z for z in logits if z.shape[1] == width]
    if len(full) == 1:
        return full[0]
    logp = torch.stack([torch.log_softmax(z, dim=1) for z in full])
    return torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(len(full)), dtype=logp.dtype))
