"""Export targets (one module each) and the fidelity record every artifact carries."""
from edgekd.export.artifact import Artifact, FidelityRecord

__all__ = ["Artifact", "FidelityRecord"]
