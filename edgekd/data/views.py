"""Paired multi-resolution views: teacher and student see the same sample.

Images are converted once to normalized float tensors at each resolution. Training
batches draw sample indices once and index both views with them, and a dihedral
augmentation (one of 8 flips/rotations) is chosen per sample from (seed, epoch, index),
so it can be replayed exactly — which is what makes a teacher cache valid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.config.schema import NormalizeConfig
from edgekd.data.dataset import ImageSet

N_DIHEDRAL = 8


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8/uint16 N×H×W (or N×C×H×W) → float N×C×H×W in [0, 1]."""
    arr = np.ascontiguousarray(images)
    if arr.dtype == np.uint16:  # 16-bit microscopy images: full range is 0..65535
        x = torch.from_numpy(arr.astype(np.float32) / 65535.0)
    else:
        x = torch.from_numpy(arr)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.unsqueeze(1) if x.ndim == 3 else x


def size_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(H, W) of a recipe size: an int is square."""
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    hw = size_hw(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)


def make_view(images: np.ndarray, size: int | tuple[int, int], norm: NormalizeConfig, chunk: int = 4096,
              channels: int | None = None) -> torch.Tensor:
    """Images → normalized float tensor at ``size`` (int: square, or (H, W)), ``channels`` 1 or 3."""
    from edgekd.data.image_cache import to_channels

    parts = []
    for i in range(0, len(images), chunk):
        x = resize(to_float(images[i : i + chunk]), size)
        parts.append(to_channels(x, channels) if channels else x)
    x = torch.cat(parts) if parts else torch.empty(0)
    return (x - norm.mean) / norm.std


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply the k-th (0..7) element of the dihedral group D4 to N×C×H×W images."""
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k % 4, dims=(-2, -1))


def apply_dihedral(x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for k in range(1, N_DIHEDRAL):
        m = ks == k
        if m.any():
            out[m] = dihedral(x[m], k)
    return out


def augment_ids(seed: int, epoch: int, indices: np.ndarray, n_total: int) -> np.ndarray:
    """The transform of each sample in one epoch; a pure function of (seed, epoch, index)."""
    table = np.random.default_rng([seed, epoch, 7]).integers(0, N_DIHEDRAL, n_total)
    return table[indices]


@dataclass
class PairedViews:
    """One split at the teacher's and the student's resolutions, with labels."""

    teacher: torch.Tensor  # N×C×Ht×Wt
    student: torch.Tensor  # N×C×Hs×Ws
    labels: torch.Tensor  # N, int64

    @classmethod
    def from_images(cls, s: ImageSet, teacher_size: int | tuple[int, int], student_size: int | tuple[int, int],
                    norm: NormalizeConfig, *, channels: int | None = None,
                    teacher_channels: int | None = None) -> "PairedViews":
        """``channels`` (student) and ``teacher_channels`` convert gray↔RGB; None keeps the data's."""
        teacher_channels = teacher_channels or channels
        student = make_view(s.images, student_size, norm, channels=channels)
        same = size_hw(teacher_size) == size_hw(student_size) and teacher_channels == channels
        teacher = student if same else make_view(s.images, teacher_size, norm, channels=teacher_channels)
        return cls(teacher, student, torch.from_numpy(s.labels))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Batch:
    index: torch.Tensor  # sample indices into the split
    teacher: torch.Tensor | None
    student: torch.Tensor
    labels: torch.Tensor
    transforms: torch.Tensor  # dihedral id per sample (0 = identity)


def balanced_order(labels: np.ndarray, order: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """``len(order)`` samples of ``order`` drawn with every class equally likely (with replacement)."""
    rng = np.random.default_rng([seed, epoch, 5])
    classes = np.unique(labels[order])
    pick = rng.integers(0, len(classes), len(order))
    out = np.empty(len(order), dtype=np.int64)
    for j, c in enumerate(classes):
        slots = np.nonzero(pick == j)[0]
        out[slots] = rng.choice(order[labels[order] == c], size=len(slots), replace=True)
    return out


def iterate_batches(views: PairedViews, batch_size: int, *, seed: int, epoch: int,
                    shuffle: bool, augment: Any = "none", with_teacher: bool = True,
                    indices: np.ndarray | None = None, balanced: bool = False):
    """Yield :class:`Batch` objects; both views are indexed with the same samples.

    ``indices`` restricts iteration to a subset (e.g. a distributed shard) and keeps
    their order unless ``shuffle``. ``augment`` is ``"none"``, ``"dihedral"`` or an
    ``AugmentConfig`` (:mod:`edgekd.data.augment`); ``balanced`` draws classes equally.
    """
    from edgekd.data.augment import make_augmenter

    aug = make_augmenter(augment)
    n = len(views)
    order = np.arange(n) if indices is None else np.asarray(indices)
    if balanced:
        order = balanced_order(views.labels.numpy(), order, seed, epoch)
    elif shuffle:
        order = order[np.random.default_rng([seed, epoch, 3]).permutation(len(order))]
    ks_all = aug.view_ids(seed, epoch, n)
    for start in range(0, len(order), batch_size):
        idx = torch.from_numpy(order[start : start + batch_size].copy())
        ks = torch.from_numpy(ks_all[idx.numpy()])
        student = aug.apply(views.student[idx], ks, idx)
        teacher = aug.apply(views.teacher[idx], ks, idx) if with_teacher else None
        yield Batch(idx, teacher, student, views.labels[idx], ks)
