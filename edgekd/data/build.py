"""Turn a :class:`DataConfig` into train/val/test :class:`DataSplits`."""
from __future__ import annotations

import numpy as np

from edgekd.config.schema import DataConfig
from edgekd.data import synthetic
from edgekd.data.dataset import DataSplits, ImageSet
from edgekd.errors import DataError

LYMPHOMNIST_CLASSES = synthetic.CLASS_NAMES


def _select_classes(names: list[str], wanted: list[str] | None, where: str) -> list[int]:
    if wanted is None:
        return list(range(len(names)))
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise DataError(f"unknown class name(s) {unknown}; the dataset has {names}",
                        where="data.classes", fix=f"choose from {names}")
    return [names.index(w) for w in wanted]


def _filter(s: ImageSet, keep: list[int], split: str) -> ImageSet:
    mask = np.isin(s.labels, keep)
    if not mask.any():
        raise DataError(f"the class filter leaves no samples in the {split} split",
                        where="data.classes", fix="check the class names against the dataset's labels")
    remap = np.full(int(s.labels.max()) + 1 if len(s.labels) else 1, -1, dtype=np.int64)
    for new, old in enumerate(keep):
        if old < remap.shape[0]:
            remap[old] = new
    out = s.subset(np.nonzero(mask)[0])
    out.labels = remap[out.labels]
    return out


def _split_pool(pool: ImageSet, cfg: DataConfig) -> tuple[ImageSet, ImageSet, ImageSet]:
    rng = np.random.default_rng(cfg.split.seed)
    idx = rng.permutation(len(pool))
    n_test = int(round(cfg.split.test * len(pool)))
    n_val = int(round(cfg.split.val * len(pool)))
    test, val, train = idx[:n_test], idx[n_test : n_test + n_val], idx[n_test + n_val :]
    return pool.subset(np.sort(train)), pool.subset(np.sort(val)), pool.subset(np.sort(test))


def build_splits(cfg: DataConfig, *, sizes: dict[str, int] | None = None) -> DataSplits:
    """Load or generate the dataset, apply the class filter, split it.

    ``sizes`` (train/val/test) overrides the synthetic sizes, e.g. for ``--quick``.
    """
    if cfg.kind == "synthetic":
        names = list(LYMPHOMNIST_CLASSES)
        keep = _select_classes(names, cfg.classes, "data.classes")
        syn = cfg.synthetic
        n = {"train": syn.n_train, "val": syn.n_val, "test": syn.n_test, **(sizes or {})}
        parts = {}
        for k, (split, offset) in enumerate((("train", 0), ("val", 1), ("test", 2))):
            x, y = synthetic.generate(n[split], syn.seed * 10 + offset,
                                      difficulty=syn.difficulty, classes=tuple(keep))
            if split != "test" and syn.label_noise > 0:
                y = synthetic.mislabel(y, syn.label_noise, tuple(keep), seed=syn.seed * 10 + offset)
            parts[split] = ImageSet(x, y)
        splits = DataSplits(parts["train"], parts["val"], parts["test"], names, source="synthetic")
    elif cfg.kind == "lymphomnist":
        from edgekd.data.idx import read_lymphomnist

        raw = read_lymphomnist(cfg.path)
        names = list(LYMPHOMNIST_CLASSES)
        for split, (_, y) in raw.items():
            if y.min() < 0 or y.max() >= len(names):
                raise DataError(f"{split} labels out of range {y.min()}..{y.max()}; expected 0..2",
                                where=str(cfg.path))
        keep = _select_classes(names, cfg.classes, "data.classes")
        train = ImageSet(*raw["train"])
        # As in the study: the test files are split 50/50 into val/test with a fixed seed.
        test_pool = ImageSet(*raw["test"])
        perm = np.random.default_rng(cfg.split.seed).permutation(len(test_pool))
        half = len(perm) // 2
        splits = DataSplits(train, test_pool.subset(np.sort(perm[:half])),
                            test_pool.subset(np.sort(perm[half:])), names, source=f"lymphomnist:{cfg.path}")
    elif cfg.kind == "imagefolder":
        from edgekd.data.imagefolder import read_imagefolder
        from edgekd.data.views import size_hw

        (th, tw), (sh, sw) = size_hw(cfg.teacher_size), size_hw(cfg.student_size)
        parts, names = read_imagefolder(cfg.path, (max(th, sh), max(tw, sw)), val=cfg.split.val,
                                        test=cfg.split.test, seed=cfg.split.seed, cache_dir=cfg.cache_dir)
        keep = _select_classes(names, cfg.classes, "data.classes")
        splits = DataSplits(*(ImageSet(*parts[k]) for k in ("train", "val", "test")), names,
                            source=f"imagefolder:{cfg.path}")
    else:
        from edgekd.data.npz import read_npz

        x, y, names = read_npz(cfg.path)
        keep = _select_classes(names, cfg.classes, "data.classes")
        train, val, test = _split_pool(ImageSet(x, y), cfg)
        splits = DataSplits(train, val, test, names, source=f"npz:{cfg.path}")

    if cfg.kind != "synthetic" or cfg.classes is not None:
        splits = DataSplits(
            _filter(splits.train, keep, "train"), _filter(splits.val, keep, "val"),
            _filter(splits.test, keep, "test"), [names[i] for i in keep], source=splits.source,
        )
    if cfg.max_train is not None and len(splits.train) > cfg.max_train:
        splits.train = splits.train.subset(np.arange(cfg.max_train))
    for split, s in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(s) == 0:
            raise DataError(f"the {split} split is empty", where="data",
                            fix="use more data or smaller split.val/split.test fractions")
    present = np.unique(np.concatenate([splits.train.labels, splits.val.labels, splits.test.labels]))
    if splits.num_classes < 2 or len(present) < 2:
        raise DataError(f"the data has {len(present)} class(es) ({[splits.class_names[i] for i in present]}); "
                        "a classifier needs at least two", where="data",
                        fix="check the labels and data.classes: accuracy on one class is always 100 %")
    counts = np.bincount(splits.train.labels, minlength=splits.num_classes)
    if (counts == 0).any():
        missing = [splits.class_names[i] for i in np.nonzero(counts == 0)[0]]
        raise DataError(f"no training samples of class(es) {missing}", where="data",
                        fix="every class needs training samples; check data.classes and the labels")
    splits.info = {"train_class_counts": counts.tolist(),
                   "class_counts": {k: np.bincount(getattr(splits, k).labels, minlength=splits.num_classes).tolist()
                                    for k in ("train", "val", "test")}}
    return splits
