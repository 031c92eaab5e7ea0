"""Make a subpackage callable as its verb: ``edgekd.export(model, ...)`` runs :func:`edgekd.api.export`.

``edgekd.export``, ``edgekd.profile`` and ``edgekd.distill`` are both subpackages (the stages'
code) and the verbs of the Python API; the subpackage module gets a ``__call__`` that forwards
to the verb, so both ``from edgekd.export import onnx`` and ``edgekd.export(model, ...)`` work.
"""
from __future__ import annotations

import sys
import types


def make_callable(module_name: str, verb: str) -> None:
    class _VerbModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            from edgekd import api

            return getattr(api, verb)(*args, **kwargs)

    _VerbModule.__call__.__doc__ = f"edgekd.{verb}(...): see edgekd.api.{verb}"
    sys.modules[module_name].__class__ = _VerbModule
