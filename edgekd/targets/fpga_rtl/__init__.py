"""Target ``fpga-rtl``: integer firmware as fully parallel Verilog (da4ml), emulated with Verilator
bit for bit against the integer reference; latency simulated (pipeline depth × clock).

The emulator builds in the background (:meth:`FpgaRtlTarget.start` returns at once) while the
other targets export; a design too large for the part is refused with its size estimate.
"""
from __future__ import annotations

import numpy as np
import torch

from edgekd.targets.base import ExportContext, Pending, Target, TargetOutput, is_integer_firmware, register_target


@register_target
class FpgaRtlTarget(Target):
    name = "fpga-rtl"

    def enabled(self, recipe) -> bool:
        return recipe.export.rtl.enabled

    def accepts(self, model, input_shape) -> str | None:
        return None if is_integer_firmware(model) else "float model: the RTL target takes quantized (*-q) students"

    def start(self, ctx: ExportContext) -> Pending:
        from edgekd.export import intref
        from edgekd.export.rtl import DesignTooLarge, start_rtl_export
        from edgekd.export.rtl_intnet import from_intref
        from edgekd.hwtargets import load_fpga
        from edgekd.nets.quant import firmware_part, float_preprocess

        cfg = ctx.recipe.export.rtl
        target = load_fpga(cfg.target)
        x, desc = ctx.check_inputs(cfg.n_check)
        pre = float_preprocess(ctx.model)
        with torch.no_grad():
            x_fw = pre(x) if pre is not None else x
        im = intref.extract(firmware_part(ctx.model).eval())
        net = from_intref(im, tuple(x_fw.shape[1:]), ctx.name)
        n_pixels = int(np.prod(x.shape[1:]))
        try:
            pending = start_rtl_export(net, im.quantize_input(x_fw), ctx.out_dir / "rtl", target,
                                       model_name=ctx.name, inputs_desc=desc,
                                       latency_cutoff=cfg.latency_cutoff)
        except DesignTooLarge as exc:
            ctx.log(f"[fpga-rtl] {ctx.name}: refused: {exc.what}")
            return Pending(TargetOutput(fpga=[_refused(ctx.name, target, exc.estimate)]))
        return Pending(lambda: _finish(pending, ctx, target, n_pixels), pending.cancel)


def _refused(name: str, target, est):
    from edgekd.profile.fpga import FpgaFigures

    return FpgaFigures(model=name, target="fpga-rtl", part=target.part, method="estimated",
                       design="da4ml RTL (fully parallel) — refused, does not fit", latency_cycles=0,
                       latency_us=0.0, ii_cycles=0, clock_mhz=target.clock_mhz,
                       resources={"lut": int(est.lut), "ff": 0, "dsp": 0, "bram_36k": 0},
                       percent={"lut": 100.0 * est.lut / est.part_lut}, first_pixel_to_decision_us=None,
                       source=f"da4ml size estimate: {est.summary()}", details={"fits_part": False, "refused": True})


def _finish(pending, ctx: ExportContext, target, n_pixels: int) -> TargetOutput:
    from edgekd.profile.fpga import FpgaFigures

    cfg, name = ctx.recipe.export.rtl, ctx.name
    art, lat = pending.finish()
    cycles = int(lat.details.get("latency_cycles", 0))
    ctx.log(f"[fpga-rtl] {name}: {art.fidelity.summary()}; {cycles} cycles = {lat.p50_us * 1000:.0f} ns (simulated)")
    resources, source = _resources(art, lat, target, cfg.yosys)
    budget = target.resources
    percent = {"lut": 100.0 * resources["lut"] / budget.lut, "ff": 100.0 * resources["ff"] / budget.ff,
               "dsp": 100.0 * resources["dsp"] / budget.dsp if budget.dsp else 0.0}
    fp = None
    if target.pixel_bus is not None:
        from edgekd.profile.first_pixel import parallel_first_pixel

        fp = parallel_first_pixel(n_pixels, cycles, target, model=name).first_pixel_to_decision_us
    fig = FpgaFigures(model=name, target="fpga-rtl", part=target.part, method="simulated",
                      design=f"da4ml RTL (fully parallel, {cfg.latency_cutoff:g} ns/stage)",
                      latency_cycles=cycles, latency_us=lat.p50_us, ii_cycles=int(lat.details.get("ii_cycles", 1)),
                      clock_mhz=target.clock_mhz, resources=resources, percent=percent,
                      first_pixel_to_decision_us=fp, source=source,
                      details={"fits_part": all(v <= 100 for v in percent.values()),
                               "exact_match_rate": art.fidelity.exact_match_rate if art.fidelity else None})
    return TargetOutput(artifacts=[art], latencies=[lat], fpga=[fig])


def _resources(art, lat, target, yosys: bool) -> tuple[dict, str]:
    if yosys:
        from edgekd.profile.yosys import synth_rtl_design

        ys = synth_rtl_design(art.path, target)
        return ({"lut": ys.lut, "ff": ys.ff, "dsp": ys.dsp, "bram_36k": int(round(ys.bram_36k))},
                "simulated: Verilator emulation of da4ml Verilog; resources: Yosys synth")
    return ({"lut": int(lat.details.get("lut_estimate_da4ml") or 0),
             "ff": int(lat.details.get("ff_estimate_da4ml") or 0), "dsp": 0, "bram_36k": 0},
            "simulated: Verilator emulation of da4ml Verilog; resources: da4ml estimate")
