"""ONNX export (opset 17), checked with ONNX Runtime against PyTorch on held-out inputs."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from edgekd.export.artifact import Artifact, FidelityRecord
from edgekd.runs.atomic import atomic_path, write_json

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int = 17) -> Path:
    """Write ``model`` as ONNX with a dynamic batch axis. Atomic: a failed export leaves
    any previous file untouched."""
    import onnx

    model = model.eval()
    static = getattr(model, "batch", None) if type(model).__name__ == "FixedBatch" else None
    if static is not None:  # a program traced at a fixed batch: its graph is that batch's, say so in the file
        model, example = model.inner, example[:1].expand(static, *example.shape[1:])
    axes = None if static else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    chatter = io.StringIO()  # the exporters print progress and recoverable errors: not the user's concern
    with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(chatter), \
            contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example[: static or 1],), str(tmp), opset_version=opset, dynamo=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes)
        except Exception as first:  # noqa: BLE001 - e.g. adaptive pooling to a size that does not divide
            try:  # the torch.export-based exporter decomposes what the TorchScript one refuses
                torch.onnx.export(model, (example[: static or 1],), str(tmp), opset_version=opset, dynamo=True,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes)
            except Exception:  # noqa: BLE001 - report the first exporter's reason, it names the operator
                raise first from None
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    return path


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run_ort(session, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    static = session.get_inputs()[0].shape[0]
    if isinstance(static, int) and static > 0:  # a graph traced at a fixed batch (e.g. from a .pt2 program)
        batch_size = static
    return np.concatenate([session.run(None, {INPUT_NAME: x[i : i + batch_size]})[0]
                           for i in range(0, len(x), batch_size)])


def export_and_check(model: nn.Module, name: str, x_check: torch.Tensor, out_dir: Path, *,
                     opset: int = 17, atol: float = 1e-4, inputs_desc: str = "held-out images") -> Artifact:
    """Export to ``out_dir/<name>.onnx`` and compare ONNX Runtime with PyTorch on ``x_check``."""
    path = out_dir / f"{name}.onnx"
    try:
        export_onnx(model, x_check, path, opset)
    except Exception as exc:  # noqa: BLE001 - recorded on the artifact and fails the run
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return Artifact(name, "onnxruntime", "onnx", path, None, error=f"export failed: {reason}")
    with torch.no_grad():
        ref = model.eval()(x_check).numpy()
    out = run_ort(ort_session(path), x_check.numpy())
    fid = FidelityRecord.compare(out, ref, reference="pytorch float32 (cpu)", inputs=inputs_desc,
                                 max_abs=atol, min_agreement=1.0)
    meta = {"opset": opset, "input": INPUT_NAME, "output": OUTPUT_NAME,
            "input_shape": ["batch", *x_check.shape[1:]], "dtype": "float32"}
    art = Artifact(name, "onnxruntime", "onnx", path, fid, metadata=meta)
    write_json(out_dir / f"{name}.onnx.fidelity.json", art.to_dict())
    return art
