"""tinyconv.optim: SGD against torch.optim.SGD step by step, its state_dict, the kernel seam,
and the learning-rate schedules against PyTorch's."""
import json

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import nn, optim
from tinyconv.optim import lr_scheduler
from tinyconv.optim.sgd import sgd_update_reference

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.01, momentum=0.9, weight_decay=5e-4),          # the paper's setting
    dict(lr=0.02, momentum=0.8, weight_decay=1e-2, nesterov=True),
    dict(lr=0.1, weight_decay=0.1),
]


def _grads(rng, shapes, steps):
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


def _run_ours(inits, grads, make_opt, dtype=np.float64):
    params = [nn.Parameter(np.array(a, dtype=dtype)) for a in inits]
    opt = make_opt(params)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = tc.tensor(g.astype(dtype))
        opt.step()
    return params, opt


def _run_torch(torch, inits, grads, make_opt):
    params = [torch.nn.Parameter(torch.tensor(a)) for a in inits]
    opt = make_opt(params)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.tensor(g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_pytorch_over_several_steps(torch, kernel_mode, config):
    rng = np.random.default_rng(0)
    shapes = [(4, 3, 2, 2), (4,), (5, 7)]
    inits = [rng.standard_normal(s) for s in shapes]
    grads = _grads(rng, shapes, 6)
    ours, _ = _run_ours(inits, grads, lambda ps: optim.SGD(ps, **config))
    theirs, _ = _run_torch(torch, inits, grads, lambda ps: torch.optim.SGD(ps, **config))
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=1e-13, atol=1e-15)


def test_sgd_float32_matches_pytorch(torch, kernel_mode):
    rng = np.random.default_rng(1)
    shapes = [(64, 32)]
    inits = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[g.astype(np.float32) for g in step] for step in _grads(rng, shapes, 5)]
    cfg = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    ours, _ = _run_ours(inits, grads, lambda ps: optim.SGD(ps, **cfg), dtype=np.float32)
    theirs, _ = _run_torch(torch, inits, grads, lambda ps: torch.optim.SGD(ps, **cfg))
    np.testing.assert_allclose(ours[0].array, theirs[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    assert ours[0].dtype == np.float32


def test_param_groups_lr_changes_and_missing_grads_match_pytorch(torch):
    rng = np.random.default_rng(2)
    inits = [rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal(2)]
    grads = _grads(rng, [a.shape for a in inits], 5)

    def groups(ps):
        return [{"params": ps[:2], "lr": 0.1}, {"params": ps[2:], "momentum": 0.5}]

    ours = [nn.Parameter(a.copy()) for a in inits]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in inits]
    o_opt = optim.SGD(groups(ours), lr=0.03, momentum=0.9)
    t_opt = torch.optim.SGD(groups(theirs), lr=0.03, momentum=0.9)
    assert [g["lr"] for g in o_opt.param_groups] == [0.1, 0.03]
    assert [g["momentum"] for g in o_opt.param_groups] == [0.9, 0.5]
    for i, step in enumerate(grads):
        if i == 2:                                   # a schedule changes lr through param_groups
            o_opt.param_groups[0]["lr"] = t_opt.param_groups[0]["lr"] = 0.01
        for k, (p, tp, g) in enumerate(zip(ours, theirs, step)):
            if i == 1 and k == 1:                    # no gradient this step: skipped, state untouched
                p.grad, tp.grad = None, None
            else:
                p.grad, tp.grad = tc.tensor(g), torch.tensor(g)
        o_opt.step()
        t_opt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=1e-13)


def test_sgd_leaves_grad_untouched_and_zero_grad():
    p = nn.Parameter(np.ones(3))
    g = np.array([1.0, 2.0, 3.0])
    p.grad = tc.tensor(g.copy())
    opt = optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1)
    opt.step()
    np.testing.assert_array_equal(p.grad.array, g)
    np.testing.assert_allclose(p.array, 1 - 0.5 * (g + 0.1))
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.array.any()
    opt.zero_grad()
    assert p.grad is None
    opt.step()                                        # no grad: nothing moves
    np.testing.assert_allclose(p.array, 1 - 0.5 * (g + 0.1))


def test_sgd_trains_a_module_with_closure():
    tc.manual_seed(0)
    model = nn.Linear(3, 1, dtype=np.float64)
    x = tc.randn(32, 3, dtype=np.float64)
    w_true = np.array([[1.0, -2.0, 0.5]])
    y = tc.tensor(x.array @ w_true.T + 0.3)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    first = closure().item()
    for _ in range(100):
        loss = opt.step(closure)
    assert loss.item() < 1e-4 * first
    np.testing.assert_allclose(model.weight.array, w_true, atol=1e-2)


def test_sgd_dispatches_through_the_kernel_seam(monkeypatch):
    import tinyconv.optim.sgd as sgd_module
    calls = []

    def fake_kernel(family, name, arr):
        assert (family, name) == ("optim", "sgd_update")

        def update(p, g, buf, *args):
            calls.append(args)
            sgd_update_reference(p, g, buf, *args)
        return update

    monkeypatch.setattr(sgd_module, "kernel", fake_kernel)
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
    for _ in range(2):
        p.grad = tc.tensor(np.ones(2))
        opt.step()
    assert calls == [(0.1, 0.9, 0.1, 0.01, False, True), (0.1, 0.9, 0.1, 0.01, False, False)]


def test_sgd_argument_errors():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="SGD: invalid learning rate -0.1"):
        optim.SGD([p], lr=-0.1)
    with pytest.raises(ValueError, match="SGD: Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="SGD: params must be an iterable of Tensors or of dicts"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="param 0 is a ndarray"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match="not a set"):
        optim.SGD({p}, lr=0.1)


# --------------------------------------------------------------------------- optimizer state_dict


def test_sgd_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(3)
    inits = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    grads = _grads(rng, [(3, 2), (2,)], 6)
    cfg = dict(lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
    straight, _ = _run_ours(inits, grads, lambda ps: optim.SGD(ps, **cfg))

    first, opt = _run_ours(inits, grads[:3], lambda ps: optim.SGD(ps, **cfg))
    opt.param_groups[0]["lr"] = 0.05                  # (unchanged, but goes through the state)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1] and sd["param_groups"][0]["nesterov"] is True
    assert sorted(sd["state"]) == [0, 1] and type(sd["state"][0]["momentum_buffer"]) is np.ndarray
    sd["state"][0]["momentum_buffer"] += 0             # a copy: mutating it changes nothing inside
    assert sd["state"][0]["momentum_buffer"] is not opt.state[first[0]]["momentum_buffer"]
    json.dumps(sd["param_groups"])                      # hyper-parameters are plain JSON data

    resumed = [nn.Parameter(p.array.copy()) for p in first]
    opt2 = optim.SGD(resumed, lr=1.0)                   # hyper-parameters come from the state_dict
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05 and opt2.param_groups[0]["momentum"] == 0.9
    for step in grads[3:]:
        for p, g in zip(resumed, step):
            p.grad = tc.tensor(g)
        opt2.step()
    for p, q in zip(resumed, straight):
        np.testing.assert_array_equal(p.array, q.array)


def test_sgd_state_dict_layout_matches_pytorch(torch):
    rng = np.random.default_rng(4)
    inits = [rng.standard_normal((2, 2)), rng.standard_normal(2)]
    grads = _grads(rng, [(2, 2), (2,)], 2)
    _, ours = _run_ours(inits, grads, lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9))
    _, theirs = _run_torch(torch, inits, grads, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    o, t = ours.state_dict(), theirs.state_dict()
    assert list(o["state"]) == list(t["state"])
    for i in t["state"]:
        np.testing.assert_allclose(o["state"][i]["momentum_buffer"], t["state"][i]["momentum_buffer"].numpy(),
                                   rtol=1e-13)
    for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "params"):
        assert o["param_groups"][0][k] == t["param_groups"][0][k]
    # a PyTorch optimizer state (tensors turned into NumPy arrays) loads into ours
    converted = {"state": {i: {"momentum_buffer": s["momentum_buffer"].numpy()}
                           for i, s in t["state"].items()},
                 "param_groups": t["param_groups"]}
    ours.load_state_dict(converted)
    assert ours.param_groups[0]["momentum"] == 0.9


def test_optimizer_load_state_dict_errors():
    ps = [nn.Parameter(np.ones((2, 2))), nn.Parameter(np.ones(2))]
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    for p in ps:
        p.grad = tc.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the loaded state dict, 1 here"):
        optim.SGD([nn.Parameter(np.ones(2))], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="2 parameter groups, the optimizer has 1"):
        optim.SGD(ps, lr=0.1).load_state_dict({**sd, "param_groups": sd["param_groups"] * 2})
    swapped = [nn.Parameter(np.ones(2)), nn.Parameter(np.ones((2, 2)))]
    with pytest.raises(ValueError, match=r"'momentum_buffer' of parameter 0 has shape \(2, 2\), the "
                                         r"parameter has shape \(2,\)"):
        optim.SGD(swapped, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_optimizer_state_follows_the_parameter_dtype():
    m = nn.Linear(2, 2)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(tc.randn(3, 2)).sum().backward()
    opt.step()
    m.double()
    m.zero_grad()
    m(tc.randn(3, 2, dtype=np.float64)).sum().backward()
    opt.step()
    assert all(s["momentum_buffer"].dtype == np.float64 for s in opt.state.values())
    assert m.weight.dtype == np.float64
    fresh = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    fresh.load_state_dict({**opt.state_dict(), "state": {
        i: {"momentum_buffer": b["momentum_buffer"].astype(np.float32)}
        for i, b in opt.state_dict()["state"].items()}})
    assert all(s["momentum_buffer"].dtype == np.float64 for s in fresh.state.values())


# --------------------------------------------------------------------------- schedules


def _one_param_optimizers(torch, lr=0.1):
    ours = optim.SGD([nn.Parameter(np.ones(1))], lr=lr, momentum=0.9)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=lr, momentum=0.9)
    return ours, theirs


def test_step_lr_matches_pytorch(torch):
    ours, theirs = _one_param_optimizers(torch)
    s_ours = lr_scheduler.StepLR(ours, step_size=3, gamma=0.5)
    s_theirs = torch.optim.lr_scheduler.StepLR(theirs, step_size=3, gamma=0.5)
    for epoch in range(10):
        assert s_ours.get_last_lr() == pytest.approx(s_theirs.get_last_lr(), rel=1e-15), epoch
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-15)
        ours.step()
        theirs.step()
        s_ours.step()
        s_theirs.step()
    assert ours.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)
    state = s_ours.state_dict()
    json.dumps(state)
    assert state["last_epoch"] == 10 and state["base_lrs"] == [0.1]
    again = lr_scheduler.StepLR(optim.SGD([nn.Parameter(np.ones(1))], lr=0.1), step_size=1)
    again.load_state_dict(state)
    assert again.step_size == 3 and again.last_epoch == 10


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(mode="max", factor=0.5, patience=1),
    dict(patience=2, threshold=0.1, threshold_mode="abs", cooldown=2, min_lr=0.002),
    dict(mode="max", patience=0, threshold_mode="abs", threshold=0.05, eps=1e-3),
])
def test_reduce_lr_on_plateau_matches_pytorch(torch, kwargs):
    rng = np.random.default_rng(5)
    # a metric that improves, stalls, wobbles, improves again, then stalls for long
    metrics = list(np.concatenate([np.linspace(1.0, 0.5, 6), np.full(5, 0.5),
                                   0.5 + 0.02 * rng.standard_normal(8), np.linspace(0.45, 0.2, 4),
                                   np.full(15, 0.2)]))
    ours, theirs = _one_param_optimizers(torch)
    s_ours = lr_scheduler.ReduceLROnPlateau(ours, **kwargs)
    s_theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    lrs_ours, lrs_theirs = [], []
    for m in metrics:
        s_ours.step(m)
        s_theirs.step(m)
        lrs_ours.append(ours.param_groups[0]["lr"])
        lrs_theirs.append(theirs.param_groups[0]["lr"])
    assert lrs_ours == pytest.approx(lrs_theirs, rel=1e-15)
    assert len(set(lrs_ours)) > 1                          # the schedule did reduce the lr
    assert s_ours.get_last_lr() == pytest.approx(s_theirs.get_last_lr())


def test_reduce_lr_on_plateau_divides_by_ten_and_resumes():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=0.01, momentum=0.9)
    sched = lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=2)
    for err in [0.9, 0.8, 0.8, 0.8]:
        sched.step(err)
    assert opt.param_groups[0]["lr"] == 0.01
    sched.step(0.8)                                          # third epoch without improvement
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)
    state = json.loads(json.dumps(sched.state_dict()))       # survives a JSON checkpoint
    opt2 = optim.SGD([nn.Parameter(np.ones(1))], lr=0.001, momentum=0.9)
    sched2 = lr_scheduler.ReduceLROnPlateau(opt2)
    sched2.load_state_dict(state)
    for err in [0.8, 0.8, 0.8]:
        sched.step(err)
        sched2.step(err)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    sched.step(tc.tensor(0.1))                                # a scalar tensor works as a metric
    assert sched.best == pytest.approx(0.1)


def test_scheduler_argument_errors():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=0.1)
    with pytest.raises(ValueError, match="factor should be in"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="expected 1 values for min_lr"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0, 0])
    with pytest.raises(TypeError, match="StepLR: expected an Optimizer"):
        lr_scheduler.StepLR([0.1], step_size=1)
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optim.SGD([nn.Parameter(np.ones(1))], lr=0.1), step_size=1, last_epoch=3)
