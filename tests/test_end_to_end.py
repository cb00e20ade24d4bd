"""End to end: a tiny AlexNet-shaped net, gradient-checked in float64 through every layer and
parameter, compared with the same net in PyTorch, and trained by SGD until its loss falls.

The net has AlexNet's anatomy at toy size (3x19x19 images, a handful of channels):
conv-ReLU-LRN-maxpool twice, three convs (two grouped) with ReLU, maxpool, flatten,
linear-ReLU-dropout twice, linear, and cross-entropy.
"""
import numpy as np
import pytest

import tinyconv as tc
from tinyconv import nn, optim
from tinyconv.nn import init

DROPOUT_SEED = 1234


def tiny_alexnet(n, dtype=None, channels=(4, 6, 6, 6, 4), hidden=8, num_classes=3):
    """The tiny net from module namespace ``n`` (tinyconv.nn or torch.nn): same layers, same keys.

    For 3x19x19 images: 19 -conv3-> 17 -pool3/2-> 8 -conv3 pad1-> 8 -pool3/2-> 3, three
    3x3 convs (pad 1) at 3x3, then pool3/2 -> 1x1.
    """
    kw = {} if dtype is None else {"dtype": dtype}
    c1, c2, c3, c4, c5 = channels
    features = n.Sequential(
        n.Conv2d(3, c1, 3, **kw), n.ReLU(), n.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=2.0),
        n.MaxPool2d(3, 2),
        n.Conv2d(c1, c2, 3, padding=1, groups=2, **kw), n.ReLU(),
        n.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=2.0), n.MaxPool2d(3, 2),
        n.Conv2d(c2, c3, 3, padding=1, **kw), n.ReLU(),
        n.Conv2d(c3, c4, 3, padding=1, groups=2, **kw), n.ReLU(),
        n.Conv2d(c4, c5, 3, padding=1, groups=2, **kw), n.ReLU(), n.MaxPool2d(3, 2),
    )
    classifier = n.Sequential(
        n.Linear(c5, hidden, **kw), n.ReLU(), n.Dropout(0.5),
        n.Linear(hidden, hidden, **kw), n.ReLU(), n.Dropout(0.5),
        n.Linear(hidden, num_classes, **kw),
    )
    return n.Sequential(features, n.Flatten(), classifier)


def _data(seed, n=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 19, 19)), rng.integers(0, 3, n)


def _give_biases_spread(model):
    """Biases ~ U(-0.3, 0.3) so ReLUs sit well away from their kinks for finite differences."""
    rng = np.random.default_rng(7)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.array[...] = rng.uniform(-0.3, 0.3, p.shape) + 0.2


def test_tiny_alexnet_gradcheck_every_parameter_and_the_input(kernel_mode):
    """Every parameter (and, on the reference path, every input pixel) against central differences.

    On the fast path the input is left out to halve the ~6000 forward passes: the fast
    kernels' input gradients are checked against the reference ones below and in the
    kernel tests."""
    tc.manual_seed(0)
    model = tiny_alexnet(nn, dtype=np.float64)
    _give_biases_spread(model)
    criterion = nn.CrossEntropyLoss()
    x_np, target = _data(1)
    x = tc.tensor(x_np, requires_grad=True)
    params = list(model.parameters())
    assert len(params) == 16 and sum(p.numel() for p in params) == 975

    def loss_fn(x, *params):
        tc.manual_seed(DROPOUT_SEED)          # the same dropout masks in every evaluation
        return criterion(model(x), target)

    # each call draws the same dropout masks, and they do drop units (the loss differs from eval's)
    train_loss = loss_fn(x, *params).item()
    assert loss_fn(x, *params).item() == train_loss
    assert criterion(model.eval()(x), target).item() != train_loss
    model.train()
    if kernel_mode == "fast":
        x.requires_grad_(False)
    assert tc.gradcheck(loss_fn, [x, *params], eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_catches_a_wrong_layer_gradient(monkeypatch):
    """The same check fails when one op's backward is off (here: ReLU's gradient doubled)."""
    import tinyconv.functional.activation as act
    original = act.ReLUFn.backward
    monkeypatch.setattr(act.ReLUFn, "backward", lambda self, gy: tuple(2 * g for g in original(self, gy)))
    tc.manual_seed(0)
    model = tiny_alexnet(nn, dtype=np.float64).eval()
    _give_biases_spread(model)
    x_np, target = _data(1)
    fc1 = model[2][0].weight                   # its gradient flows back through two ReLUs
    with pytest.raises(tc.GradcheckError, match="gradient mismatch"):
        tc.gradcheck(lambda w: nn.CrossEntropyLoss()(model(tc.tensor(x_np)), target), [fc1])


def test_tiny_alexnet_matches_pytorch_forward_and_every_gradient(torch, kernel_mode):
    """Same weights in both (dropout off: eval mode), float64: loss and all gradients agree."""
    theirs = tiny_alexnet(torch.nn).double().eval()
    ours = tiny_alexnet(nn, dtype=np.float64).eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x_np, target = _data(2, n=4)
    t_loss = torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x_np)), torch.from_numpy(target))
    t_loss.backward()
    o_loss = nn.CrossEntropyLoss()(ours(tc.tensor(x_np)), target)
    o_loss.backward()
    assert o_loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    t_grads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.array, t_grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_sgd_training_lowers_the_loss(kernel_mode):
    """SGD (momentum 0.9, weight decay 5e-4, dropout on) on a fixed float32 batch of 16 images
    whose class is their brightest colour channel: the eval-mode loss falls by more than half.

    The net is the tiny one, a little wider, with He-normal weights and biases 0.1 (paper
    style: positive biases keep the ReLUs alive at the start); at 4-6 channels, or with
    PyTorch's default init, so deep a net this narrow mostly learns only the class prior.
    """
    tc.manual_seed(0)
    model = tiny_alexnet(nn, channels=(8, 16, 16, 16, 16), hidden=32)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            init.kaiming_normal_(m.weight, nonlinearity="relu")
            init.constant_(m.bias, 0.1)
    rng = np.random.default_rng(3)
    target = rng.integers(0, 3, 16)
    x = rng.standard_normal((16, 3, 19, 19)).astype(np.float32)
    x[np.arange(16), target] += 3.0
    x = tc.tensor(x)
    criterion = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)

    def evaluate():
        model.eval()
        with tc.no_grad():
            logits = model(x)
        model.train()
        return criterion(logits, target).item(), (logits.array.argmax(1) == target).mean()

    before, _ = evaluate()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = criterion(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after, accuracy = evaluate()
    assert np.isfinite(losses).all()
    assert after < 0.5 * before, (before, after, losses[::5])
    assert accuracy >= 0.75
    assert all(p.dtype == np.float32 for p in model.parameters())
