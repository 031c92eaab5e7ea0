"""Export: the generated kernel as an artifact, checked against the PyTorch model it came from."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.runs.atomic import write_json
from edgekd.targets.cuda_fused.codegen import GENERATOR_VERSION, GeneratedKernel, generate
from edgekd.targets.cuda_fused.plan import FusedPlan, Unsupported, plan_model
from edgekd.targets.cuda_fused.runtime import run_fused, triton_version

TARGET = "cuda-fused"
MAX_ABS = 1e-5  # fp32 against fp32: only the summation order differs
MIN_AGREEMENT = 1.0
INTERPRETER_BLOCK_ELEMS = 1 << 17  # the interpreter pays per operation: few, big blocks
INTERPRETER_MAX_GROUP = 32


@dataclass
class FusedCheck:
    """Outputs of one fidelity run, and how they were obtained."""

    outputs: np.ndarray
    reference: np.ndarray
    device: str  # "cpu (Triton interpreter)" or the GPU's name
    seconds: float
    images_per_program: int


def check_fused(model: nn.Module, plan: FusedPlan, inputs: torch.Tensor, *, device: str = "cpu",
                num_warps: int = 4, images_per_program: int | None = None) -> FusedCheck:
    """Run the kernel generated from ``plan`` on ``inputs`` and the model itself (CPU fp32, eval).

    On CPU the kernel runs in Triton's interpreter; there, unless ``images_per_program`` is
    given, all inputs (up to 32) go to one program in large blocks, since the interpreter's
    cost is per operation. On a GPU the latency kernel (one image per program) is checked.
    """
    interp = torch.device(device).type != "cuda"
    if images_per_program is None:
        images_per_program = min(INTERPRETER_MAX_GROUP, 1 << max(0, len(inputs) - 1).bit_length()) if interp else 1
    gen = generate(plan, num_warps, images_per_program, INTERPRETER_BLOCK_ELEMS if interp else None)
    x = inputs.detach().float().cpu().contiguous()
    t0 = time.perf_counter()
    out = run_fused(gen, x, device=device)
    secs = time.perf_counter() - t0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model.cpu().float()(x).numpy()
    finally:
        model.train(was_training)
    name = "cpu (Triton interpreter)" if interp else torch.cuda.get_device_name(torch.device(device))
    return FusedCheck(out, ref, name, secs, images_per_program)


def export_cuda_fused(model: nn.Module, name: str, inputs: torch.Tensor, out_dir: Path, *,
                      inputs_desc: str = "held-out inputs", device: str = "cpu", num_warps: int = 4,
                      images_per_program: int = 1) -> Artifact:
    """Generate the fused kernel of ``model``, write it, and check it on ``inputs``.

    Writes ``<name>.cuda_fused.py`` (the kernel the GPU runs: ``num_warps`` warps,
    ``images_per_program`` images per program), ``<name>.cuda_fused.weights.npy`` (the packed,
    BatchNorm-folded weights it reads) and ``<name>.cuda_fused.json`` (the plan and fidelity).
    The check runs on ``device`` (Triton's interpreter on CPU) and passes when
    max |Δ| ≤ 1e-5 and argmax agreement is 100 % on all inputs, and the written kernel file
    itself meets the same bound on the first input. A model the generator does not cover gives
    a failed artifact whose ``error`` is the one-line reason — never a kernel.
    """
    out_dir = Path(out_dir)
    src_path = out_dir / f"{name}.cuda_fused.py"
    if inputs.ndim != 4:
        return Artifact(name, TARGET, "triton", src_path, None,
                        error=f"cuda-fused needs N×C×H×W image inputs, got shape {tuple(inputs.shape)}")
    plan = plan_model(model, tuple(inputs.shape[1:]))
    if isinstance(plan, Unsupported):
        return Artifact(name, TARGET, "triton", src_path, None, metadata={"fallback": str(plan)}, error=str(plan))
    if triton_version() is None:
        return Artifact(name, TARGET, "triton", src_path, None,
                        error="Triton is not installed: pip install -e '.[gpu]' (cuda-fused needs it to run "
                              "or interpret the kernel)")
    gen: GeneratedKernel = generate(plan, num_warps, images_per_program)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = src_path.with_suffix(".py.tmp")
    tmp.write_text(gen.source)
    tmp.replace(src_path)
    w_path = out_dir / f"{name}.cuda_fused.weights.npy"
    tmp_w = out_dir / f".{name}.cuda_fused.weights.tmp.npy"
    np.save(tmp_w, gen.weights)
    tmp_w.replace(w_path)
    chk = check_fused(model, plan, inputs, device=device, num_warps=num_warps)
    # The written file itself, on the first input: on CPU the batch check above ran the same plan
    # through the same generator with interpreter-sized blocks; this runs the deployed source.
    exact = run_fused(gen, inputs[:1].detach().float().cpu(), device=device)
    exact_diff = float(np.abs(exact - chk.reference[:1]).max())
    exact_ok = exact_diff <= MAX_ABS and bool((exact.argmax(1) == chk.reference[:1].argmax(1)).all())
    fid = FidelityRecord.compare(
        chk.outputs, chk.reference, reference="pytorch float32 (CPU, eval)", inputs=inputs_desc,
        max_abs=MAX_ABS, min_agreement=MIN_AGREEMENT,
        notes=f"kernel run on {chk.device}, {chk.images_per_program} image(s) per program, "
              f"{chk.seconds:.1f} s; the written kernel itself on the first input: max|Δ|={exact_diff:.3g}")
    if not exact_ok:
        fid.passed = False
    meta = {
        "generator_version": GENERATOR_VERSION, "triton": triton_version(), "num_warps": gen.num_warps,
        "images_per_program": gen.images_per_program, "kernel_key": gen.key, "weights": w_path.name,
        "weights_fp32": int(gen.weights.size), "scratch_fp32_per_program": gen.scratch_per_program,
        "input_shape": list(plan.input_shape), "output_shape": list(plan.out_shape), "macs_per_image": plan.macs,
        "params": plan.params, "stages": plan.describe(), "stage_blocks": gen.stage_blocks, "folded": plan.notes,
        "checked_on": chk.device, "written_kernel_max_abs_diff": exact_diff,
    }
    write_json(out_dir / f"{name}.cuda_fused.json", {**meta, "fidelity": fid.__dict__})
    return Artifact(name, TARGET, "triton", src_path, fid, metadata=meta)


__all__ = ["FusedCheck", "MAX_ABS", "MIN_AGREEMENT", "TARGET", "check_fused", "export_cuda_fused"]
