import gzip

import numpy as np
import pytest
import torch

from edgekd.config.schema import DataConfig, NormalizeConfig, SplitConfig, SyntheticConfig
from edgekd.data import PairedViews, build_splits, iterate_batches, synthetic
from edgekd.data.idx import read_idx, read_lymphomnist, write_idx
from edgekd.data.views import apply_dihedral, dihedral
from edgekd.errors import DataError


def test_synthetic_format_and_determinism():
    x1, y1 = synthetic.generate(90, seed=3)
    x2, y2 = synthetic.generate(90, seed=3)
    x3, _ = synthetic.generate(90, seed=4)
    assert x1.shape == (90, 64, 64) and x1.dtype == np.uint8
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert np.bincount(y1).tolist() == [30, 30, 30]
    assert 60 < x1.mean() < 200 and x1.std() > 5


def test_synthetic_classes_differ_in_morphology():
    x, y = synthetic.generate(600, seed=1, classes=(0, 1))
    # Mean images differ between B and T4 (class signal exists) ...
    diff = np.abs(x[y == 0].astype(float).mean(0) - x[y == 1].astype(float).mean(0)).max()
    assert diff > 2.0
    # ... but a single global statistic does not separate them (task not trivial).
    m = x.reshape(len(x), -1).mean(1)
    thr_acc = max(((m > t) == (y == 1)).mean() for t in np.percentile(m, range(5, 96, 5)))
    assert thr_acc < 0.75


def test_idx_roundtrip_plain_and_gzip(tmp_path, rng):
    a = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name), a)


def test_idx_truncated_is_a_clear_error(tmp_path, rng):
    a = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    p = tmp_path / "t-idx3-ubyte"
    write_idx(p, a)
    p.write_bytes(p.read_bytes()[:-9])
    with pytest.raises(DataError) as e:
        read_idx(p)
    assert "truncated" in e.value.message and str(p) in e.value.message


def test_idx_bad_magic_and_bad_gzip(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(b"hello world")
    with pytest.raises(DataError, match="magic"):
        read_idx(p)
    g = tmp_path / "x-idx3-ubyte.gz"
    g.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"))[:-6])
    with pytest.raises(DataError):
        read_idx(g)


def _write_lymphomnist(folder, n_train=120, n_test=80):
    x, y = synthetic.generate(n_train + n_test, seed=9)
    write_idx(folder / "train-images-idx3-ubyte.gz", x[:n_train])
    write_idx(folder / "train-labels-idx1-ubyte.gz", y[:n_train].astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", x[n_train:])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y[n_train:].astype(np.uint8))
    return x, y


def test_lymphomnist_reader_and_filter(tmp_path):
    x, y = _write_lymphomnist(tmp_path)
    raw = read_lymphomnist(tmp_path)
    assert np.array_equal(raw["train"][0], x[:120]) and np.array_equal(raw["test"][1], y[120:])
    s = build_splits(DataConfig(kind="lymphomnist", path=tmp_path, classes=["T4", "B"]))
    assert s.class_names == ["T4", "B"]
    # T4 (orig 1) → 0, B (orig 0) → 1; T8 removed
    orig = y[:120]
    keep = np.isin(orig, [0, 1])
    assert np.array_equal(s.train.labels, np.where(orig[keep] == 1, 0, 1))
    assert len(s.val) + len(s.test) == int(np.isin(y[120:], [0, 1]).sum())


def test_lymphomnist_missing_files(tmp_path):
    with pytest.raises(DataError) as e:
        read_lymphomnist(tmp_path)
    assert "train-images-idx3-ubyte" in e.value.message


def _npz(tmp_path, **arrays):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    return p


def test_npz_dataset_split_and_classes(tmp_path, rng):
    x = rng.integers(0, 256, (200, 1, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 3, 200)
    p = _npz(tmp_path, x=x, y=y, classes=np.array(["a", "b", "c"]))
    s = build_splits(DataConfig(kind="npz", path=p, classes=["c", "a"], teacher_size=32, student_size=32,
                                split=SplitConfig(val=0.25, test=0.25, seed=1)))
    assert s.class_names == ["c", "a"]
    n = int(np.isin(y, [0, 2]).sum())
    assert len(s.train) + len(s.val) + len(s.test) == n
    assert set(np.unique(s.train.labels)) <= {0, 1}


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 8, 8), np.uint8)), "lacks array"),
    (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 5, 0]), classes=np.array(["a", "b"])),
     "labels out of range"),
    (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, -1, 0])), "labels out of range"),
    (dict(x=np.full((4, 8, 8), np.nan, np.float32), y=np.array([0, 1, 1, 0])), "NaN or Inf"),
    (dict(x=np.zeros((4, 8, 8, 2), np.uint8), y=np.array([0, 1, 1, 0])), "channels"),
    (dict(x=np.zeros((4, 8), np.uint8), y=np.array([0, 1, 1, 0])), "N×H×W"),
    (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 1])), "y must have shape"),
    (dict(x=np.full((4, 8, 8), 3.0, np.float32), y=np.array([0, 1, 1, 0])), r"must be in \[0, 1\]"),
])
def test_npz_bad_input(tmp_path, arrays, message):
    p = _npz(tmp_path, **arrays)
    with pytest.raises(DataError, match=message):
        build_splits(DataConfig(kind="npz", path=p))


def test_npz_corrupted_file(tmp_path, rng):
    p = _npz(tmp_path, x=rng.integers(0, 255, (50, 8, 8), dtype=np.uint8), y=np.zeros(50, int))
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated or corrupted"):
        build_splits(DataConfig(kind="npz", path=p))


def test_class_filter_leaving_nothing(tmp_path):
    p = _npz(tmp_path, x=np.zeros((10, 8, 8), np.uint8), y=np.array([0] * 5 + [1] * 5),
             classes=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="leaves no samples"):
        build_splits(DataConfig(kind="npz", path=p, classes=["c", "b"]))
    with pytest.raises(DataError, match="unknown class"):
        build_splits(DataConfig(kind="npz", path=p, classes=["a", "zz"]))


def test_paired_views_are_the_same_samples():
    x, y = synthetic.generate(64, seed=2)
    from edgekd.data.dataset import ImageSet

    v = PairedViews.from_images(ImageSet(x, y), 64, 48, NormalizeConfig())
    assert v.teacher.shape == (64, 1, 64, 64) and v.student.shape == (64, 1, 48, 48)
    # The student view is the teacher's image, downsampled: both views of sample i agree.
    down = torch.nn.functional.interpolate(v.teacher, size=(48, 48), mode="bilinear", antialias=True)
    assert torch.allclose(down, v.student, atol=1e-5)
    seen_t, seen_s = [], []
    for b in iterate_batches(v, 10, seed=0, epoch=1, shuffle=True, augment="dihedral"):
        # each batch's teacher and student tensors are views of the same samples and transforms
        assert torch.allclose(torch.nn.functional.interpolate(b.teacher, size=(48, 48), mode="bilinear",
                                                              antialias=True), b.student, atol=1e-5)
        assert torch.equal(b.labels, v.labels[b.index])
        seen_t.append(b.index)
    assert sorted(torch.cat(seen_t).tolist()) == list(range(64))


def test_augmentation_replays_from_seed():
    x = torch.randn(16, 1, 6, 6)
    from edgekd.data.views import augment_ids

    a = augment_ids(0, 3, np.arange(16), 16)
    b = augment_ids(0, 3, np.arange(16), 16)
    c = augment_ids(0, 4, np.arange(16), 16)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    ks = torch.from_numpy(a)
    out = apply_dihedral(x, ks)
    for i in range(16):
        assert torch.equal(out[i : i + 1], dihedral(x[i : i + 1], int(ks[i])))
    # the 8 transforms are distinct
    img = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert len({tuple(dihedral(img, k).flatten().tolist()) for k in range(8)}) == 8


def test_synthetic_build_splits_sizes():
    s = build_splits(DataConfig(classes=["B", "T4"], synthetic=SyntheticConfig(n_train=60, n_val=20, n_test=30)))
    assert s.sizes() == {"train": 60, "val": 20, "test": 30}
    assert s.class_names == ["B", "T4"]
    assert set(np.unique(s.train.labels)) == {0, 1}


def test_mislabel_flips_exactly_the_rate_deterministically():
    y = np.resize(np.array([0, 1, 2]), 300)
    a = synthetic.mislabel(y, 0.1, (0, 1, 2), seed=5)
    b = synthetic.mislabel(y, 0.1, (0, 1, 2), seed=5)
    assert np.array_equal(a, b) and (a != y).sum() == 30
    assert set(np.unique(a)) <= {0, 1, 2}
    assert not np.array_equal(a, synthetic.mislabel(y, 0.1, (0, 1, 2), seed=6))
    two = synthetic.mislabel(np.resize(np.array([0, 1]), 200), 0.25, (0, 1), seed=1)
    assert set(np.unique(two)) == {0, 1} and (two != np.resize(np.array([0, 1]), 200)).sum() == 50
    assert np.array_equal(synthetic.mislabel(y, 0.0, (0, 1, 2), seed=5), y)
    with pytest.raises(ValueError, match="label noise"):
        synthetic.mislabel(y, 0.6, (0, 1, 2), seed=5)


def test_label_noise_touches_train_and_val_never_test():
    base = dict(classes=["B", "T4"])
    clean = build_splits(DataConfig(**base, synthetic=SyntheticConfig(n_train=200, n_val=100, n_test=100)))
    noisy = build_splits(DataConfig(**base, synthetic=SyntheticConfig(n_train=200, n_val=100, n_test=100,
                                                                    label_noise=0.2)))
    assert np.array_equal(clean.train.images, noisy.train.images)
    assert (clean.train.labels != noisy.train.labels).sum() == 40
    assert (clean.val.labels != noisy.val.labels).sum() == 20
    assert np.array_equal(clean.test.labels, noisy.test.labels)
    assert set(np.unique(noisy.train.labels)) == {0, 1}  # LymphoMNIST ids of B and T4
