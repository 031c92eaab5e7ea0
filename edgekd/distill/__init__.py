"""Distillation: loss registry and methods, feature hooks, teacher cache, trainer."""
from edgekd.distill.losses import (LOSSES, CompositeLoss, LossContext, LossMethod, PrepareInfo, register_loss,
                                   teacher_taps_for)
from edgekd.distill import methods  # noqa: F401  (registers dkd, nkd, pld, sinkd, taid, bdkd, pskd, fitnet, at, nd)
from edgekd.distill import multi_teacher  # noqa: F401  (registers mtkd)
from edgekd.distill.hooks import FeatureTaps, TapSpec, resolve, unwrap
from edgekd.distill.multi_teacher import build_multi_teacher_signal
from edgekd.distill.signals import MultiTeacherSignal, TeacherSignal
from edgekd.distill.teacher_cache import TeacherCache, build_teacher_cache
from edgekd.distill.trainer import TrainResult, accuracy, load_checkpoint, predict_logits, seed_everything, train

__all__ = ["LOSSES", "CompositeLoss", "FeatureTaps", "LossContext", "LossMethod", "MultiTeacherSignal",
           "PrepareInfo", "TapSpec", "TeacherCache", "TeacherSignal", "TrainResult", "accuracy",
           "build_multi_teacher_signal", "build_teacher_cache", "load_checkpoint", "predict_logits",
           "register_loss", "resolve", "seed_everything", "teacher_taps_for", "train", "unwrap"]

from edgekd._verb import make_callable as _make_callable

_make_callable(__name__, "distill")  # edgekd.distill(...) is the API verb (edgekd.api.distill)
