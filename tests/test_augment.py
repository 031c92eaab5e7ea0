"""Replayable augmentations: same (seed, epoch, index) → same view, and the teacher cache stays exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from pydantic import ValidationError

from edgekd.config.schema import AugmentConfig, TrainConfig
from edgekd.data.augment import RandomViews, augment_key, make_augmenter
from edgekd.data.views import PairedViews, balanced_order, iterate_batches
from edgekd.distill.teacher_cache import build_teacher_cache, transforms_for

FULL = dict(views=6, seed=3, crop={"scale": [0.5, 1.0]}, hflip=0.5, vflip=0.5, rotate=15, brightness=0.2,
            contrast=0.3, noise=0.05, cutout=0.25, cutout_p=0.7)


def _views(n=12, ts=16, ss=12):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(n, 1, ts, ts, generator=g)
    s = nn.functional.interpolate(t, size=(ss, ss), mode="bilinear", antialias=True, align_corners=False)
    return PairedViews(t, s, torch.arange(n) % 3)


def _batches(views, aug, epoch, seed=1):
    return list(iterate_batches(views, 5, seed=seed, epoch=epoch, shuffle=True, augment=aug))


def test_recipe_mapping_parses_and_keys_are_stable():
    cfg = TrainConfig(augment=FULL).augment
    assert isinstance(cfg, AugmentConfig) and cfg.crop.scale == (0.5, 1.0)
    assert augment_key(cfg) == augment_key(AugmentConfig(**FULL)) != augment_key(AugmentConfig(**{**FULL, "seed": 4}))
    assert augment_key("dihedral") == "dihedral" and transforms_for(cfg) == 6 and transforms_for("none") == 1
    with pytest.raises(ValidationError, match="scale must be"):
        TrainConfig(augment={"crop": {"scale": [0.9, 0.2]}})
    with pytest.raises(ValidationError, match="rotat"):
        TrainConfig(augment={"rotat": 10})


def test_views_replay_exactly_and_change_with_epoch():
    views, aug = _views(), AugmentConfig(**FULL)
    a, b = _batches(views, aug, 0), _batches(views, aug, 0)
    for x, y in zip(a, b):
        assert torch.equal(x.index, y.index) and torch.equal(x.transforms, y.transforms)
        assert torch.equal(x.student, y.student) and torch.equal(x.teacher, y.teacher)
    c = _batches(views, aug, 1)
    assert any(not torch.equal(x.transforms, y.transforms) for x, y in zip(a, c))
    assert any(not torch.equal(x.student, views.student[x.index]) for x in a)  # it does augment


def test_teacher_cache_is_exact_under_random_views():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    views, aug = _views(), AugmentConfig(**FULL)
    cache = build_teacher_cache(teacher, views, aug)
    assert cache.logits.shape == (12, 6, 3)
    for epoch in (0, 3):
        for batch in _batches(views, aug, epoch):
            with torch.no_grad():
                live = teacher(batch.teacher)
            torch.testing.assert_close(cache.lookup(batch.index, batch.transforms), live, atol=1e-5, rtol=1e-5)


def test_identity_view_and_flip_geometry_match_across_resolutions():
    views = _views()
    aug = RandomViews(AugmentConfig(views=2, hflip=1.0))
    idx = torch.arange(4)
    assert torch.equal(aug.apply(views.student[idx], torch.zeros(4, dtype=torch.long), idx), views.student[idx])
    ones = torch.ones(4, dtype=torch.long)
    torch.testing.assert_close(aug.apply(views.student[idx], ones, idx), views.student[idx].flip(-1),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(aug.apply(views.teacher[idx], ones, idx), views.teacher[idx].flip(-1),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("opt", [{"brightness": 0.5}, {"contrast": 0.5}, {"noise": 0.1}, {"rotate": 20},
                                 {"crop": {"scale": [0.3, 0.5]}}, {"cutout": 0.5, "cutout_p": 1.0}])
def test_each_option_changes_view_one_and_only_as_documented(opt):
    x = _views().student[:3]
    idx, k = torch.arange(3), torch.ones(3, dtype=torch.long)
    out = RandomViews(AugmentConfig(views=2, **opt)).apply(x, k, idx)
    assert out.shape == x.shape and not torch.allclose(out, x)
    if "brightness" in opt:  # a constant offset per image, within ±0.5
        d = (out - x).flatten(1)
        assert torch.allclose(d, d[:, :1].expand_as(d), atol=1e-6) and d.abs().max() <= 0.5
    if "cutout" in opt:  # a box of 6×6 zeros
        assert int((out == 0).sum()) >= 3 * 36


def test_dihedral_still_replays_the_old_way():
    views = _views()
    b = _batches(views, "dihedral", 2)[0]
    from edgekd.data.views import apply_dihedral, augment_ids

    ks = augment_ids(1, 2, b.index.numpy(), len(views))
    assert torch.equal(b.transforms, torch.from_numpy(ks))
    assert torch.equal(b.student, apply_dihedral(views.student[b.index], b.transforms))
    assert make_augmenter("none").n_views == 1


def test_balanced_sampling_evens_out_classes_and_is_seeded():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    order = balanced_order(labels, np.arange(100), seed=0, epoch=0)
    assert (order == balanced_order(labels, np.arange(100), seed=0, epoch=0)).all()
    counts = np.bincount(labels[order], minlength=3)
    assert len(order) == 100 and counts.min() >= 20  # ~33 each instead of 90/9/1
    views = PairedViews(torch.zeros(100, 1, 8, 8), torch.zeros(100, 1, 8, 8), torch.from_numpy(labels))
    seen = torch.cat([b.labels for b in iterate_batches(views, 32, seed=0, epoch=1, shuffle=True, balanced=True)])
    assert torch.bincount(seen, minlength=3).min() >= 20
