"""edgekd: distill large models into tiny students and ship them to the edge.

Pipeline: recipe → data → teacher → teacher cache → students → export → fidelity check
→ profile → report. See ``edgekd --help`` and the README.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edgekd")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
