"""Datasets: built-in synthetic cells, LymphoMNIST IDX files, generic NPZ; paired views."""
from edgekd.data.build import build_splits
from edgekd.data.dataset import DataSplits, ImageSet
from edgekd.data.views import Batch, PairedViews, iterate_batches

__all__ = ["Batch", "DataSplits", "ImageSet", "PairedViews", "build_splits", "iterate_batches"]
