"""Teachers from files: state dict, TorchScript, torch.export (.pt2), ONNX — real files written here."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from edgekd.distill.hooks import TapSpec, run_with_taps
from edgekd.distill.teacher_cache import build_teacher_cache
from edgekd.data.views import PairedViews
from edgekd.errors import ConfigError, DataError
from edgekd.nets import create_net
from edgekd.nets.model_files import is_edgekd_checkpoint, load_any_model, load_model_file, sniff_format

C, H, N_CLS = 1, 16, 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_net("resnet-mini", num_classes=N_CLS, in_channels=C, input_size=H,
                   params={"widths": [4, 8], "blocks": [1, 1], "stem_width": 4})
    return m.eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(5, C, H, H, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def files(tmp_path_factory, model, x):
    d = tmp_path_factory.mktemp("models")
    out = {"state_dict": d / "w.pt", "torchscript": d / "m.ts", "torchscript_pt": d / "m_script.pt",
           "torch_export": d / "m.pt2", "torch_export_b1": d / "m_b1.pt2", "onnx": d / "m.onnx"}
    torch.save(model.state_dict(), out["state_dict"])
    torch.jit.save(torch.jit.trace(model, x[:2]), out["torchscript"])
    torch.jit.save(torch.jit.script(model), out["torchscript_pt"])
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},)), out["torch_export"])
    torch.export.save(torch.export.export(model, (x[:1],)), out["torch_export_b1"])
    torch.onnx.export(model, (x[:2],), str(out["onnx"]), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return out


@pytest.mark.parametrize("kind,fmt", [("state_dict", "state_dict"), ("torchscript", "torchscript"),
                                      ("torchscript_pt", "torchscript"), ("torch_export", "torch_export"),
                                      ("torch_export_b1", "torch_export"), ("onnx", "onnx")])
def test_each_format_loads_and_computes_the_same_logits(files, model, x, kind, fmt):
    assert sniff_format(files[kind]) == fmt
    m = load_model_file(files[kind], num_classes=N_CLS, in_channels=C, input_size=H, arch="resnet-mini",
                        params={"widths": [4, 8], "blocks": [1, 1], "stem_width": 4})
    with torch.no_grad():
        ref, got = model(x), m(x)
    assert got.shape == (5, N_CLS)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_load_any_model_without_arch(files):
    for kind in ("torchscript", "torch_export", "onnx"):
        loaded = load_any_model(files[kind])
        assert isinstance(loaded.module, nn.Module)
    assert load_any_model(files["onnx"]).input_shape == ("n", C, H, H)[1:]
    with pytest.raises(ConfigError, match="holds only weights .*architecture is needed"):
        load_any_model(files["state_dict"])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="model file not found") as ei:
        load_model_file(tmp_path / "nope.onnx", num_classes=3, in_channels=1, input_size=16)
    assert "nope.onnx" in ei.value.message


def test_not_a_model_file(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_text("hello")
    with pytest.raises(DataError, match="not a PyTorch file"):
        load_model_file(p, num_classes=3, in_channels=1, input_size=16)


@pytest.mark.parametrize("kind", ["torchscript", "torch_export", "onnx"])
def test_class_count_mismatch_names_both(files, kind):
    with pytest.raises(DataError, match=f"outputs {N_CLS} classes, the data has 5") as ei:
        load_model_file(files[kind], num_classes=5, in_channels=C, input_size=H)
    assert str(files[kind]) in ei.value.message


def test_onnx_wrong_input_shape_names_both(files):
    with pytest.raises(DataError, match=r"expects input 1×16×16, the data gives 3×16×16"):
        load_model_file(files["onnx"], num_classes=N_CLS, in_channels=3, input_size=H)


@pytest.mark.parametrize("kind", ["torchscript", "torch_export_b1"])
def test_wrong_input_channels_torch_formats(files, kind):
    with pytest.raises(DataError, match=r"3×16×16"):
        load_model_file(files[kind], num_classes=N_CLS, in_channels=3, input_size=H)


def test_state_dict_that_does_not_fit_the_arch(files):
    with pytest.raises(DataError, match="do not fit 'resnet-mini'"):
        load_model_file(files["state_dict"], num_classes=N_CLS, in_channels=C, input_size=H, arch="resnet-mini")


def test_state_dict_is_read_weights_only(tmp_path):
    p = tmp_path / "pickled.pt"
    torch.save({"model": nn.Linear(2, 2)}, p)  # a pickled module, not tensors: refused
    with pytest.raises(DataError, match="weights_only"):
        load_model_file(p, num_classes=2, in_channels=1, input_size=8, arch="mlp")


@pytest.mark.parametrize("kind", ["torchscript", "torch_export", "onnx"])
def test_feature_taps_refused_for_opaque_models(files, kind):
    m = load_model_file(files[kind], num_classes=N_CLS, in_channels=C, input_size=H)
    with pytest.raises(ConfigError, match="cannot tap 'features'.*opaque") as ei:
        run_with_taps(m, torch.zeros(1, C, H, H), [TapSpec("features")])
    assert "logit loss" in ei.value.message


def test_onnx_teacher_fills_the_teacher_cache(files, model, x):
    onnx_teacher = load_model_file(files["onnx"], num_classes=N_CLS, in_channels=C, input_size=H)
    views = PairedViews(x, x, torch.zeros(5, dtype=torch.long))
    cache = build_teacher_cache(onnx_teacher, views, "dihedral")
    ref = build_teacher_cache(model, views, "dihedral")
    torch.testing.assert_close(cache.logits, ref.logits, atol=1e-4, rtol=1e-4)
    assert cache.key.split("-")[0] != ref.key.split("-")[0]  # keyed by the file's hash


def test_is_edgekd_checkpoint(files, tmp_path, model):
    assert not is_edgekd_checkpoint(files["state_dict"]) and not is_edgekd_checkpoint(files["onnx"])
    p = tmp_path / "ck.pt"
    torch.save({"model": model.state_dict(), "meta": {"arch": "resnet-mini"}}, p)
    assert is_edgekd_checkpoint(p)
