"""The rest of the nn surface a classic PyTorch CNN/MLP script touches: GELU, SiLU, ELU,
Softplus, Hardtanh, ReLU6; LayerNorm, GroupNorm; Embedding; Unflatten; SmoothL1Loss,
HuberLoss, KLDivLoss; ModuleDict, ParameterList, ParameterDict; forward hooks; the
everyday Module API; nn.init.  Each op against PyTorch (float64 forward and backward,
float32 forward) and a float64 gradcheck; each module's repr and state_dict keys against
torch.nn's."""
import inspect
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import tinyconv as tc
import tinyconv.nn as nn
import tinyconv.nn.functional as F

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def leaf(a, requires_grad=True):
    return tc.tensor(a, requires_grad=requires_grad)


def close(ours, theirs, dtype=np.float64):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = ours.array if isinstance(ours, tc.Tensor) else np.asarray(ours)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])


def run_both(torch, ours, theirs, arrays, dtype=np.float64, grad=True, **kw):
    """``ours(*tensors, **kw)`` against ``theirs(*torch_tensors, **kw)``: output, then (float64)
    the gradient of every floating input for a random cotangent."""
    a = [np.asarray(v, dtype=dtype) if np.asarray(v).dtype.kind == "f" else np.asarray(v) for v in arrays]
    mine = [leaf(v, grad and v.dtype.kind == "f") for v in a]
    their = [torch.tensor(v, requires_grad=grad and v.dtype.kind == "f") for v in a]
    yo, yt = ours(*mine, **kw), theirs(*their, **kw)
    close(yo, yt, dtype)
    if grad:
        g = np.random.default_rng(1).standard_normal(yt.shape).astype(dtype)
        yo.backward(tc.tensor(g))
        yt.backward(torch.tensor(g))
        for m, t in zip(mine, their):
            if t.requires_grad:
                close(m.grad, t.grad, dtype)
    return yo


# --------------------------------------------------------------------------- activations

ACTIVATIONS = [("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}), ("elu", {}),
               ("elu", {"alpha": 0.3}), ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 3.0}),
               ("hardtanh", {}), ("hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("relu6", {})]


def _activation_input(rng, shape=(3, 4, 5)):
    # spread over [-8, 8] (beyond softplus's threshold and relu6's 6), away from every kink
    x = rng.uniform(-8, 8, shape)
    for kink in (-1, 1, -0.5, 2, 0, 6, 1.5):
        x[np.abs(x - kink) < 1e-3] += 0.01
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activations_match_torch(torch, rng, name, kw, dtype):
    x = _activation_input(rng)
    run_both(torch, getattr(F, name), getattr(torch.nn.functional, name), [x], dtype,
             grad=dtype == np.float64, **kw)


@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activations_gradcheck(rng, name, kw):
    x = leaf(_activation_input(rng, (2, 5)))
    assert tc.gradcheck(lambda x: getattr(F, name)(x, **kw), [x])


def test_activations_special_values_match_torch(torch):
    x = np.array([-np.inf, -1e4, -30.0, -1e-8, 0.0, 1e-8, 19.99, 20.01, 1e4, np.inf, np.nan])
    for name, kw in ACTIVATIONS:
        run_both(torch, getattr(F, name), getattr(torch.nn.functional, name), [x], grad=False, **kw)


@pytest.mark.parametrize("name,kw", [("silu", {}), ("elu", {"alpha": 0.7}), ("hardtanh", {}), ("relu6", {})])
def test_inplace_activations_write_the_input_and_keep_the_gradient(torch, rng, name, kw):
    x = _activation_input(rng, (4, 3))
    a, b = leaf(x), torch.tensor(x, requires_grad=True)
    ya, yb = a * 2.0, b * 2
    ra = getattr(F, name)(ya, inplace=True, **kw)
    getattr(torch.nn.functional, name)(yb, inplace=True, **kw)
    assert ra is ya
    close(ya, yb)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    close(a.grad, b.grad)


def test_activation_bad_input():
    x = tc.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="gelu: input must be a Tensor"):
        F.gelu(np.ones(2))
    with pytest.raises(TypeError, match="silu: expected a floating point input"):
        F.silu(tc.tensor([1, 2]))
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="hardtanh: min_val cannot be greater than max_val"):
        F.hardtanh(x, 2.0, 1.0)
    with pytest.raises(ValueError, match="softplus: beta must be non-zero"):
        F.softplus(x, beta=0)
    with pytest.raises(TypeError, match="elu: alpha must be a real number"):
        F.elu(x, alpha="1")


# --------------------------------------------------------------------------- layer_norm, group_norm

LN_CASES = [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((2, 3, 4), (4,)), ((7,), (7,)), ((3, 1), (1,))]


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,normalized", LN_CASES)
def test_layer_norm_matches_torch(torch, rng, shape, normalized, affine):
    x = rng.standard_normal(shape) * 3 + 1
    w = rng.standard_normal(normalized) if affine != "none" else None
    b = rng.standard_normal(normalized) if affine == "both" else None
    arrays = [a for a in (x, w, b) if a is not None]

    def call(lib):
        def fn(x, *p):
            return lib.layer_norm(x, normalized, *(p + (None,) * (2 - len(p))), eps=1e-5)
        return fn
    run_both(torch, call(F), call(torch.nn.functional), arrays)
    run_both(torch, call(F), call(torch.nn.functional), arrays, np.float32, grad=False)
    ts = [leaf(a) for a in arrays]
    assert tc.gradcheck(call(F), ts)


GN_CASES = [((2, 6, 3, 3), 3), ((2, 4), 2), ((3, 4, 5), 1), ((2, 4, 2, 2), 4), ((1, 6, 2), 2)]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,groups", GN_CASES)
def test_group_norm_matches_torch(torch, rng, shape, groups, affine):
    x = rng.standard_normal(shape) * 2 - 1
    c = shape[1]
    arrays = [x] + ([rng.standard_normal(c), rng.standard_normal(c)] if affine else [])

    def call(lib):
        def fn(x, *p):
            return lib.group_norm(x, groups, *p, eps=1e-5)
        return fn
    run_both(torch, call(F), call(torch.nn.functional), arrays)
    run_both(torch, call(F), call(torch.nn.functional), arrays, np.float32, grad=False)
    assert tc.gradcheck(call(F), [leaf(a) for a in arrays])


def test_norm_bad_input(rng):
    x = leaf(rng.standard_normal((2, 6)))
    with pytest.raises(ValueError, match=r"layer_norm: Given normalized_shape=\[5\], expected input "
                                         r"with shape \[\*, 5\], but got input of size \(2, 6\)"):
        F.layer_norm(x, (5,))
    with pytest.raises(ValueError, match=r"layer_norm: expected weight of shape \(6,\), got \(5,\)"):
        F.layer_norm(x, 6, weight=leaf(np.ones(5)))
    with pytest.raises(TypeError, match="layer_norm: expected one dtype"):
        F.layer_norm(x, 6, weight=tc.ones(6))
    with pytest.raises(ValueError, match=r"group_norm: Expected number of channels in input \(6\) to be "
                                         "divisible by num_groups"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match=r"group_norm: expected input of shape \(N, C, \*\)"):
        F.group_norm(leaf(np.ones(4)), 2)
    with pytest.raises(ValueError, match="layer_norm: eps must be a number >= 0"):
        F.layer_norm(x, 6, eps=-1)


# --------------------------------------------------------------------------- embedding


@pytest.mark.parametrize("kw", [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
                                {"padding_idx": 0, "scale_grad_by_freq": True}])
@pytest.mark.parametrize("index_shape", [(2, 3), (7,), (), (2, 0)])
def test_embedding_matches_torch(torch, rng, kw, index_shape):
    weight = rng.standard_normal((6, 4))
    index = rng.integers(0, 6, index_shape)
    if index.size:
        index.flat[0] = index.flat[-1]                # a repeated index
    run_both(torch, lambda i, w: F.embedding(i, w, **kw),
             lambda i, w: torch.nn.functional.embedding(i, w, **kw), [index, weight])
    if kw.get("padding_idx") is not None and index.size:   # the padding row's gradient is 0
        w = leaf(weight)
        F.embedding(tc.tensor(np.full(index_shape, kw["padding_idx"] % 6)), w, **kw).sum().backward()
        assert not w.grad.array[kw["padding_idx"] % 6].any()


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0])
def test_embedding_max_norm_renormalizes_rows_in_place_like_torch(torch, rng, norm_type):
    weight = rng.standard_normal((5, 3)) * 2
    index = np.array([[0, 3], [3, 4]])
    wo, wt = leaf(weight.copy()), torch.tensor(weight.copy(), requires_grad=True)
    yo = F.embedding(tc.tensor(index), wo, max_norm=1.0, norm_type=norm_type)
    with torch.no_grad():
        yt = torch.nn.functional.embedding(torch.tensor(index), wt, max_norm=1.0, norm_type=norm_type)
    close(yo, yt)
    close(wo, wt)                                     # the same rows rescaled, the others untouched
    assert np.array_equal(wo.array[[1, 2]], weight[[1, 2]])


def test_embedding_gradcheck_and_module(torch, rng):
    w = leaf(rng.standard_normal((5, 3)))
    index = tc.tensor(np.array([[0, 1, 1], [4, 0, 2]]))
    assert tc.gradcheck(lambda w: F.embedding(index, w), [w])
    assert tc.gradcheck(lambda w: F.embedding(index, w, padding_idx=3), [w])       # 3 is not looked up
    ours, theirs = nn.Embedding(5, 3, padding_idx=1), torch.nn.Embedding(5, 3, padding_idx=1)
    assert not ours.weight.array[1].any()             # the padding row starts at 0
    assert ours.weight.shape == tuple(theirs.weight.shape) and ours.weight.dtype == np.float32
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    close(ours(index), theirs(torch.tensor(index.array)), np.float32)
    pre = nn.Embedding.from_pretrained(tc.tensor(np.eye(3)))
    assert not pre.weight.requires_grad and np.array_equal(pre(tc.tensor([2])).array, [[0, 0, 1.0]])
    assert nn.Embedding.from_pretrained(tc.tensor(np.eye(3)), freeze=False).weight.requires_grad


def test_embedding_bad_input(rng):
    w = leaf(rng.standard_normal((4, 2)))
    with pytest.raises(TypeError, match="embedding: Expected tensor for argument #1 'indices' to have an "
                                        "integer dtype"):
        F.embedding(tc.tensor([0.0, 1.0]), w)
    with pytest.raises(IndexError, match=r"embedding: index 4 is out of range for 4 embeddings"):
        F.embedding(tc.tensor([0, 4]), w)
    with pytest.raises(ValueError, match="embedding: padding_idx must be within num_embeddings"):
        F.embedding(tc.tensor([0]), w, padding_idx=4)
    with pytest.raises(ValueError, match="embedding: 'weight' must be 2-D"):
        F.embedding(tc.tensor([0]), leaf(np.ones(3)))
    with pytest.raises(NotImplementedError, match="sparse"):
        F.embedding(tc.tensor([0]), w, sparse=True)
    with pytest.raises(ValueError, match="Embedding: padding_idx must be within num_embeddings"):
        nn.Embedding(3, 2, padding_idx=3)


# --------------------------------------------------------------------------- losses

LOSSES = [("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 0.0}),
          ("huber_loss", {}), ("huber_loss", {"delta": 2.0})]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,kw", LOSSES)
@pytest.mark.parametrize("shape", [(4, 3), (5,), ()])
def test_robust_regression_losses_match_torch(torch, rng, name, kw, reduction, shape):
    x, t = rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2
    fo, ft = getattr(F, name), getattr(torch.nn.functional, name)
    run_both(torch, fo, ft, [x, t], reduction=reduction, **kw)
    run_both(torch, fo, ft, [x, t], np.float32, grad=False, reduction=reduction, **kw)
    assert tc.gradcheck(lambda a, b: fo(a, b, reduction=reduction, **kw), [leaf(x + 0.01), leaf(t)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_huber_loss_weight_matches_torch(torch, rng, reduction):
    x, t, w = rng.standard_normal((3, 4)) * 2, rng.standard_normal((3, 4)), rng.uniform(0, 2, (3, 4))
    yo = F.huber_loss(leaf(x), leaf(t), reduction=reduction, weight=tc.tensor(w))
    yt = torch.nn.functional.huber_loss(torch.tensor(x), torch.tensor(t), reduction=reduction,
                                        weight=torch.tensor(w))
    close(yo, yt)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(torch, rng, reduction, log_target):
    logp = np.log(rng.dirichlet(np.ones(5), 4))
    q = rng.dirichlet(np.ones(5), 4)
    q[0, 1] = 0.0                                    # a zero target contributes 0
    t = np.log(q + 1e-3) if log_target else q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_both(torch, F.kl_div, torch.nn.functional.kl_div, [logp, t], reduction=reduction,
                 log_target=log_target)
    assert tc.gradcheck(lambda a, b: F.kl_div(a, b, reduction="sum", log_target=log_target),
                        [leaf(logp), leaf(t if log_target else q + 0.05)])


def test_kl_div_mean_warns_like_torch(torch):
    x = tc.tensor(np.log([[0.5, 0.5]]))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(x, tc.tensor(np.array([[0.3, 0.7]])))
    with pytest.raises(ValueError, match="kl_div: reduction must be one of"):
        F.kl_div(x, x, reduction="avg")
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be a number >= 0"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="huber_loss: delta must be > 0"):
        F.huber_loss(x, x, delta=0.0)


def test_new_loss_modules_match_torch(torch, rng):
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    logp, q = np.log(rng.dirichlet(np.ones(3), 4)), rng.dirichlet(np.ones(3), 4)
    pairs = [(nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), x, t),
             (nn.HuberLoss(reduction="sum", delta=0.3), torch.nn.HuberLoss(reduction="sum", delta=0.3), x, t),
             (nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"), logp, q),
             (nn.KLDivLoss(reduction="sum", log_target=True),
              torch.nn.KLDivLoss(reduction="sum", log_target=True), logp, np.log(q))]
    for ours, theirs, a, b in pairs:
        close(ours(leaf(a), leaf(b)), theirs(torch.tensor(a), torch.tensor(b)))
        assert repr(ours) == repr(theirs)
    with pytest.raises(ValueError, match="KLDivLoss: reduction must be one of"):
        nn.KLDivLoss(reduction="avg")


# --------------------------------------------------------------------------- modules: repr, state_dict


def module_pairs(torch):
    """(ours, PyTorch's) built with the same arguments."""
    tnn = torch.nn
    specs = [("Embedding", (10, 3), {"padding_idx": -1, "max_norm": 1.0}),
             ("Embedding", (5, 2), {"norm_type": 1.0, "scale_grad_by_freq": True}),
             ("LayerNorm", (3,), {}), ("LayerNorm", ([3, 4],), {"elementwise_affine": False}),
             ("LayerNorm", (3,), {"bias": False, "eps": 1e-6}),
             ("GroupNorm", (2, 4), {}), ("GroupNorm", (1, 3), {"affine": False}),
             ("GroupNorm", (2, 4), {"bias": False}),
             ("GELU", (), {}), ("GELU", ("tanh",), {}), ("SiLU", (), {}), ("SiLU", (True,), {}),
             ("ELU", (), {}), ("ELU", (0.5, True), {}), ("Softplus", (), {}), ("Softplus", (2, 10), {}),
             ("Hardtanh", (), {}), ("Hardtanh", (-2, 2, True), {}), ("ReLU6", (), {}), ("ReLU6", (True,), {}),
             ("Unflatten", (1, (2, 3)), {}), ("SmoothL1Loss", (), {}), ("HuberLoss", (), {"delta": 2.0}),
             ("KLDivLoss", (), {"reduction": "batchmean"})]
    return [(getattr(nn, n)(*a, **k), getattr(tnn, n)(*a, **k)) for n, a, k in specs]


def test_new_modules_print_and_name_their_state_like_torch(torch):
    for ours, theirs in module_pairs(torch):
        assert repr(ours) == repr(theirs)
        sd_o, sd_t = ours.state_dict(), theirs.state_dict()
        assert list(sd_o) == list(sd_t), repr(theirs)
        for k in sd_t:
            assert sd_o[k].shape == tuple(sd_t[k].shape)
            if k in ("weight", "bias") and not isinstance(ours, nn.Embedding):   # the 1 / 0 defaults
                close(sd_o[k], sd_t[k], np.float32)
    seq_o = nn.Sequential(*[o for o, _ in module_pairs(torch)])
    seq_t = torch.nn.Sequential(*[t for _, t in module_pairs(torch)])
    assert repr(seq_o) == repr(seq_t)
    assert list(seq_o.state_dict()) == list(seq_t.state_dict())


def test_new_modules_forward_like_torch(torch, rng):
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    for ours, theirs in module_pairs(torch):
        if isinstance(ours, (nn.Embedding, nn.SmoothL1Loss, nn.HuberLoss, nn.KLDivLoss)):
            continue
        theirs.eval()
        for p in theirs.parameters():
            with torch.no_grad():
                p.uniform_(0.5, 1.5)
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        if isinstance(ours, (nn.LayerNorm, nn.GroupNorm)):
            inner = ours.normalized_shape if isinstance(ours, nn.LayerNorm) else None
            shape = (2,) + inner if inner else (2, ours.num_channels, 3)
            xi = rng.standard_normal(shape).astype(np.float32)
        elif isinstance(ours, nn.Unflatten):
            xi = rng.standard_normal((2, 6, 2)).astype(np.float32)
        else:
            xi = x
        close(ours(tc.tensor(xi)), theirs(torch.tensor(xi)), np.float32)


def test_unflatten(torch, rng):
    x = rng.standard_normal((2, 12))
    for dim, sizes in [(1, (3, 4)), (-1, [2, 2, 3]), (0, (1, 2))]:
        run_both(torch, nn.Unflatten(dim, sizes), torch.nn.Unflatten(dim, sizes), [x])
    with pytest.raises(TypeError, match="Unflatten: unflattened_size must be a tuple or list"):
        nn.Unflatten(1, 3)


# --------------------------------------------------------------------------- containers


def test_module_dict_like_torch(torch):
    ours = nn.ModuleDict({"conv": nn.Conv2d(1, 2, 3), "act": nn.ReLU()})
    theirs = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(1, 2, 3), "act": torch.nn.ReLU()})
    ours["fc"] = nn.Linear(2, 3)
    theirs["fc"] = torch.nn.Linear(2, 3)
    ours.update([("bn", nn.BatchNorm2d(2))])
    theirs.update([("bn", torch.nn.BatchNorm2d(2))])
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours) == list(theirs) == list(ours.keys())
    assert len(ours) == 4 and "conv" in ours and isinstance(ours["fc"], nn.Linear)
    assert isinstance(ours.pop("act"), nn.ReLU) and "act" not in ours
    del ours["bn"]
    assert [k for k, _ in ours.items()] == ["conv", "fc"] and len(list(ours.values())) == 2
    ours.clear()
    assert len(ours) == 0 and repr(ours) == repr(torch.nn.ModuleDict()) == "ModuleDict()"
    with pytest.raises(TypeError, match="ModuleDict.update: element #0 should be a"):
        ours.update([nn.ReLU()])


def test_parameter_list_and_dict(torch):
    def net(lib):
        class Net(lib.Module):
            def __init__(self):
                super().__init__()
                self.ws = lib.ParameterList([lib.Parameter(lib_zeros(lib, 3, 4)),
                                             lib.Parameter(lib_zeros(lib, 3))])
                self.ws.append(lib.Parameter(lib_zeros(lib, 2)))
                self.named = lib.ParameterDict({"scale": lib.Parameter(lib_zeros(lib, 1))})
                self.named["shift"] = lib.Parameter(lib_zeros(lib, 2))
        return Net()

    def lib_zeros(lib, *shape):
        return (torch if lib is torch.nn else tc).zeros(*shape)

    ours, theirs = net(nn), net(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == \
        ["ws.0", "ws.1", "ws.2", "named.scale", "named.shift"]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert len(ours.ws) == 3 and ours.ws[-1].shape == (2,) and len(ours.ws[1:]) == 2
    assert [p.shape for p in ours.ws] == [(3, 4), (3,), (2,)]
    assert list(ours.named) == ["scale", "shift"] and "scale" in ours.named
    # a plain Tensor is wrapped in a Parameter, as PyTorch does
    ours.ws.append(tc.ones(2))
    ours.named["extra"] = tc.ones(1)
    assert isinstance(ours.ws[3], nn.Parameter) and isinstance(ours.named["extra"], nn.Parameter)
    assert repr(nn.ParameterList([nn.Parameter(tc.zeros(3, 4))])) == \
        "ParameterList(\n    (0): Parameter containing: [float32 of size 3x4]\n)"
    assert repr(nn.ParameterDict()) == "ParameterDict()"
    assert ours.named.pop("extra").shape == (1,) and ours.named.get("nope") is None
    with pytest.raises(TypeError, match="ParameterList.append: expected a Parameter or a Tensor"):
        ours.ws.append(3)


# --------------------------------------------------------------------------- hooks


def test_forward_hooks_like_torch(torch, rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    results = {}
    for lib, mk in ((nn, tc.tensor), (torch.nn, torch.tensor)):
        calls = results[lib] = []
        lin = lib.Linear(3, 2)
        lin.weight.data.fill_(0.5)
        lin.bias.data.zero_()
        h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
        assert lib is torch.nn or isinstance(h1, nn.RemovableHandle)
        h2 = lin.register_forward_pre_hook(lambda m, args, calls=calls: calls.append("pre-first"),
                                           prepend=True)
        h3 = lin.register_forward_hook(lambda m, args, out: out + 1)
        h4 = lin.register_forward_hook(
            lambda m, args, kwargs, out, calls=calls: calls.append(("post", len(args))), with_kwargs=True)
        y1 = lin(mk(x))
        h1.remove()
        h3.remove()
        y2 = lin(mk(x))
        with lin.register_forward_hook(lambda m, a, out: out * 0):
            y3 = lin(mk(x))
        y4 = lin(mk(x))
        h2.remove()
        h4.remove()
        h4.remove()                                   # removing twice is harmless
        results[lib] = [np.asarray(y.detach().numpy() if hasattr(y, "detach") else y.array)
                        for y in (y1, y2, y3, y4)] + [list(calls)]
    ours, theirs = results[nn], results[torch.nn]
    for a, b in zip(ours[:4], theirs[:4]):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert ours[4] == theirs[4]


def test_forward_pre_hook_with_kwargs_and_single_value():
    seen = []
    m = nn.Identity()
    m.register_forward_pre_hook(lambda mod, args: args[0] + 1)          # a non-tuple is wrapped
    m.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs), with_kwargs=True)
    assert m(tc.tensor(1.0)).item() == 2.0 and seen == [{}]
    m2 = nn.Identity()
    m2.register_forward_pre_hook(lambda mod, args, kwargs: 5, with_kwargs=True)
    with pytest.raises(RuntimeError, match="forward pre-hook must return None or a tuple"):
        m2(tc.tensor(1.0))
    with pytest.raises(TypeError, match="hook must be callable"):
        m2.register_forward_hook(3)


# --------------------------------------------------------------------------- Module API audit


def _net(lib, base):
    """One model in ``lib`` (tinyconv.nn or torch.nn), its tensors made by ``base``."""
    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.features = lib.Sequential(lib.Conv2d(1, 2, 3), lib.ReLU(), lib.BatchNorm2d(2))
            self.heads = lib.ModuleList([lib.Linear(2, 2), lib.Linear(2, 1)])
            self.register_buffer("scratch", base.zeros(2), persistent=False)
            self.register_buffer("table", base.ones(3))
            self.register_parameter("temperature", lib.Parameter(base.ones(1)))
    return Net()


def test_module_api_matches_torch(torch):
    ours, theirs = _net(nn, tc), _net(torch.nn, torch)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert len(list(ours.children())) == len(list(theirs.children())) == 2
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert [n for n, _ in ours.named_parameters(prefix="net")] == \
        [n for n, _ in theirs.named_parameters(prefix="net")]
    assert [n for n, _ in ours.named_parameters(recurse=False)] == ["temperature"]
    assert len(list(ours.parameters(recurse=False))) == len(list(theirs.parameters(recurse=False))) == 1
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())          # "scratch" is not in it
    assert "scratch" not in ours.state_dict()
    assert list(ours.state_dict(prefix="m.")) == list(theirs.state_dict(prefix="m."))
    kept = ours.state_dict(keep_vars=True)
    assert kept["temperature"] is ours.temperature
    assert ours.get_submodule("features.2") is ours.features[2]
    with pytest.raises(AttributeError, match="has no submodule 'nope'"):
        ours.get_submodule("features.nope")
    assert ours.train() is ours and ours.eval() is ours and not ours.features[2].training
    assert ours.float() is ours and ours.double() is ours and ours.temperature.dtype == np.float64
    assert ours.to(tc.float32) is ours and ours.features[0].weight.dtype == np.float32
    assert ours.requires_grad_(False) is ours and not ours.temperature.requires_grad
    ours.requires_grad_(True)
    names = []
    assert ours.apply(lambda m: names.append(type(m).__name__)) is ours
    theirs_names = []
    theirs.apply(lambda m: theirs_names.append(type(m).__name__))
    assert names == theirs_names
    # zero_grad sets to None by default, as PyTorch 2
    (ours.heads[0](tc.ones(1, 2)).sum()).backward()
    assert ours.heads[0].weight.grad is not None
    ours.zero_grad()
    assert ours.heads[0].weight.grad is None
    assert inspect.signature(nn.Module.zero_grad).parameters["set_to_none"].default is True


def test_load_state_dict_strict_false_returns_the_same_keys_as_torch(torch):
    ours, theirs = _net(nn, tc), _net(torch.nn, torch)
    sd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    del sd["table"]
    sd["extra.weight"] = np.zeros(2, dtype=np.float32)
    r_o = ours.load_state_dict(sd, strict=False)
    r_t = theirs.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=False)
    assert r_o.missing_keys == r_t.missing_keys and r_o.unexpected_keys == r_t.unexpected_keys
    assert r_o._fields == ("missing_keys", "unexpected_keys")
    with pytest.raises(ValueError, match="missing keys: table"):
        ours.load_state_dict(sd)
    with pytest.raises(NotImplementedError, match="assign=True"):
        ours.load_state_dict(sd, assign=True)


def test_sequential_and_module_list_like_torch(torch):
    for lib in (nn, torch.nn):
        seq = lib.Sequential(lib.Linear(2, 3), lib.ReLU(), lib.Linear(3, 1))
        seq.append(lib.Sigmoid())
        assert len(seq) == 4 and isinstance(seq[-1], lib.Sigmoid)
        assert isinstance(seq[1:3], lib.Sequential) and len(seq[1:3]) == 2
        ml = lib.ModuleList([lib.ReLU()])
        ml.extend([lib.Tanh(), lib.Sigmoid()])
        ml.insert(1, lib.Identity())
        assert [type(m).__name__ for m in ml] == ["ReLU", "Identity", "Tanh", "Sigmoid"]
    ours = nn.Sequential(OrderedDict(a=nn.Linear(2, 3), b=nn.ReLU()))
    theirs = torch.nn.Sequential(OrderedDict(a=torch.nn.Linear(2, 3), b=torch.nn.ReLU()))
    assert repr(ours) == repr(theirs) and repr(ours[:1]) == repr(theirs[:1])


# --------------------------------------------------------------------------- nn.init


INIT_NAMES = ["uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
              "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
              "calculate_gain"]


@pytest.mark.parametrize("name", INIT_NAMES)
def test_init_signatures_are_torchs(torch, name):
    ours = inspect.signature(getattr(nn.init, name)).parameters
    theirs = inspect.signature(getattr(torch.nn.init, name)).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]


def test_init_values(torch):
    w = tc.zeros(2000)
    nn.init.trunc_normal_(w, mean=0.5, std=1.0, a=-0.5, b=1.0)
    assert w.array.min() >= -0.5 and w.array.max() <= 1.0 and len(np.unique(w.array)) > 1000
    for shape, groups in [((4, 3, 3, 3), 1), ((4, 2, 3), 2), ((2, 4, 3, 3, 3), 1)]:
        ours, theirs = tc.zeros(*shape), torch.zeros(*shape)
        nn.init.dirac_(ours, groups)
        torch.nn.init.dirac_(theirs, groups)
        close(ours, theirs, np.float32)
    ours, theirs = tc.zeros(3, 5), torch.zeros(3, 5)
    close(nn.init.eye_(ours), torch.nn.init.eye_(theirs), np.float32)
    for shape in [(3, 5), (5, 3), (4, 2, 3)]:
        q = nn.init.orthogonal_(tc.zeros(*shape, dtype=tc.float64), gain=2.0).array.reshape(shape[0], -1)
        small = q @ q.T if shape[0] <= q.shape[1] else q.T @ q
        np.testing.assert_allclose(small, 4 * np.eye(len(small)), atol=1e-12)
    a = nn.init.kaiming_normal_(tc.zeros(3, 4), generator=np.random.default_rng(5))
    b = nn.init.kaiming_normal_(tc.zeros(3, 4), generator=np.random.default_rng(5))
    assert np.array_equal(a.array, b.array)
    with pytest.raises(TypeError, match="uniform_: generator must be a numpy.random.Generator"):
        nn.init.uniform_(tc.zeros(2), generator=3)
    with pytest.raises(ValueError, match="eye_: only tensors with 2 dimensions"):
        nn.init.eye_(tc.zeros(2, 2, 2))


# --------------------------------------------------------------------------- 1-d layers, adaptive max pool


@pytest.mark.parametrize("kw,cin", [({}, 4), ({"stride": 2, "padding": 1, "dilation": 2, "groups": 2}, 4),
                                    ({"padding": "same"}, 2), ({"padding": "valid", "stride": (3,)}, 2)])
def test_conv1d_matches_torch(kernel_mode, torch, rng, kw, cin):
    groups = kw.get("groups", 1)
    x, w = rng.standard_normal((2, cin, 9)), rng.standard_normal((6, cin // groups, 3))
    b = rng.standard_normal(6)
    run_both(torch, F.conv1d, torch.nn.functional.conv1d, [x, w, b], **kw)
    run_both(torch, F.conv1d, torch.nn.functional.conv1d, [x[0], w, b], **kw)          # unbatched (C, L)
    assert tc.gradcheck(lambda *t: F.conv1d(*t, **kw), [leaf(x[:1, :, :6]), leaf(w), leaf(b)])


@pytest.mark.parametrize("kw", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
                                {"kernel_size": 2, "stride": 1, "dilation": 2, "ceil_mode": True}])
def test_max_pool1d_matches_torch(kernel_mode, torch, rng, kw):
    x = rng.standard_normal((2, 3, 9))
    run_both(torch, F.max_pool1d, torch.nn.functional.max_pool1d, [x], **kw)
    io = F.max_pool1d(tc.tensor(x), return_indices=True, **kw)[1]
    it = torch.nn.functional.max_pool1d(torch.tensor(x), return_indices=True, **kw)[1]
    assert np.array_equal(io.array, it.numpy())
    assert tc.gradcheck(lambda t: F.max_pool1d(t, **kw), [leaf(x[:1])])


@pytest.mark.parametrize("kw", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
                                {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False,
                                 "ceil_mode": True}])
def test_avg_pool1d_matches_torch(kernel_mode, torch, rng, kw):
    x = rng.standard_normal((2, 3, 10))
    run_both(torch, F.avg_pool1d, torch.nn.functional.avg_pool1d, [x], **kw)
    run_both(torch, F.avg_pool1d, torch.nn.functional.avg_pool1d, [x[0]], **kw)
    assert tc.gradcheck(lambda t: F.avg_pool1d(t, **kw), [leaf(x[:1])])


@pytest.mark.parametrize("out", [(3, 2), (2, 4), (7, 5), (10, 6), 1, (None, 2)])
def test_adaptive_max_pool2d_matches_torch(torch, rng, out):
    x = rng.standard_normal((2, 3, 7, 5))
    run_both(torch, F.adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d, [x], output_size=out)
    run_both(torch, F.adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d, [x[0]], output_size=out)
    io = F.adaptive_max_pool2d(tc.tensor(x), out, return_indices=True)[1]
    it = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)[1]
    assert np.array_equal(io.array, it.numpy())
    assert tc.gradcheck(lambda t: F.adaptive_max_pool2d(t, out), [leaf(x[:1, :2])])


def test_one_dim_and_adaptive_modules_like_torch(torch, rng):
    specs = [("Conv1d", (1, 2, 3), {}), ("Conv1d", (2, 4, 3), dict(stride=2, padding=1, dilation=2, groups=2,
                                                                    bias=False)),
             ("Conv1d", (1, 2, 3), {"padding": "same"}), ("MaxPool1d", (2,), {}),
             ("MaxPool1d", (3, 1, 1, 2, True), {}), ("AvgPool1d", (2,), {}),
             ("AvgPool1d", (3, 1, 1, True, False), {}), ("AdaptiveMaxPool2d", ((2, 3),), {}),
             ("AdaptiveMaxPool2d", ((None, 3),), {}), ("Softmax2d", (), {})]
    for name, a, k in specs:
        ours, theirs = getattr(nn, name)(*a, **k), getattr(torch.nn, name)(*a, **k)
        assert repr(ours) == repr(theirs)
        assert {n: p.shape for n, p in ours.state_dict().items()} == \
            {n: tuple(p.shape) for n, p in theirs.state_dict().items()}
        ours.load_state_dict({n: p.numpy() for n, p in theirs.state_dict().items()})
        cin = ours.in_channels if name == "Conv1d" else 2
        x = rng.standard_normal((2, cin, 8) if "1d" in name else (2, cin, 6, 5)).astype(np.float32)
        close(ours(tc.tensor(x)), theirs(torch.tensor(x)), np.float32)


def test_one_dim_bad_input(rng):
    x = leaf(rng.standard_normal((2, 3, 8)))
    with pytest.raises(ValueError, match=r"conv1d: expected input to be 2-d or 3-d"):
        F.conv1d(leaf(np.ones((1, 1, 1, 3))), leaf(np.ones((1, 1, 1))))
    with pytest.raises(ValueError, match=r"conv1d: expected weight to be 3-d"):
        F.conv1d(x, leaf(np.ones((1, 3, 1, 1))))
    with pytest.raises(TypeError, match=r"max_pool1d: kernel_size must be an int or a 1-tuple"):
        F.max_pool1d(x, (2, 2))
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: expected input to be 4-d"):
        F.adaptive_max_pool2d(x[0, 0], 2)
    with pytest.raises(ValueError, match=r"Softmax2d: expected input to be 3-d or 4-d"):
        nn.Softmax2d()(x[0])


# --------------------------------------------------------------------------- interpolate (nearest), Upsample

INTERP = [((2, 3, 4, 5), {"scale_factor": 2}), ((2, 3, 4, 5), {"size": (7, 3)}),
          ((2, 3, 5), {"scale_factor": 1.7}),
          ((1, 2, 5, 4), {"scale_factor": (0.6, 2.5)}),
          ((1, 2, 5, 4), {"scale_factor": 1.5, "recompute_scale_factor": True}), ((2, 3, 6), {"size": 4})]


@pytest.mark.parametrize("shape,kw", INTERP)
def test_interpolate_nearest_matches_torch(torch, rng, shape, kw):
    x = rng.standard_normal(shape)
    run_both(torch, F.interpolate, torch.nn.functional.interpolate, [x], **kw)
    assert tc.gradcheck(lambda t: F.interpolate(t, **kw), [leaf(x[:1, :1])])


def test_upsample_module_and_bad_input(torch, rng):
    for kw in [{"scale_factor": 2}, {"size": (4, 5)}, {"scale_factor": (2, 3)}]:
        ours, theirs = nn.Upsample(**kw), torch.nn.Upsample(**kw)
        assert repr(ours) == repr(theirs)
        x = rng.standard_normal((1, 2, 3, 2)).astype(np.float32)
        close(ours(tc.tensor(x)), theirs(torch.tensor(x)), np.float32)
    x = leaf(np.ones((1, 1, 2, 2)))
    with pytest.raises(NotImplementedError, match="interpolate: only mode='nearest' is supported"):
        F.interpolate(x, scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="interpolate: exactly one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="interpolate: size must be a number or a sequence of 2"):
        F.interpolate(x, size=(1, 2, 3))
