"""Target ``cpu-torch``: the PyTorch module itself on this CPU (the reference; nothing to export)."""
from __future__ import annotations

from edgekd.targets.base import Target, register_target
from edgekd.targets.onnxruntime import _runs, _warmup


@register_target
class CpuTorchTarget(Target):
    name = "cpu-torch"
    exports = False
    teacher_too = True

    def profile(self, name, model, x, artifacts, recipe, log) -> list:
        from edgekd.profile import profile_torch

        p = recipe.profile
        if "cpu-torch" not in p.targets or getattr(model, "edgekd_file_format", None) == "onnx":
            return []  # ONNX Runtime inside a loaded ONNX teacher is no cpu-torch figure
        return [profile_torch(model, name, x, batch_size=bs, runs=_runs(p, bs), warmup=_warmup(p, bs),
                              threads=p.threads) for bs in p.batch_sizes]
