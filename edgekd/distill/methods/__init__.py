"""Distillation methods, registered in the loss registry on import."""
from edgekd.distill.methods import feature, logit  # noqa: F401  (registration)
