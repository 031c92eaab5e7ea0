"""Target ``tensorrt``: the Jetson bundle (FP32/FP16/INT8 Q/DQ ONNX, engine build/check/bench
scripts, golden outputs); engines built and timed here only where TensorRT and a GPU are present."""
from __future__ import annotations

from edgekd.targets.base import ExportContext, Pending, Target, TargetOutput, is_integer_firmware, register_target


@register_target
class TensorRTTarget(Target):
    name = "tensorrt"

    def enabled(self, recipe) -> bool:
        return recipe.export.tensorrt.enabled

    def accepts(self, model, input_shape) -> str | None:
        if is_integer_firmware(model):
            # power-of-two UINT8 QAT activations are not TensorRT's signed INT8 Q/DQ pattern
            return ("QAT students use power-of-two unsigned activations; bundles are built from float "
                    "students (their INT8 twin is calibrated)")
        return None

    def start(self, ctx: ExportContext) -> Pending:
        from edgekd.export import tensorrt

        tcfg = ctx.recipe.export.tensorrt
        bcfg = tensorrt.BundleConfig(precisions=tuple(tcfg.precisions), default_precision=tcfg.default_precision,
                                     opt_batch=tcfg.opt_batch, max_batch=tcfg.max_batch,
                                     workspace_mib=tcfg.workspace_mib, targets=tuple(tcfg.targets),
                                     n_golden=tcfg.n_golden)
        d = ctx.data
        x, desc = ctx.check_inputs(ctx.recipe.export.hls.n_check)
        bundle = tensorrt.export_bundle(
            ctx.model, ctx.name, x_calib=ctx.x_train[:512], x_check=x, out_dir=ctx.out_dir / "tensorrt",
            preprocessing=tensorrt.preprocessing_contract(size=d["size"], channels=d["channels"], mean=d["mean"],
                                                          std=d["std"]),
            class_names=d["class_names"], config=bcfg, build={"auto": None, "never": False, "always": True}[tcfg.build],
            inputs_desc=desc, log=ctx.log)
        ctx.log(f"[export] {ctx.name} → TensorRT bundle: {bundle.message}")
        return Pending(TargetOutput(artifacts=list(bundle.artifacts), latencies=list(bundle.latencies)))
