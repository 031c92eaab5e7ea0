"""Distillation: loss registry, teacher cache, trainer."""
from edgekd.distill.losses import LOSSES, CompositeLoss, LossContext, LossMethod, register_loss
from edgekd.distill.teacher_cache import TeacherCache, build_teacher_cache
from edgekd.distill.trainer import TeacherSignal, TrainResult, accuracy, predict_logits, train

__all__ = ["LOSSES", "CompositeLoss", "LossContext", "LossMethod", "TeacherCache", "TeacherSignal",
           "TrainResult", "accuracy", "build_teacher_cache", "predict_logits", "register_loss", "train"]
