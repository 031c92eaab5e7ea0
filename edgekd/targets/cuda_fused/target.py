"""The ``cuda-fused`` target in the registry: export = generate + check (interpreter on CPU)."""
from __future__ import annotations

from edgekd.targets.base import ExportContext, Pending, Target, TargetOutput, register_target


@register_target
class CudaFusedTarget(Target):
    name = "cuda-fused"

    def enabled(self, recipe) -> bool:
        return recipe.export.cuda_fused.enabled

    def accepts(self, model, input_shape) -> str | None:
        from edgekd.targets.cuda_fused.plan import Unsupported, plan_model

        plan = plan_model(model, tuple(input_shape))
        return str(plan) if isinstance(plan, Unsupported) else None

    def start(self, ctx: ExportContext) -> Pending:
        from edgekd.targets.cuda_fused.export import export_cuda_fused

        x, desc = ctx.check_inputs(ctx.recipe.export.cuda_fused.n_check)
        art = export_cuda_fused(ctx.model, ctx.name, x, ctx.out_dir / "cuda-fused", inputs_desc=desc)
        ctx.log(f"[export] {ctx.name} → cuda-fused: {art.fidelity.summary() if art.fidelity else art.error}")
        return Pending(TargetOutput(artifacts=[art]))
