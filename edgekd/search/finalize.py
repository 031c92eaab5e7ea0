"""The chosen student, exported through the normal target with its fidelity check, and the
budget judged again on the target's *own* figure (hls4ml estimate of the written project,
Verilator simulation, measured ONNX Runtime latency)."""
from __future__ import annotations

from typing import Any

import torch

from edgekd.search.budget import Budget
from edgekd.search.space import Candidate
from edgekd.search.trial import TrialRecord, build

_SECTION = {"fpga-hls": "hls", "fpga-rtl": "rtl", "onnxruntime": "onnx", "cpu-torch": "onnx"}
_HLS_KNOBS = ("io_type", "strategy", "reuse_factor", "backend")


def export_recipe(ctx, cand: Candidate, name: str, target: str):
    from edgekd.config.schema import StudentConfig

    r = ctx.recipe.model_copy(deep=True)
    r.students = [StudentConfig(name=name, arch=cand.arch, params=cand.params, export=True)]
    for key in ("onnx", "hls", "rtl", "tensorrt", "cuda_fused"):
        getattr(r.export, key).enabled = key == _SECTION[target]
    if target == "fpga-hls":
        for k in _HLS_KNOBS:
            if k in cand.knobs:
                setattr(r.export.hls, k, cand.knobs[k])
    r.profile.targets = [target] if target in ("onnxruntime", "cpu-torch") else []
    r.profile.batch_sizes = [1]
    return r


def _fpga_latency(f, on: str) -> float | None:
    """First pixel to decision by the target's own figure (upper end of its interval, or the estimate)."""
    iv = f.intervals.get("first_pixel_to_decision_us")
    return iv[1] if (iv and on == "upper") else f.first_pixel_to_decision_us


def _target_figures(target: str, out, accuracy: float, on: str = "upper") -> dict[str, Any]:
    figs: dict[str, Any] = {"accuracy": accuracy}
    if target.startswith("fpga") and out.fpga:
        f = out.fpga[0]
        figs["latency_us"] = _fpga_latency(f, on)
        figs["latency_label"] = f.method
        part = {"lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram_36k"}
        if target == "fpga-rtl":  # da4ml: constant multiplications in LUT adders, no DSP, no BRAM
            figs.update({"dsp": 0.0, "bram": 0.0})
        for k, v in part.items():
            if v in f.percent:
                up = f.intervals.get(v) if on == "upper" else None
                figs[k] = (up[1] / f.resources[v] * f.percent[v] / 100) if up and f.resources.get(v) else \
                    f.percent[v] / 100
    elif out.latencies:
        row = next((r for r in out.latencies if r.batch_size == 1), out.latencies[0])
        figs["latency_us"] = row.p90_us if on == "upper" else row.p50_us
        figs["latency_label"] = row.method
    return figs


def finalize(ctx, best: TrialRecord, target: str, budget: Budget) -> dict[str, Any]:
    """Export ``best`` to ``target`` (artifacts/<name>/), check it, and judge the budget on its figures."""
    from edgekd.pipeline import export_targets, profile_targets
    from edgekd.runs.rundir import RunDir

    c = best.candidate
    cand = Candidate(c["arch"], c["params"], c["knobs"])
    name = f"search-{cand.key[:8]}"
    _, model = build(cand, ctx)
    model.load_state_dict(torch.load(ctx.trials_dir / f"{cand.key}.pt", weights_only=True))
    model.eval()
    recipe = export_recipe(ctx, cand, name, target)
    out = export_targets(recipe, {name: model}, ctx.views, RunDir(ctx.out), ctx.data, ctx.log,
                         desc="test split, first {n} images")
    if target in ("onnxruntime", "cpu-torch"):
        out.latencies += profile_targets(recipe, {name: model}, ctx.views, out.artifacts, ctx.log)
    figs = _target_figures(target, out, float(best.val_accuracy or 0.0), budget.on)
    judged = {k: v for k, v in figs.items() if k in budget.limits}
    return {"name": name, "candidate": cand.to_dict(), "label": cand.label(),
            "artifacts": [a.to_dict() for a in out.artifacts],
            "fidelity_ok": bool(out.artifacts) and all(a.deployable for a in out.artifacts),
            "target_figures": figs, "meets_budget_by_target": budget.met(judged) if budget.limits else True,
            "fpga": [f.to_dict() for f in out.fpga], "latency": [r.to_dict() for r in out.latencies]}
