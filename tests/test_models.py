"""Every backbone at every split point: client then server gives logits, `z_shape` is the
client's output; decoders map any z to exactly the image shape in [0, 1]."""

from __future__ import annotations

import pytest
import torch

from trainables.attacks.attackers.decoders import FullyConnected, Mirror
from trainables.errors import InputError
from trainables.models import BACKBONES, INPUT_SPLIT, SplitArchitecture, check_split

CLASSES = 5
# alexnet's five convolutions and three 3x3/2 max-pools need more than 32 px
INPUT_SHAPES = {"alexnet": (3, 64, 64)}
DEFAULT_SHAPE = (3, 32, 32)


def split_points() -> list[tuple[str, str]]:
    return [(name, split) for name, factory in BACKBONES.items() for split in [INPUT_SPLIT, *factory(3, 32).splits]]


SPLIT_POINTS = split_points()


def test_every_backbone_has_split_points():
    assert {"small_cnn", "resnet18", "vgg11", "vgg16", "vgg19", "mobilenet_v2", "alexnet"} <= set(BACKBONES)
    points = SPLIT_POINTS
    for name in BACKBONES:
        assert len([s for b, s in points if b == name]) >= 4  # "0" plus at least three cuts
    assert {s for b, s in points if b == "resnet18"} == {"0", "1", "2", "3", "4"}
    assert {s for b, s in points if b == "vgg16"} == {"0", "pool1", "pool2", "pool3", "pool4", "pool5"}


@pytest.mark.parametrize(("backbone", "split"), SPLIT_POINTS)
def test_client_then_server_composes_to_logits(backbone, split):
    shape = INPUT_SHAPES.get(backbone, DEFAULT_SHAPE)
    arch = SplitArchitecture(backbone, split, shape)
    client, server = arch.client().eval(), arch.server(CLASSES).eval()
    x = torch.rand(2, *shape)
    with torch.no_grad():
        z = client(x)
        logits = server(z)
    assert tuple(z.shape) == (2, *arch.z_shape)
    assert logits.shape == (2, CLASSES)
    assert torch.isfinite(logits).all()
    if split == INPUT_SPLIT:
        assert arch.z_shape == shape
        assert sum(p.numel() for p in client.parameters()) == 0
    else:
        assert sum(p.numel() for p in client.parameters()) > 0
        assert arch.z_shape[1] < shape[1] or backbone == "resnet18"  # resnet's cifar stem keeps 32 px at layer1


@pytest.mark.parametrize(("backbone", "splits"), [("small_cnn", ["1", "2", "3", "4"]), ("resnet18", ["1", "2", "3", "4"])])
def test_later_splits_put_more_on_the_client(backbone, splits):
    sizes = []
    for split in splits:
        arch = SplitArchitecture(backbone, split, (1, 28, 28))
        client, server = arch.client(), arch.server(CLASSES)
        sizes.append((sum(p.numel() for p in client.parameters()), sum(p.numel() for p in server.parameters())))
    assert [c for c, _ in sizes] == sorted(c for c, _ in sizes) and len({c for c, _ in sizes}) == len(sizes)
    assert [s for _, s in sizes] == sorted((s for _, s in sizes), reverse=True)


def test_networks_are_independent_copies():
    arch = SplitArchitecture("small_cnn", "2", (3, 16, 16))
    a, b = arch.client(), arch.client()
    assert all(pa.data_ptr() != pb.data_ptr() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    assert any(not torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("backbone", ["vgg11", "vgg19", "alexnet"])
def test_feature_stacks_built_without_their_classifier_are_initialised_as_torchvision_does(backbone):
    """VGG and AlexNet build on the meta device and initialise afterwards: no layer may keep
    the uninitialised memory that leaves (batch-norm statistics, biases), and VGG keeps
    torchvision's He-normal (fan-out) convolutions."""
    torch.manual_seed(0)
    layers = [m for stage in BACKBONES[backbone](3, 32).stages for m in stage.modules()]
    for norm in (m for m in layers if isinstance(m, torch.nn.BatchNorm2d)):
        assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
        assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and int(norm.num_batches_tracked) == 0
    convolutions = [m for m in layers if isinstance(m, torch.nn.Conv2d)][1:]  # the first is rebuilt for the channels
    for conv in convolutions:
        assert torch.isfinite(conv.weight).all() and torch.isfinite(conv.bias).all()
        if backbone.startswith("vgg"):
            he_std = (2 / (conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1])) ** 0.5
            assert conv.weight.std().item() == pytest.approx(he_std, rel=0.1) and not conv.bias.any()
        else:  # PyTorch's default: uniform within 1/sqrt(fan_in)
            bound = 1 / (conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]) ** 0.5
            assert conv.bias.abs().max().item() <= bound and conv.bias.abs().max().item() > bound / 2


@pytest.mark.parametrize("channels", [1, 3])
def test_first_convolution_follows_the_image_channels(channels):
    for backbone in ("small_cnn", "resnet18", "mobilenet_v2"):
        arch = SplitArchitecture(backbone, "1", (channels, 32, 32))
        with torch.no_grad():
            assert arch.client().eval()(torch.rand(1, channels, 32, 32)).shape[1:] == arch.z_shape


@pytest.mark.parametrize(
    ("backbone", "split", "shape"),
    [
        ("alexnet", "pool3", (3, 32, 32)),
        ("alexnet", "pool1", (3, 32, 32)),  # the server part does not fit either
        ("vgg11", "pool5", (3, 16, 16)),
        ("small_cnn", "4", (1, 4, 4)),
        ("small_cnn", "1", (1, 2, 2)),
    ],
)
def test_split_that_does_not_fit_the_image_size_is_an_input_error(backbone, split, shape):
    with pytest.raises(InputError, match=rf"{backbone}.*{shape[1]}x{shape[2]}"):
        SplitArchitecture(backbone, split, shape)


@pytest.mark.parametrize(("backbone", "split"), [("small_cnn", "5"), ("resnet18", "pool1"), ("vgg11", "4"), ("nope", "1")])
def test_unknown_split_or_backbone_is_an_input_error(backbone, split):
    with pytest.raises(InputError, match="model.split|model.backbone"):
        check_split(backbone, split)


@pytest.mark.parametrize("decoder", [Mirror, FullyConnected], ids=["mirror", "fc"])
@pytest.mark.parametrize(
    ("z_shape", "image_shape"),
    [
        ((32, 14, 14), (1, 28, 28)),
        ((128, 3, 3), (1, 28, 28)),
        ((64, 4, 4), (3, 16, 16)),
        ((3, 16, 16), (3, 16, 16)),  # split 0: z is the image
        ((512, 1, 1), (3, 32, 32)),
        ((64, 32, 32), (3, 32, 32)),  # more than FC_MAX_FEATURES values
        ((256, 3, 3), (3, 64, 64)),
        ((96, 7, 5), (3, 54, 44)),  # non-square z and image
    ],
)
def test_decoder_maps_z_to_exactly_the_image_shape_in_unit_range(decoder, z_shape, image_shape):
    net = decoder.architecture(z_shape, image_shape)
    z = torch.randn(2, *z_shape) * 3
    out = net.train()(z)
    assert out.shape == (2, *image_shape)
    with torch.no_grad():
        out_eval = net.eval()(z)
    assert out_eval.shape == (2, *image_shape)
    assert (out_eval >= 0).all() and (out_eval <= 1).all()
    # it is trainable end to end
    out.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
