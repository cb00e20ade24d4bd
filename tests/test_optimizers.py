"""Adam, AdamW, RMSprop, Adagrad, Adadelta against torch.optim step by step (float64, a tiny
model's gradients, two param groups, both kernel paths), their state_dicts (round trip and
PyTorch's layout), the fused Adam kernel against its reference, argument errors, and
nn.utils.clip_grad_norm_ / clip_grad_value_ against PyTorch."""
import math

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import backend, nn, optim
from tinyconv.kernels import optim_cuda, optim_numba
from tinyconv.optim import adam_update_reference

STEPS = 20

# per optimizer: option sets for the constructor, and what the second param group overrides
CONFIGS = {
    "Adam": ([dict(), dict(lr=0.01, amsgrad=True), dict(weight_decay=0.1, maximize=True),
              dict(lr=0.03, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05, amsgrad=True),
              dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True)],
             {"lr": 0.004, "betas": (0.5, 0.95)}),
    "AdamW": ([dict(), dict(lr=0.02, weight_decay=0.1, amsgrad=True), dict(lr=0.01, maximize=True)],
              {"weight_decay": 0.3, "amsgrad": True}),
    "RMSprop": ([dict(), dict(momentum=0.9), dict(centered=True, lr=0.003),
                 dict(momentum=0.5, centered=True, weight_decay=0.1, alpha=0.9, lr=0.005),
                 dict(maximize=True)],
                {"lr": 0.001, "alpha": 0.8}),
    "Adagrad": ([dict(), dict(lr_decay=0.1), dict(initial_accumulator_value=0.5, weight_decay=0.1),
                 dict(maximize=True, eps=1e-6, lr=0.05)],
                {"lr": 0.2, "lr_decay": 0.05}),
    "Adadelta": ([dict(), dict(rho=0.5, lr=0.5), dict(weight_decay=0.1, eps=1e-4), dict(maximize=True)],
                 {"lr": 2.0, "rho": 0.95}),
}
CASES = [(name, i) for name, (configs, _) in CONFIGS.items() for i in range(len(configs))]


def _case_id(case):
    name, i = case
    return f"{name}-{','.join(f'{k}={v}' for k, v in CONFIGS[name][0][i].items()) or 'defaults'}"


class TinyModel:
    """x -> relu(x W1^T + b1) W2^T + b2, MSE against y; the same arithmetic in either library.

    ``unused`` takes no part in the loss, so its .grad stays None and the optimizers skip it.
    """

    def __init__(self, lib, make_param, rng):
        self.lib = lib
        shapes = [(5, 4), (5,), (3, 5), (3,), (2,)]
        self.params = [make_param(rng.standard_normal(s) * 0.5) for s in shapes]
        self.x = lib.tensor(rng.standard_normal((8, 4)))
        self.y = lib.tensor(rng.standard_normal((8, 3)))

    def groups(self, group1):
        w1, b1, w2, b2, unused = self.params
        return [{"params": [w1, b1]}, {"params": [w2, b2, unused], **group1}]

    def backward(self):
        w1, b1, w2, b2, _ = self.params
        h = (self.x @ w1.T + b1).clamp(min=0)
        loss = (((h @ w2.T + b2) - self.y) ** 2).mean()
        loss.backward()
        return loss.item()

    def arrays(self):
        return [np.array(p.detach().numpy() if self.lib is not tc else p.array) for p in self.params]


def _models(torch, seed=0):
    ours = TinyModel(tc, lambda a: nn.Parameter(a.copy()), np.random.default_rng(seed))
    theirs = TinyModel(torch, lambda a: torch.nn.Parameter(torch.tensor(a)), np.random.default_rng(seed))
    return ours, theirs


def _train(model, opt, steps):
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        model.backward()
        opt.step()
        trace.append(model.arrays())
    return trace


def _assert_traces_close(ours, theirs, rtol=1e-11):
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for k, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, err_msg=f"step {step + 1}, param {k}")


def _state_arrays(state):
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in state.items()}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_optimizer_matches_pytorch_step_by_step(torch, kernel_mode, case):
    name, i = case
    configs, group1 = CONFIGS[name]
    ours, theirs = _models(torch)
    o_opt = getattr(optim, name)(ours.groups(group1), **configs[i])
    t_opt = getattr(torch.optim, name)(theirs.groups(group1), **configs[i])
    o_trace, t_trace = _train(ours, o_opt, STEPS), _train(theirs, t_opt, STEPS)
    _assert_traces_close(o_trace, t_trace)
    assert not np.array_equal(o_trace[-1][0], o_trace[0][0])               # it did train
    np.testing.assert_array_equal(o_trace[-1][4], o_trace[0][4])           # no grad: never moved
    # the state, entry by entry, in PyTorch's layout
    o_sd, t_sd = o_opt.state_dict(), t_opt.state_dict()
    assert list(o_sd["state"]) == list(t_sd["state"])
    for idx in t_sd["state"]:
        o_state, t_state = _state_arrays(o_sd["state"][idx]), _state_arrays(t_sd["state"][idx])
        assert list(o_state) == list(t_state), idx
        for k in t_state:
            assert o_state[k].dtype == t_state[k].dtype and o_state[k].shape == t_state[k].shape, (idx, k)
            np.testing.assert_allclose(o_state[k], t_state[k], rtol=1e-10, atol=1e-13, err_msg=f"{idx} {k}")
    for o_group, t_group in zip(o_sd["param_groups"], t_sd["param_groups"]):
        for k, v in o_group.items():
            assert t_group[k] == v, k
    assert o_sd["state"][0]["step"].shape == () and float(o_sd["state"][0]["step"]) == STEPS


@pytest.mark.parametrize("name", CONFIGS)
def test_float32_matches_pytorch(torch, kernel_mode, name):
    rng = np.random.default_rng(1)
    init = rng.standard_normal((32, 16)).astype(np.float32)
    grads = [rng.standard_normal(init.shape).astype(np.float32) for _ in range(10)]
    cfg = CONFIGS[name][0][1]
    p, tp = nn.Parameter(init.copy()), torch.nn.Parameter(torch.tensor(init))
    opt, t_opt = getattr(optim, name)([p], **cfg), getattr(torch.optim, name)([tp], **cfg)
    for g in grads:
        p.grad, tp.grad = tc.tensor(g), torch.tensor(g)
        opt.step()
        t_opt.step()
    assert p.dtype == np.float32
    assert all(v.dtype == np.float32 for k, v in opt.state[p].items() if k != "step")
    np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_state_dict_round_trip_resumes_exactly(torch, kernel_mode, case):
    name, i = case
    configs, group1 = CONFIGS[name]
    ours, _ = _models(torch)
    straight = _train(ours, getattr(optim, name)(ours.groups(group1), **configs[i]), STEPS)

    first, _ = _models(torch)
    opt = getattr(optim, name)(first.groups(group1), **configs[i])
    _train(first, opt, 10)
    sd = opt.state_dict()
    inside = [a for s in opt.state.values() for a in s.values()]
    for state in sd["state"].values():                  # CPU copies: changing them changes nothing inside
        for v in state.values():
            assert type(v) is np.ndarray and all(v is not a for a in inside)
    resumed, _ = _models(torch)
    for p, q in zip(resumed.params, first.params):
        p.array[...] = q.array
    opt2 = getattr(optim, name)(resumed.groups({}), lr=123.0)      # hyper-parameters come from the state
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    rest = _train(resumed, opt2, STEPS - 10)
    for a, b in zip(rest, straight[10:]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("case", [(n, len(c) - 1) for n, (c, _) in CONFIGS.items()], ids=_case_id)
def test_loads_a_pytorch_state_dict_and_continues_like_pytorch(torch, case):
    """PyTorch's optimizer state_dict with its tensors turned into NumPy arrays (and numbers) loads."""
    name, i = case
    configs, group1 = CONFIGS[name]
    _, theirs = _models(torch)
    t_opt = getattr(torch.optim, name)(theirs.groups(group1), **configs[i])
    _train(theirs, t_opt, 10)
    t_sd = t_opt.state_dict()
    converted = {"state": {idx: {k: (v.item() if k == "step" and idx % 2 else v.numpy())   # a number, or not
                                 for k, v in s.items()}
                           for idx, s in t_sd["state"].items()},
                 "param_groups": t_sd["param_groups"]}
    ours, _ = _models(torch)
    for p, tp in zip(ours.params, theirs.params):
        p.array[...] = tp.detach().numpy()
    opt = getattr(optim, name)(ours.groups({}))
    opt.load_state_dict(converted)
    for p in ours.params[:4]:
        assert opt.state[p]["step"].dtype == np.float32 and opt.state[p]["step"].shape == ()
    _assert_traces_close(_train(ours, opt, 10), _train(theirs, t_opt, 10))


def test_adagrad_makes_its_state_up_front_like_pytorch(torch):
    ours, theirs = _models(torch)
    o = optim.Adagrad(ours.groups({}), initial_accumulator_value=0.25)
    t = torch.optim.Adagrad(theirs.groups({}), initial_accumulator_value=0.25)
    o_sd, t_sd = o.state_dict(), t.state_dict()
    assert list(o_sd["state"]) == list(t_sd["state"]) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(o_sd["state"][4]["sum"], t_sd["state"][4]["sum"].numpy())
    assert float(o_sd["state"][0]["step"]) == 0.0


def test_adam_state_follows_the_parameter_dtype():
    m = nn.Linear(3, 2)
    opt = optim.Adam(m.parameters(), lr=0.01, amsgrad=True)
    m(tc.randn(4, 3)).sum().backward()
    opt.step()
    m.double()
    m.zero_grad()
    m(tc.randn(4, 3, dtype=np.float64)).sum().backward()
    opt.step()
    for s in opt.state.values():
        assert all(v.dtype == np.float64 for k, v in s.items() if k != "step")
        assert s["step"].dtype == np.float32 and float(s["step"]) == 2


def test_zero_grad_sets_to_none_and_skipped_params_keep_no_state():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.AdamW([a, b], lr=0.1)
    a.grad = tc.tensor(np.array([1.0, -2.0, 3.0]))
    opt.step()
    assert b not in opt.state and np.array_equal(b.array, np.ones(2))
    np.testing.assert_array_equal(a.grad.array, [1.0, -2.0, 3.0])         # the gradient is not written
    opt.zero_grad()
    assert a.grad is None
    before = a.array.copy()
    opt.step()                                                             # nothing has a gradient
    np.testing.assert_array_equal(a.array, before)
    a.grad = tc.ones_like(a)
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.array.any()


def test_add_param_group_with_its_own_options_matches_pytorch(torch):
    ours, theirs = _models(torch)
    o = optim.Adam(ours.params[:2], lr=0.01)
    t = torch.optim.Adam(theirs.params[:2], lr=0.01)
    o.add_param_group({"params": ours.params[2:], "amsgrad": True, "lr": 0.05})
    t.add_param_group({"params": theirs.params[2:], "amsgrad": True, "lr": 0.05})
    assert o.param_groups[1]["betas"] == (0.9, 0.999) and o.param_groups[1]["amsgrad"] is True
    _assert_traces_close(_train(ours, o, STEPS), _train(theirs, t, STEPS))
    with pytest.raises(ValueError, match="more than one parameter group"):
        o.add_param_group({"params": ours.params[:1]})


def test_adamw_is_adam_with_decoupled_decay_and_keeps_it_after_loading():
    p1, p2 = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))
    a = optim.AdamW([p1], lr=0.1, weight_decay=0.2)
    b = optim.Adam([p2], lr=0.1, weight_decay=0.2, decoupled_weight_decay=True)
    for _ in range(3):
        p1.grad = p2.grad = tc.tensor(np.array([0.5, -1.0, 2.0]))
        a.step()
        b.step()
    np.testing.assert_array_equal(p1.array, p2.array)
    sd = a.state_dict()
    sd["param_groups"][0]["decoupled_weight_decay"] = False
    a.load_state_dict(sd)
    assert a.param_groups[0]["decoupled_weight_decay"] is True            # as PyTorch's AdamW


# --------------------------------------------------------------------------- the kernel seam


@pytest.mark.parametrize("name, expected", [("Adam", "adam_update"), ("AdamW", "adam_update"),
                                            ("RMSprop", "rmsprop_update"), ("Adagrad", "adagrad_update"),
                                            ("Adadelta", "adadelta_update")])
def test_optimizers_dispatch_through_the_kernel_seam(monkeypatch, name, expected):
    import tinyconv.optim.optimizer as base
    asked = []
    real = base.kernel

    def spy(family, kname, arr):
        asked.append((family, kname))
        return real(family, kname, arr)

    monkeypatch.setattr(base, "kernel", spy)
    p = nn.Parameter(np.ones((2, 3)))
    opt = getattr(optim, name)([p])
    p.grad = tc.ones_like(p)
    with tc.use_kernels("fast"):
        opt.step()
    assert asked == [("optim", expected)]


def test_adam_fast_mode_runs_the_numba_kernel_and_reference_mode_hides_it():
    x = np.zeros(3)
    with tc.use_kernels("fast"):
        assert backend.kernel("optim", "adam_update", x) is optim_numba.adam_update
        assert backend.kernel("optim", "rmsprop_update", x) is None            # no kernel: the rule runs
    with tc.use_kernels("reference"):
        assert backend.kernel("optim", "adam_update", x) is None


def _adam_arrays(rng, n, dtype, amsgrad):
    p, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(dtype)
    vmax = np.abs(rng.standard_normal(n)).astype(dtype) if amsgrad else None
    return p, g, m, v, vmax


ADAM_OPTIONS = [  # (amsgrad, maximize, decoupled, weight_decay)
    (False, False, False, 0.0), (True, False, False, 0.0), (False, True, False, 0.1),
    (True, True, True, 0.1), (False, False, True, 0.05)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amsgrad, maximize, decoupled, wd", ADAM_OPTIONS)
@pytest.mark.parametrize("n", [1, 7, 100_000])                 # 100k: past the one-thread cutoff
def test_numba_adam_update_equals_reference(rng, dtype, amsgrad, maximize, decoupled, wd, n):
    arrays = _adam_arrays(rng, n, dtype, amsgrad)
    fast = [None if a is None else a.copy() for a in arrays]
    ref = [None if a is None else a.copy() for a in arrays]
    for step in range(1, 4):
        g = rng.standard_normal(n).astype(dtype)
        optim_numba.adam_update(fast[0], g, fast[2], fast[3], fast[4], 0.01, 0.9, 0.999, 1e-8, wd,
                                float(step), maximize, decoupled)
        g_before = g.copy()
        adam_update_reference(ref[0], g, ref[2], ref[3], ref[4], 0.01, 0.9, 0.999, 1e-8, wd, float(step),
                              maximize, decoupled)
        np.testing.assert_array_equal(g, g_before)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for a, b in zip(fast, ref):
        if a is not None:
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("update", [optim_numba.adam_update, optim_cuda.adam_update], ids=["numba", "cuda"])
def test_adam_kernels_reject_mismatched_arrays_before_touching_memory(update):
    p = np.ones(4)
    ok = dict(exp_avg=np.zeros(4), exp_avg_sq=np.zeros(4), max_exp_avg_sq=None)
    args = (0.01, 0.9, 0.999, 1e-8, 0.0, 1.0, False, False)
    with pytest.raises(ValueError, match=r"adam_update: g has shape \(3,\), p has \(4,\)"):
        update(p, np.ones(3), *ok.values(), *args)
    with pytest.raises(ValueError, match=r"adam_update: exp_avg_sq has shape \(5,\)"):
        update(p, np.ones(4), ok["exp_avg"], np.zeros(5), None, *args)
    with pytest.raises(ValueError, match=r"adam_update: max_exp_avg_sq has shape \(2,\)"):
        update(p, np.ones(4), ok["exp_avg"], ok["exp_avg_sq"], np.zeros(2), *args)
    with pytest.raises(TypeError, match="adam_update: exp_avg is float32, p is float64"):
        update(p, np.ones(4), np.zeros(4, np.float32), ok["exp_avg_sq"], None, *args)
    with pytest.raises(ValueError, match="adam_update: g must be C-contiguous"):
        update(p, np.ones(8)[::2], *ok.values(), *args)
    np.testing.assert_array_equal(p, np.ones(4))


def test_sgd_cuda_launcher_checks_shapes_too():
    with pytest.raises(ValueError, match=r"sgd_update: v has shape \(3,\), w has \(4,\)"):
        optim_cuda.sgd_update(np.ones(4), np.ones(4), np.zeros(3), 0.1, 0.9)


def test_amsgrad_max_keeps_nan_in_both_paths():
    p = np.zeros(3)
    vmax = np.array([np.nan, 0.0, 1.0])
    g = np.array([1.0, np.nan, 0.5])
    outs = []
    for update in (optim_numba.adam_update, adam_update_reference):
        pp, vm, m, v = p.copy(), vmax.copy(), np.zeros(3), np.zeros(3)
        update(pp, g, m, v, vm, 0.1, 0.9, 0.999, 1e-8, 0.0, 1.0, False, False)
        outs.append((pp, vm))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(outs[0][1][:2]).all() and outs[0][1][2] == 1.0


# --------------------------------------------------------------------------- argument errors


BAD_ARGS = [
    ("Adam", dict(lr=-0.1)), ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
    ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(weight_decay=-1e-2)), ("Adam", dict(betas=(0, 0.9))),
    ("AdamW", dict(lr=-1.0)), ("AdamW", dict(betas=(0.9, 1.5))),
    ("RMSprop", dict(lr=-0.1)), ("RMSprop", dict(eps=-1.0)), ("RMSprop", dict(momentum=-0.5)),
    ("RMSprop", dict(weight_decay=-1.0)), ("RMSprop", dict(alpha=-0.1)),
    ("Adagrad", dict(lr=-0.1)), ("Adagrad", dict(lr_decay=-0.1)), ("Adagrad", dict(weight_decay=-1.0)),
    ("Adagrad", dict(initial_accumulator_value=-1.0)), ("Adagrad", dict(eps=-1.0)),
    ("Adadelta", dict(lr=-1.0)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(eps=-1.0)),
    ("Adadelta", dict(weight_decay=-1.0)),
]


@pytest.mark.parametrize("name, kwargs", BAD_ARGS, ids=lambda x: str(x))
def test_bad_arguments_raise_pytorchs_value_error(torch, name, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)([nn.Parameter(np.ones(2))], **kwargs)
    assert str(ours.value) == f"{name}: {theirs.value}"


@pytest.mark.parametrize("name", CONFIGS)
def test_unknown_options_and_bad_params_are_errors(name):
    p = nn.Parameter(np.ones(2))
    with pytest.raises(TypeError, match="unexpected keyword argument 'nesterov_momentum'"):
        getattr(optim, name)([p], nesterov_momentum=True)
    with pytest.raises(TypeError, match=f"{name}: params must be an iterable of Tensors or of dicts"):
        getattr(optim, name)(p)
    with pytest.raises(ValueError, match=f"{name}: got an empty parameter list"):
        getattr(optim, name)([])
    with pytest.raises(TypeError, match="learning rate must be a number"):
        getattr(optim, name)([p], lr="0.1")


# --------------------------------------------------------------------------- gradient clipping


def _grads_pair(torch, arrays):
    ours = [nn.Parameter(np.zeros_like(a)) for a in arrays]
    theirs = [torch.nn.Parameter(torch.zeros(a.shape, dtype=torch.float64)) for a in arrays]
    for p, tp, a in zip(ours, theirs, arrays):
        p.grad, tp.grad = tc.tensor(a.copy()), torch.tensor(a.copy())
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, math.inf, -math.inf, 0.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_pytorch(torch, norm_type, max_norm):
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((4, 3)), rng.standard_normal(5) * 3, np.zeros(0)]
    if norm_type in (math.inf, -math.inf, "inf"):
        arrays = arrays[:2]                  # PyTorch: no inf norm of an empty tensor
    ours, theirs = _grads_pair(torch, arrays)
    ours.append(nn.Parameter(np.ones(2)))    # a parameter without a gradient is left out
    theirs.append(torch.nn.Parameter(torch.ones(2, dtype=torch.float64)))
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, tc.Tensor) and total.shape == () and total.dtype == np.float64
    np.testing.assert_allclose(total.item(), t_total.item(), rtol=1e-14)
    for p, tp in zip(ours, theirs):
        if tp.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.array, tp.grad.numpy(), rtol=1e-14, atol=1e-300)


def test_clip_grad_norm_non_finite_like_pytorch(torch):
    for bad in (np.inf, np.nan):
        arrays = [np.array([1.0, bad, 2.0]), np.array([3.0])]
        ours, theirs = _grads_pair(torch, arrays)
        with pytest.raises(RuntimeError) as t_err:
            torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
        with pytest.raises(RuntimeError) as o_err:
            nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
        assert str(o_err.value) == str(t_err.value)
        np.testing.assert_array_equal(ours[0].grad.array, arrays[0])        # untouched on error
        total = nn.utils.clip_grad_norm_(ours, 1.0)                         # scaled by the bad norm anyway
        t_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        np.testing.assert_array_equal(total.array, t_total.numpy())
        for p, tp in zip(ours, theirs):
            np.testing.assert_array_equal(p.grad.array, tp.grad.numpy())


def test_clip_grad_norm_edge_cases(torch):
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    assert torch.nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    p = nn.Parameter(np.zeros(3, dtype=np.float32))
    p.grad = tc.tensor(np.array([3.0, 4.0, 0.0], dtype=np.float32))
    total = nn.utils.clip_grad_norm_(p, 1.0)                                 # a single Tensor works
    assert total.dtype == np.float32 and total.item() == 5.0 and p.grad.dtype == np.float32
    tp = torch.nn.Parameter(torch.zeros(3))
    tp.grad = torch.tensor([3.0, 4.0, 0.0])
    torch.nn.utils.clip_grad_norm_(tp, 1.0)
    np.testing.assert_array_equal(p.grad.array, tp.grad.numpy())
    with pytest.warns(UserWarning, match="empty generator"):
        nn.utils.clip_grad_norm_((q for q in []), 1.0)
    with pytest.raises(RuntimeError, match="cannot compute the inf norm on an empty tensor"):
        nn.utils.clip_grad_norm_(_grads_pair(torch, [np.zeros(0)])[0], 1.0, norm_type="inf")


def test_clip_grad_value_matches_pytorch(torch):
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((3, 4)) * 2, np.array([np.nan, -np.inf, np.inf, 0.1])]
    ours, theirs = _grads_pair(torch, arrays)
    assert nn.utils.clip_grad_value_(ours, 0.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.array, tp.grad.numpy())
    single = nn.Parameter(np.zeros(2))
    single.grad = tc.tensor(np.array([-3.0, 3.0]))
    nn.utils.clip_grad_value_(single, 1)
    np.testing.assert_array_equal(single.grad.array, [-1.0, 1.0])


# --------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.parametrize("case", [(n, len(c) - 1) for n, (c, _) in CONFIGS.items()], ids=_case_id)
def test_optimizers_on_the_gpu_match_the_cpu(cupy, case):
    """Ten steps on CuPy parameters (fused CUDA Adam kernel, CuPy reference for the others) give
    the CPU's parameters and state; the state stays on the device, ``step`` on the host."""
    name, i = case
    configs, group1 = CONFIGS[name]
    rng = np.random.default_rng(3)
    inits = [rng.standard_normal(s) for s in [(6, 5), (5,), (4,)]]
    grads = [[rng.standard_normal(a.shape) for a in inits] for _ in range(10)]
    results = []
    for device in ("cpu", "cuda"):
        params = [nn.Parameter(tc.tensor(a, device=device)) for a in inits]
        opt = getattr(optim, name)([{"params": params[:2]}, {"params": params[2:], **group1}], **configs[i])
        for step in grads:
            for p, g in zip(params, step):
                p.grad = tc.tensor(g, device=device)
            opt.step()
        results.append((params, opt))
    (cpu_params, cpu_opt), (gpu_params, gpu_opt) = results
    for p, q in zip(cpu_params, gpu_params):
        assert q.device.type == "cuda"
        np.testing.assert_allclose(q.array.get(), p.array, rtol=1e-12, atol=1e-14)
        for k, v in gpu_opt.state[q].items():
            assert backend.is_cuda_array(v) == (k != "step"), k
    gpu_sd = gpu_opt.state_dict()                      # CPU NumPy copies, loadable on the CPU
    assert all(type(v) is np.ndarray for s in gpu_sd["state"].values() for v in s.values())
    cpu_opt.load_state_dict(gpu_sd)


@pytest.mark.gpu
def test_clip_grad_norm_on_the_gpu(cupy):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    out = []
    for device in ("cpu", "cuda"):
        params = [nn.Parameter(tc.tensor(a, device=device)) for a in arrays]
        for p, a in zip(params, arrays):
            p.grad = tc.tensor(a, device=device)
        total = nn.utils.clip_grad_norm_(params, 1.0)
        out.append((total, [p.grad for p in params]))
    (t_cpu, g_cpu), (t_gpu, g_gpu) = out
    assert t_gpu.device.type == "cuda"
    np.testing.assert_allclose(t_gpu.array.get(), t_cpu.array, rtol=1e-13)
    for a, b in zip(g_cpu, g_gpu):
        np.testing.assert_allclose(b.array.get(), a.array, rtol=1e-13)
