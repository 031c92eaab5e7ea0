"""Architecture registry (timm-style): ``@register_net`` and uniform factories.

Every factory takes ``num_classes``, ``in_channels`` and ``input_size`` (an int for a
square image, else ``(H, W)``; :func:`input_hw`) and
keyword parameters from the recipe's ``params``; unknown parameters fail with the list
of valid ones.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch.nn as nn

from edgekd.errors import ConfigError


@dataclass(frozen=True)
class NetSpec:
    name: str
    factory: Callable[..., nn.Module]
    role: str  # "teacher" | "student" | "any"
    description: str

    def param_names(self) -> list[str]:
        sig = inspect.signature(self.factory)
        return [p for p in sig.parameters if p not in ("num_classes", "in_channels", "input_size")]


NETS: dict[str, NetSpec] = {}


def register_net(name: str, *, role: str = "any"):
    def deco(fn: Callable[..., nn.Module]):
        if name in NETS:
            raise ValueError(f"architecture '{name}' registered twice")
        NETS[name] = NetSpec(name, fn, role, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return deco


def create_net(name: str, *, num_classes: int, in_channels: int, input_size: int,
               params: dict[str, Any] | None = None, where: str = "arch") -> nn.Module:
    """Build a registered architecture, with clear errors for unknown names or params.

    A name with a colon comes from outside the registry (:mod:`edgekd.nets.sources`):
    ``torchvision:resnet18``, ``timm:<name>``, ``my_pkg.nets:Tiny`` or ``./net.py:Tiny``.
    """
    if ":" in name:
        from edgekd.nets.sources import create_external

        return create_external(name, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                               params=dict(params or {}), where=where)
    if name not in NETS:
        raise ConfigError(f"unknown architecture '{name}'", where=where,
                          fix=f"choose one of {sorted(NETS)}, or torchvision:<name>, timm:<name>, "
                              "<module>:<Factory>, <file.py>:<Factory>")
    spec = NETS[name]
    params = dict(params or {})
    bad = sorted(set(params) - set(spec.param_names()))
    if bad:
        raise ConfigError(f"unknown parameter(s) {bad} for '{name}'", where=where,
                          fix=f"valid parameters: {spec.param_names()}")
    try:
        return spec.factory(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot build '{name}': {exc}", where=where) from None


def input_hw(input_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(H, W) of a factory's ``input_size``: an int is square, else [H, W]."""
    if isinstance(input_size, int):
        return input_size, input_size
    return int(input_size[0]), int(input_size[1])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
