"""Teacher outputs computed once and reused by every student and epoch.

Valid because augmentation is deterministic: each training sample is seen under one of
``K`` known transforms (K = 1 without augmentation, 8 for the dihedral group), the
teacher is frozen in eval mode, so its logits for (sample, transform) never change.
The cache is keyed by a hash of the teacher's weights, of the data it was computed on
and of the features it holds; a stale cache is recomputed, never silently reused.

Besides logits (N × K × C) a cache can hold teacher *features* at module paths
(:class:`~edgekd.distill.hooks.TapSpec`), e.g. the penultimate ``features`` of
resnet-mini for ND/FitNet, or attention maps for AT. They are stored in ``feature_dtype``
(float16 halves the memory) and their size is checked against ``max_feature_bytes``
before anything is computed.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from edgekd.data.augment import Augmenter, Dihedral, make_augmenter
from edgekd.data.views import PairedViews
from edgekd.distill.hooks import TapSpec, run_with_taps
from edgekd.errors import ConfigError
from edgekd.runs.atomic import save_torch

DEFAULT_MAX_FEATURE_BYTES = 2 * 1024**3


def state_fingerprint(model: nn.Module) -> str:
    """Short hash of a model's weights and buffers."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(x: torch.Tensor) -> str:
    """Short hash of a tensor's shape and a strided sample of its values."""
    h = hashlib.sha256()
    h.update(str(tuple(x.shape)).encode())
    h.update(x[:: max(1, len(x) // 64)].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def taps_fingerprint(taps: Iterable[TapSpec], dtype: torch.dtype) -> str:
    """Short hash of the cached feature keys and their storage dtype."""
    keys = sorted(t.key for t in taps)
    return hashlib.sha256(("|".join(keys) + str(dtype)).encode()).hexdigest()[:8]


@dataclass
class TeacherCache:
    """Teacher logits (N × K × C) and optional features (N × K × ...) by sample × transform."""

    logits: torch.Tensor  # N × K × C
    key: str
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def transforms(self) -> int:
        return int(self.logits.shape[1])

    def _k(self, transforms: torch.Tensor) -> torch.Tensor:
        return transforms if self.transforms > 1 else torch.zeros_like(transforms)

    def lookup(self, index: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
        return self.logits[index, self._k(transforms)]

    def lookup_features(self, keys: Iterable[str], index: torch.Tensor,
                        transforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features for a batch, as float32 (whatever the storage dtype)."""
        k = self._k(transforms)
        out = {}
        for key in keys:
            if key not in self.features:
                raise ConfigError(f"the teacher cache holds no feature '{key}' (it has {sorted(self.features)})",
                                  where="teacher cache",
                                  fix="build the cache with taps=loss.teacher_taps() "
                                      "(build_teacher_cache(..., taps=...))")
            out[key] = self.features[key][index, k].float()
        return out


def feature_bytes(shapes: dict[str, tuple[int, ...]], n: int, transforms: int, dtype: torch.dtype) -> int:
    """Bytes a cache of these per-sample feature shapes takes."""
    per = sum(math.prod(s) for s in shapes.values())
    return per * n * transforms * torch.empty((), dtype=dtype).element_size()


@torch.no_grad()
def compute_teacher_outputs(teacher: nn.Module, x: torch.Tensor, transforms: int | Augmenter,
                            taps: Iterable[TapSpec] = (),
                            *, batch_size: int = 512, progress: bool = False,
                            feature_dtype: torch.dtype = torch.float32,
                            max_feature_bytes: int = DEFAULT_MAX_FEATURE_BYTES
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits N × K × C and {tap key: N × K × ...} for every sample under every transform.

    ``transforms`` is an :class:`~edgekd.data.augment.Augmenter` (its ``n_views`` views of
    sample ``i`` of ``x``) or a count of dihedral transforms (1 or 8).
    """
    taps = list(taps)
    aug = transforms if isinstance(transforms, Augmenter) else (Dihedral() if transforms > 1 else Augmenter())
    transforms = aug.n_views
    teacher.eval()
    feats: dict[str, torch.Tensor] = {}
    logits_out: torch.Tensor | None = None
    chunks = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="teacher cache", unit="batch", leave=False)
    for s in chunks:
        xb = x[s : s + batch_size]
        for k in range(transforms):
            z, f = run_with_taps(teacher, aug.apply(xb, torch.full((len(xb),), k), torch.arange(s, s + len(xb))),
                                 taps)
            if logits_out is None:
                logits_out = z.new_empty((len(x), transforms, z.shape[1]))
                shapes = {key: tuple(v.shape[1:]) for key, v in f.items()}
                need = feature_bytes(shapes, len(x), transforms, feature_dtype)
                if need > max_feature_bytes:
                    raise ConfigError(
                        f"caching teacher features {shapes} for {len(x)} samples × {transforms} views needs "
                        f"{need / 1024**3:.2f} GiB (limit {max_feature_bytes / 1024**3:.2f} GiB)",
                        where="teacher cache",
                        fix="tap a later (smaller) layer, use reduce='attention' for AT, store float16, "
                            "or use a live teacher")
                feats = {key: torch.empty((len(x), transforms, *shp), dtype=feature_dtype)
                         for key, shp in shapes.items()}
            logits_out[s : s + len(xb), k] = z
            for key, v in f.items():
                feats[key][s : s + len(xb), k] = v.to(feature_dtype)
    if logits_out is None:
        logits_out = torch.empty(0)
    return logits_out, feats


def compute_teacher_logits(teacher: nn.Module, x: torch.Tensor, transforms: int,
                           batch_size: int = 512, progress: bool = False) -> torch.Tensor:
    """Logits N × K × C of ``teacher`` for every sample under every transform."""
    return compute_teacher_outputs(teacher, x, transforms, batch_size=batch_size, progress=progress)[0]


def transforms_for(augment: Any) -> int:
    """Number of cached views per sample for an augmentation mode."""
    return make_augmenter(augment).n_views


def build_teacher_cache(teacher: nn.Module, views: PairedViews, augment: Any, *,
                        path: Path | None = None, progress: bool = False,
                        taps: Iterable[TapSpec] = (), feature_dtype: torch.dtype = torch.float32,
                        max_feature_bytes: int = DEFAULT_MAX_FEATURE_BYTES,
                        inputs: torch.Tensor | None = None,
                        log: Callable[[str], None] | None = None) -> TeacherCache:
    """Load the cache at ``path`` if its key matches, else compute and save it.

    The cache is derived data: a file that cannot be read safely (truncated, empty, not
    what edgekd writes, a pickle ``weights_only`` refuses) is rebuilt, and ``log`` says so.

    ``taps`` adds teacher features (see :class:`TapSpec`); ``inputs`` replaces
    ``views.teacher`` (a teacher at another resolution, sample-aligned with ``views``).
    """
    taps = list(dict.fromkeys(taps))
    x = views.teacher if inputs is None else inputs
    if len(x) != len(views):
        raise ValueError(f"teacher inputs have {len(x)} samples, the split has {len(views)}")
    aug = make_augmenter(augment)
    transforms = aug.n_views
    key = f"{state_fingerprint(teacher)}-{data_fingerprint(x)}-{transforms}"
    if aug.key not in ("none", "dihedral"):  # random views: their options are part of the key
        key += f"-{aug.key}"
    if taps:  # logits-only caches keep their old key
        key += f"-{taps_fingerprint(taps, feature_dtype)}"
    if path is not None and path.is_file():
        cached = _load_cache(path, key, (len(x), transforms), log)
        if cached is not None:
            return cached
    logits, feats = compute_teacher_outputs(teacher, x, aug, taps, progress=progress,
                                            feature_dtype=feature_dtype, max_feature_bytes=max_feature_bytes)
    if path is not None:
        blob = {"key": key, "logits": logits}
        if feats:
            blob["features"] = feats
        save_torch(path, blob)
    return TeacherCache(logits, key, feats)


def _load_cache(path: Path, key: str, shape: tuple[int, int],
                log: Callable[[str], None] | None) -> TeacherCache | None:
    """The cache at ``path`` if it is readable, of this key and of the right size; else None."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(blob, dict) and blob.get("key") != key:
            return None  # a cache of another teacher or data: recomputed
        ok = (isinstance(blob, dict) and isinstance(blob.get("logits"), torch.Tensor)
              and blob["logits"].ndim == 3 and tuple(blob["logits"].shape[:2]) == shape)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt, never trusted
        ok, blob = False, None
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
    else:
        reason = "not a teacher cache written by edgekd"
    if not ok:
        if log is not None:
            log(f"[cache] {path} is unreadable ({reason}); rebuilding it from the teacher")
        return None
    return TeacherCache(blob["logits"], key, dict(blob.get("features", {})))
