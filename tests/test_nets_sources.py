"""Models from anywhere: torchvision/timm factories and the user's own module, via create_net."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from edgekd.errors import ConfigError, ToolMissingError
from edgekd.nets import create_net
from edgekd.nets.sources import adapt_in_channels


def _importable(name: str) -> str | None:
    try:
        importlib.import_module(name)
        return None
    except Exception as exc:  # noqa: BLE001 - e.g. torchvision built for another torch
        return f"{name} not importable here: {type(exc).__name__}: {str(exc)[:80]}"


TV_REASON = _importable("torchvision")
TIMM_REASON = _importable("timm")

USER_NET = textwrap.dedent('''
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self, num_classes, in_channels, width=4):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.conv(x).relu()).flatten(1))

    def make_mlp(num_classes, **kw):
        size = kw["input_size"]
        return nn.Sequential(nn.Flatten(), nn.Linear(kw["in_channels"] * size * size, num_classes))

    NOT_A_MODEL = 3
''')


@pytest.fixture
def user_file(tmp_path):
    p = tmp_path / "my_net.py"
    p.write_text(USER_NET)
    return p


def test_user_module_file_as_student(user_file):
    m = create_net(f"{user_file}:Tiny", num_classes=3, in_channels=1, input_size=16, params={"width": 6})
    assert m.conv.out_channels == 6 and m.conv.in_channels == 1
    assert m(torch.zeros(2, 1, 16, 16)).shape == (2, 3)


def test_user_factory_with_kwargs_gets_all_data_arguments(user_file):
    m = create_net(f"{user_file}:make_mlp", num_classes=2, in_channels=3, input_size=8)
    assert m(torch.zeros(5, 3, 8, 8)).shape == (5, 2)


def test_user_module_by_import_path(user_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    sys.modules.pop("my_net", None)
    m = create_net("my_net:Tiny", num_classes=4, in_channels=3, input_size=8)
    assert m(torch.zeros(1, 3, 8, 8)).shape == (1, 4)


@pytest.mark.parametrize("arch,needle", [
    ("{f}:Nope", "has no class or function 'Nope'"),
    ("{f}:NOT_A_MODEL", "has no class or function"),
    ("{d}/missing.py:Tiny", "not found"),
    ("no_such_module_xyz:Tiny", "cannot import module 'no_such_module_xyz'"),
])
def test_user_module_errors_are_clear(user_file, arch, needle):
    with pytest.raises(ConfigError, match=needle) as ei:
        create_net(arch.format(f=user_file, d=user_file.parent), num_classes=2, in_channels=1, input_size=8,
                   where="students[0].arch")
    assert "students[0].arch" in ei.value.message


def test_user_module_bad_param_names_signature(user_file):
    with pytest.raises(ConfigError, match="signature") as ei:
        create_net(f"{user_file}:Tiny", num_classes=2, in_channels=1, input_size=8, params={"depth": 3})
    assert "depth" in ei.value.message


def test_user_module_refuses_data_keys_in_params(user_file):
    with pytest.raises(ConfigError, match="come from the data"):
        create_net(f"{user_file}:Tiny", num_classes=2, in_channels=1, input_size=8, params={"num_classes": 5})


def test_user_module_that_fails_to_import(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(ConfigError, match="importing .* failed: RuntimeError: boom at import"):
        create_net(f"{bad}:X", num_classes=2, in_channels=1, input_size=8)


def test_adapt_in_channels_replaces_nested_first_conv():
    m = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2)), nn.ReLU())
    adapt_in_channels(m, 1)
    conv = m[0][0]
    assert conv.in_channels == 1 and conv.out_channels == 8 and conv.stride == (2, 2) and conv.padding == (2, 2)
    assert m(torch.zeros(1, 1, 8, 8)).shape == (1, 8, 4, 4)


@pytest.mark.parametrize("params", [{"pretrained": True}, {"weights": "IMAGENET1K_V1"}])
@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_pretrained_is_refused_with_checkpoint_advice(source, params):
    # refused before importing anything: no network, whether or not the package is present
    with pytest.raises(ConfigError, match="never downloads") as ei:
        create_net(f"{source}:resnet18", num_classes=2, in_channels=3, input_size=32, params=params,
                   where="teacher")
    assert "checkpoint" in ei.value.message and f"teacher.params.{next(iter(params))}" in ei.value.message


@pytest.mark.parametrize("source,module", [("torchvision", "torchvision"), ("timm", "timm")])
def test_missing_package_gives_install_hint(monkeypatch, source, module):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    if module == "torchvision":
        monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(ToolMissingError, match=f"{module} is not importable") as ei:
        create_net(f"{source}:resnet18", num_classes=2, in_channels=3, input_size=32)
    assert "pip install" in ei.value.message


def test_unknown_registry_name_mentions_external_sources():
    with pytest.raises(ConfigError, match="torchvision:<name>"):
        create_net("resnet-huge", num_classes=2, in_channels=1, input_size=8)


@pytest.mark.skipif(TV_REASON is not None, reason=TV_REASON or "")
def test_torchvision_resnet18_gray_small_input():
    m = create_net("torchvision:resnet18", num_classes=3, in_channels=1, input_size=32)
    assert m.conv1.in_channels == 1 and m.fc.out_features == 3
    m.eval()
    assert m(torch.zeros(2, 1, 32, 32)).shape == (2, 3)


@pytest.mark.skipif(TV_REASON is not None, reason=TV_REASON or "")
def test_torchvision_params_and_unknown_name():
    m = create_net("torchvision:mobilenet_v3_small", num_classes=2, in_channels=3, input_size=32,
                   params={"width_mult": 0.5})
    assert m.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    with pytest.raises(ConfigError, match="torchvision has no model 'resnet19'"):
        create_net("torchvision:resnet19", num_classes=2, in_channels=3, input_size=32)


@pytest.mark.skipif(TIMM_REASON is not None, reason=TIMM_REASON or "")
def test_timm_model_gray():
    m = create_net("timm:resnet10t", num_classes=4, in_channels=1, input_size=32)
    m.eval()
    assert m(torch.zeros(2, 1, 32, 32)).shape == (2, 4)
    with pytest.raises(ConfigError, match="timm has no model"):
        create_net("timm:not_a_model_xyz", num_classes=2, in_channels=3, input_size=32)


@pytest.mark.skipif(TV_REASON is not None, reason=TV_REASON or "")
def test_torchvision_resnet18_as_teacher_fills_the_cache(user_file):
    from edgekd.config.schema import AugmentConfig
    from edgekd.data.views import PairedViews, iterate_batches
    from edgekd.distill.teacher_cache import build_teacher_cache

    torch.manual_seed(0)
    teacher = create_net("torchvision:resnet18", num_classes=3, in_channels=1, input_size=32, where="teacher").eval()
    x = torch.randn(6, 1, 32, 32)
    views = PairedViews(x, x[..., ::2, ::2].contiguous(), torch.tensor([0, 1, 2, 0, 1, 2]))
    aug = AugmentConfig(views=2, hflip=1.0)
    cache = build_teacher_cache(teacher, views, aug)
    batch = next(iterate_batches(views, 6, seed=0, epoch=0, shuffle=False, augment=aug))
    with torch.no_grad():
        torch.testing.assert_close(cache.lookup(batch.index, batch.transforms), teacher(batch.teacher),
                                   atol=1e-4, rtol=1e-4)
    student = create_net(f"{user_file}:Tiny", num_classes=3, in_channels=1, input_size=16)
    assert student(batch.student).shape == (6, 3)
