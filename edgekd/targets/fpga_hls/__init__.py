"""Target ``fpga-hls``: an hls4ml project (Vitis/Vivado) with its C simulation checked, and its
estimated figures with cross-validated intervals.

Float students go through hls4ml's PyTorch front end (precision from observed ranges); integer
firmware (QAT students) goes QONNX → hls4ml and must equal the integer reference bit for bit.
"""
from __future__ import annotations

import torch.nn as nn

from edgekd.targets.base import ExportContext, Pending, Target, TargetOutput, is_integer_firmware, register_target


@register_target
class FpgaHlsTarget(Target):
    name = "fpga-hls"

    def enabled(self, recipe) -> bool:
        return recipe.export.hls.enabled

    def start(self, ctx: ExportContext) -> Pending:
        from edgekd.export import hls, qonnx_hls

        cfg = ctx.recipe.export.hls
        x, desc = ctx.check_inputs(cfg.n_check)
        if is_integer_firmware(ctx.model):
            reuse = None
            if cfg.reuse_factor == "auto":
                reuse = qonnx_hls.qat_fitted_reuse(float_twin(ctx), tuple(ctx.x_test.shape[1:]), cfg,
                                                   max_bits(ctx.model))
            art = qonnx_hls.export_qat_and_check(ctx.model, ctx.name, x, ctx.out_dir, cfg, mean=ctx.data["mean"],
                                                 std=ctx.data["std"], inputs_desc=desc, layer_reuse=reuse,
                                                 log=ctx.log)
        else:
            art = hls.export_and_check(ctx.model, ctx.name, ctx.x_val[:1000], x, ctx.out_dir, cfg, inputs_desc=desc,
                                       log=ctx.log)
        ctx.log(f"[export] {ctx.name} → hls4ml: {art.fidelity.summary() if art.fidelity else art.error}")
        out = TargetOutput(artifacts=[art])
        if art.fidelity is not None:
            fig, lat = self._figures(ctx, art)
            out.fpga.append(fig)
            out.latencies.append(lat)
        return Pending(out)

    def _figures(self, ctx: ExportContext, art):
        from edgekd.profile.fpga import hls_figures

        cfg = ctx.recipe.export.hls
        bits = max_bits(ctx.model) if is_integer_firmware(ctx.model) else int(art.metadata.get("total_width",
                                                                                               cfg.width))
        fig, lat = hls_figures(float_twin(ctx), ctx.name, tuple(ctx.x_test.shape[1:]), cfg, bits, art.path,
                               layer_reuse=art.metadata.get("layer_reuse"))
        fp = (f", first pixel → decision {fig.first_pixel_to_decision_us:.2f} µs"
              if fig.first_pixel_to_decision_us is not None else "")
        ctx.log(f"[fpga] {ctx.name}: {fig.method} {fig.latency_cycles} cycles = {fig.latency_us:.2f} µs, "
                f"II {fig.ii_cycles}, DSP {fig.resources['dsp']} ({fig.percent.get('dsp', 0):.0f} %){fp}")
        if not fig.details["fits_part"]:
            over = {k: v for k, v in (fig.details.get("percent_upper") or fig.percent).items() if v > 100}
            rfs = fig.details.get("fitting_reuse_factors")
            hint = (f"reuse factors alone do not make it fit ({fig.details['reuse_alone_insufficient']} at {rfs}, "
                    "the fastest whose DSPs fit): use fewer bits or a smaller student"
                    if fig.details.get("reuse_alone_insufficient") else f"reuse factors that fit: {rfs}")
            ctx.log(f"[fpga] {ctx.name}: WARNING the design exceeds {fig.part} "
                    f"(upper end of the 80 % interval: {', '.join(f'{k} {v:.0f} %' for k, v in over.items())}); "
                    + hint)
        return fig, lat


def max_bits(model: nn.Module) -> int:
    bits = getattr(model, "bits", {}) or {}
    vals = [max(getattr(b, "weight", 0) or 0, getattr(b, "act", 0) or 0) for b in bits.values()]
    return int(max(vals)) if vals else 8


def float_twin(ctx: ExportContext) -> nn.Module:
    """The float architecture with the same layer shapes (the estimator needs shapes only)."""
    if not is_integer_firmware(ctx.model):
        return ctx.model
    from edgekd.nets import create_net
    from edgekd.nets.quant import float_twin_spec

    s = next(s for s in ctx.recipe.students if s.name == ctx.name)
    arch, params = float_twin_spec(s.arch, s.params)
    return create_net(arch, num_classes=ctx.data["num_classes"], in_channels=ctx.data["channels"],
                      input_size=ctx.data["size"], params=params)
