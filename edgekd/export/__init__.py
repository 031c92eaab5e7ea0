"""Export targets (one module each) and the fidelity record every artifact carries."""
from edgekd.export.artifact import Artifact, FidelityRecord

__all__ = ["Artifact", "FidelityRecord"]

from edgekd._verb import make_callable as _make_callable

_make_callable(__name__, "export")  # edgekd.export(...) is the API verb (edgekd.api.export)
