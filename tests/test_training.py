import numpy as np
import pytest
import torch

from edgekd.config.schema import NormalizeConfig, TrainConfig
from edgekd.data import PairedViews
from edgekd.data.dataset import ImageSet
from edgekd.distill import CompositeLoss, TeacherSignal, accuracy, build_teacher_cache, predict_logits, train
from edgekd.distill.losses import LossMethod, register_loss, LOSSES
from edgekd.distill.trainer import seed_everything
from edgekd.data.views import iterate_batches
from edgekd.errors import EdgekdError, TrainingError
from edgekd.nets import create_net


@pytest.fixture(scope="module")
def views(small_cells):
    x, y = small_cells
    norm = NormalizeConfig()
    return (PairedViews.from_images(ImageSet(x[:300], y[:300]), 64, 48, norm),
            PairedViews.from_images(ImageSet(x[300:], y[300:]), 64, 48, norm))


def _student(seed=0):
    seed_everything(seed)
    return create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)


def test_training_learns():
    from edgekd.data import synthetic

    x, y = synthetic.generate(500, seed=11, classes=(0, 1), difficulty=0.3)
    tr = PairedViews.from_images(ImageSet(x[:400], y[:400]), 48, 48, NormalizeConfig())
    va = PairedViews.from_images(ImageSet(x[400:], y[400:]), 48, 48, NormalizeConfig())
    m = _student()
    before = accuracy(predict_logits(m, va.student), va.labels)
    res = train(m, tr, va, TrainConfig(epochs=6, batch_size=32), CompositeLoss([("ce", 1.0, {})]), seed=0,
                progress=False)
    assert len(res.history) == 6
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.val_accuracy > max(0.65, before + 0.1)


def test_teacher_cache_equals_live_teacher(views, tmp_path):
    tr, _ = views
    seed_everything(1)
    teacher = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=64, params={"widths": [8, 16, 16]})
    teacher.eval()
    cache = build_teacher_cache(teacher, tr, "dihedral", path=tmp_path / "c.pt")
    assert cache.logits.shape == (300, 8, 2)
    live = TeacherSignal(model=teacher)
    cached = TeacherSignal(cache=cache)
    for b in iterate_batches(tr, 64, seed=3, epoch=2, shuffle=True, augment="dihedral"):
        assert torch.allclose(cached.logits(b), live.logits(b), atol=1e-4)
    # reloaded when the key matches, recomputed when the teacher changed
    again = build_teacher_cache(teacher, tr, "dihedral", path=tmp_path / "c.pt")
    assert again.key == cache.key and torch.equal(again.logits, cache.logits)
    with torch.no_grad():
        teacher.fc.bias += 1.0
    changed = build_teacher_cache(teacher, tr, "dihedral", path=tmp_path / "c.pt")
    assert changed.key != cache.key and not torch.allclose(changed.logits, cache.logits)


def test_kd_training_uses_cache_like_live_teacher(views):
    tr, va = views
    seed_everything(1)
    teacher = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=64, params={"widths": [8, 16, 16]})
    teacher.eval()
    loss = [("ce", 0.1, {}), ("kd", 0.9, {"tau": 4.0})]
    cfg = TrainConfig(epochs=2, batch_size=50)
    a, b = _student(), _student()
    train(a, tr, va, cfg, CompositeLoss(loss), seed=0, teacher=TeacherSignal(model=teacher), progress=False)
    cache = build_teacher_cache(teacher, tr, cfg.augment)
    train(b, tr, va, cfg, CompositeLoss(loss), seed=0, teacher=TeacherSignal(cache=cache), progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-4)


def test_resume_gives_same_weights(views, tmp_path):
    tr, va = views
    cfg4 = TrainConfig(epochs=4, batch_size=32)
    ref = _student()
    train(ref, tr, va, cfg4, CompositeLoss([("ce", 1.0, {})]), seed=0, progress=False)

    ck = tmp_path / "s.pt"
    first = _student()
    # run 2 of 4 epochs, as if the process were interrupted after epoch 2

    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(first, tr, va, cfg4, CompositeLoss([("ce", 1.0, {})]), seed=0, checkpoint=ck, progress=False,
              on_epoch=stop)
    resumed = _student(seed=99)  # different init: everything must come from the checkpoint
    res = train(resumed, tr, va, cfg4, CompositeLoss([("ce", 1.0, {})]), seed=0, checkpoint=ck, progress=False)
    assert res.resumed_from_epoch == 2 and len(res.history) == 4
    for pa, pb in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(pa, pb)


def test_checkpoint_of_another_architecture(views, tmp_path):
    tr, va = views
    ck = tmp_path / "s.pt"
    train(_student(), tr, va, TrainConfig(epochs=1, batch_size=64), CompositeLoss([("ce", 1.0, {})]), seed=0,
          checkpoint=ck, meta={"arch": "cellsort-cnn"}, progress=False)
    mlp = create_net("mlp", num_classes=2, in_channels=1, input_size=48)
    with pytest.raises(EdgekdError, match="different model: arch"):
        train(mlp, tr, va, TrainConfig(epochs=1, batch_size=64), CompositeLoss([("ce", 1.0, {})]), seed=0,
              checkpoint=ck, meta={"arch": "mlp"}, progress=False)


def test_nan_loss_names_epoch_and_batch(views):
    tr, va = views
    if "_nan_after" not in LOSSES:
        @register_loss("_nan_after")
        class NanAfter(LossMethod):
            """Test helper: NaN from the third batch of the second epoch."""
            defaults = {}

            def forward(self, ctx):
                bad = ctx.epoch == 1 and int(ctx.index[0]) >= 0 and self._count() >= 3
                return ctx.student_logits.sum() * (float("nan") if bad else 0.0)

            def _count(self):
                self.n = getattr(self, "n", 0) + 1
                return self.n - getattr(self, "epoch0", 0)

            def on_epoch_end(self, epoch):
                self.epoch0 = getattr(self, "n", 0)
    with pytest.raises(TrainingError) as e:
        train(_student(), tr, va, TrainConfig(epochs=3, batch_size=50), CompositeLoss([("_nan_after", 1.0, {})]),
              seed=0, progress=False)
    assert "epoch 2, batch 3" in e.value.message
    del LOSSES["_nan_after"]
