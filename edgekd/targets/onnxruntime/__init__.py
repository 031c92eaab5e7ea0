"""Target ``onnxruntime``: ONNX (opset from the recipe), checked and timed with ONNX Runtime (CPU)."""
from __future__ import annotations

from edgekd.targets.base import ExportContext, Pending, Target, TargetOutput, register_target


@register_target
class OnnxRuntimeTarget(Target):
    name = "onnxruntime"
    teacher_too = True

    def enabled(self, recipe) -> bool:
        return recipe.export.onnx.enabled

    def accepts(self, model, input_shape) -> str | None:
        if getattr(model, "edgekd_file_format", None) == "onnx":
            return "loaded from an ONNX file: nothing to export"
        return None

    def start(self, ctx: ExportContext) -> Pending:
        from edgekd.export import onnx as onnx_export

        cfg = ctx.recipe.export.onnx
        x, desc = ctx.check_inputs(max(ctx.recipe.export.hls.n_check, 1000))
        art = onnx_export.export_and_check(ctx.model, ctx.name, x, ctx.out_dir, opset=cfg.opset, atol=cfg.atol,
                                           inputs_desc=desc)
        ctx.log(f"[export] {ctx.name} → ONNX: {art.fidelity.summary() if art.fidelity else art.error}")
        return Pending(TargetOutput(artifacts=[art]))

    def profile(self, name, model, x, artifacts, recipe, log) -> list:
        from edgekd.profile import profile_ort

        art = artifacts.get(self.name)
        if "onnxruntime" not in recipe.profile.targets or art is None or not art.deployable:
            return []
        p = recipe.profile
        return [profile_ort(art.path, name, x.numpy(), batch_size=bs, runs=_runs(p, bs), warmup=_warmup(p, bs),
                            threads=p.threads) for bs in p.batch_sizes]


def _runs(p, bs: int) -> int:
    return p.runs if bs == 1 else p.large_batch_runs


def _warmup(p, bs: int) -> int:
    return p.warmup if bs == 1 else max(3, p.warmup // 10)
