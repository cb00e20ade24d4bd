"""Writes behind autograd's back count: optimizers, ``zero_grad``, ``nn.init`` and the other
library code that writes a tensor's memory in place bumps its version counter, as PyTorch's.

Each case is one script run on tinyconv and on PyTorch (``lib``); the two must agree: a
backward whose graph saved a parameter refuses to run after ``opt.step()`` in both (with
PyTorch's message), a backward that saved none still runs and gives the same gradients,
and ``_version`` advances by the same counts where PyTorch's are one write per call.
"""
import numpy as np
import pytest

import tinyconv as tc

MODIFIED = "one of the variables needed for gradient computation has been modified by an inplace operation"

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.1)),                       # decoupled decay: two writes per step
    ("AdamW", dict(lr=0.1, weight_decay=0.0)),
    ("RMSprop", dict(lr=0.1, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adadelta", dict(lr=0.1)),
]
IDS = [f"{name}-{'-'.join(map(str, kw.values()))}" for name, kw in OPTIMIZERS]


def _params(lib):
    values = np.linspace(-1, 1, 6).reshape(2, 3)
    return [lib.nn.Parameter(lib.tensor(values * (i + 1), dtype=lib.float64)) for i in range(2)]


@pytest.fixture(params=["reference", "fast"])
def kernels(request):
    with tc.use_kernels(request.param):
        yield


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=IDS)
def test_step_between_forward_and_backward_raises_as_torch(torch, kernels, name, kw):
    for lib in (torch, tc):
        p, q = _params(lib)
        opt = getattr(lib.optim, name)([p, q], **kw)
        loss = (p * p).sum() + q.sum()            # p saved by its MulBackward, q by nothing
        p.grad, q.grad = lib.ones_like(p), lib.ones_like(q)
        before = p._version
        opt.step()
        assert p._version > before
        with pytest.raises(RuntimeError, match=MODIFIED):
            loss.backward()


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=IDS)
def test_backward_that_saved_no_parameter_runs_after_step_as_torch(torch, kernels, name, kw):
    def case(lib):
        p, q = _params(lib)
        opt = getattr(lib.optim, name)([p, q], **kw)
        loss = ((p + 1) * 3).sum() + q.sum()      # nothing of p or q is saved
        p.grad, q.grad = lib.ones_like(p), lib.ones_like(q)
        opt.step()
        p.grad = q.grad = None
        loss.backward()
        return [np.asarray(t.detach().numpy() if lib is torch else t.array)
                for t in (p.grad, q.grad, p.detach(), q.detach())]
    for ours, theirs in zip(case(tc), case(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=IDS)
def test_versions_advance_per_step_as_torch(torch, kernels, name, kw):
    def case(lib):
        p, q = _params(lib)
        opt = getattr(lib.optim, name)([p, q], **kw)
        seen = []
        for _ in range(3):
            opt.zero_grad()
            ((p * p).sum() + (q * q).sum()).backward()
            opt.step()
            seen.append((p._version, q._version))
        q.grad = None                              # a parameter without a gradient is not written
        opt.step()
        return seen + [(p._version, q._version)]
    assert case(tc) == case(torch)


def test_linear_layer_saved_by_backward_then_stepped_raises_as_torch(torch):
    for lib in (torch, tc):
        lib.manual_seed(0)
        layer = lib.nn.Linear(3, 2)
        x = lib.ones(4, 3, requires_grad=True)     # the weight is saved for x's gradient
        opt = lib.optim.SGD(layer.parameters(), lr=0.1)
        layer(x).sum().backward()
        loss = layer(x).sum()
        opt.step()
        with pytest.raises(RuntimeError, match=MODIFIED):
            loss.backward()


def test_zero_grad_in_place_bumps_the_gradient_version_as_torch(torch):
    def case(lib):
        layer = lib.nn.Linear(3, 2)
        opt = lib.optim.SGD(layer.parameters(), lr=0.1)
        seen = []
        for zero in (opt.zero_grad, layer.zero_grad):
            layer(lib.ones(1, 3)).sum().backward()
            g = layer.weight.grad
            before = g._version
            zero(set_to_none=False)
            seen.append([g._version - before, layer.weight.grad is g, float(g.sum())])
        return seen
    assert case(tc) == case(torch)


INITS = [("uniform_", ()), ("normal_", ()), ("zeros_", ()), ("ones_", ()), ("constant_", (0.5,)),
         ("xavier_uniform_", ()), ("xavier_normal_", ()), ("kaiming_uniform_", ()),
         ("kaiming_normal_", ()), ("eye_", ())]


@pytest.mark.parametrize("name,args", INITS, ids=[n for n, _ in INITS])
def test_init_functions_bump_the_version_once_as_torch(torch, name, args):
    def case(lib):
        t = lib.zeros(3, 4)
        getattr(lib.nn.init, name)(t, *args)
        return t._version
    assert case(tc) == case(torch) == 1


@pytest.mark.parametrize("name,shape", [("orthogonal_", (3, 4)), ("dirac_", (3, 4, 3)),
                                        ("trunc_normal_", (3, 4))])
def test_init_functions_that_torch_writes_in_steps_bump_the_version(torch, name, shape):
    for lib in (tc, torch):
        t = lib.zeros(*shape)
        getattr(lib.nn.init, name)(t)
        assert t._version >= 1


def test_init_of_a_saved_tensor_makes_backward_fail_as_torch(torch):
    for lib in (torch, tc):
        w = lib.ones(3, requires_grad=True)
        x = lib.ones(3, requires_grad=True)
        y = (w * x).sum()
        with lib.no_grad():
            lib.nn.init.normal_(w)
        with pytest.raises(RuntimeError, match=MODIFIED):
            y.backward()


def test_module_writes_bump_versions_as_torch(torch):
    def case(lib):
        lib.manual_seed(0)
        bn = lib.nn.BatchNorm2d(3)
        seen = [bn.running_mean._version, bn.running_var._version, bn.num_batches_tracked._version]
        bn(lib.ones(2, 3, 2, 2))                   # batch_norm's running stats: not counted, as torch
        seen += [bn.running_mean._version, bn.running_var._version, bn.num_batches_tracked._version]
        bn.reset_running_stats()
        seen += [bn.running_mean._version, bn.running_var._version, bn.num_batches_tracked._version]
        linear = lib.nn.Linear(3, 2)
        seen += [linear.weight._version, linear.bias._version]
        other = lib.nn.Linear(3, 2)
        before = other.weight._version
        other.load_state_dict(linear.state_dict())
        seen.append(other.weight._version - before)
        seen.append(lib.nn.Embedding(5, 3, padding_idx=1).weight._version)
        return seen
    assert case(tc) == case(torch)


def test_grad_clipping_bumps_the_gradient_version(torch):
    def case(lib):
        p = lib.nn.Parameter(lib.tensor([3.0, 4.0]))
        (p * p).sum().backward()
        g = p.grad
        before = g._version
        lib.nn.utils.clip_grad_norm_([p], 1.0)
        norm_bump = g._version - before
        before = g._version
        lib.nn.utils.clip_grad_value_([p], 0.1)
        return norm_bump, g._version > before, p.grad is g
    assert case(tc) == case(torch)


def test_alexnet_initialisers_bump_the_versions():
    from tinyconv.models.alexnet import kaiming_init_, paper_init_
    layer = tc.nn.Sequential(tc.nn.Conv2d(3, 4, 3), tc.nn.Linear(4, 2))
    before = [p._version for p in layer.parameters()]
    kaiming_init_(layer)
    paper_init_(layer)
    assert [p._version for p in layer.parameters()] == [v + 2 for v in before]
