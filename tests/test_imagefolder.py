"""kind: imagefolder — PNG / 16-bit TIFF / JPEG files written here, through build_splits and PairedViews."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.config.schema import DataConfig, Recipe
from edgekd.data import PairedViews, build_splits
from edgekd.data.imagefolder import RowView, stratified_split
from edgekd.errors import DataError

CLASSES = ["alpha", "beta", "gamma"]


def _gray8(v: int, h=20, w=20) -> Image.Image:
    return Image.fromarray(np.full((h, w), v, dtype=np.uint8))


def _gray16(v: int, h=20, w=20) -> Image.Image:
    return Image.fromarray(np.full((h, w), v, dtype=np.uint16))


@pytest.fixture
def pool(tmp_path):
    """3 classes × 10 images: PNG 8-bit and TIFF 16-bit mixed, differently sized."""
    root = tmp_path / "cells"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(10):
            if i % 2:
                _gray16(1000 * (c + 1) * 13, 24, 30).save(root / name / f"img{i}.tif")
            else:
                _gray8(50 * (c + 1)).save(root / name / f"img{i}.png")
    return root


def _cfg(root, tmp_path, **kw) -> DataConfig:
    base = dict(kind="imagefolder", path=root, teacher_size=16, student_size=12, cache_dir=tmp_path / "cache",
                split={"val": 0.2, "test": 0.2, "seed": 3})
    base.update(kw)
    return DataConfig(**base)


def test_pool_is_split_stratified_and_decoded_16bit(pool, tmp_path):
    splits = build_splits(_cfg(pool, tmp_path))
    assert splits.class_names == CLASSES
    assert splits.sizes() == {"train": 18, "val": 6, "test": 6}
    for part in (splits.train, splits.val, splits.test):
        counts = np.bincount(part.labels, minlength=3)
        assert len(set(counts.tolist())) == 1  # stratified: every class has its share
    assert isinstance(splits.train.images, RowView) and splits.train.images.dtype == np.uint16
    assert splits.train.images.shape[1:] == (1, 16, 16)
    assert splits.info["class_counts"]["test"] == [2, 2, 2]
    # a 16-bit TIFF of class gamma holds 39000/65535; an 8-bit PNG of class alpha 50/255
    img = np.asarray(splits.train.images)
    vals = {round(float(v) / 65535, 3) for v in img[:, 0, 8, 8]}
    assert round(39000 / 65535, 3) in vals and round(50 / 255, 3) in vals


def test_cache_is_memory_mapped_reused_and_invalidated(pool, tmp_path):
    cfg = _cfg(pool, tmp_path)
    build_splits(cfg)
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    s2 = build_splits(cfg)
    assert sorted((tmp_path / "cache").glob("*.npy")) == files and files[0].stat().st_mtime_ns == mtime
    assert isinstance(s2.train.images.base, np.memmap)
    _gray8(7).save(pool / "beta" / "new.png")  # a new file means a new cache
    s3 = build_splits(cfg)
    assert len(sorted((tmp_path / "cache").glob("*.npy"))) == 2 and len(s3.train) + len(s3.val) + len(s3.test) == 31


def test_own_train_val_test_folders(tmp_path):
    root = tmp_path / "ds"
    for split, n in (("train", 6), ("test", 2)):
        for c, name in enumerate(["a", "b"]):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                _gray8(10 * c + i).save(root / split / name / f"{i}.bmp")
    splits = build_splits(_cfg(root, tmp_path, split={"val": 0.5, "test": 0.2, "seed": 0}))
    assert splits.sizes() == {"train": 6, "val": 6, "test": 4}  # val split off train, test kept as given
    assert splits.train.images.dtype == np.uint8


def test_rgb_and_gray_mixed_become_3_channels_and_convert(tmp_path):
    root = tmp_path / "rgb"
    for c, name in enumerate(["x", "y"]):
        (root / name).mkdir(parents=True)
        for i in range(5):
            if i == 0:
                Image.fromarray(np.full((10, 10, 3), [200, 0, 0], dtype=np.uint8)).save(root / name / "c.jpg",
                                                                                    quality=100)
            else:
                _gray8(100 + c).save(root / name / f"{i}.png")
    cfg = _cfg(root, tmp_path, student_size=8, teacher_size=8, normalize={"mean": 0.0, "std": 1.0})
    splits = build_splits(cfg)
    assert splits.train.images.shape[1] == 3
    views = PairedViews.from_images(splits.train, 8, 8, cfg.normalize, channels=1, teacher_channels=3)
    assert views.student.shape[1] == 1 and views.teacher.shape[1] == 3
    gray = views.teacher[:, :, 4, 4] @ torch.tensor([0.299, 0.587, 0.114])
    torch.testing.assert_close(views.student[:, 0, 4, 4], gray, atol=1e-5, rtol=0)


def test_non_square_sizes(pool, tmp_path):
    cfg = _cfg(pool, tmp_path, teacher_size=[16, 24], student_size=[12, 16])
    splits = build_splits(cfg)
    assert splits.train.images.shape[2:] == (16, 24)
    v = PairedViews.from_images(splits.train, cfg.teacher_size, cfg.student_size, cfg.normalize)
    assert v.teacher.shape[2:] == (16, 24) and v.student.shape[2:] == (12, 16)


def test_non_square_refuses_dihedral():
    with pytest.raises(Exception, match="needs square images"):
        Recipe(data={"student_size": [32, 48]}, students=[{"name": "s"}])
    Recipe(data={"student_size": [32, 48]}, teacher={"train": {"augment": "none"}},
           students=[{"name": "s", "train": {"augment": "none"}}])


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        build_splits(_cfg(tmp_path / "nope", tmp_path))


def test_empty_class_folder_is_named(pool, tmp_path):
    (pool / "delta").mkdir()
    with pytest.raises(DataError, match="class folder 'delta' holds no images") as ei:
        build_splits(_cfg(pool, tmp_path))
    assert "delta" in ei.value.message


def test_corrupt_image_is_named(pool, tmp_path):
    (pool / "beta" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="cannot read image") as ei:
        build_splits(_cfg(pool, tmp_path))
    assert "broken.png" in ei.value.message


def test_class_filter_applies(pool, tmp_path):
    splits = build_splits(_cfg(pool, tmp_path, classes=["gamma", "alpha"]))
    assert splits.class_names == ["gamma", "alpha"] and set(splits.train.labels.tolist()) == {0, 1}


def test_stratified_split_is_seeded():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    a, b = stratified_split(y, 0.1, 0.2, 7), stratified_split(y, 0.1, 0.2, 7)
    assert all((a[k] == b[k]).all() for k in a)
    assert np.bincount(y[a["test"]]).tolist() == [10, 6, 4]


def test_pillow_reads_16bit_tiff_itself(tmp_path):
    from edgekd.data.image_cache import decode

    a = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.tif")
    np.testing.assert_allclose(decode(tmp_path / "deep.tif", 1)[0], a / 65535.0, atol=1e-7)


def test_tiff_pillow_cannot_read_names_tifffile(tmp_path, monkeypatch):
    import sys

    from PIL import Image as PILImage

    from edgekd.data.image_cache import decode
    from edgekd.errors import ToolMissingError

    p = tmp_path / "odd.tif"
    _gray8(3).save(p)

    def refuse(*a, **k):
        raise OSError("cannot identify image file")

    monkeypatch.setattr(PILImage, "open", refuse)
    monkeypatch.setitem(sys.modules, "tifffile", None)
    with pytest.raises(ToolMissingError, match="pip install tifffile") as ei:
        decode(p, 1)
    assert "odd.tif" in ei.value.message
