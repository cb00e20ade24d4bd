"""tinyconv.optim.lr_scheduler against torch.optim.lr_scheduler: the lr (and momentum) of two
param groups over 50 steps, the closed form behind step(epoch), resuming, and the errors."""
import math
import warnings

import numpy as np
import pytest

from tinyconv import nn, optim
from tinyconv.optim import lr_scheduler

STEPS = 50


def _optimizers(torch, kind="SGD"):
    """The same two-group optimizer in tinyconv and in PyTorch (lr 0.1 and 0.04)."""
    def build(mod, make_param):
        groups = [{"params": [make_param()]}, {"params": [make_param()], "lr": 0.04}]
        if kind == "SGD":
            return mod.SGD(groups, lr=0.1, momentum=0.9)
        if kind == "Adam":
            return mod.Adam(groups, lr=0.1, betas=(0.9, 0.99))
        return getattr(mod, kind)(groups, lr=0.1)
    return (build(optim, lambda: nn.Parameter(np.ones(2))),
            build(torch.optim, lambda: torch.nn.Parameter(torch.ones(2))))


def _hypers(opt):
    """What a schedule may change, per group: lr, and momentum or beta1 where there is one."""
    out = []
    for g in opt.param_groups:
        out.append(g["lr"])
        if "momentum" in g:
            out.append(g["momentum"])
        if "betas" in g:
            out.extend(g["betas"])
    return [float(v) for v in out]


def _run(sched, opt, steps=STEPS, tweak=None):
    seen = [_hypers(opt)]
    for i in range(steps):
        opt.step()                                         # no grads: only keeps PyTorch from warning
        sched.step()
        assert [float(v) for v in sched.get_last_lr()] == [float(g["lr"]) for g in opt.param_groups]
        if tweak is not None:
            tweak(i, opt)
        seen.append(_hypers(opt))
    return seen


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a == pytest.approx(b, rel=1e-14, abs=1e-300), f"step {i}: {a} != {b}"


SCHEDULES = {
    "StepLR": ("SGD", lambda m, o: m.StepLR(o, step_size=7, gamma=0.5)),
    "MultiStepLR": ("SGD", lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.5)),
    "MultiStepLR-unsorted": ("SGD", lambda m, o: m.MultiStepLR(o, milestones=[40, 3], gamma=0.1)),
    "ExponentialLR": ("SGD", lambda m, o: m.ExponentialLR(o, gamma=0.9)),
    "CosineAnnealingLR": ("SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=50)),
    "CosineAnnealingLR-cycles": ("SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=8, eta_min=1e-3)),
    "LambdaLR": ("SGD", lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95 ** e)),
    "LambdaLR-per-group": ("SGD", lambda m, o: m.LambdaLR(o, [lambda e: 1 / (1 + e),
                                                              lambda e: min(1, e / 10)])),
    "LinearLR": ("SGD", lambda m, o: m.LinearLR(o)),
    "LinearLR-down": ("SGD", lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=30)),
    "OneCycleLR": ("SGD", lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=STEPS)),
    "OneCycleLR-linear": ("SGD", lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.3], epochs=5, steps_per_epoch=10,
                                                           anneal_strategy="linear", pct_start=0.25)),
    "OneCycleLR-three-phase": ("SGD", lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=STEPS,
                                                                three_phase=True, base_momentum=0.8,
                                                                max_momentum=[0.9, 0.99])),
    "OneCycleLR-adam-betas": ("Adam", lambda m, o: m.OneCycleLR(o, max_lr=0.01, total_steps=STEPS,
                                                                div_factor=10.0, final_div_factor=100.0)),
    "OneCycleLR-no-momentum": ("Adagrad", lambda m, o: m.OneCycleLR(o, max_lr=0.2, total_steps=STEPS,
                                                                    cycle_momentum=False)),
    "SequentialLR-warmup-cosine": ("SGD", lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=45)],
        milestones=[5])),
    "SequentialLR-three": ("Adam", lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.8), m.StepLR(o, step_size=4), m.MultiStepLR(o, [3, 30])],
        milestones=[10, 20])),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_pytorch_over_50_steps(torch, name):
    kind, make = SCHEDULES[name]
    ours, theirs = _optimizers(torch, kind)
    s_ours, s_theirs = make(lr_scheduler, ours), make(torch.optim.lr_scheduler, theirs)
    seen = _run(s_ours, ours)
    assert_same(seen, _run(s_theirs, theirs))
    assert len({tuple(h) for h in seen}) >= 3                # the schedule did move
    assert s_ours.last_epoch == s_theirs.last_epoch


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR-cycles",
                                  "LinearLR", "SequentialLR-warmup-cosine"])
def test_chainable_form_carries_a_hand_made_change_like_pytorch(torch, name):
    kind, make = SCHEDULES[name]

    def tweak(i, opt):                                      # a user halves group 0's lr once
        if i == 17:
            opt.param_groups[0]["lr"] *= 0.5

    ours, theirs = _optimizers(torch, kind)
    assert_same(_run(make(lr_scheduler, ours), ours, tweak=tweak),
                _run(make(torch.optim.lr_scheduler, theirs), theirs, tweak=tweak))


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR-cycles",
                                  "LinearLR", "LambdaLR"])
def test_step_with_epoch_uses_the_closed_form_like_pytorch(torch, name):
    kind, make = SCHEDULES[name]
    ours, theirs = _optimizers(torch, kind)
    s_ours, s_theirs = make(lr_scheduler, ours), make(torch.optim.lr_scheduler, theirs)
    for epoch in [3, 9, 4, 25, 12, 40]:
        with pytest.warns(UserWarning, match="epoch parameter"):
            s_ours.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s_theirs.step(epoch)
        assert_same([_hypers(ours)], [_hypers(theirs)])


def _save_and_resume(mod, torch, kind, make, steps=20):
    """Run ``steps``, save optimizer and schedule, load both into fresh ones, run ``steps`` more."""
    opt = _optimizers(torch, kind)[0 if mod is lr_scheduler else 1]
    sched = make(mod, opt)
    first = _run(sched, opt, steps=steps)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_state
    fresh = _optimizers(torch, kind)[0 if mod is lr_scheduler else 1]
    fresh.load_state_dict(opt_state)
    resumed = make(mod, fresh)              # (constructing takes an initial step on the loaded lrs)
    resumed.load_state_dict(sched_state)
    return first + _run(resumed, fresh, steps=steps)[1:]


@pytest.mark.parametrize("name", ["MultiStepLR", "CosineAnnealingLR-cycles", "OneCycleLR-three-phase",
                                  "OneCycleLR-adam-betas", "LambdaLR", "ExponentialLR"])
def test_state_dict_resumes_exactly(torch, name):
    kind, make = SCHEDULES[name]
    opt, _ = _optimizers(torch, kind)
    straight = _run(make(lr_scheduler, opt), opt, steps=40)
    assert _save_and_resume(lr_scheduler, torch, kind, make) == straight


@pytest.mark.parametrize("name", ["LinearLR", "SequentialLR-warmup-cosine", "StepLR"])
def test_state_dict_resume_matches_pytorch_where_it_is_not_exact(torch, name):
    """Rebuilding LinearLR or SequentialLR on a loaded optimizer re-applies their initial step
    before load_state_dict; PyTorch does the same, and tinyconv follows it."""
    kind, make = SCHEDULES[name]
    assert_same(_save_and_resume(lr_scheduler, torch, kind, make),
                _save_and_resume(torch.optim.lr_scheduler, torch, kind, make))


def test_lambda_lr_state_dict_keeps_callable_objects_state(torch):
    class Warmup:
        def __init__(self, n):
            self.n = n

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.n)

    ours, theirs = _optimizers(torch)
    fn = Warmup(10)
    s = lr_scheduler.LambdaLR(ours, [fn, lambda e: 1.0])
    t = torch.optim.lr_scheduler.LambdaLR(theirs, [Warmup(10), lambda e: 1.0])
    assert s.state_dict()["lr_lambdas"] == t.state_dict()["lr_lambdas"] == [{"n": 10}, None]
    state = s.state_dict()
    state["lr_lambdas"][0]["n"] = 4
    s.load_state_dict(state)
    assert fn.n == 4 and "lr_lambdas" in state


def test_resuming_with_last_epoch_matches_pytorch(torch):
    ours, theirs = _optimizers(torch)
    for opt in (ours, theirs):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    s_ours = lr_scheduler.ExponentialLR(ours, gamma=0.5, last_epoch=4)
    s_theirs = torch.optim.lr_scheduler.ExponentialLR(theirs, gamma=0.5, last_epoch=4)
    assert_same(_run(s_ours, ours, steps=5), _run(s_theirs, theirs, steps=5))
    c_ours, c_theirs = _optimizers(torch)
    for opt in (c_ours, c_theirs):
        for g in opt.param_groups:
            g["initial_lr"] = 1.0
    assert_same(_run(lr_scheduler.CosineAnnealingLR(c_ours, T_max=10, last_epoch=3), c_ours, steps=10),
                _run(torch.optim.lr_scheduler.CosineAnnealingLR(c_theirs, T_max=10, last_epoch=3), c_theirs,
                     steps=10))


def test_one_cycle_lr_reaches_max_and_min(torch):
    opt, _ = _optimizers(torch)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100, pct_start=0.3)
    lrs = [opt.param_groups[0]["lr"]]
    moms = [opt.param_groups[0]["momentum"]]
    for _ in range(99):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
    assert lrs[0] == pytest.approx(1.0 / 25) and max(lrs) == pytest.approx(1.0)
    assert int(np.argmax(lrs)) == 29 and lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
    assert moms[0] == pytest.approx(0.95) and min(moms) == pytest.approx(0.85)
    assert moms[-1] == pytest.approx(0.95)
    sched.step()                                              # step 100 == total_steps: still allowed
    with pytest.raises(ValueError, match="Tried to step 101 times. The specified number of total steps is"):
        sched.step()


def test_sequential_lr_get_last_lr_and_cosine_shape():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=1.0)
    warm = lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=2)
    cos = lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    seq = lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[2])
    lrs = [seq.get_last_lr()[0]]
    for _ in range(6):
        seq.step()
        lrs.append(seq.get_last_lr()[0])
    expect = [0.5, 0.75, 1.0] + [(1 + math.cos(math.pi * k / 4)) / 2 for k in (1, 2, 3, 4)]
    assert lrs == pytest.approx(expect, abs=1e-15)


def test_scheduler_errors_match_pytorch(torch):
    opt, t_opt = _optimizers(torch)
    cases = [
        (lambda m, o: m.OneCycleLR(o, max_lr=1.0), "You must define either total_steps OR"),
        (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=0), "Expected positive integer total_steps"),
        (lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=0),
         "Expected positive integer steps_per_epoch"),
        (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5),
         "Expected float between 0 and 1"),
        (lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"),
         "anneal_strategy must be one of 'cos' or 'linear'"),
        (lambda m, o: m.OneCycleLR(o, max_lr=[1.0], total_steps=10),
         "max_lr must have the same length as optimizer.param_groups"),
        (lambda m, o: m.LinearLR(o, start_factor=0),
         "Starting multiplicative factor expected to be greater than 0"),
        (lambda m, o: m.LinearLR(o, end_factor=1.5),
         "Ending multiplicative factor expected to be between 0 and 1"),
        (lambda m, o: m.LambdaLR(o, [lambda e: 1.0]), "Expected 2 lr_lambdas, but got 1"),
        (lambda m, o: m.SequentialLR(o, [m.ExponentialLR(o, 0.9)], milestones=[3]),
         "expects number of schedulers provided to be one more than the number of milestone points"),
        (lambda m, o: m.SequentialLR(o, [], milestones=[]), "expects at least one scheduler"),
        (lambda m, o: m.SequentialLR(o, [m.ReduceLROnPlateau(o), m.ExponentialLR(o, 0.9)], milestones=[3]),
         "does not support `ReduceLROnPlateau`"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make(torch.optim.lr_scheduler, t_opt)             # the oracle raises the same
        with pytest.raises(ValueError, match=message):
            make(lr_scheduler, opt)
    other, _ = _optimizers(torch)
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ExponentialLR(other, 0.9)], milestones=[])
    adagrad, _ = _optimizers(torch, "Adagrad")
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        lr_scheduler.OneCycleLR(adagrad, max_lr=0.1, total_steps=10)
    with pytest.raises(TypeError, match="CosineAnnealingLR: expected an Optimizer"):
        lr_scheduler.CosineAnnealingLR([0.1], T_max=3)
