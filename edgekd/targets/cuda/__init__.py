"""Target ``cuda``: PyTorch on an NVIDIA GPU (eager, CUDA graph, compiled); skipped with one line without one."""
from __future__ import annotations

from edgekd.targets.base import Target, register_target


@register_target
class CudaTarget(Target):
    name = "cuda"
    exports = False
    teacher_too = True

    def profile(self, name, model, x, artifacts, recipe, log) -> list:
        from edgekd.errors import ToolMissingError
        from edgekd.profile.cuda import CudaProfileConfig, profile_cuda

        if "cuda" not in recipe.profile.targets:
            return []
        onnx = artifacts.get("onnxruntime")
        try:
            prof = profile_cuda(model, name, x, CudaProfileConfig(),
                                onnx_path=onnx.path if onnx is not None and onnx.deployable else None, log=log)
        except ToolMissingError as exc:
            log(f"[profile] {name}: cuda target skipped: {exc.what}")
            return []
        return list(prof.results)
