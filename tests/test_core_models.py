import pytest
import torch

from bench.core.models import available_models, count_parameters, create_model


def _expected_resnet18_params(base, cin, classes):
    """Independent count for the reference ResNet18 (conv weights, BN affine, linear)."""
    def conv(ci, co, k):
        return ci * co * k * k

    def bn(c):
        return 2 * c

    n = conv(cin, base, 7) + bn(base)
    chans = [base, 2 * base, 4 * base, 8 * base]
    ci = base
    for i, c in enumerate(chans):
        for j in range(2):
            n += conv(ci, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if ci != c:
                n += conv(ci, c, 1) + bn(c)
            ci = c
    return n + ci * classes + classes


@pytest.mark.parametrize("cin", [1, 3])
@pytest.mark.parametrize("width", [0.25, 1.0])
def test_resnet18_reference_shapes(cin, width):
    m = create_model("resnet18", width=width, in_channels=cin, num_classes=10).eval()
    base = int(64 * width)
    x = torch.rand(2, cin, 32, 32)
    logits, feats = m(x, features=True)
    assert logits.shape == (2, 10)
    # 7x7 stride-1 stem without max-pool keeps 32x32; stages halve from stage 2 on
    expected = [(base, 32), (base, 32), (2 * base, 16), (4 * base, 8), (8 * base, 4)]
    assert [(f.shape[1], f.shape[2]) for f in feats] == expected
    assert m.stem[0].kernel_size == (7, 7) and m.stem[0].stride == (1, 1)
    assert not any(isinstance(mod, torch.nn.MaxPool2d) for mod in m.modules())
    assert count_parameters(m) == _expected_resnet18_params(base, cin, 10)
    # the features path gives the same logits as the plain path
    assert torch.allclose(m(x), logits)


def test_width_64_parameter_count_matches_reference_resnet18():
    # The reference ResNet18 (CIFAR variant, 7x7 stem) at width 64 with 3 inputs: ~11.2M parameters.
    m = create_model("resnet18", width=1.0, in_channels=3, num_classes=10)
    assert count_parameters(m) == _expected_resnet18_params(64, 3, 10)
    assert 11.1e6 < count_parameters(m) < 11.3e6


def test_input_scaling_reference_is_5x_minus_half():
    m = create_model("resnet18", width=0.125, in_channels=1, input_scaling="reference")
    x = torch.rand(3, 1, 32, 32)
    assert torch.allclose(m.scaling(x), 5 * (x - 0.5))
    m2 = create_model("resnet18", width=0.125, in_channels=1, input_scaling="meanstd", mean=[0.3], std=[0.2])
    assert torch.allclose(m2.scaling(x), (x - 0.3) / 0.2)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="resnet18"):
        create_model("vgg99")
    assert "resnet18" in available_models("resnet*")
