"""Generic NPZ datasets: how a user brings any image classification data.

The file holds ``x`` (N×H×W or N×C×H×W; uint8 0..255 or float in [0, 1]), ``y`` (N
integer labels 0..C-1) and optionally ``classes`` (C names).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from edgekd.data.idx import integer_labels
from edgekd.errors import DataError


#: what a dataset file may declare before anything is allocated
MAX_CLASSES = 10_000


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _check_declared_size(zf: zipfile.ZipFile, member: str, where: str) -> None:
    """Refuse an array whose header declares more than half of this machine's memory."""
    try:
        with zf.open(member) as fh:
            major, _ = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh, max_header_size=100_000)
    except (KeyError, ValueError, OSError):
        return  # np.load reports a damaged member itself
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > _memory_bytes() // 2:
        raise DataError(f"array '{member[:-4]}' declares shape {shape} ({need / 2**30:,.1f} GiB), more than half "
                        f"of this machine's memory", where=where,
                        fix="use a smaller dataset, or split it into several files")


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    path = Path(path)
    if not path.is_file():
        raise DataError("NPZ file not found", where=str(path), fix="point data.path at an existing .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = {"x", "y"} - keys
            if missing:
                raise DataError(
                    f"NPZ lacks array(s) {sorted(missing)}; it holds {sorted(keys)}",
                    where=str(path),
                    fix="save with np.savez(path, x=images, y=labels, classes=names)",
                )
            for k in ("x", "y", "classes"):
                if k in keys:
                    _check_declared_size(z.zip, f"{k}.npy", str(path))
            x, y = z["x"], z["y"]
            classes = [str(c) for c in z["classes"]] if "classes" in keys else None
            if classes is not None and len(classes) > MAX_CLASSES:
                raise DataError(f"'classes' names {len(classes):,} classes; at most {MAX_CLASSES:,} are supported",
                                where=str(path))
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read NPZ file (truncated or corrupted?): {exc}", where=str(path),
                        fix="re-create the file with np.savez; object arrays are not accepted") from None
    return _check(x, y, classes, str(path))


def _check(x: np.ndarray, y: np.ndarray, classes: list[str] | None, where: str):
    if x.shape[0] == 0:
        raise DataError("the file holds no images (x has 0 samples)", where=f"{where}: x",
                        fix="save at least a few images per class")
    if x.ndim not in (3, 4):
        raise DataError(f"x must be N×H×W or N×C×H×W, got shape {x.shape}", where=f"{where}: x")
    if x.ndim == 4 and x.shape[1] not in (1, 3):
        raise DataError(
            f"x looks channels-last or has {x.shape[1]} channels (shape {x.shape})",
            where=f"{where}: x", fix="store images as N×C×H×W with C = 1 or 3 (np.moveaxis(x, -1, 1))",
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"x has dtype {x.dtype}; expected uint8 or float", where=f"{where}: x")
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"integer x must be in 0..255, found {x.min()}..{x.max()}", where=f"{where}: x")
        x = x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())
            raise DataError(f"x holds NaN or Inf in {bad} image(s)", where=f"{where}: x",
                            fix="remove or repair those images")
        if x.min() < 0.0 or x.max() > 1.0:
            raise DataError(f"float x must be in [0, 1], found {x.min():.3g}..{x.max():.3g}",
                            where=f"{where}: x", fix="scale images to [0, 1] or store uint8")
        x = x.astype(np.float32)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"y must have shape ({x.shape[0]},), got {y.shape}", where=f"{where}: y")
    y = integer_labels(y, f"{where}: y")
    n_classes = len(classes) if classes is not None else int(y.max()) + 1
    if n_classes > MAX_CLASSES:
        raise DataError(f"{n_classes:,} classes (labels up to {int(y.max()):,}); at most {MAX_CLASSES:,} are supported",
                        where=f"{where}: y", fix="labels must be class indices 0..C-1; store the names in 'classes'")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(
            f"labels out of range: found {y.min()}..{y.max()}, expected 0..{n_classes - 1}",
            where=f"{where}: y", fix="labels must be 0..C-1 where C = len(classes)",
        )
    if classes is None:
        classes = [str(i) for i in range(n_classes)]
    return x, y.astype(np.int64), classes


def npz_header(path: str | Path) -> tuple[int, int]:
    """(channels, classes) of an NPZ dataset, reading the labels but not the images."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            _check_declared_size(z.zip, "x.npy", str(path))
            with z.zip.open("x.npy") as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, _ = read(fh, max_header_size=100_000)
            y = integer_labels(z["y"], f"{path}: y") if "y.npy" in z.zip.namelist() else np.zeros(0, np.int64)
            n_cls = len(z["classes"]) if "classes" in z.files else (int(y.max()) + 1 if len(y) else 0)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read NPZ file (truncated or corrupted?): {exc}", where=str(path),
                        fix="re-create the file with np.savez(path, x=images, y=labels, classes=names)") from None
    if n_cls > MAX_CLASSES:
        raise DataError(f"{n_cls:,} classes; at most {MAX_CLASSES:,} are supported", where=f"{path}: y",
                        fix="labels must be class indices 0..C-1; store the names in 'classes'")
    return (int(shape[1]) if len(shape) == 4 else 1), n_cls
