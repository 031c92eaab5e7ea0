"""Models from files: state dict, TorchScript, ``torch.export`` program (.pt2), ONNX.

:func:`load_model_file` returns an ``nn.Module`` whose ``forward(x)`` gives logits, and
checks it against the data: input ``C×H×W`` and number of classes. It is how
``teacher.checkpoint`` brings a teacher trained anywhere. :func:`load_any_model` is the
same without a recipe, for verbs like ``edgekd export my_model.pt``.

Formats, sniffed from the file (the suffix only decides ONNX and .pt2):

* **state dict** (``torch.save(model.state_dict())`` or an edgekd checkpoint) — read with
  ``weights_only=True`` (no code runs); needs the ``arch`` that the weights belong to.
* **TorchScript** (``torch.jit.save``; usually .pt or .ts) — ``torch.jit.load``.
* **torch.export** (.pt2, ``torch.export.save``) — ``torch.export.load(...).module()``.
* **ONNX** (.onnx) — run with ONNX Runtime; logits only.

Models from TorchScript, .pt2 and ONNX files are opaque to forward hooks, so they give
logits only: a feature loss (ND, FitNet, AT, …) that needs teacher taps is refused with
a message (see :func:`edgekd.distill.hooks.resolve`).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, DataError, EdgekdError, ToolMissingError
from edgekd.runs.atomic import sha256_file

FORMATS = ("state_dict", "torchscript", "torch_export", "onnx")
NO_TAPS = "a model loaded from a {fmt} file is opaque: its layers cannot be tapped for features"


@dataclass
class LoadedModel:
    """A model from a file, with what the file says about it."""

    module: nn.Module
    format: str  # one of FORMATS
    path: Path
    input_shape: tuple[Any, ...] | None = None  # C×H×W when the file declares it


def sniff_format(path: Path) -> str:
    """Which of :data:`FORMATS` the file at ``path`` holds."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".pt2":
        return "torch_export"
    if not zipfile.is_zipfile(path):
        raise DataError("not a PyTorch file (a .pt/.pth/.ts file is a zip archive)", where=str(path),
                        fix="save with torch.save(state_dict), torch.jit.save, torch.export.save (.pt2) "
                            "or export ONNX (.onnx)")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("archive_format") or "/models/" in n for n in names):
        return "torch_export"
    return "state_dict"


class OnnxModule(nn.Module):
    """An ONNX model run by ONNX Runtime behind ``forward(x) -> logits`` (no gradients)."""

    def __init__(self, path: Path):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise ToolMissingError("onnxruntime is not installed; ONNX teachers need it", where=str(path),
                                   fix="pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise DataError(f"ONNX Runtime cannot load the model: {str(exc)[:300]}", where=str(path),
                            fix="check the file with onnx.checker.check_model") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise DataError(f"ONNX model has {len(inputs)} inputs {[i.name for i in inputs]}; expected one image "
                            "input", where=str(path), fix="export a model with one N×C×H×W input")
        self.input_name = inputs[0].name
        self.input_shape = tuple(inputs[0].shape)
        self.edgekd_no_taps = NO_TAPS.format(fmt="ONNX")
        # the teacher cache keys on state_dict(): the file's hash stands in for the weights
        digest = bytes.fromhex(sha256_file(path))
        self.register_buffer("file_sha256", torch.tensor(list(digest), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().float().numpy()
        out = self.session.run(None, {self.input_name: arr})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


class FixedBatch(nn.Module):
    """Runs a model exported with a fixed batch size on any batch (chunks, padding the last)."""

    def __init__(self, inner: nn.Module, batch: int):
        super().__init__()
        self.inner, self.batch = inner, batch
        self.edgekd_no_taps = getattr(inner, "edgekd_no_taps", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for s in range(0, len(x), self.batch):
            xb = x[s : s + self.batch]
            n = len(xb)
            if n < self.batch:
                xb = torch.cat([xb, xb[-1:].expand(self.batch - n, *xb.shape[1:])])
            outs.append(self.inner(xb)[:n])
        return torch.cat(outs)


class ExportedModule(nn.Module):
    """A ``torch.export`` program's module; its train/eval mode is fixed at export time."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> "ExportedModule":
        # the exported graph refuses .train()/.eval(): it was traced in one mode for good
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _load_state_dict(path: Path, arch: str | None, build: dict[str, Any] | None, where: str) -> nn.Module:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise DataError(f"cannot read the state dict (weights_only=True): {str(exc).splitlines()[0][:300]}",
                        where=str(path), fix="save plain tensors: torch.save(model.state_dict(), path)") from None
    sd = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DataError("the file holds no state dict (a mapping of names to tensors)", where=str(path),
                        fix="save with torch.save(model.state_dict(), path)")
    if arch is None or build is None:
        raise ConfigError(f"'{path.name}' holds only weights (a state dict); the architecture is needed to use them",
                          where=where, fix="name the architecture (teacher.arch / --arch), or save a TorchScript "
                                           "(torch.jit.save), .pt2 (torch.export.save) or ONNX file instead")
    from edgekd.nets.registry import create_net

    model = create_net(arch, params=build.get("params"), num_classes=build["num_classes"],
                       in_channels=build["in_channels"], input_size=build["input_size"], where=where)
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:
        raise DataError(f"the weights do not fit '{arch}': {str(exc).splitlines()[1:3] or str(exc)[:300]}",
                        where=str(path), fix="check teacher.arch and teacher.params match the model the "
                                             "weights were saved from") from None
    return model


def _static_batch(shape: tuple[Any, ...] | None) -> int | None:
    if shape and isinstance(shape[0], int) and shape[0] > 0:
        return int(shape[0])
    return None


def _load_opaque(path: Path, fmt: str) -> LoadedModel:
    shape = None
    try:
        if fmt == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
        elif fmt == "torch_export":
            program = torch.export.load(str(path))
            ins = [n for n in program.graph.nodes if n.op == "placeholder"
                   and n.name not in program.graph_signature.inputs_to_parameters
                   and n.name not in program.graph_signature.inputs_to_buffers]
            val = ins[0].meta.get("val") if ins else None
            shape = tuple(int(d) if str(d).isdigit() else str(d) for d in val.shape) if val is not None else None
            module = ExportedModule(program.module())
        else:
            module = OnnxModule(path)
            shape = module.input_shape
    except EdgekdError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise DataError(f"cannot load the {fmt} file: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                        where=str(path), fix="re-save the model, or check the file is complete") from None
    if fmt != "onnx":
        module.edgekd_no_taps = NO_TAPS.format(fmt="TorchScript" if fmt == "torchscript" else ".pt2")
    batch = _static_batch(shape)
    if batch is not None:
        module = FixedBatch(module, batch)
    module.edgekd_file_format = fmt  # later stages ask, e.g. not to re-export an ONNX teacher
    return LoadedModel(module, fmt, path, tuple(shape[1:]) if shape else None)


def load_any_model(path: str | Path, *, arch: str | None = None, build: dict[str, Any] | None = None,
                   where: str = "model") -> LoadedModel:
    """Load a model file of any supported format, without checking it against data.

    ``build`` (``num_classes``, ``in_channels``, ``input_size``, ``params``) and ``arch``
    are needed for a state dict only.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError("model file not found", where=str(path),
                        fix="give the path of a state dict, TorchScript (.pt/.ts), .pt2 or .onnx file")
    fmt = sniff_format(path)
    if fmt == "state_dict":
        return LoadedModel(_load_state_dict(path, arch, build, where), fmt, path)
    return _load_opaque(path, fmt)


def load_model_file(path: str | Path, *, num_classes: int, in_channels: int, input_size: int | tuple[int, int],
                    arch: str | None = None, params: dict[str, Any] | None = None,
                    where: str = "teacher.checkpoint") -> nn.Module:
    """A model from ``path`` whose ``forward(x)`` gives logits, checked against the data."""
    build = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size, "params": params}
    loaded = load_any_model(path, arch=arch, build=build, where=where)
    check_io(loaded, num_classes=num_classes, in_channels=in_channels, input_size=input_size, where=where)
    loaded.module.eval()
    return loaded.module


def check_io(loaded: LoadedModel, *, num_classes: int, in_channels: int, input_size: int | tuple[int, int],
             where: str = "model") -> None:
    """Refuse a model whose input shape or class count does not match the data (names both)."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    data_shape = (in_channels, h, w)
    fix = ("set data.teacher_size / the channels to what the model was trained on, or re-export the model "
           "for this data")
    declared = loaded.input_shape
    if declared and all(isinstance(d, int) for d in declared) and tuple(declared) != data_shape:
        raise DataError(f"the model expects input {_fmt(declared)}, the data gives {_fmt(data_shape)}",
                        where=f"{where} ({loaded.path})", fix=fix)
    try:
        with torch.no_grad():
            out = loaded.module.eval()(torch.zeros(2, *data_shape))
    except Exception as exc:  # noqa: BLE001 - the shapes did not fit inside the model
        raise DataError(f"the model does not accept input {_fmt(data_shape)} from the data: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                        where=f"{where} ({loaded.path})", fix=fix) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DataError(f"the model must return N×classes logits, returned {got}", where=f"{where} ({loaded.path})",
                        fix="export the model so that forward(x) returns one logits tensor")
    if out.shape[1] != num_classes:
        raise DataError(f"the model outputs {out.shape[1]} classes, the data has {num_classes}",
                        where=f"{where} ({loaded.path})",
                        fix="use a model trained on these classes, or set data.classes to the model's classes")


def _fmt(shape) -> str:
    return "×".join(str(d) for d in shape)


def is_edgekd_checkpoint(path: str | Path) -> bool:
    """True for a checkpoint edgekd wrote (``{"model", "meta", ...}``): the trainer's format."""
    path = Path(path)
    if not path.is_file() or sniff_format(path) != "state_dict":
        return False
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - load_model_file reports an unreadable file
        return False
    return isinstance(blob, dict) and "meta" in blob and "model" in blob
