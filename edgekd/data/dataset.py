"""Typed containers passed between the data stage and the rest of the pipeline."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageSet:
    """Images and integer labels of one split.

    ``images`` is N×H×W or N×C×H×W, uint8 (0..255) or float (already in [0, 1]).
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[idx], self.labels[idx])


@dataclass
class DataSplits:
    """Train/val/test splits with class names in label order."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    class_names: list[str]
    source: str = ""
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
