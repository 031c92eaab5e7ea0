"""Decode image files once into a memory-mapped array at one resolution.

The cache is an ``.npy`` file (N×C×H×W, uint8 for 8-bit data, uint16 when any image is
16-bit) opened with ``np.load(mmap_mode="r")``: the decoded images are never all in
memory, whatever their number. It is written in chunks of ``chunk`` images into a
temporary file, then renamed, so a killed decode never leaves a half-written cache.

The key hashes the file list with each file's size and modification time, the
resolution and the channel count: a changed, added or removed file means a new cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.errors import DataError, ToolMissingError

CACHE_VERSION = 1
_GRAY_MODES = {"1", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I"}
_DEEP_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def default_cache_dir() -> Path:
    """``$EDGEKD_CACHE`` or ``$XDG_CACHE_HOME/edgekd`` (``~/.cache/edgekd``), then ``images``."""
    root = os.environ.get("EDGEKD_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgekd"
    return Path(root) / "images"


@dataclass(frozen=True)
class ImageInfo:
    channels: int  # 1 or 3
    deep: bool  # 16-bit


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ToolMissingError("Pillow is not installed; image folders need it", where="data.kind: imagefolder",
                               fix="pip install pillow") from None
    return Image


def probe(path: Path) -> ImageInfo:
    """Channels and bit depth from the file's header (no pixel decoding)."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise DataError(f"cannot read image: {type(exc).__name__}: {exc}", where=str(path),
                        fix="remove or re-save the file (PNG, JPEG, TIFF, BMP; 8- or 16-bit; gray or RGB)") from None
    if mode == "F":
        raise DataError("32-bit float images are not supported", where=str(path),
                        fix="save images as 8- or 16-bit integers")
    return ImageInfo(1 if mode in _GRAY_MODES else 3, mode in _DEEP_MODES)


def _read_tiff_fallback(path: Path, exc: Exception) -> np.ndarray:
    try:
        import tifffile
    except ImportError:
        raise ToolMissingError(f"Pillow cannot read this TIFF ({exc}); tifffile can", where=str(path),
                               fix="pip install tifffile") from None
    return np.asarray(tifffile.imread(path))


def decode(path: Path, channels: int) -> np.ndarray:
    """One image as float32 C×H×W in [0, 1] with ``channels`` channels (gray↔RGB converted)."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("P", "CMYK", "RGBA", "YCbCr", "LAB", "HSV"):
                im, mode = im.convert("RGB"), "RGB"
            elif mode in ("1", "LA"):
                im, mode = im.convert("L"), "L"
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001
        if path.suffix.lower() in (".tif", ".tiff"):
            arr, mode = _read_tiff_fallback(path, exc), "tifffile"
        else:
            raise DataError(f"cannot decode image: {type(exc).__name__}: {exc}", where=str(path),
                            fix="remove or re-save the file") from None
    scale = 65535.0 if (mode in _DEEP_MODES or arr.dtype == np.uint16) else 255.0
    x = torch.from_numpy(arr.astype(np.float32) / scale)
    x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)[:3]
    return to_channels(x, channels).numpy()


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """C×H×W or N×C×H×W float images to 1 (ITU-R 601 luma) or 3 (repeated gray) channels."""
    c = x.shape[-3]
    if c == channels:
        return x
    if channels == 3 and c == 1:
        return x.repeat_interleave(3, dim=-3)
    if channels == 1 and c == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def data_format(files: list[Path]) -> tuple[int, bool]:
    """(channels, 16-bit) of the data: 3 if any image is colour, 16-bit if any is (headers only)."""
    channels, deep = 1, False
    for p in files:
        info = probe(p)
        channels, deep = max(channels, info.channels), deep or info.deep
    return channels, deep


def cache_key(files: list[Path], root: Path, size: tuple[int, int]) -> str:
    """Hash of (relative path, size, mtime) of every file and the resolution."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{tuple(size)}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def build_cache(files: list[Path], root: Path, size: tuple[int, int], *, cache_dir: Path,
                chunk: int = 256) -> np.ndarray:
    """The images of ``files`` at ``size`` (H, W), memory-mapped from the cache (built if absent).

    The data's channels and depth (:func:`data_format`) are read from the headers only
    when the cache is built; a cached array carries them in its shape and dtype.
    """
    key = cache_key(files, root, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{key}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    channels, deep = data_format(files)
    dtype, top = (np.uint16, 65535.0) if deep else (np.uint8, 255.0)
    tmp = cache_dir / f".{key}.{os.getpid()}.npy.tmp"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(files), channels, *size))
    try:
        for s in range(0, len(files), chunk):
            for i, p in enumerate(files[s : s + chunk]):
                x = torch.from_numpy(decode(p, channels)).unsqueeze(0)
                if tuple(x.shape[-2:]) != tuple(size):
                    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
                out[s + i] = np.clip(np.round(x[0].numpy() * top), 0, top).astype(dtype)
            out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    (cache_dir / f"{key}.json").write_text(json.dumps(
        {"root": str(root), "n": len(files), "size": list(size), "channels": channels, "dtype": np.dtype(dtype).name}))
    return np.load(path, mmap_mode="r")
