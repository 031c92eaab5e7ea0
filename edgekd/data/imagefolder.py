"""Image folders as people keep them: ``root/<class>/*.png`` (PNG, JPEG, TIFF, BMP).

Layouts:

* ``root/<class>/<image>`` — one pool, split into train/val/test by ``data.split``
  (seeded and stratified: each class keeps its share in every split);
* ``root/train/<class>/...`` with optional ``root/val/...`` and ``root/test/...`` — the
  user's own split; a missing ``val`` or ``test`` is split off ``train`` (stratified).

Images are 8- or 16-bit, gray or RGB, any size. They are decoded once into a
memory-mapped cache (:mod:`edgekd.data.image_cache`) at the larger of the teacher's and
the student's resolutions, with the data's channels (1 if every image is gray, else 3).
Non-square images are resized to the recipe's ``[H, W]`` without keeping aspect ratio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.data.image_cache import build_cache, default_cache_dir
from edgekd.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLIT_DIRS = ("train", "val", "test")


class RowView:
    """Rows ``index`` of a (memory-mapped) array, read only when sliced.

    ``view[idx_array]`` is another lazy view; ``view[a:b]`` reads those rows. This keeps
    ``ImageSet.subset`` from reading a whole memory-mapped split into memory.
    """

    def __init__(self, base: np.ndarray, index: np.ndarray | None = None):
        self.base = base
        self.index = np.arange(len(base)) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __getitem__(self, key):
        if isinstance(key, slice):
            return np.asarray(self.base[self.index[key]])
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.base[self.index[key]])
        key = np.asarray(key)
        return RowView(self.base, self.index[np.nonzero(key)[0] if key.dtype == bool else key])

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self.base[self.index])
        return arr.astype(dtype) if dtype is not None else arr


@dataclass
class FolderIndex:
    """Files, labels and the split each file belongs to (``None``: split it ourselves)."""

    root: Path
    class_names: list[str]
    files: list[Path]
    labels: np.ndarray
    split: list[str | None]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
                  and not p.name.startswith("."))


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(root: str | Path) -> FolderIndex:
    """Find class folders (and train/val/test folders) under ``root``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError("image folder not found", where=str(root),
                        fix="point data.path at a folder holding one sub-folder of images per class")
    has_splits = (root / "train").is_dir()
    groups = [(s, root / s) for s in SPLIT_DIRS if (root / s).is_dir()] if has_splits else [(None, root)]
    names = [d.name for d in _class_dirs(groups[0][1])]
    if not names:
        raise DataError(f"no class folders in {groups[0][1]}", where=str(root),
                        fix="layout: root/<class>/*.png, or root/train/<class>/*.png (+ val/, test/)")
    files, labels, split = [], [], []
    for s, folder in groups:
        extra = sorted({d.name for d in _class_dirs(folder)} - set(names))
        if extra:
            raise DataError(f"class folder(s) {extra} in '{folder.name}' are not in '{groups[0][1].name}' "
                            f"({names})", where=str(folder), fix="every split needs the same class folders")
        for c, name in enumerate(names):
            imgs = _images_in(folder / name) if (folder / name).is_dir() else []
            if s in (None, "train") and not imgs:
                raise DataError(f"class folder '{name}' holds no images ({', '.join(EXTENSIONS)})",
                                where=str(folder / name), fix="add images or remove the folder")
            files += imgs
            labels += [c] * len(imgs)
            split += [s] * len(imgs)
    return FolderIndex(root, names, files, np.asarray(labels, dtype=np.int64), split)


def stratified_split(labels: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of train/val/test: each class split by the same fractions, seeded."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        n_test, n_val = int(round(test * len(idx))), int(round(val * len(idx)))
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test : n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val :].tolist()
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in out.items()}


def assign_splits(index: FolderIndex, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Indices per split: the folders' own, the rest split off the pool (or off train)."""
    split = np.asarray([s or "" for s in index.split])
    if not split.any():
        return stratified_split(index.labels, val, test, seed)
    out = {s: np.nonzero(split == s)[0] for s in SPLIT_DIRS}
    train = out["train"]
    fracs = {"val": val if not len(out["val"]) else 0.0, "test": test if not len(out["test"]) else 0.0}
    if fracs["val"] or fracs["test"]:
        sub = stratified_split(index.labels[train], fracs["val"], fracs["test"], seed)
        for k in ("val", "test"):
            if fracs[k]:
                out[k] = train[sub[k]]
        out["train"] = train[sub["train"]]
    return out


def read_imagefolder(root: str | Path, size: tuple[int, int], *, val: float, test: float, seed: int,
                     cache_dir: str | Path | None = None) -> tuple[dict[str, tuple[RowView, np.ndarray]], list[str]]:
    """``{split: (images, labels)}`` and class names; images memory-mapped at ``size`` (H, W)."""
    index = scan(root)
    cache = build_cache(index.files, index.root, tuple(size), cache_dir=Path(cache_dir) if cache_dir else default_cache_dir())
    parts = assign_splits(index, val, test, seed)
    return {k: (RowView(cache, idx), index.labels[idx]) for k, idx in parts.items()}, index.class_names
