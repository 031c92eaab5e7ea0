"""Architectures from outside the registry: torchvision, timm, and the user's own module.

An ``arch`` with a colon names a source and a factory:

* ``torchvision:<name>`` — ``torchvision.models.get_model(name, weights=None, **params)``
* ``timm:<name>`` — ``timm.create_model(name, pretrained=False, **params)``
* ``<module.path>:<Factory>`` or ``<file.py>:<Factory>`` — the user's own ``nn.Module``
  class or factory function. **This imports and runs the user's Python code**, exactly
  like ``python -c "import module"``: only name files you trust.

torchvision and timm models get ``num_classes`` from the data and, when the data has
other than 3 channels, their first convolution replaced by one with ``in_channels``
inputs (fresh weights; same kernel, stride, padding). Pretrained weights are refused:
edgekd never downloads at run time; load your weights as a checkpoint instead.

A user factory receives ``num_classes``, ``in_channels`` and ``input_size`` for each of
those it declares (or all three if it takes ``**kwargs``) plus the recipe's ``params``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from edgekd.errors import ConfigError, ToolMissingError

_BUILTIN_ARGS = ("num_classes", "in_channels", "input_size")
_PRETRAINED_KEYS = ("pretrained", "weights", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path")


def is_external(arch: str) -> bool:
    """True for ``source:name`` architectures (torchvision, timm, user code)."""
    return ":" in arch


def create_external(arch: str, *, num_classes: int, in_channels: int, input_size: Any,
                    params: dict[str, Any], where: str) -> nn.Module:
    """Build ``arch`` (``torchvision:...``, ``timm:...``, ``module:Factory``, ``file.py:Factory``)."""
    source, _, name = arch.rpartition(":")
    if not source or not name:
        raise ConfigError(f"architecture '{arch}' must be '<source>:<name>'", where=where,
                          fix="e.g. torchvision:resnet18, timm:mobilenetv3_small_050, my_pkg.nets:Tiny, "
                              "./my_net.py:Tiny")
    if source in ("torchvision", "timm"):
        _refuse_pretrained(params, arch, where)
        build = _torchvision if source == "torchvision" else _timm
        model = build(name, num_classes, dict(params), where)
        return adapt_in_channels(model, in_channels, where=where)
    factory = load_user_factory(source, name, where=where)
    return _call_user(factory, arch, num_classes=num_classes, in_channels=in_channels,
                      input_size=input_size, params=params, where=where)


def _refuse_pretrained(params: dict[str, Any], arch: str, where: str) -> None:
    for key in _PRETRAINED_KEYS:
        if params.get(key) not in (None, False):
            raise ConfigError(
                f"'{arch}' asks for pretrained weights ({key}: {params[key]!r}); edgekd never downloads at run time",
                where=f"{where}.params.{key}",
                fix="remove it, save the weights to a file yourself (torch.save(model.state_dict(), 'w.pt')) "
                    "and pass that file as a checkpoint (teacher.checkpoint: w.pt)")


def _torchvision(name: str, num_classes: int, params: dict[str, Any], where: str) -> nn.Module:
    try:
        from torchvision import models
    except Exception as exc:  # noqa: BLE001 - a broken torchvision (wrong torch build) raises RuntimeError
        raise ToolMissingError(f"torchvision is not importable ({type(exc).__name__}: {str(exc)[:120]})",
                               where=where, fix="pip install -e . installs torchvision==0.29.1 with torch==2.14.1; "
                                                "a torchvision built for another torch does not import") from None
    available = models.list_models()
    if name not in available:
        close = [m for m in available if name.lower()[:4] in m][:8]
        raise ConfigError(f"torchvision has no model '{name}'", where=where,
                          fix=f"similar names: {close or available[:8]} (torchvision.models.list_models())")
    params.pop("weights", None)
    try:
        return models.get_model(name, weights=None, num_classes=num_classes, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build torchvision:{name}: {exc}", where=where) from None


def _timm(name: str, num_classes: int, params: dict[str, Any], where: str) -> nn.Module:
    try:
        import timm
    except Exception as exc:  # noqa: BLE001
        raise ToolMissingError(f"timm is not importable ({type(exc).__name__}: {str(exc)[:120]})",
                               where=where, fix="pip install 'edgekd[vision]' (timm==1.0.31)") from None
    if not timm.list_models(name):
        raise ConfigError(f"timm has no model '{name}'", where=where,
                          fix=f"similar names: {timm.list_models(f'*{name[:4]}*')[:8]} (timm.list_models())")
    params.pop("pretrained", None)
    try:
        # in_chans stays 3 here: adapt_in_channels replaces the stem the same way for every source
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **params)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot build timm:{name}: {exc}", where=where) from None


def adapt_in_channels(model: nn.Module, in_channels: int, *, where: str = "arch") -> nn.Module:
    """Replace the first ``Conv2d`` when it does not take ``in_channels`` inputs."""
    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first[1].in_channels == in_channels:
        return model
    path, conv = first
    if conv.groups != 1:
        raise ConfigError(f"first convolution '{path}' is grouped ({conv.groups} groups); cannot adapt it to "
                          f"{in_channels} input channel(s)", where=where,
                          fix="convert the data to 3 channels (data.channels: 3)")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, 1, conv.bias is not None, conv.padding_mode)
    parent_path, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, attr, new)
    return model


def load_user_factory(source: str, name: str, *, where: str = "arch") -> Callable[..., nn.Module]:
    """The callable ``name`` from a module path or a ``.py`` file (imports the user's code)."""
    if source.endswith(".py"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"model file '{source}' not found", where=where,
                              fix="give a path to an existing .py file (relative to the working directory)")
        mod_name = "edgekd_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module  # dataclasses and pickling look the module up
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's code failed to import
            sys.modules.pop(mod_name, None)
            raise ConfigError(f"importing '{source}' failed: {type(exc).__name__}: {exc}", where=where) from None
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ConfigError(f"cannot import module '{source}': {exc}", where=where,
                              fix="install the package, put it on PYTHONPATH, or give a .py file path") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        found = sorted(k for k, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module))
        raise ConfigError(f"'{source}' has no class or function '{name}'", where=where,
                          fix=f"nn.Module classes there: {found}")
    return factory


def _call_user(factory: Callable[..., nn.Module], arch: str, *, num_classes: int, in_channels: int,
               input_size: Any, params: dict[str, Any], where: str) -> nn.Module:
    sig = inspect.signature(factory)
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    given = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size}
    kwargs = {k: v for k, v in given.items() if takes_kwargs or k in sig.parameters}
    clash = sorted(set(params) & set(_BUILTIN_ARGS))
    if clash:
        raise ConfigError(f"params {clash} come from the data, not the recipe", where=f"{where}.params",
                          fix="remove them from params")
    try:
        model = factory(**kwargs, **params)
    except TypeError as exc:
        raise ConfigError(f"cannot build '{arch}': {exc}", where=where,
                          fix=f"its signature is {sig}; edgekd passes {sorted(kwargs)} plus params") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"'{arch}' returned {type(model).__name__}, not an nn.Module", where=where)
    return model


def resolve_arch_path(arch: str, base: Path) -> str:
    """``file.py:Factory`` with a relative file made relative to ``base`` (the recipe's folder)."""
    source, sep, name = arch.rpartition(":")
    if not sep or not source.endswith(".py") or Path(source).expanduser().is_absolute():
        return arch
    return f"{(base / source).resolve()}:{name}"
