"""edgekd: distill large models into tiny students and ship them to the edge.

Pipeline: recipe → data → teacher → teacher cache → students → export → fidelity check
→ profile → report. See ``edgekd --help`` and the README.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edgekd")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"



def __getattr__(name: str):
    """``edgekd.export(...)``, ``edgekd.profile(...)``, ``edgekd.distill(...)``: the verbs as functions
    (:mod:`edgekd.api`). Each name is also a subpackage; the subpackage module itself is callable."""
    if name in ("export", "profile", "distill"):
        import importlib

        return importlib.import_module(f"edgekd.{name}")
    if name == "load_model":
        from edgekd.api import load_model

        return load_model
    raise AttributeError(f"module 'edgekd' has no attribute {name!r}")
