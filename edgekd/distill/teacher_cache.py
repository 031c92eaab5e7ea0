"""Teacher outputs computed once and reused by every student and epoch.

Valid because augmentation is deterministic: each training sample is seen under one of
``K`` known transforms (K = 1 without augmentation, 8 for the dihedral group), the
teacher is frozen in eval mode, so its logits for (sample, transform) never change.
The cache is keyed by a hash of the teacher's weights and of the data it was computed
on; a stale cache is recomputed, never silently reused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from edgekd.data.views import N_DIHEDRAL, PairedViews, dihedral
from edgekd.runs.atomic import save_torch


def state_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(x: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(str(tuple(x.shape)).encode())
    h.update(x[:: max(1, len(x) // 64)].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class TeacherCache:
    logits: torch.Tensor  # N × K × C
    key: str

    @property
    def transforms(self) -> int:
        return int(self.logits.shape[1])

    def lookup(self, index: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
        k = transforms if self.transforms > 1 else torch.zeros_like(transforms)
        return self.logits[index, k]


@torch.no_grad()
def compute_teacher_logits(teacher: nn.Module, x: torch.Tensor, transforms: int,
                           batch_size: int = 512, progress: bool = False) -> torch.Tensor:
    teacher.eval()
    out = []
    chunks = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="teacher cache", unit="batch", leave=False)
    for s in chunks:
        xb = x[s : s + batch_size]
        out.append(torch.stack([teacher(dihedral(xb, k)) for k in range(transforms)], dim=1))
    return torch.cat(out)


def build_teacher_cache(teacher: nn.Module, views: PairedViews, augment: str, *,
                        path: Path | None = None, progress: bool = False) -> TeacherCache:
    """Load the cache at ``path`` if its key matches, else compute and save it."""
    transforms = N_DIHEDRAL if augment == "dihedral" else 1
    key = f"{state_fingerprint(teacher)}-{data_fingerprint(views.teacher)}-{transforms}"
    if path is not None and path.is_file():
        blob = torch.load(path, weights_only=True)
        if blob.get("key") == key:
            return TeacherCache(blob["logits"], key)
    logits = compute_teacher_logits(teacher, views.teacher, transforms, progress=progress)
    if path is not None:
        save_torch(path, {"key": key, "logits": logits})
    return TeacherCache(logits, key)
