"""Atomic file writes: write to a temporary file in the same folder, fsync, rename.

A reader (or a resumed run) sees either the old file or the complete new one, never a
torn write; a crash mid-write leaves the previous good artifact in place.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: files are written with the mode ``open()`` would give them (mkstemp's are 0600)
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def replace_dir(new: str | Path, final: str | Path) -> None:
    """Move the complete folder ``new`` to ``final``, replacing the folder there.

    The previous folder is moved aside (``.<name>.old``) before the rename and removed after
    it, so ``final`` is never a half-written folder: a good artifact is only ever replaced
    by a complete one.
    """
    new, final = Path(new), Path(final)
    if not new.is_dir():
        raise FileNotFoundError(f"{new}: the folder to move into {final} does not exist; {final} is left as it was")
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=False) + "\n")


def save_torch(path: str | Path, obj: Any) -> None:
    import torch

    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except RuntimeError as exc:  # torch reports a failed write (full disk) as "... unexpected pos ..."
        if "unexpected pos" not in str(exc) and "failed writing" not in str(exc):
            raise
        free = shutil.disk_usage(Path(path).parent).free
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} while writing ({str(exc).splitlines()[0][:120]}); "
                                    f"{free / 2**10:,.0f} KiB free on that disk", str(path)) from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
