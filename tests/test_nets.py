import pytest
import torch
import torch.nn as nn

from edgekd.errors import ConfigError
from edgekd.nets import NETS, count_parameters, create_net


def test_study_student_exactly():
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    assert count_parameters(m) == 5682
    kinds = [type(l) for l in m]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Linear]
    assert (m[0].in_channels, m[0].out_channels, m[0].kernel_size, m[0].padding) == (1, 16, (3, 3), (0, 0))
    assert (m[3].in_channels, m[3].out_channels) == (16, 16)
    assert (m[7].in_features, m[7].out_features) == (1600, 2)
    out = m(torch.randn(5, 1, 48, 48))
    assert out.shape == (5, 2)
    # logits, not probabilities: rows do not sum to one
    assert not torch.allclose(out.sum(1), torch.ones(5))


def test_teacher_and_mlp_shapes():
    t = create_net("resnet-mini", num_classes=3, in_channels=1, input_size=64)
    assert t(torch.randn(2, 1, 64, 64)).shape == (2, 3)
    assert count_parameters(t) > 20 * 5682
    m = create_net("mlp", num_classes=2, in_channels=1, input_size=48)
    assert m(torch.randn(2, 1, 48, 48)).shape == (2, 2)
    assert count_parameters(m) == 144 * 32 + 32 + 32 * 2 + 2


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown architecture"):
        create_net("nope", num_classes=2, in_channels=1, input_size=48)
    with pytest.raises(ConfigError, match="unknown parameter"):
        create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48, params={"width": 3})
    with pytest.raises(ConfigError, match="too small"):
        create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=8)
    assert {"cellsort-cnn", "mlp", "resnet-mini"} <= set(NETS)
