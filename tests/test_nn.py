"""tinyconv.nn: module registration and naming, state_dict compatibility with PyTorch,
load_state_dict errors, devices/dtypes, train/eval, BatchNorm against PyTorch, init."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.nn.functional as F
from tinyconv import nn
from tinyconv.nn import init


def t64(a, grad=False):
    return tc.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# --------------------------------------------------------------------------- registration and naming


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.register_buffer("steps", np.zeros((), np.int64))
        self.register_buffer("scratch", np.zeros(3, np.float32), persistent=False)
        self.note = "plain attributes are not registered"

    def forward(self, x):
        return self.act(self.bn(self.conv(x))) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Block(), nn.MaxPool2d(2))
        self.heads = nn.ModuleList([nn.Linear(16, 3), nn.Linear(16, 2, bias=False)])

    def forward(self, x):
        h = self.features(x).flatten(1)
        return [head(h) for head in self.heads]


def test_registration_and_dotted_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "features.0.scale", "features.0.conv.weight", "features.0.conv.bias", "features.0.bn.weight",
        "features.0.bn.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight"]
    assert [n for n, _ in net.named_buffers()] == [
        "features.0.steps", "features.0.scratch", "features.0.bn.running_mean", "features.0.bn.running_var",
        "features.0.bn.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == [
        "", "features", "features.0", "features.0.conv", "features.0.bn", "features.0.act", "features.1",
        "heads", "heads.0", "heads.1"]
    assert [n for n, _ in net.named_children()] == ["features", "heads"]
    assert list(net.children()) == [net.features, net.heads]
    assert len(list(net.parameters())) == 8 and len(list(net.modules())) == 10
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert net.features[0].note == "plain attributes are not registered"
    assert net.get_submodule("features.0.bn") is net.features[0].bn
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        net.get_submodule("features.nope")
    # state_dict: each module's parameters, then its persistent buffers, then its children
    assert list(net.state_dict()) == [
        "features.0.scale", "features.0.steps", "features.0.conv.weight", "features.0.conv.bias",
        "features.0.bn.weight", "features.0.bn.bias", "features.0.bn.running_mean",
        "features.0.bn.running_var", "features.0.bn.num_batches_tracked", "heads.0.weight",
        "heads.0.bias", "heads.1.weight"]
    out = net(tc.randn(2, 2, 4, 4))
    assert [o.shape for o in out] == [(2, 3), (2, 2)]


def test_shared_parameters_and_modules_are_listed_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(seq.modules())) == 3
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]   # as PyTorch


def test_reassignment_keeps_order_and_checks_types():
    m = nn.Linear(2, 3)
    m.weight = nn.Parameter(np.zeros((3, 2), np.float32))          # same slot, same order
    assert list(m.state_dict()) == ["weight", "bias"]
    m.bias = None
    assert m.bias is None and list(m.state_dict()) == ["weight"]
    with pytest.raises(TypeError, match="parameter 'weight'"):
        m.weight = tc.zeros(3, 2)                                    # a Tensor is not a Parameter
    seq = nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match="child module '0'"):
        seq.__setattr__("0", 5)
    bn = nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match="buffer 'running_mean'"):
        bn.running_mean = np.zeros(2)
    del m.weight
    assert "weight" not in dict(m.named_parameters())
    with pytest.raises(AttributeError, match="no attribute 'weight'"):
        _ = m.weight

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Forgot()
    with pytest.raises(KeyError, match="contain no '.'"):
        nn.Module().register_buffer("a.b", np.zeros(1))


def test_sequential_and_module_list_containers():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert [n for n, _ in sub.named_children()] == ["1", "2"]          # PyTorch keeps the names
    with pytest.raises(IndexError, match="index 3 out of range for 3"):
        seq[3]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.fc is named[0]
    x = t64([[-1.0, 2.0]])
    named.double()
    y = named(x)
    fc = named.fc
    np.testing.assert_allclose(y.array, np.maximum(x.array @ fc.weight.array.T + fc.bias.array, 0))
    with pytest.raises(TypeError, match="argument 1 must be a Module"):
        nn.Sequential(nn.ReLU(), "relu")

    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.Linear(1, 2))
    ml.insert(0, nn.Linear(1, 3))
    assert [m.out_features for m in ml] == [3, 1, 2] and len(ml) == 3
    del ml[0]
    assert [m.out_features for m in ml] == [1, 2] and list(ml.state_dict())[0] == "0.weight"


def test_train_eval_apply_zero_grad_and_repr_calls():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Conv2d"                  # children first
    out = net(tc.randn(2, 2, 4, 4))
    (out[0].sum() + out[1].sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(not p.grad.array.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_repr_matches_pytorch(torch):
    def build(n):
        return n.Sequential(
            n.Conv2d(3, 8, 3, stride=2, padding=1), n.Conv2d(8, 8, 3, groups=2, bias=False),
            n.ReLU(inplace=True), n.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0), n.MaxPool2d(3, 2),
            n.AvgPool2d(2), n.AdaptiveAvgPool2d((6, 6)), n.Flatten(), n.Dropout(0.5), n.Linear(4, 2),
            n.BatchNorm1d(2), n.BatchNorm2d(3, affine=False, track_running_stats=False), n.Tanh(),
            n.Sigmoid(), n.Identity(), n.Softmax(dim=1), n.LogSoftmax(dim=1), n.CrossEntropyLoss(),
            n.NLLLoss(), n.ModuleList([n.ReLU()]), n.LeakyReLU(), n.LeakyReLU(0.2, inplace=True),
            n.Dropout2d(0.25), n.MSELoss(), n.L1Loss(), n.BCELoss(), n.BCEWithLogitsLoss())
    assert repr(build(nn)) == repr(build(torch.nn))


# --------------------------------------------------------------------------- state_dict and PyTorch


def _pair_of_models(torch, n):
    """The same small AlexNet-like Sequential, with BatchNorm, built from module namespace ``n``."""
    return n.Sequential(OrderedDict([
        ("features", n.Sequential(
            n.Conv2d(3, 8, 3, stride=2, padding=1), n.ReLU(), n.LocalResponseNorm(3, 1e-2, 0.75, 2.0),
            n.MaxPool2d(3, 2), n.Conv2d(8, 8, 3, padding=1, groups=2), n.BatchNorm2d(8), n.ReLU(),
            n.AdaptiveAvgPool2d((2, 2)))),
        ("flatten", n.Flatten()),
        ("classifier", n.Sequential(
            n.Dropout(0.5), n.Linear(32, 16), n.BatchNorm1d(16), n.ReLU(), n.Linear(16, 5))),
    ]))


def test_state_dict_keys_shapes_and_dtypes_match_pytorch(torch):
    ours, theirs = _pair_of_models(torch, nn), _pair_of_models(torch, torch.nn)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    for k in tsd:
        assert sd[k].shape == tuple(tsd[k].shape), k
        assert sd[k].dtype == tsd[k].numpy().dtype, k
        assert isinstance(sd[k], tc.Tensor) and type(sd[k].array) is np.ndarray   # Tensors, as PyTorch's
        assert sd[k].size() == tsd[k].size() and not sd[k].requires_grad


def test_state_dict_is_a_copy():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    sd["weight"][...] = 7
    assert not (m.weight.array == 7).any()


def test_pytorch_weights_load_and_give_the_same_outputs(torch):
    torch.manual_seed(0)
    theirs = _pair_of_models(torch, torch.nn).double()
    x = np.random.default_rng(1).standard_normal((4, 3, 13, 13))
    theirs.train()
    theirs(torch.from_numpy(x))                    # move the BatchNorm running stats off 0 / 1
    theirs.eval()
    ours = _pair_of_models(torch, nn).double().eval()
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    y = ours(t64(x))
    np.testing.assert_allclose(y.array, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    # and the other way: our weights into PyTorch
    tc.manual_seed(3)
    ours2 = _pair_of_models(torch, nn).double().eval()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours2.state_dict().items()})
    np.testing.assert_allclose(ours2(t64(x)).array, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_load_state_dict_names_every_bad_key():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    sd = m.state_dict()
    del sd["1.running_var"]
    sd["0.weight"] = np.zeros((4, 3, 5, 5))
    sd["2.weight"] = np.zeros(3)
    with pytest.raises(ValueError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "load_state_dict" in msg and "missing keys: 1.running_var" in msg
    assert "unexpected keys: 2.weight" in msg
    assert "0.weight: expected shape (4, 3, 3, 3), got (4, 3, 5, 5)" in msg
    # a mis-shaped key is an error even when not strict; nothing was loaded
    before = m[0].weight.array.copy()
    with pytest.raises(ValueError, match="mis-shaped keys: 0.weight"):
        m.load_state_dict(sd, strict=False)
    np.testing.assert_array_equal(m[0].weight.array, before)
    sd["0.weight"] = np.ones((4, 3, 3, 3))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["1.running_var"] and unexpected == ["2.weight"]
    assert (m[0].weight.array == 1).all()
    with pytest.raises(TypeError, match="expected a mapping"):
        m.load_state_dict([("0.weight", before)])
    sd = m.state_dict()
    sd["0.bias"] = np.array(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="not numeric arrays: 0.bias"):
        m.load_state_dict(sd)


def test_load_state_dict_casts_keeps_identity_and_accepts_tensors():
    m = nn.Linear(3, 2)
    w = m.weight
    m.load_state_dict({"weight": tc.tensor(np.full((2, 3), 0.5)), "bias": [1, 2]})
    assert m.weight is w and w.dtype == np.float32 and (w.array == 0.5).all()
    assert m.bias.dtype == np.float32 and m.bias.array.tolist() == [1.0, 2.0]
    bn = nn.BatchNorm1d(2)
    bn.load_state_dict({**bn.state_dict(), "num_batches_tracked": np.array(7.0)})
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.item() == 7


def test_to_dtype_keeps_parameters_and_integer_buffers():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    params = list(m.parameters())
    out = m(tc.randn(3, 2))
    out.sum().backward()
    assert m.double() is m
    assert list(m.parameters()) == params and all(p.dtype == np.float64 for p in params)
    assert all(p.grad.dtype == np.float64 for p in params)
    assert m[1].running_mean.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    m.to(tc.float32)
    assert all(p.dtype == np.float32 for p in params)
    assert m.to("cpu") is m and m.cpu() is m
    m.to("cpu", dtype=np.float64)
    assert params[0].dtype == np.float64
    with pytest.raises(TypeError, match="floating point dtype"):
        m.to(np.int32)


def test_layer_argument_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(3\) and out_channels \(4\) must both be "
                                         r"divisible by groups \(2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2d: dilation must be >= 1"):
        nn.Conv2d(2, 2, 3, dilation=0)
    with pytest.raises(ValueError, match="Conv2d: padding='same' is not supported for strided convolutions"):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: in_channels must be a positive int"):
        nn.Conv2d(0, 2, 3)
    with pytest.raises(ValueError, match="Dropout: dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input, got 2D input"):
        nn.BatchNorm2d(3)(tc.randn(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 3 channels in dimension 1"):
        nn.BatchNorm1d(3)(tc.randn(2, 4))
    with pytest.raises(ValueError, match="Softmax: pass dim explicitly"):
        nn.Softmax()(tc.randn(2, 3))
    with pytest.raises(TypeError, match="CrossEntropyLoss: weight must be a Tensor"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="Dropout2d: dropout probability .* but got -0.5"):
        nn.Dropout2d(-0.5)


# --------------------------------------------------------------------------- layers against PyTorch


def test_every_layer_forward_and_backward_matches_pytorch(torch):
    """Each module with PyTorch's default init copied over gives PyTorch's outputs and gradients."""
    rng = np.random.default_rng(0)
    cases = [
        (lambda n: n.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2), (2, 4, 7, 6)),
        (lambda n: n.Linear(5, 3), (4, 5)),
        (lambda n: n.MaxPool2d(3, 2, padding=1), (2, 3, 7, 7)),
        (lambda n: n.AvgPool2d(2), (2, 3, 6, 6)),
        (lambda n: n.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
        (lambda n: n.LocalResponseNorm(5, 5e-4, 0.75, 2.0), (2, 7, 3, 3)),
        (lambda n: n.ReLU(), (3, 4)),
        (lambda n: n.Tanh(), (3, 4)),
        (lambda n: n.Sigmoid(), (3, 4)),
        (lambda n: n.Flatten(), (2, 3, 2, 2)),
        (lambda n: n.BatchNorm1d(3), (4, 3, 5)),
        (lambda n: n.LogSoftmax(dim=1), (3, 4)),
    ]
    for make, shape in cases:
        ours, theirs = make(nn).double(), make(torch.nn).double()
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        x = rng.standard_normal(shape)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        gy = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(gy))
        ox = t64(x, grad=True)
        oy = ours(ox)
        oy.backward(tc.tensor(gy))
        name = type(ours).__name__
        np.testing.assert_allclose(oy.array, ty.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(ox.grad.array, tx.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
        for (k, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            np.testing.assert_allclose(p.grad.array, tp.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name}.{k}")


def test_cross_entropy_loss_module(torch):
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    for reduction in ("mean", "sum", "none"):
        ours = nn.CrossEntropyLoss(reduction=reduction)(t64(logits), target)
        theirs = torch.nn.CrossEntropyLoss(reduction=reduction)(torch.from_numpy(logits),
                                                                 torch.from_numpy(target))
        np.testing.assert_allclose(ours.array, theirs.numpy(), rtol=1e-12)
        log_p = F.log_softmax(t64(logits), dim=1)
        np.testing.assert_allclose(nn.NLLLoss(reduction=reduction)(log_p, target).array, theirs.numpy(),
                                   rtol=1e-12)


def test_dropout_follows_training_flag():
    d = nn.Dropout(0.5)
    x = tc.ones(200, 50)
    tc.manual_seed(0)
    y = d(x).array
    assert set(np.unique(y)) == {0.0, 2.0} and 0.45 < (y > 0).mean() < 0.55
    d.eval()
    assert (d(x).array == 1).all()
    assert (nn.Dropout(0.0)(x).array == 1).all()
    assert not nn.Dropout(1.0)(x).array.any()


def _bn_pair(torch, cls, *args, **kwargs):
    ours = getattr(nn, cls)(*args, **kwargs).double()
    theirs = getattr(torch.nn, cls)(*args, **kwargs).double()
    if ours.affine:                 # non-trivial affine parameters
        rng = np.random.default_rng(5)
        for p, tp in zip(ours.parameters(), theirs.parameters()):
            tp.data = torch.from_numpy(rng.standard_normal(tp.shape))
            p.array[...] = tp.data.numpy()
    return ours, theirs


@pytest.mark.parametrize("cls,shape,kwargs", [
    ("BatchNorm2d", (4, 3, 5, 6), {}),
    ("BatchNorm2d", (2, 3, 4, 4), {"momentum": None}),
    ("BatchNorm2d", (3, 2, 3, 3), {"affine": False}),
    ("BatchNorm2d", (3, 2, 3, 3), {"bias": False, "eps": 1e-3}),
    ("BatchNorm2d", (3, 2, 3, 3), {"track_running_stats": False}),
    ("BatchNorm1d", (6, 4), {"momentum": 0.3}),
    ("BatchNorm1d", (3, 4, 5), {}),
])
def test_batch_norm_train_steps_then_eval_match_pytorch(torch, cls, shape, kwargs):
    ours, theirs = _bn_pair(torch, cls, shape[1], **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(1)
    for step in range(3):                        # training: batch statistics, running stats updated
        x = rng.standard_normal(shape) * 3 + 1
        gy = rng.standard_normal(shape)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.from_numpy(gy))
        ox = t64(x, grad=True)
        oy = ours(ox)
        oy.backward(tc.tensor(gy))
        np.testing.assert_allclose(oy.array, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ox.grad.array, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
        for p, tp in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad.array, tp.grad.numpy(), rtol=1e-10, atol=1e-11)
        for k, v in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-12,
                                       err_msg=f"{k} step {step}")
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(t64(x)).array, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    if ours.track_running_stats:
        assert ours.num_batches_tracked.item() == 3    # eval does not count
        before = ours.running_mean.array.copy()
        ours(t64(x))
        np.testing.assert_array_equal(ours.running_mean.array, before)


# --------------------------------------------------------------------------- initialization


def test_manual_seed_makes_init_reproducible():
    def weights(seed):
        tc.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2)).state_dict()

    a, b, c = weights(1), weights(1), weights(2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])


def test_default_init_is_pytorchs():
    """Conv2d/Linear: weights and bias uniform in +-1/sqrt(fan_in), as kaiming_uniform_(a=sqrt(5))."""
    tc.manual_seed(0)
    conv = nn.Conv2d(16, 64, 5, groups=2)
    fan_in = 8 * 25
    bound = 1 / math.sqrt(fan_in)
    for t in (conv.weight, conv.bias):
        a = t.array
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound
    w = conv.weight.array
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound and abs(w.mean()) < 0.02 * bound
    lin = nn.Linear(100, 300, dtype=np.float64)
    assert lin.weight.dtype == np.float64 and np.abs(lin.weight.array).max() <= 0.1
    bn = nn.BatchNorm2d(3)
    assert (bn.weight.array == 1).all() and (bn.bias.array == 0).all() and (bn.running_var.array == 1).all()


def test_calculate_gain_matches_pytorch(torch):
    for nl, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                      ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)),
                      ("selu", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_init_functions_statistics():
    tc.manual_seed(0)
    w = tc.zeros(256, 128, 3, 3)                        # fan_in 1152, fan_out 2304
    fan_in, fan_out = 128 * 9, 256 * 9
    assert init.normal_(w, 2.0, 0.5) is w
    assert abs(w.array.mean() - 2.0) < 0.01 and abs(w.array.std() - 0.5) < 0.01
    init.uniform_(w, -3, 1)
    assert w.array.min() >= -3 and w.array.max() < 1 and abs(w.array.mean() + 1) < 0.02
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.array.std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    init.kaiming_uniform_(w, a=0, nonlinearity="relu")
    b = math.sqrt(2) * math.sqrt(3 / fan_in)
    assert np.abs(w.array).max() <= b and w.array.std() == pytest.approx(b / math.sqrt(3), rel=0.02)
    init.xavier_uniform_(w, gain=2.0)
    b = 2 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w.array).max() <= b and np.abs(w.array).max() > 0.99 * b
    init.xavier_normal_(w)
    assert w.array.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    init.constant_(w, 0.25)
    assert (w.array == 0.25).all() and w.dtype == np.float32
    assert (init.ones_(w).array == 1).all() and not init.zeros_(w).array.any()
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(tc.zeros(5))
    with pytest.raises(TypeError, match="normal_: expected a floating point tensor"):
        init.normal_(tc.tensor([1, 2]))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(w, mode="fan")


def test_init_draws_do_not_depend_on_dtype():
    tc.manual_seed(4)
    a = init.normal_(tc.zeros(5, 5, dtype=tc.float64))
    tc.manual_seed(4)
    b = init.normal_(tc.zeros(5, 5))
    np.testing.assert_allclose(a.array.astype(np.float32), b.array)


# --------------------------------------------------------------------------- GPU


def test_module_cuda_without_cupy_says_what_is_missing():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed: the error for a missing CuPy cannot be shown")
    except ImportError:
        pass
    m = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="device 'cuda' needs CuPy"):
        m.cuda()
    assert m.weight.device == "cpu"
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        m.to("gpu")


@pytest.mark.gpu
def test_module_to_cuda_keeps_parameters(cupy):
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    params = list(m.parameters())
    m.cuda()
    assert list(m.parameters()) == params and all(p.device == "cuda:0" for p in params)
    assert m[1].num_batches_tracked.device == "cuda:0"
    sd = m.state_dict()
    assert all(isinstance(v, tc.Tensor) and v.device == "cpu" for v in sd.values())   # CPU copies
    m.load_state_dict(sd)
    assert params[0].device == "cuda:0"
    y = m(tc.randn(4, 3).cuda())
    assert y.device == "cuda:0"
    m.cpu()
    assert params[0].device == "cpu"


def test_nn_functional_is_tinyconv_functional():
    import tinyconv.functional
    assert F is tinyconv.functional and nn.functional is tinyconv.functional
    assert F.conv2d is tinyconv.functional.conv2d and F.flatten is tc.flatten


def test_deepcopy_and_pickle_give_independent_equal_models():
    import copy
    import pickle
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert list(clone.state_dict()) == list(m.state_dict())
        assert clone[0].weight is not m[0].weight
        np.testing.assert_array_equal(clone[0].weight.array, m[0].weight.array)
        clone[0].weight.array[...] = 0
        assert m[0].weight.array.any()
