"""The verbs as Python functions: ``distill``, ``export``, ``profile``, each returning typed objects.

    import edgekd, torch
    arts = edgekd.export(my_model, target="onnxruntime", example_input=torch.randn(1, 1, 48, 48),
                         calib=held_out_images, out_dir="out/")
    arts[0].fidelity.summary()          # checked on real inputs, like every export
    rows = edgekd.profile(my_model, target="cpu-torch", example_input=torch.randn(1, 1, 48, 48))

``model`` is an ``nn.Module`` or a model file (state dict with ``arch``, TorchScript, .pt2,
ONNX). ``calib`` are real, preprocessed inputs (N×C×H×W tensor, or an .npz holding ``x``):
the artifact is checked on them. Without them the check uses random inputs and says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from edgekd.errors import DataError, EdgekdError

EXPORT_TARGETS = ("onnxruntime", "fpga-hls", "fpga-rtl", "tensorrt", "cuda-fused")
PROFILE_TARGETS = ("cpu-torch", "onnxruntime", "cuda")
_RECIPE_KEY = {"onnxruntime": "onnx", "fpga-hls": "hls", "fpga-rtl": "rtl", "tensorrt": "tensorrt",
               "cuda-fused": "cuda_fused"}


def load_model(model: nn.Module | str | Path, *, arch: str | None = None,
               build: dict[str, Any] | None = None) -> tuple[nn.Module, tuple[int, ...] | None]:
    """(module in eval mode, C×H×W its file declares or None) from a module or any model file."""
    if isinstance(model, nn.Module):
        return model.eval(), None
    from edgekd.nets.model_files import load_any_model

    loaded = load_any_model(model, arch=arch, build=build, where=str(model))
    return loaded.module.eval(), loaded.input_shape


def parse_shape(text: str) -> tuple[int, ...]:
    """``1x48x48`` (C×H×W, or N×C×H×W whose N is dropped) → (1, 48, 48)."""
    try:
        dims = tuple(int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise EdgekdError(f"input shape {text!r} is not like 1x48x48", where="--input-shape") from None
    dims = dims[1:] if len(dims) == 4 else dims
    if len(dims) != 3 or min(dims) < 1:
        raise EdgekdError(f"input shape {text!r}: expected C×H×W with positive sides, e.g. 1x48x48",
                          where="--input-shape")
    return dims


def check_inputs(calib: torch.Tensor | np.ndarray | str | Path | None, shape: Sequence[int] | None,
                 n: int = 256) -> tuple[torch.Tensor, str]:
    """The inputs an export is checked on: the user's real ones, or random ones (said so)."""
    if calib is None:
        if shape is None:
            raise EdgekdError("the model's input shape is unknown", where="example_input",
                              fix="pass example_input (a tensor or shape, e.g. --input-shape 1x48x48) or calib data")
        x = torch.randn((n, *shape), generator=torch.Generator().manual_seed(0))
        return x, f"{n} random N(0,1) inputs (no calibration data given: pass real ones for a meaningful check)"
    if isinstance(calib, (str, Path)):
        path = Path(calib)
        try:
            with np.load(path, allow_pickle=False) as z:
                calib = z["x"] if "x" in z.files else z[z.files[0]]
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise DataError(f"cannot read calibration inputs: {exc}", where=str(path),
                            fix="save preprocessed inputs as np.savez(path, x=array N×C×H×W float32)") from None
    x = torch.as_tensor(np.asarray(calib), dtype=torch.float32)
    if x.ndim != 4 or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        raise DataError(f"calibration inputs have shape {tuple(x.shape)}, the model takes N×{'×'.join(map(str, shape or '?'))}",
                        where="calib", fix="give preprocessed inputs N×C×H×W in the model's input space")
    return x, f"{len(x)} calibration inputs given by the user"


def export(model: nn.Module | str | Path, *, target: str, out_dir: str | Path, example_input: Any = None,
           calib: Any = None, name: str | None = None, arch: str | None = None, num_classes: int | None = None,
           config: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> list:
    """Export ``model`` to ``target`` into ``out_dir`` and check it; returns its :class:`Artifact` (s).

    ``config`` is that target's recipe section (e.g. ``{"io_type": "io_parallel"}`` for fpga-hls).
    """
    from edgekd.pipeline import export_targets

    if target not in EXPORT_TARGETS:
        raise EdgekdError(f"unknown export target '{target}'", fix=f"choose one of {list(EXPORT_TARGETS)}")
    shape = _shape_of(example_input)
    build = {"num_classes": num_classes, "in_channels": shape[0], "input_size": list(shape[1:]), "params": {}} \
        if shape and num_classes else None
    module, declared = load_model(model, arch=arch, build=build)
    shape = shape or declared
    x, desc = check_inputs(calib, shape)
    name = name or (Path(model).stem if isinstance(model, (str, Path)) else type(module).__name__.lower())
    with torch.no_grad():
        n_out = int(module(x[:1]).shape[1])
    recipe = _target_recipe(target, name, config)
    views = {k: _Views(x) for k in ("train", "val", "test")}
    data = {"class_names": [str(i) for i in range(n_out)], "channels": x.shape[1], "size": tuple(x.shape[2:]),
            "mean": 0.0, "std": 1.0, "num_classes": n_out}
    out = export_targets(recipe, {name: module}, views, _FlatRunDir(Path(out_dir)), data, log,
                         desc=desc.replace(str(len(x)), "{n}", 1))
    return out.artifacts


def profile(model: nn.Module | str | Path, *, target: str = "cpu-torch", example_input: Any = None,
            batch_sizes: Sequence[int] = (1,), runs: int = 200, warmup: int = 20, threads: int = 1,
            arch: str | None = None, log: Callable[[str], None] = print) -> list:
    """Time ``model`` on ``target``; returns :class:`~edgekd.profile.result.LatencyResult` rows (measured)."""
    from edgekd.config.schema import ProfileConfig

    if target not in PROFILE_TARGETS:
        raise EdgekdError(f"unknown profile target '{target}'", fix=f"choose one of {list(PROFILE_TARGETS)}")
    module, declared = load_model(model, arch=arch)
    shape = _shape_of(example_input) or declared
    if shape is None:
        raise EdgekdError("the model's input shape is unknown", where="example_input",
                          fix="pass example_input (a tensor or a shape such as (1, 48, 48))")
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    p = ProfileConfig(targets=[target] if target != "onnxruntime" else ["onnxruntime"], batch_sizes=list(batch_sizes),
                      runs=max(runs, 10), large_batch_runs=max(3, runs // 20), warmup=warmup, threads=threads)
    import tempfile

    from edgekd.export.onnx import export_and_check
    from edgekd.targets.base import get_target

    with tempfile.TemporaryDirectory(prefix="edgekd-profile-") as tmp:  # the ONNX file lives while it is timed
        artifacts: dict[str, Any] = {}
        if target == "onnxruntime":
            artifacts["onnxruntime"] = export_and_check(module, "model", check_inputs(None, shape, 64)[0], Path(tmp))
        return get_target(target).profile("model", module, x, artifacts, _ProfileRecipe(p), log)


def distill(recipe: Any, *, out: str | Path, quick: bool = False, resume: bool = False, overwrite: bool = False,
            progress: bool = True):
    """Teacher and students of ``recipe`` (a path or a Recipe), no export: the run's :class:`RunResults`."""
    from edgekd.config import load_recipe
    from edgekd.pipeline import run_pipeline

    r = load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe
    r = r.model_copy(deep=True)
    for key in ("onnx", "hls", "rtl", "tensorrt", "cuda_fused"):
        getattr(r.export, key).enabled = False
    r.profile.targets = []
    return run_pipeline(r, Path(out), quick=quick, resume=resume, overwrite=overwrite, progress=progress)


def _shape_of(example_input: Any) -> tuple[int, ...] | None:
    if example_input is None:
        return None
    if isinstance(example_input, str):
        return parse_shape(example_input)
    if isinstance(example_input, torch.Tensor):
        return tuple(example_input.shape[1:]) if example_input.ndim == 4 else tuple(example_input.shape)
    dims = tuple(int(v) for v in example_input)
    return dims[1:] if len(dims) == 4 else dims


def _target_recipe(target: str, name: str, config: dict[str, Any] | None):
    """A recipe whose only enabled export is ``target`` (with ``config`` as its section)."""
    from edgekd.config.load import parse_recipe

    export = {k: {"enabled": False} for k in _RECIPE_KEY.values()}
    export[_RECIPE_KEY[target]] = {**(config or {}), "enabled": True}
    return parse_recipe({"name": "export", "students": [{"name": name, "arch": "mlp"}], "export": export,
                         "profile": {"targets": []}}, source="edgekd.export")


class _Views:
    """The three views a target reads, all the same inputs (the model's own input space)."""

    def __init__(self, x: torch.Tensor):
        self.student = self.teacher = x


class _FlatRunDir:
    """Artifacts of a standalone export go straight into ``out_dir`` (no run directory around them)."""

    def __init__(self, root: Path):
        self.root = root

    def artifact_dir(self, model: str) -> Path:
        return self.root


class _ProfileRecipe:
    def __init__(self, p):
        self.profile = p


def export_run(run_dir: str | Path, *, target: str, out_dir: str | Path, config: dict[str, Any] | None = None,
               log: Callable[[str], None] = print) -> list:
    """Re-export a finished run's students (first seed) to ``target`` with new settings, without retraining.

    The run's data must still be there and unchanged (its fingerprint is checked)."""
    from edgekd.config.load import parse_recipe
    from edgekd.pipeline import export_targets
    from edgekd.runs import RunDir
    from edgekd.runs.guard import data_fingerprint, is_run_dir, read_saved_recipe

    root = Path(run_dir)
    if not is_run_dir(root):
        raise EdgekdError("not an edgekd run directory", where=str(root), fix="give a folder written by `edgekd run`")
    saved = read_saved_recipe(root / "recipe.json")
    saved.pop("quick", None)
    saved["export"] = {**saved.get("export", {}), **{k: {**saved.get("export", {}).get(k, {}), "enabled": False}
                                                     for k in _RECIPE_KEY.values()}}
    key = _RECIPE_KEY.get(target)
    if key is None:
        raise EdgekdError(f"unknown export target '{target}'", fix=f"choose one of {list(EXPORT_TARGETS)}")
    saved["export"][key] = {**saved["export"][key], **(config or {}), "enabled": True}
    recipe = parse_recipe(saved, source=str(root / "recipe.json"))
    views, splits = _run_views(recipe, root, data_fingerprint)
    models = _run_students(recipe, root, views, splits.num_classes)
    d = recipe.data
    data = {"class_names": splits.class_names, "channels": int(views["train"].student.shape[1]),
            "size": d.student_size, "mean": d.normalize.mean, "std": d.normalize.std,
            "num_classes": splits.num_classes}
    return export_targets(recipe, models, views, RunDir(Path(out_dir)), data, log,
                          desc=f"test split, first {{n}} images (seed {recipe.seeds[0]} models)").artifacts


def _run_views(recipe, root: Path, fingerprint):
    import json

    from edgekd.data import PairedViews, build_splits

    d = recipe.data
    splits = build_splits(d)
    try:
        saved = json.loads((root / "data-fingerprint.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        saved = None
    if saved != fingerprint(splits):
        raise EdgekdError("the run's data changed or cannot be verified (data-fingerprint.json)", where=str(root),
                          fix="re-export from the data the run was trained on, or run the recipe again")
    views = {k: PairedViews.from_images(getattr(splits, k), d.teacher_size, d.student_size, d.normalize,
                                        channels=d.channels, teacher_channels=d.teacher_channels)
             for k in ("train", "val", "test")}
    return views, splits


def _run_students(recipe, root: Path, views, n_cls: int) -> dict[str, nn.Module]:
    from edgekd.distill.trainer import load_checkpoint
    from edgekd.nets import create_net

    seed, in_ch, models = recipe.seeds[0], int(views["train"].student.shape[1]), {}
    for s in (s for s in recipe.students if s.export):
        path = root / "checkpoints" / f"{s.name}-seed{seed}.pt"
        net = create_net(s.arch, num_classes=n_cls, in_channels=in_ch, input_size=recipe.data.student_size,
                         params=s.params, where=f"students.{s.name}")
        blob = load_checkpoint(path, {"arch": s.arch, "num_classes": n_cls})
        net.load_state_dict(blob["model"])
        models[s.name] = net.eval()
    return models
