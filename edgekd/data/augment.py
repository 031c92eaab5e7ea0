"""Replayable augmentations: every transform is a pure function of (seed, epoch, index).

A teacher cache stays exact because a sample is only ever seen under one of ``K`` known
*views*: view ``k`` of sample ``i`` has its parameters drawn from ``(aug.seed, k, i)``,
and in each epoch a sample's view id comes from ``(train seed, epoch, i)``. The cache
holds the teacher's outputs for all ``K`` views (``N × K × C``), so every student batch
finds its teacher logits without running the teacher, and a resumed run replays the
same views. ``augment: dihedral`` is the special case of the 8 flips/rotations of D4.

Geometric parameters are in normalized coordinates, so the teacher's and the student's
view of one sample (at different resolutions) are cropped, flipped and rotated alike.
Intensity parameters act on the normalized input (0 is the dataset mean, 1 one
``normalize.std``); cutout fills with 0, the mean.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.data.views import N_DIHEDRAL, apply_dihedral, augment_ids


class Augmenter:
    """``n_views`` views per sample; ``view_ids`` picks one per sample and epoch; ``apply`` makes it."""

    n_views: int = 1
    key: str = "none"

    def view_ids(self, seed: int, epoch: int, n: int) -> np.ndarray:
        """The view of every sample 0..n-1 in ``epoch``."""
        if self.n_views == 1:
            return np.zeros(n, dtype=np.int64)
        return np.random.default_rng([seed, epoch, 7]).integers(0, self.n_views, n)

    def apply(self, x: torch.Tensor, views: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x


class Dihedral(Augmenter):
    """One of the 8 flips/rotations of D4 (square images)."""

    n_views, key = N_DIHEDRAL, "dihedral"

    def view_ids(self, seed: int, epoch: int, n: int) -> np.ndarray:
        return augment_ids(seed, epoch, np.arange(n), n)

    def apply(self, x: torch.Tensor, views: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return apply_dihedral(x, views)


class RandomViews(Augmenter):
    """Crop, flips, rotation, brightness/contrast, noise and cutout from an ``AugmentConfig``."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.n_views = int(cfg.views)
        blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
        self.key = "aug-" + hashlib.sha256(blob.encode()).hexdigest()[:10]

    def params(self, k: int, i: int) -> dict[str, float]:
        """View ``k`` of sample ``i``: drawn from (seed, k, i); view 0 is the identity."""
        c = self.cfg
        p = {"scale": 1.0, "aspect": 1.0, "cx": 0.0, "cy": 0.0, "hflip": 0.0, "vflip": 0.0, "angle": 0.0,
             "bright": 0.0, "contrast": 1.0, "noise_seed": 0, "cut": 0.0, "cut_x": 0.0, "cut_y": 0.0}
        if k == 0 and c.identity_view:
            return p
        r = np.random.default_rng([c.seed, k, i, 0x617567])
        if c.crop is not None:
            p["scale"] = float(np.sqrt(r.uniform(*c.crop.scale)))  # side fraction from area fraction
            p["aspect"] = float(np.exp(r.uniform(*np.log(c.crop.ratio))))
            p["cx"], p["cy"] = float(r.uniform(-1, 1)), float(r.uniform(-1, 1))
        p["hflip"] = float(r.random() < c.hflip)
        p["vflip"] = float(r.random() < c.vflip)
        p["angle"] = float(r.uniform(-c.rotate, c.rotate)) if c.rotate else 0.0
        p["bright"] = float(r.uniform(-c.brightness, c.brightness)) if c.brightness else 0.0
        p["contrast"] = float(r.uniform(1 - c.contrast, 1 + c.contrast)) if c.contrast else 1.0
        p["noise_seed"] = int(r.integers(2**31)) if c.noise else 0
        if c.cutout and r.random() < c.cutout_p:
            p["cut"], p["cut_x"], p["cut_y"] = c.cutout, float(r.uniform(-1, 1)), float(r.uniform(-1, 1))
        return p

    def apply(self, x: torch.Tensor, views: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ps = [self.params(int(k), int(i)) for k, i in zip(views.tolist(), index.tolist())]
        x = _geometric(x, ps)
        x = _intensity(x, ps, self.cfg.noise)
        return _cutout(x, ps)


def _geometric(x: torch.Tensor, ps: list[dict[str, float]]) -> torch.Tensor:
    """One affine warp per sample: crop (scale, aspect, centre), flips, rotation."""
    theta = torch.zeros(len(ps), 2, 3, dtype=x.dtype)
    for n, p in enumerate(ps):
        sx = min(1.0, p["scale"] * math.sqrt(p["aspect"]))
        sy = min(1.0, p["scale"] / math.sqrt(p["aspect"]))
        a = math.radians(p["angle"])
        rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=x.dtype)
        flip = torch.diag(torch.tensor([-1.0 if p["hflip"] else 1.0, -1.0 if p["vflip"] else 1.0], dtype=x.dtype))
        theta[n, :, :2] = rot @ torch.diag(torch.tensor([sx, sy], dtype=x.dtype)) @ flip
        theta[n, 0, 2] = p["cx"] * (1 - sx)  # the crop stays inside the image
        theta[n, 1, 2] = p["cy"] * (1 - sy)
    if torch.equal(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=x.dtype).expand_as(theta)):
        return x
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _intensity(x: torch.Tensor, ps: list[dict[str, float]], noise: float) -> torch.Tensor:
    out = x.clone()
    for n, p in enumerate(ps):
        if p["contrast"] != 1.0:
            m = out[n].mean()
            out[n] = (out[n] - m) * p["contrast"] + m
        out[n] += p["bright"]
        if noise and p["noise_seed"]:
            g = torch.Generator().manual_seed(p["noise_seed"])
            out[n] += noise * torch.randn(out[n].shape, generator=g, dtype=out.dtype)
    return out


def _cutout(x: torch.Tensor, ps: list[dict[str, float]]) -> torch.Tensor:
    h, w = x.shape[-2:]
    for n, p in enumerate(ps):
        if p["cut"]:
            ch, cw = max(1, round(p["cut"] * h)), max(1, round(p["cut"] * w))
            y0 = round((p["cut_y"] + 1) / 2 * (h - ch))
            x0 = round((p["cut_x"] + 1) / 2 * (w - cw))
            x[n, :, y0 : y0 + ch, x0 : x0 + cw] = 0.0
    return x


def make_augmenter(augment: Any) -> Augmenter:
    """The augmenter of a recipe's ``train.augment`` (``"none"``, ``"dihedral"`` or a mapping)."""
    if isinstance(augment, Augmenter):
        return augment
    if augment in (None, "none"):
        return Augmenter()
    if augment == "dihedral":
        return Dihedral()
    return RandomViews(augment)


def augment_key(augment: Any) -> str:
    """A short stable name for an augmentation: ``none``, ``dihedral`` or ``aug-<hash>``."""
    return make_augmenter(augment).key
