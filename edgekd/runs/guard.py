"""Guards around a run directory: one process at a time, overwrite only runs, honest resume.

- :class:`RunLock`: an ``fcntl`` lock on ``<parent>/.<name>.lock`` (beside the run, so
  ``--overwrite`` can delete the run while the lock stays), freed by the kernel when the
  holder dies; a second process is refused with the holder's PID.
- :func:`check_replaceable`: ``--overwrite`` deletes only a directory that is an edgekd run.
- :func:`sweep_stale`: what a killed process leaves (``.*.tmp`` files and folders, a
  ``.<name>.old`` folder from a half-done :func:`~edgekd.runs.atomic.replace_dir`).
- :func:`check_resume`: a run resumes only with the same data and the same training recipe.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

from edgekd.errors import EdgekdError

#: the marker every run directory holds from its creation on
MARKER = ".edgekd-run"
#: recipe sections that do not change trained weights: a resumed run may change them
RESUMABLE_SECTIONS = ("export", "profile", "description", "reference", "search")


class RunLock:
    """An exclusive lock on a run directory for the life of this process (or until released)."""

    def __init__(self, root: Path):
        root = Path(root).absolute()
        self.path = root.parent / f".{root.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EdgekdError(f"cannot create the run's lock file: {exc.strerror}", where=str(self.path),
                              fix="choose an --out folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise EdgekdError(f"the run directory is in use by another edgekd process ({holder})",
                              where=str(self.path.parent / self.path.name[1:-5]),
                              fix="wait for it to finish (or stop it), or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"PID {info['pid']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "PID unknown"


def is_run_dir(root: Path) -> bool:
    """A folder edgekd wrote: its marker, or (runs made before the marker) recipe + checkpoints."""
    return (root / MARKER).is_file() or ((root / "recipe.json").is_file() and (root / "checkpoints").is_dir())


def describe_contents(root: Path, limit: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_out_path(root: Path) -> None:
    """``--out`` must be a folder (or not exist yet)."""
    if root.exists() and not root.is_dir():
        raise EdgekdError("--out names a file, not a folder", where=str(root),
                          fix="give a folder path for the run directory (it is created if missing)")


def check_replaceable(root: Path) -> None:
    """Refuse to delete a non-empty folder that is not an edgekd run."""
    if root.is_dir() and any(root.iterdir()) and not is_run_dir(root):
        raise EdgekdError(f"--overwrite refused: this folder is not an edgekd run directory "
                          f"(it holds {describe_contents(root)})", where=str(root),
                          fix="choose another --out; edgekd only replaces folders it created")


def mark(root: Path) -> None:
    marker = root / MARKER
    if not marker.is_file():
        marker.write_text(json.dumps({"edgekd_run": root.name, "created": time.strftime("%Y-%m-%d %H:%M:%S")}))


def sweep_stale(root: Path) -> list[Path]:
    """Remove what a killed process left; restore a folder a half-done replace moved aside."""
    removed = []
    for old in sorted(root.rglob(".*.old"), key=lambda p: len(p.parts), reverse=True):
        final = old.with_name(old.name[1:-4])
        if old.is_dir() and not final.exists():
            old.rename(final)  # killed between the two renames of replace_dir: the old folder is the good one
        else:
            _remove(old)
            removed.append(old)
    for stale in sorted(root.rglob(".*.tmp"), key=lambda p: len(p.parts), reverse=True):
        if stale.exists() or stale.is_symlink():
            _remove(stale)
            removed.append(stale)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def training_view(recipe_dump: dict[str, Any]) -> dict[str, Any]:
    """The parts of a recipe that decide trained weights (what a resume must not change)."""
    return {k: v for k, v in recipe_dump.items() if k not in RESUMABLE_SECTIONS}


def read_json_mapping(path: Path, *, missing: str, damaged: str, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``; one clear error (``missing`` / ``damaged`` + what is wrong) otherwise."""
    if not path.exists():
        raise EdgekdError(missing, where=str(path.parent), fix=fix)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        what = "a folder" if path.is_dir() else f"unreadable ({type(exc).__name__})"
        raise EdgekdError(f"{damaged}: {path.name} is {what}", where=str(path), fix=fix) from None
    if not isinstance(data, dict):
        raise EdgekdError(f"{damaged}: {path.name} does not hold a JSON object", where=str(path), fix=fix)
    return data


def read_saved_recipe(path: Path) -> dict[str, Any]:
    """The recipe a run was made with; a clear error for a missing or damaged file."""
    return read_json_mapping(path, missing="cannot verify the run: its recipe.json is missing",
                             damaged="cannot verify the run",
                             fix="use --overwrite to start the run again, or --out DIR for a new run")


def check_resume(saved: dict[str, Any], now: dict[str, Any], where: str) -> None:
    """Refuse a resume whose training recipe differs, naming the first keys that differ."""
    a, b = training_view(saved), training_view(json.loads(json.dumps(now, default=str)))
    if a != b:
        diff = sorted(_diff_keys(a, b))[:5]
        raise EdgekdError(f"run directory was made by a different recipe ({', '.join(diff)} changed); "
                          "refusing to mix results", where=where,
                          fix="use --out DIR for a new run, or --overwrite to replace it "
                              f"(changes to {', '.join(RESUMABLE_SECTIONS)} are allowed on --resume)")


def _diff_keys(a: Any, b: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
    elif a != b:
        yield prefix or "<recipe>"


def data_fingerprint(splits: Any) -> str:
    """SHA-256 over every split's images and labels and the class names."""
    h = hashlib.sha256(json.dumps(list(splits.class_names)).encode())
    for part in (splits.train, splits.val, splits.test):
        for arr in (part.images, part.labels):
            a = _contiguous(arr)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _contiguous(arr: Any):
    import numpy as np

    a = arr.numpy() if hasattr(arr, "numpy") else np.asarray(arr)
    return np.ascontiguousarray(a)


def check_data(root: Path, fingerprint: str, *, resume: bool) -> None:
    """Record the data's fingerprint; on resume refuse data that changed or cannot be verified."""
    from edgekd.runs.atomic import write_json

    path = root / "data-fingerprint.json"
    has_checkpoints = any((root / "checkpoints").glob("*.pt"))
    if resume and has_checkpoints:
        try:
            saved = json.loads(path.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            raise EdgekdError("cannot verify the run's data: data-fingerprint.json is missing or damaged",
                              where=str(root), fix="use --overwrite to start the run again") from None
        if saved != fingerprint:
            raise EdgekdError("the data changed since this run was started (its fingerprint differs); "
                              "its checkpoints were trained on other data", where=str(root),
                              fix="use --out DIR for a new run, or --overwrite to retrain on this data")
    write_json(path, {"sha256": fingerprint})
