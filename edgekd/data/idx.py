"""Reader (and writer, for tests and tools) of IDX files as used by MNIST and LymphoMNIST.

Never downloads: the files must already be in a local folder.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from edgekd.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array."""
    path = Path(path)
    try:
        with _open(path) as fh:
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read IDX file: {exc}", where=str(path),
                        fix="check that the file is a complete (optionally .gz) IDX file") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError("not an IDX file (bad magic number)", where=str(path),
                        fix="expected MNIST-style *-idx3-ubyte images / *-idx1-ubyte labels")
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError("truncated IDX header", where=str(path), fix="re-copy the file")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        raise DataError(
            f"IDX file is truncated or corrupted: header says {dims} "
            f"({expected} bytes of data), file has {body}",
            where=str(path),
            fix="re-copy or re-extract the dataset file",
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8/int8 array as IDX (gzip when the name ends in .gz)."""
    array = np.ascontiguousarray(array)
    code = _CODES.get(array.dtype)
    if code is None:
        raise ValueError(f"write_idx supports uint8/int8, got {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


def _find(folder: Path, split_words: tuple[str, ...], kind: str) -> Path:
    hits = sorted(
        p for p in folder.iterdir()
        if p.is_file() and kind in p.name.lower() and any(w in p.name.lower() for w in split_words)
        and "idx" in p.name.lower()
    )
    if len(hits) != 1:
        found = sorted(p.name for p in folder.iterdir())
        raise DataError(
            f"expected exactly one {'/'.join(split_words)} {kind} IDX file, found {len(hits)}: "
            f"{[h.name for h in hits]} (folder holds {found[:12]})",
            where=str(folder),
            fix="name files like train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
            "t10k-images-idx3-ubyte(.gz) / test-images..., t10k-labels-idx1-ubyte(.gz)",
        )
    return hits[0]


def read_lymphomnist(folder: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read LymphoMNIST (or any MNIST-style) train/test IDX pairs from ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("LymphoMNIST folder not found", where=str(folder),
                        fix="point data.path at the folder holding the IDX files")
    out = {}
    for split, words in (("train", ("train",)), ("test", ("test", "t10k"))):
        images = read_idx(_find(folder, words, "images"))
        labels = read_idx(_find(folder, words, "labels"))
        if images.ndim != 3:
            raise DataError(f"{split} images must be N×H×W, got shape {images.shape}", where=str(folder))
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{split}: {images.shape[0]} images but labels of shape {labels.shape}",
                where=str(folder), fix="images and labels files must belong together",
            )
        out[split] = (images, integer_labels(labels, f"{folder}: {split} labels"))
    return out


def integer_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64; fractional, NaN or Inf labels are refused, never truncated."""
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(np.nan_to_num(y)))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"labels must be whole numbers; {int(bad.sum())} are not (the first, #{i}, is {float(y[i])})",
                            where=where, fix="store class indices 0..C-1 as integers")
        return y.astype(np.int64)
    raise DataError(f"labels must be integers, got dtype {y.dtype}", where=where,
                    fix="store class indices 0..C-1 as integers")
