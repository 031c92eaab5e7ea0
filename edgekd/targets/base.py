"""The one interface every deployment target implements, and the registry of targets by name.

A target says whether it takes a model (:meth:`Target.accepts`, a reason when not), exports
it with a fidelity check (:meth:`Target.start` → :class:`Pending`, finished later so a slow
build can run in the background while other targets work), and times it
(:meth:`Target.profile` → :class:`~edgekd.profile.result.LatencyResult`). FPGA targets add
their figures (estimated or simulated, never mixed). Adding a target is adding a package
under ``edgekd/targets/`` that calls :func:`register_target`; the pipeline never asks what
class a model is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
import torch.nn as nn

from edgekd.errors import ConfigError


@dataclass
class ExportContext:
    """What a target needs to export and check one model of a run."""

    name: str  # the model's name in the run ("teacher", a student's name)
    model: nn.Module
    out_dir: Path  # artifacts/<name>/
    x_test: torch.Tensor  # the held-out test split in the model's own view: artifacts are checked on it
    x_train: torch.Tensor  # training inputs (INT8 calibration)
    x_val: torch.Tensor  # validation inputs (hls4ml's precision from observed ranges)
    recipe: Any  # edgekd.config.schema.Recipe
    data: dict[str, Any] = field(default_factory=dict)  # class_names, channels, size, mean, std, num_classes
    log: Callable[[str], None] = print
    desc: str = "test split, first {n} images"

    def check_inputs(self, n: int) -> tuple[torch.Tensor, str]:
        """The first ``n`` test inputs and how the fidelity record names them."""
        x = self.x_test[:n]
        return x, self.desc.format(n=len(x))


@dataclass
class TargetOutput:
    """What one target produced for one model: artifacts, latencies, FPGA figures."""

    artifacts: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    fpga: list = field(default_factory=list)


class Pending:
    """An export that may still be working in the background; :meth:`finish` joins it."""

    def __init__(self, finish: Callable[[], TargetOutput] | TargetOutput, cancel: Callable[[], None] | None = None):
        self._finish, self._cancel = finish, cancel

    def finish(self) -> TargetOutput:
        return self._finish if isinstance(self._finish, TargetOutput) else self._finish()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel()


class Target:
    """Base class; a subclass sets ``name`` and overrides what it supports."""

    name: ClassVar[str] = ""
    exports: ClassVar[bool] = True  # False: a profile-only target (cpu-torch, cuda)
    teacher_too: ClassVar[bool] = False  # also export/profile the teacher

    def enabled(self, recipe: Any) -> bool:
        """Whether the recipe asks for this target."""
        return False

    def accepts(self, model: nn.Module, input_shape: tuple[int, ...]) -> str | None:
        """None if the target takes ``model`` (one sample's ``input_shape``); else one line saying why not."""
        return None

    def start(self, ctx: ExportContext) -> Pending:
        raise NotImplementedError(f"target {self.name} does not export")  # only for exports = False

    def profile(self, name: str, model: nn.Module, x: torch.Tensor, artifacts: dict[str, Any], recipe: Any,
                log: Callable[[str], None]) -> list:
        """Latency rows for ``model`` on this target (``artifacts``: this model's artifacts by target)."""
        return []


TARGETS: dict[str, Target] = {}

#: the order exports start in: background builds (fpga-rtl) before the long synchronous ones
EXPORT_ORDER = ("onnxruntime", "fpga-rtl", "fpga-hls", "tensorrt", "cuda-fused")


def register_target(cls: type[Target]) -> type[Target]:
    if not cls.name or cls.name in TARGETS:
        raise ValueError(f"target name {cls.name!r} is empty or registered twice")
    TARGETS[cls.name] = cls()
    return cls


def get_target(name: str) -> Target:
    _load_builtin()
    if name not in TARGETS:
        raise ConfigError(f"unknown target '{name}'", fix=f"choose one of {sorted(TARGETS)}")
    return TARGETS[name]


def all_targets() -> list[Target]:
    _load_builtin()
    order = {n: i for i, n in enumerate(EXPORT_ORDER)}
    return sorted(TARGETS.values(), key=lambda t: (order.get(t.name, len(order)), t.name))


def _load_builtin() -> None:
    import importlib

    for pkg in ("onnxruntime", "cpu_torch", "cuda", "fpga_hls", "fpga_rtl", "tensorrt", "cuda_fused"):
        importlib.import_module(f"edgekd.targets.{pkg}")


def is_integer_firmware(model: nn.Module) -> bool:
    """A model whose deployable part is integer arithmetic (a QAT student): it says so itself."""
    return bool(getattr(model, "integer_firmware", False))
