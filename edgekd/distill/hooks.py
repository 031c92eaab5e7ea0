"""Feature capture by module path with forward hooks (no model's ``forward`` rewritten).

A path is the dotted name ``nn.Module.get_submodule`` understands (``"stages.1"``,
``"5"`` for the sixth layer of a ``Sequential``, ``"features"``). Paths always refer to
the *unwrapped* model: wrappers such as DistributedDataParallel or DataParallel expose
the real model as ``.module`` and prefix every name with ``module.``; resolving on the
wrapper would find nothing (or the wrong module) and silently zero a feature loss, so
both the wrapper and a leading ``module.`` in the path are stripped.

Teacher-side taps can ask for a *reduced* feature (``TapSpec.reduce``): attention
transfer only needs the B×H×W attention map, so a cache stores that instead of the
full B×C×H×W activation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn

from edgekd.errors import ConfigError

_WRAPPERS = ("DistributedDataParallel", "DataParallel", "FullyShardedDataParallel")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP/DataParallel-style wrappers (and ``torch.compile``)."""
    while True:
        if type(model).__name__ in _WRAPPERS and hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def resolve(model: nn.Module, path: str, *, where: str = "feature path") -> nn.Module:
    """The submodule at ``path`` of the unwrapped ``model``; a clear error if absent."""
    base = unwrap(model)
    opaque = getattr(base, "edgekd_no_taps", None)
    if opaque:  # a TorchScript / .pt2 / ONNX model from a file: nothing to hook
        raise ConfigError(f"cannot tap '{path}': {opaque}", where=where,
                          fix="use a logit loss (kd, dkd, ...) with this teacher, or give teacher.checkpoint as a "
                              "state dict with teacher.arch so its layers exist")
    clean = path
    while clean.startswith("module."):
        clean = clean[len("module."):]
    try:
        return base.get_submodule(clean) if clean else base
    except AttributeError:
        names = [n for n, _ in base.named_modules() if n]
        raise ConfigError(f"no module at path '{path}' in {type(base).__name__}", where=where,
                          fix=f"valid paths: {names}") from None


@dataclass(frozen=True)
class TapSpec:
    """A teacher feature a loss needs: module ``path`` and how to reduce it.

    ``reduce`` is ``"none"`` (the raw output) or ``"attention"`` (mean_c |A_c|^p, with
    ``p``). ``key`` names it in caches and in :class:`LossContext.teacher_features`.
    """

    path: str
    reduce: str = "none"
    p: float = 2.0

    def __post_init__(self):
        if self.reduce not in ("none", "attention"):
            raise ValueError(f"unknown reduction '{self.reduce}'")

    @property
    def key(self) -> str:
        return self.path if self.reduce == "none" else f"{self.path}@attention{self.p:g}"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduce == "attention":
            from edgekd.distill.functional import attention_map

            if x.ndim != 4:
                raise ConfigError(f"attention transfer needs a B×C×H×W map at '{self.path}', got shape "
                                  f"{tuple(x.shape)}", where="loss", fix="choose a convolutional layer's path")
            return attention_map(x, self.p)
        return x


class FeatureTaps:
    """Record the outputs of submodules during forward passes.

    Use as a context manager or call :meth:`close`. ``outputs`` maps each path to the
    last output seen (kept in the graph, so losses on it back-propagate).
    """

    def __init__(self, model: nn.Module, paths: Iterable[str], *, where: str = "feature path"):
        self.paths = list(dict.fromkeys(paths))
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = []
        for p in self.paths:
            mod = resolve(model, p, where=where)
            self._handles.append(mod.register_forward_hook(self._hook(p)))

    def _hook(self, path: str):
        def fn(_module, _inputs, output):
            value = getattr(output, "value", None)  # a Brevitas QuantTensor carries its tensor in .value
            if not isinstance(output, torch.Tensor) and isinstance(value, torch.Tensor):
                output = value
            if not isinstance(output, torch.Tensor):
                raise ConfigError(f"module at '{path}' returns {type(output).__name__}, not a tensor",
                                  where="feature path", fix="tap a layer that returns one tensor")
            self.outputs[path] = output

        return fn

    def pop(self) -> dict[str, torch.Tensor]:
        """The captured outputs, cleared for the next batch (no stale tensors kept)."""
        out, self.outputs = self.outputs, {}
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "FeatureTaps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_with_taps(model: nn.Module, x: torch.Tensor, specs: Iterable[TapSpec]) -> tuple[torch.Tensor, dict]:
    """Forward ``x`` and return (logits, {spec.key: reduced feature})."""
    specs = list(specs)
    with FeatureTaps(model, [s.path for s in specs]) as taps:
        logits = model(x)
        raw = taps.pop()
    return logits, {s.key: s.apply(raw[s.path]) for s in specs}
