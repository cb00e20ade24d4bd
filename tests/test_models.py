"""AlexNet variants: parameter counts, every layer's output shape, the paper's details,
logits and gradients equal to PyTorch's for the same weights, summary/FLOPs, torchvision
conversion, ImageNet class names, and clear errors for bad input."""
import functools
import sys

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.nn.functional as F
from tinyconv import nn, optim
from tinyconv.models import VARIANTS, AlexNet, alexnet, imagenet_classes, imagenet_synsets
from tinyconv.nn.summary import summary

PARAMS = {      # at each variant's default number of classes
    "paper": 60_965_224,          # the and the paper's count (1000 classes)
    "torchvision": 61_100_840,    # sum(p.numel() for p in torchvision.models.alexnet().parameters())
    "one_tower": 62_378_344,
    "d2l": 46_764_746,            # d2l.ai 8.1 at 10 classes
    "keras_bn": 28_056_616,       # Keras "Trainable params" of Assawiel's net, 1000 classes
    "small28": 183_706,
    "small32": 246_346,
}


@functools.lru_cache(maxsize=None)
def model(variant):
    """Each variant is built once per test session (the ImageNet ones hold ~60M weights)."""
    tc.manual_seed(0)
    return alexnet(variant=variant)


def conv(c, h, w=None):
    return ("Conv2d", (c, h, h if w is None else w))


# Output shape (without the batch dimension) after every layer, worked out by hand from
# out = (in + 2*pad - kernel) // stride + 1.
FEATURES = {
    "paper": [conv(96, 55), ("ReLU", (96, 55, 55)), ("LocalResponseNorm", (96, 55, 55)),
              ("MaxPool2d", (96, 27, 27)),
              conv(256, 27), ("ReLU", (256, 27, 27)), ("LocalResponseNorm", (256, 27, 27)),
              ("MaxPool2d", (256, 13, 13)),
              conv(384, 13), ("ReLU", (384, 13, 13)), conv(384, 13), ("ReLU", (384, 13, 13)),
              conv(256, 13), ("ReLU", (256, 13, 13)), ("MaxPool2d", (256, 6, 6))],
    "torchvision": [conv(64, 55), ("ReLU", (64, 55, 55)), ("MaxPool2d", (64, 27, 27)),
                    conv(192, 27), ("ReLU", (192, 27, 27)), ("MaxPool2d", (192, 13, 13)),
                    conv(384, 13), ("ReLU", (384, 13, 13)), conv(256, 13), ("ReLU", (256, 13, 13)),
                    conv(256, 13), ("ReLU", (256, 13, 13)), ("MaxPool2d", (256, 6, 6)),
                    ("AdaptiveAvgPool2d", (256, 6, 6))],
    "one_tower": [conv(96, 55), ("ReLU", (96, 55, 55)), ("MaxPool2d", (96, 27, 27)),
                  conv(256, 27), ("ReLU", (256, 27, 27)), ("MaxPool2d", (256, 13, 13)),
                  conv(384, 13), ("ReLU", (384, 13, 13)), conv(384, 13), ("ReLU", (384, 13, 13)),
                  conv(256, 13), ("ReLU", (256, 13, 13)), ("MaxPool2d", (256, 6, 6))],
    "d2l": [conv(96, 54), ("ReLU", (96, 54, 54)), ("MaxPool2d", (96, 26, 26)),
            conv(256, 26), ("ReLU", (256, 26, 26)), ("MaxPool2d", (256, 12, 12)),
            conv(384, 12), ("ReLU", (384, 12, 12)), conv(384, 12), ("ReLU", (384, 12, 12)),
            conv(256, 12), ("ReLU", (256, 12, 12)), ("MaxPool2d", (256, 5, 5))],
    "keras_bn": [conv(96, 54), ("ReLU", (96, 54, 54)), ("MaxPool2d", (96, 27, 27)),
                 ("BatchNorm2d", (96, 27, 27)),
                 conv(256, 17), ("ReLU", (256, 17, 17)), ("MaxPool2d", (256, 8, 8)),
                 ("BatchNorm2d", (256, 8, 8)),
                 conv(384, 6), ("ReLU", (384, 6, 6)), ("BatchNorm2d", (384, 6, 6)),
                 conv(384, 4), ("ReLU", (384, 4, 4)), ("BatchNorm2d", (384, 4, 4)),
                 conv(256, 2), ("ReLU", (256, 2, 2)), ("MaxPool2d", (256, 1, 1)),
                 ("BatchNorm2d", (256, 1, 1))],
    "small28": [conv(24, 28), ("ReLU", (24, 28, 28)), ("LocalResponseNorm", (24, 28, 28)),
                ("MaxPool2d", (24, 13, 13)),
                conv(48, 13), ("ReLU", (48, 13, 13)), ("LocalResponseNorm", (48, 13, 13)),
                ("MaxPool2d", (48, 6, 6)),
                conv(64, 6), ("ReLU", (64, 6, 6)), conv(64, 6), ("ReLU", (64, 6, 6)),
                conv(48, 6), ("ReLU", (48, 6, 6)), ("MaxPool2d", (48, 2, 2))],
    "small32": [conv(24, 32), ("ReLU", (24, 32, 32)), ("LocalResponseNorm", (24, 32, 32)),
                ("MaxPool2d", (24, 15, 15)),
                conv(48, 15), ("ReLU", (48, 15, 15)), ("LocalResponseNorm", (48, 15, 15)),
                ("MaxPool2d", (48, 7, 7)),
                conv(64, 7), ("ReLU", (64, 7, 7)), conv(64, 7), ("ReLU", (64, 7, 7)),
                conv(48, 7), ("ReLU", (48, 7, 7)), ("MaxPool2d", (48, 3, 3))],
}


def _paper_head(d_in, hidden, k):        # fc - ReLU - dropout, twice, then the classifier
    return [("Linear", (hidden,)), ("ReLU", (hidden,)), ("Dropout", (hidden,)),
            ("Linear", (hidden,)), ("ReLU", (hidden,)), ("Dropout", (hidden,)), ("Linear", (k,))]


CLASSIFIER = {
    "paper": _paper_head(9216, 4096, 1000),
    "torchvision": [("Dropout", (9216,)), ("Linear", (4096,)), ("ReLU", (4096,)), ("Dropout", (4096,)),
                    ("Linear", (4096,)), ("ReLU", (4096,)), ("Linear", (1000,))],
    "one_tower": _paper_head(9216, 4096, 1000),
    "d2l": _paper_head(6400, 4096, 10),
    "keras_bn": [("Linear", (4096,)), ("ReLU", (4096,)), ("Dropout", (4096,)), ("BatchNorm1d", (4096,)),
                 ("Linear", (4096,)), ("ReLU", (4096,)), ("Dropout", (4096,)), ("BatchNorm1d", (4096,)),
                 ("Linear", (1000,))],
    "small28": _paper_head(192, 256, 10),
    "small32": _paper_head(432, 256, 10),
}

INPUT = {"paper": (3, 227, 227), "torchvision": (3, 224, 224), "one_tower": (3, 227, 227),
         "d2l": (1, 224, 224), "keras_bn": (3, 224, 224), "small28": (1, 28, 28), "small32": (3, 32, 32)}

FIRST_FC_IN = {"paper": 9216, "torchvision": 9216, "one_tower": 9216, "d2l": 6400, "keras_bn": 256,
               "small28": 192, "small32": 432}


def test_every_variant_is_tested():
    assert set(VARIANTS) == set(PARAMS) == set(FEATURES) == set(CLASSIFIER) == set(INPUT)


@pytest.mark.parametrize("variant", sorted(PARAMS))
def test_parameter_count(variant):
    m = model(variant)
    assert sum(p.numel() for p in m.parameters()) == PARAMS[variant]
    assert isinstance(m, AlexNet) and m.variant == variant and m.input_shape == INPUT[variant]


def test_num_classes_changes_only_the_last_layer():
    m = alexnet(num_classes=10, variant="small32")
    big = alexnet(num_classes=100, variant="small32")
    assert (sum(p.numel() for p in big.parameters()) - sum(p.numel() for p in m.parameters())
            == 90 * 256 + 90)
    assert alexnet(variant="small28", in_channels=3).features[0].weight.shape == (24, 3, 5, 5)


@pytest.mark.parametrize("variant", sorted(PARAMS))
def test_output_shape_after_every_layer(variant):
    rows = model(variant).summary(batch_size=2, print_fn=None)
    expected = ([(f"features.{i}", t, s) for i, (t, s) in enumerate(FEATURES[variant])]
                + [(f"classifier.{i}", t, s) for i, (t, s) in enumerate(CLASSIFIER[variant])])
    if variant == "torchvision":                               # avgpool is its own child
        expected[len(FEATURES[variant]) - 1] = ("avgpool", "AdaptiveAvgPool2d", (256, 6, 6))
    got = [(r.name, r.type, r.output_shape[1:]) for r in rows]
    assert got == expected
    assert all(r.output_shape[0] == 2 for r in rows)
    first_fc = next(m for m in model(variant).classifier if isinstance(m, nn.Linear))
    assert first_fc.in_features == FIRST_FC_IN[variant]
    assert rows.output_shape == (2, CLASSIFIER[variant][-1][1][0])
    # every parameter sits in exactly one row
    assert sum(r.params for r in rows) == rows.total_params == PARAMS[variant]


# --------------------------------------------------------------------------- the paper's details


def test_paper_architecture_details():
    m = model("paper")
    convs = [x for x in m.features if isinstance(x, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]                 # the two-GPU split
    assert [c.kernel_size for c in convs] == [(11, 11), (5, 5), (3, 3), (3, 3), (3, 3)]
    assert [c.stride for c in convs] == [(4, 4)] + [(1, 1)] * 4
    assert [c.padding for c in convs] == [(0, 0), (2, 2), (1, 1), (1, 1), (1, 1)]
    lrns = [x for x in m.features if isinstance(x, nn.LocalResponseNorm)]
    assert len(lrns) == 2
    for lrn in lrns:          # the paper's alpha 1e-4 on the plain sum = PyTorch's 5e-4 / size
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)
    pools = [x for x in m.features if isinstance(x, nn.MaxPool2d)]
    assert [(_pair(p.kernel_size), _pair(p.stride)) for p in pools] == [((3, 3), (2, 2))] * 3
    # LRN follows the ReLU of conv1 and conv2; pools follow conv1, conv2 and conv5
    kinds = [type(x).__name__ for x in m.features]
    assert kinds[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert kinds[4:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    dropouts = [x for x in m.classifier if isinstance(x, nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def test_paper_initialization():
    m = model("paper")
    layers = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 8
    for layer in layers:
        w = layer.weight.array
        assert w.dtype == np.float32
        assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.01) < 0.01 * 0.05, layer
    # biases 1 in conv2, conv4, conv5, fc6, fc7; 0 in conv1, conv3, fc8
    assert [float(layer.bias.array.min()) for layer in layers] == [0, 1, 0, 1, 1, 1, 1, 0]
    assert [float(layer.bias.array.max()) for layer in layers] == [0, 1, 0, 1, 1, 1, 1, 0]


def test_init_is_seeded_and_default_init_differs():
    tc.manual_seed(3)
    a = alexnet(variant="small28", init="paper")
    tc.manual_seed(3)
    b = alexnet(variant="small28", init="paper")
    tc.manual_seed(3)
    c = alexnet(variant="small28")                      # the variant's default: PyTorch-style
    for (k, x), y, z in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        np.testing.assert_array_equal(x, y)
        if k.endswith("weight"):
            assert not np.array_equal(x, z), k


def test_kaiming_init_is_the_small_variants_default():
    tc.manual_seed(4)
    m = alexnet(variant="small32")
    layers = [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    for i, layer in enumerate(layers):
        w = layer.weight.array
        fan_in = int(np.prod(w.shape[1:]))
        gain = 1.0 if i == len(layers) - 1 else 2.0          # no ReLU after the last layer
        assert abs(w.std() / np.sqrt(gain / fan_in) - 1) < 0.1, (i, w.std())
        assert not layer.bias.array.any()


def test_keras_bn_uses_keras_batchnorm_defaults():
    bns = [x for x in model("keras_bn").modules() if isinstance(x, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(bns) == 7
    assert all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)


# --------------------------------------------------------------------------- PyTorch as the oracle


def _torchvision_alexnet_in_torch(torch, num_classes=1000):
    """torchvision.models.AlexNet, written out in plain torch.nn (torchvision itself cannot be
    installed beside this torch): the module names, shapes and order of torchvision 0.2x."""
    tnn = torch.nn

    class TorchvisionAlexNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Conv2d(64, 192, kernel_size=5, padding=2), tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Conv2d(192, 384, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
                tnn.Conv2d(384, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
                tnn.Conv2d(256, 256, kernel_size=3, padding=1), tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(
                tnn.Dropout(p=0.5), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(inplace=True),
                tnn.Dropout(p=0.5), tnn.Linear(4096, 4096), tnn.ReLU(inplace=True),
                tnn.Linear(4096, num_classes))

        def forward(self, x):
            x = self.avgpool(self.features(x))
            return self.classifier(torch.flatten(x, 1))

    return TorchvisionAlexNet()


def _mirror_in_torch(torch, m):
    """The same network in torch.nn, layer for layer, built from tinyconv's modules."""
    tnn = torch.nn

    def leaf(x):
        name = type(x).__name__
        if name == "Conv2d":
            return tnn.Conv2d(x.in_channels, x.out_channels, x.kernel_size, x.stride, x.padding,
                              groups=x.groups, bias=x.bias is not None)
        if name == "Linear":
            return tnn.Linear(x.in_features, x.out_features, bias=x.bias is not None)
        if name == "LocalResponseNorm":
            return tnn.LocalResponseNorm(x.size, x.alpha, x.beta, x.k)
        if name == "MaxPool2d":
            return tnn.MaxPool2d(x.kernel_size, x.stride, x.padding)
        if name in ("BatchNorm1d", "BatchNorm2d"):
            return getattr(tnn, name)(x.num_features, eps=x.eps, momentum=x.momentum)
        if name == "Dropout":
            return tnn.Dropout(x.p)
        if name == "AdaptiveAvgPool2d":
            return tnn.AdaptiveAvgPool2d(x.output_size)
        return getattr(tnn, name)()

    class Mirror(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*[leaf(x) for x in m.features])
            if "avgpool" in m._modules:
                self.avgpool = leaf(m.avgpool)
            self.classifier = tnn.Sequential(*[leaf(x) for x in m.classifier])

        def forward(self, x):
            x = self.features(x)
            if hasattr(self, "avgpool"):
                x = self.avgpool(x)
            return self.classifier(torch.flatten(x, 1))

    return Mirror()


def _randomize_bn_stats(torch, tm, seed=0):
    g = torch.Generator().manual_seed(seed)
    for x in tm.modules():
        if isinstance(x, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = x.num_features
            x.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            x.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            x.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            x.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _torch_state_as_numpy(tm, dtype):
    return {k: v.detach().numpy().astype(dtype) for k, v in tm.state_dict().items()}


def _forward(m, x):
    with tc.no_grad():
        return m(tc.tensor(x)).numpy()


def test_torchvision_state_dict_loads_unchanged_and_gives_the_same_logits():
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    torch.manual_seed(0)
    tm = _torchvision_alexnet_in_torch(torch).eval()
    ours = model("torchvision").eval()
    state = _torch_state_as_numpy(tm, np.float32)
    assert list(state) == list(ours.state_dict())                   # same keys, same order
    result = ours.load_state_dict(state)                            # strict: no renaming
    assert result.missing_keys == [] and result.unexpected_keys == []
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    got = _forward(ours, x)
    assert got.dtype == np.float32 and got.shape == (2, 1000)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * np.abs(want).max())
    # float64, at 256x256 where the adaptive pool really pools (7x7 -> 6x6 windows of 2)
    x = rng.standard_normal((1, 3, 256, 256))
    try:
        ours.to(np.float64)
        with torch.no_grad():
            want = tm.double()(torch.from_numpy(x)).numpy()
        got = _forward(ours, x)
    finally:
        ours.to(np.float32)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("variant", ["paper", "keras_bn"])
def test_big_variants_logits_match_pytorch(variant):
    """The paper net (grouped convs, LRN with the paper's alpha, its init) and the Keras
    net (BatchNorm with running statistics) give PyTorch's logits for the same weights."""
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    ours = model(variant).eval()
    tm = _mirror_in_torch(torch, ours).eval()
    _randomize_bn_stats(torch, tm)
    if variant == "paper":      # keep the paper's initialization: load ours into torch
        tm.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    else:
        ours.load_state_dict(_torch_state_as_numpy(tm, np.float32))
    x = np.random.default_rng(2).standard_normal((1, *ours.input_shape)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    got = _forward(ours, x)
    assert np.abs(want).max() > 1e-3                  # a real signal reaches the logits
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("variant", ["small28", "small32"])
def test_small_variants_logits_and_gradients_match_pytorch(variant):
    """Forward (eval mode) and every weight gradient equal PyTorch's, in float64."""
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    ours = alexnet(variant=variant).double().eval()
    tm = _mirror_in_torch(torch, ours).double().eval()
    tm.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((3, *ours.input_shape))
    target = np.array([1, 7, 3])
    want = tm(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(want, torch.from_numpy(target)).backward()
    got = ours(tc.tensor(x))
    F.cross_entropy(got, tc.tensor(target)).backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-12)
    grads = {k: p.grad for k, p in tm.named_parameters()}
    for k, p in ours.named_parameters():
        scale = float(grads[k].abs().max())
        assert scale > 0, k
        np.testing.assert_allclose(p.grad.numpy(), grads[k].numpy(), rtol=1e-7, atol=1e-10 * scale,
                                   err_msg=k)


def test_small28_learns():
    """SGD on a small structured task (class k = a bright square at position k) drives the
    loss down fast with the variant's default (He) initialization: the small net trains."""
    tc.manual_seed(0)
    m = alexnet(variant="small28")
    rng = np.random.default_rng(0)
    t = rng.integers(0, 10, 32)
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32) * 0.3
    for i, k in enumerate(t):
        r, c = divmod(int(k), 5)
        x[i, 0, 2 + 12 * r: 9 + 12 * r, 1 + 5 * c: 6 + 5 * c] += 2.0
    x, t = tc.tensor(x), tc.tensor(t)
    opt = optim.SGD(m.parameters(), lr=0.03, momentum=0.9)
    losses = []
    for _ in range(24):       # seeds 0-5 all end below 0.25x their first loss
        loss = F.cross_entropy(m(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.4 * losses[0], losses


# --------------------------------------------------------------------------- summary and FLOPs


def test_summary_flops_follow_the_documented_count():
    rows = model("paper").summary(print_fn=None)
    by_name = {r.name: r for r in rows}
    # conv1: 96 outputs x 55 x 55, each 3*11*11 multiply-adds (2 FLOPs) + a bias add
    assert by_name["features.0"].flops == 96 * 55 * 55 * (2 * 3 * 11 * 11 + 1)
    # conv2 is grouped: each output sees 96/2 input channels
    assert by_name["features.4"].flops == 256 * 27 * 27 * (2 * 48 * 5 * 5 + 1)
    assert by_name["features.2"].flops == 96 * 55 * 55 * (2 * 5 + 4)           # LRN
    assert by_name["features.3"].flops == 96 * 27 * 27 * 8                      # 3x3 max: 8 compares
    assert by_name["classifier.0"].flops == 4096 * (2 * 9216 + 1)
    assert by_name["classifier.2"].flops == 0                                   # dropout
    macs = sum((r.flops - np.prod(r.output_shape)) // 2 for r in rows if r.type in ("Conv2d", "Linear"))
    assert macs == 724_406_816          # the paper net: 724M multiply-adds per 227x227 image
    assert rows.total_flops == sum(r.flops for r in rows)
    # a training step is ~3 forward passes: ~69.5 GFLOP at batch 16 (the figure)
    assert 69.0e9 < 3 * 16 * rows.total_flops < 70.5e9
    text = str(rows)
    assert "features.4 (Conv2d)" in text and "60,965,224" in text and "1.46 GFLOPs" in text
    adaptive = {r.name: r for r in model("torchvision").summary((3, 256, 256), print_fn=None)}
    # 256x256 input: 7x7 -> 6x6, windows of 2 rows/cols each (PyTorch's floor/ceil bounds), 256 channels
    assert adaptive["avgpool"].flops == 256 * (6 * 2) * (6 * 2)


def test_summary_leaves_the_model_as_it_was(capsys):
    m = alexnet(variant="keras_bn")
    m.train()
    m.classifier.eval()
    before = m.state_dict()                                      # CPU copies
    rng_before = tc.get_rng_state()
    rows = summary(m)
    assert "Total" in capsys.readouterr().out
    assert m.training and not m.classifier.training and m.features.training
    assert "forward" not in m.features[0].__dict__               # the tracing is undone
    after = m.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)   # no BN statistics update
    assert tc.get_rng_state() == rng_before                          # no dropout draw
    assert rows.as_dicts()[0] == {"name": "features.0", "type": "Conv2d", "output_shape": [1, 96, 54, 54],
                                  "params": 34944, "flops": 96 * 54 * 54 * (2 * 3 * 121 + 1)}


def test_summary_of_a_plain_sequential_and_bad_shapes():
    seq = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    rows = seq.summary((4,), print_fn=None)
    assert [(r.name, r.output_shape, r.params, r.flops) for r in rows] == [
        ("0", (1, 3), 15, 3 * 9), ("1", (1, 3), 0, None), ("2", (1, 2), 8, 2 * 7)]
    with pytest.raises(ValueError, match="input_shape"):
        seq.summary()
    with pytest.raises(ValueError, match="input_shape"):
        seq.summary((0, 4))


# --------------------------------------------------------------------------- bad input


def test_wrong_input_size_names_the_expected_shape():
    m = model("small28")
    with pytest.raises(ValueError, match=r"small28.*\(N, 1, 28, 28\).*\(2, 1, 32, 32\)"):
        m(tc.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="expected 1 input channels"):
        m(tc.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="4-d input"):
        m(tc.zeros(1, 28, 28))
    with pytest.raises(TypeError, match="must be a Tensor"):
        m(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="at least 63x63"):
        model("torchvision")(tc.zeros(1, 3, 32, 32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown variant 'vgg'.*paper"):
        alexnet(variant="vgg")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        alexnet(num_classes=0, variant="small28")
    with pytest.raises(ValueError, match="init must be"):
        alexnet(variant="small28", init="xavier")


# --------------------------------------------------------------------------- ImageNet classes


def test_imagenet_classes():
    names, synsets = imagenet_classes(), imagenet_synsets()
    assert len(names) == len(synsets) == 1000
    wnids = [w for w, _ in synsets]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000      # torchvision's index order
    assert all(w.startswith("n") and len(w) == 9 for w in wnids)
    assert names[:3] == ["tench", "goldfish", "great white shark"]
    assert (names[207], names[281], names[409], names[999]) == (
        "golden retriever", "tabby", "analog clock", "toilet tissue")
    assert synsets[0] == ("n01440764", "tench, Tinca tinca")


# --------------------------------------------------------------------------- convert_torch


def test_convert_torch_round_trip(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    from tinyconv.checkpoint import load_checkpoint
    from tinyconv.models import convert_torch

    torch.manual_seed(1)
    tm = _torchvision_alexnet_in_torch(torch, num_classes=10).eval()
    pth = tmp_path / "alexnet.pth"
    torch.save({"module." + k: v for k, v in tm.state_dict().items()}, pth)  # DataParallel-style keys
    out = convert_torch(pth, tmp_path / "alexnet.npz")
    ck = load_checkpoint(out)
    meta = ck["meta"]
    assert (meta["arch"], meta["variant"], meta["num_classes"]) == ("alexnet", "torchvision", 10)
    assert meta["preprocess"]["crop"] == 224 and meta["preprocess"]["mode"] == "RGB"
    assert meta["in_channels"] == 3 and "classes" not in meta      # names only for 1000 classes
    m = alexnet(num_classes=meta["num_classes"], variant=meta["variant"]).eval()
    m.load_state_dict(ck["model_state"])
    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    with tc.no_grad():
        got = m(tc.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * np.abs(want).max())


def test_convert_torch_refuses_other_files(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    from tinyconv.models import convert_torch

    wrong = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.6.weight": torch.zeros(10, 4096),
                "classifier.6.bias": torch.zeros(10)}, wrong)
    with pytest.raises(ValueError, match=r"(?s)vgg\.pth does not fit.*shape mismatch: features.0.weight"):
        convert_torch(wrong, tmp_path / "out.npz")
    not_alexnet = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(10, 512)}, not_alexnet)
    with pytest.raises(ValueError, match=r"resnet\.pth is not a torchvision AlexNet"):
        convert_torch(not_alexnet, tmp_path / "out.npz")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"garbage\.pth could not be read"):
        convert_torch(garbage, tmp_path / "out.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        convert_torch(tmp_path / "absent.pth", tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_convert_torch_needs_no_torch(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed")
    from tinyconv.checkpoint import load_checkpoint
    from tinyconv.models import convert_torch

    ours = alexnet(num_classes=3, variant="torchvision", init="default")
    torch.save({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()}, tmp_path / "a.pth")
    monkeypatch.setitem(sys.modules, "torch", None)         # "import torch" now fails
    got = load_checkpoint(convert_torch(tmp_path / "a.pth", tmp_path / "b.npz"))["model_state"]
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(got[k], v.numpy())
