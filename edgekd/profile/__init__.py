"""Latency per execution target, with the environment captured."""
from edgekd.profile.cpu_torch import profile_torch
from edgekd.profile.environment import capture as capture_environment
from edgekd.profile.onnxruntime import profile_ort
from edgekd.profile.result import LatencyResult, summarize

__all__ = ["LatencyResult", "capture_environment", "profile_ort", "profile_torch", "summarize"]

from edgekd._verb import make_callable as _make_callable

_make_callable(__name__, "profile")  # edgekd.profile(...) is the API verb (edgekd.api.profile)
