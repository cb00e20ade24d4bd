"""The educational walkthrough's experiments, one per chapter of ``docs/``.

``tinyconv walkthrough LAYER`` (or ``python examples/walkthrough.py LAYER``) runs one
chapter's experiment: it builds a small seeded input, runs the layer forward and
backward through tinyconv, prints the shapes and a few values, checks the result
against the layer's definition written out directly in NumPy, and runs
:func:`tinyconv.gradcheck` (float64 central differences) on the layer.

    LAYER    chapter                                   docs/
    conv     convolution by im2col                     01-convolution.md
    pool     overlapping max-pooling                   02-max-pooling.md
    lrn      local response normalization              03-lrn.md
    relu     ReLU (and tanh, for the paper's Figure 1) 04-relu.md
    dropout  inverted dropout                          05-dropout.md
    fc       fully connected + softmax cross-entropy   06-fully-connected.md
    alexnet  the whole network                         07-alexnet.md

The longer experiments behind the figures (ReLU vs tanh training speed, training the
small AlexNet, feature maps of a photograph) are functions here too, called by
``docs/make_figures.py``.  Every printed number is rounded, so a run gives the text
shown in the docs whether the fast kernels or the NumPy references are active.
"""
import argparse
import sys
import time

import numpy as np

from . import functional as F
from . import random as tc_random
from .creation import tensor
from .gradcheck import gradcheck
from .random import manual_seed

LAYERS = ("conv", "pool", "lrn", "relu", "dropout", "fc", "alexnet", "algos")


def _randn(*shape, requires_grad=False, scale=1.0):
    """A seeded float64 tensor from tinyconv's generator (call ``manual_seed`` first)."""
    a = tc_random.generator().standard_normal(shape) * scale
    return tensor(a, requires_grad=requires_grad)


def _fmt(values, digits=4):
    """A short list of rounded numbers, e.g. ``[0.1235, -1.5]`` (no ``-0.0``)."""
    a = np.round(np.asarray(values, dtype=np.float64).ravel(), digits) + 0.0
    return "[" + ", ".join(f"{v:.{digits}f}" for v in a) + "]"


def _check(name, fn, inputs, out):
    gradcheck(fn, inputs)
    out(f"  gradcheck {name}: passed")


# --------------------------------------------------------------------------- 01 convolution


def direct_conv2d(x, w, b, stride, padding, groups):
    """The convolution by its definition, six nested loops' worth of sums (for checking).

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, g*C/G + c, oh*s + i, ow*s + j]
    with g = o // (O/G) the group of output channel o.
    """
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    s, p = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    OH, OW = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    y = np.zeros((N, O, OH, OW))
    for o in range(O):
        g = o // (O // groups)
        for oh in range(OH):
            for ow in range(OW):
                patch = xpad[:, g * Cg:(g + 1) * Cg, oh * s:oh * s + kh, ow * s:ow * s + kw]
                y[:, o, oh, ow] = (patch * w[o]).sum(axis=(1, 2, 3)) + b[o]
    return y


def conv(out=print):
    """Chapter 01: im2col's columns, conv2d as a GEMM, groups, and the gradient check."""
    from .functional.conv import im2col_reference
    manual_seed(0)
    x = _randn(2, 4, 5, 5)
    w = _randn(6, 2, 3, 3)                    # groups=2: each output sees 4/2 = 2 channels
    b = _randn(6)
    out("conv2d by im2col: x (2, 4, 5, 5), weight (6, 2, 3, 3), stride 1, padding 1, groups 2")
    cols = im2col_reference(x.array, 3, 3, 1, 1, 1, 1)
    out(f"  im2col(x): cols {cols.shape}  (rows C*kh*kw = 4*3*3 = 36, columns OH*OW = 5*5 = 25)")
    out(f"  cols[0, :9, 0], channel 0 of the window at (0, 0) (zeros: padding): "
        f"{_fmt(cols[0, :9, 0], 2)}")
    y = F.conv2d(x, w, b, padding=1, groups=2)
    out(f"  y = W_g @ cols_g per group, + b: y {y.shape}")
    out(f"  y[0, 0, 0, :3] = {_fmt(y.array[0, 0, 0, :3])}")
    ref = direct_conv2d(x.array, w.array, b.array, 1, 1, 2)
    out(f"  equals the direct sum over the window: {bool(np.allclose(y.array, ref, rtol=0, atol=1e-12))}")
    xs, ws, bs = _randn(1, 4, 5, 5, requires_grad=True), _randn(4, 2, 3, 3, requires_grad=True), \
        _randn(4, requires_grad=True)
    _check("conv2d(stride=2, padding=1, groups=2)",
           lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2), (xs, ws, bs), out)


# --------------------------------------------------------------------------- 02 max pooling


def pool(out=print):
    """Chapter 02: overlapping 3/2 windows, the arg-max and how the gradient is routed."""
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5) % 7   # small repeating values
    x[0, 0, 2, 2] = 9.0                                           # the centre wins all 4 windows
    xt = tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(xt, kernel_size=3, stride=2, return_indices=True)
    out("max_pool2d(kernel_size=3, stride=2) on a 5x5 plane: 2x2 overlapping windows")
    out(f"  y {y.shape} = {_fmt(y.array, 1)}")
    out(f"  argmax (flat h*W + w) = {idx.array.ravel().tolist()}   (12 = row 2, column 2)")
    y.sum().backward()
    out(f"  gradient of y.sum() at the centre pixel: {xt.grad.array[0, 0, 2, 2]:.1f}  "
        f"(it won all four windows)")
    out(f"  nonzero gradient entries: {int(np.count_nonzero(xt.grad.array))} of 25")
    manual_seed(0)
    xs = _randn(1, 2, 6, 6, requires_grad=True)
    _check("max_pool2d(3, stride=2, padding=1)",
           lambda x: F.max_pool2d(x, 3, stride=2, padding=1), (xs,), out)


# --------------------------------------------------------------------------- 03 LRN


def lrn(out=print):
    """Chapter 03: the paper's LRN against its formula, both alpha conventions, gradient check."""
    from .functional.lrn import ALEXNET_LRN
    manual_seed(0)
    x = _randn(1, 7, 2, 2, scale=10.0)
    y = F.local_response_norm(x, **ALEXNET_LRN)
    out(f"local_response_norm(x, size=5, alpha=5e-4, beta=0.75, k=2.0): x {x.shape} -> y {y.shape}")
    # the paper's formula, section 3.3: alpha = 1e-4 multiplies the plain sum over n = 5 channels
    a = x.array
    paper = np.empty_like(a)
    for c in range(7):
        lo, hi = max(0, c - 2), min(6, c + 2)
        paper[:, c] = a[:, c] / (2.0 + 1e-4 * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** 0.75
    out(f"  x[0, :, 0, 0] = {_fmt(a[0, :, 0, 0], 2)}")
    out(f"  y[0, :, 0, 0] = {_fmt(y.array[0, :, 0, 0])}")
    out(f"  equals the paper's b = a / (k + 1e-4 * sum a^2)^0.75: "
        f"{bool(np.allclose(y.array, paper, rtol=1e-12, atol=0))}")
    out(f"  y / x ranges over [{(y.array / a).min():.4f}, {(y.array / a).max():.4f}]  "
        f"(2^-0.75 = {2 ** -0.75:.4f} when the neighbours are silent)")
    xs = _randn(1, 6, 2, 2, requires_grad=True)
    _check("local_response_norm(size=5, alpha=0.5, beta=0.75, k=1)",
           lambda x: F.local_response_norm(x, 5, alpha=0.5, beta=0.75, k=1.0), (xs,), out)
    _check("local_response_norm(size=4, alpha=0.5, beta=0.75, k=1), an even window",
           lambda x: F.local_response_norm(x, 4, alpha=0.5, beta=0.75, k=1.0), (xs,), out)


# --------------------------------------------------------------------------- 04 ReLU


def relu(out=print):
    """Chapter 04: ReLU and tanh forward and backward; the gradient each lets through."""
    x = tensor(np.array([-3.0, -1.0, -0.25, 0.5, 1.0, 3.0]), requires_grad=True)
    y = F.relu(x)
    y.sum().backward()
    out(f"relu: x = {_fmt(x.array, 2)}")
    out(f"  y        = {_fmt(y.array, 2)}")
    out(f"  dy/dx    = {_fmt(x.grad.array, 2)}")
    xt = tensor(x.array.copy(), requires_grad=True)
    t = F.tanh(xt)
    t.sum().backward()
    out(f"tanh: y    = {_fmt(t.array)}")
    out(f"  dy/dx    = {_fmt(xt.grad.array)}   (1 - y^2: it vanishes for large |x|)")
    manual_seed(0)
    xs = _randn(2, 3, 4, 4, requires_grad=True)   # no element sits on the kink at 0
    _check("relu", F.relu, (xs,), out)
    _check("tanh", F.tanh, (xs,), out)


# --------------------------------------------------------------------------- 05 dropout


def dropout(out=print):
    """Chapter 05: inverted dropout's scale, its mean, backward reusing the mask, eval mode."""
    manual_seed(0)
    x = tensor(np.ones((1000, 1000)), requires_grad=True)
    y = F.dropout(x, p=0.5)
    out("dropout(x, p=0.5) on x = ones(1000, 1000)")
    out(f"  values in y: {sorted(set(np.unique(y.array).tolist()))}   (kept units are scaled by 1/(1-p))")
    out(f"  fraction kept: {np.mean(y.array != 0):.2f}, mean of y: {y.array.mean():.2f}   "
        f"(the same expectation as x)")
    y.sum().backward()
    out(f"  backward reuses the mask: gradient is zero exactly where y is: "
        f"{bool(np.array_equal(x.grad.array == 0, y.array == 0))}")
    out(f"  eval mode (training=False) is the identity: "
        f"{F.dropout(x, p=0.5, training=False) is x}")
    xs = _randn(3, 4, requires_grad=True)

    def fixed_mask_dropout(x):
        manual_seed(1)            # the same mask on every call, so finite differences make sense
        return F.dropout(x, p=0.5)
    _check("dropout(p=0.5) with a fixed mask", fixed_mask_dropout, (xs,), out)


# --------------------------------------------------------------------------- 06 fully connected


def fc(out=print):
    """Chapter 06: linear, softmax cross-entropy and the gradient p - y."""
    manual_seed(0)
    x = _randn(4, 5)
    w = _randn(3, 5, requires_grad=True)
    b = _randn(3, requires_grad=True)
    target = np.array([0, 2, 1, 2])
    logits = F.linear(x, w, b)
    logits.retain_grad()
    loss = F.cross_entropy(logits, target)
    out(f"linear: x {x.shape} @ W^T {w.shape[::-1]} + b {b.shape} -> logits {logits.shape}")
    out(f"  cross_entropy(logits, target={target.tolist()}) = {loss.item():.4f}")
    loss.backward()
    p = np.exp(logits.array - logits.array.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[target]
    out(f"  softmax p[0] = {_fmt(p[0])}, one-hot y[0] = {_fmt(onehot[0], 0)}")
    out(f"  dloss/dlogits[0] = {_fmt(logits.grad.array[0])}")
    out(f"  equals (p - y) / N: {bool(np.allclose(logits.grad.array, (p - onehot) / 4, rtol=0, atol=1e-15))}")
    out(f"  dloss/db = column sums of (p - y) / N: {_fmt(b.grad.array)}")
    xs = _randn(4, 5, requires_grad=True)
    _check("cross_entropy(linear(x, W, b), target)",
           lambda x, w, b: F.cross_entropy(F.linear(x, w, b), target), (xs, w, b), out)


# --------------------------------------------------------------------------- 07 AlexNet


def sample_photo(size=None):
    """scikit-learn's bundled photograph ``china.jpg`` (a temple, 427x640 RGB) as float (H, W, 3)
    in [0, 1], or None when scikit-learn is not installed.  ``size=(h, w)`` resizes it
    (Pillow, bilinear) after a centre crop to that aspect ratio."""
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        return None
    img = load_sample_image("china.jpg")
    if size is not None:
        from PIL import Image
        h, w = img.shape[:2]
        th, tw = size
        if h * tw > w * th:            # too tall: crop rows
            ch = w * th // tw
            img = img[(h - ch) // 2:(h - ch) // 2 + ch]
        else:                          # too wide: crop columns
            cw = h * tw // th
            img = img[:, (w - cw) // 2:(w - cw) // 2 + cw]
        img = np.asarray(Image.fromarray(img).resize((tw, th), Image.BILINEAR))
    return img.astype(np.float32) / 255.0


def feature_maps(model, image, upto=None):
    """Run a (C, H, W) image through ``model.features`` and return each layer's output.

    Convolutions do not care about the image size, so a photograph larger than the
    model's input gives larger, easier-to-see feature maps.  Returns a list of
    ``(name, array (C, H', W'))`` for layers 0 ... ``upto`` (all by default).
    """
    from .autograd import no_grad
    maps = []
    h = tensor(np.ascontiguousarray(image[None], dtype=np.float32))
    layers = list(model.features.named_children())[:upto]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for name, layer in layers:
                h = layer(h)
                maps.append((f"features.{name} ({type(layer).__name__})", h.array[0]))
    finally:
        model.train(was_training)
    return maps


def alexnet(out=print):
    """Chapter 07: the paper's AlexNet layer table, and shapes through the small variant."""
    from .models import alexnet as build
    manual_seed(0)
    out(str(build(variant="paper").summary(print_fn=None)))
    model = build(variant="small28")
    photo = sample_photo((28, 28))
    if photo is None:
        out("small28 feature maps: skipped (scikit-learn's sample photograph is not installed)")
    else:
        grey = photo.mean(axis=2)[None]                                   # (1, 28, 28)
        maps = feature_maps(model, grey)
        out("small28 (freshly initialized) on scikit-learn's photograph china.jpg, grey 28x28:")
        for name, m in maps:
            if "ReLU" not in name:
                out(f"  {name:<32} {m.shape}")
    x = _randn(2, 1, 28, 28, requires_grad=True)
    target = np.array([3, 7])
    model = model.double().eval()     # eval: no dropout draw, so the function is fixed
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    out(f"  small28 (float64, eval) on 2 random 28x28 inputs: loss {loss.item():.4f}, "
        f"gradient reaches the input: {x.grad.shape}")
    xs = _randn(1, 6, 5, 5, requires_grad=True)
    w1 = _randn(4, 3, 3, 3, requires_grad=True)

    def block(x, w):      # conv (groups 2) -> ReLU -> LRN -> overlapping pool: AlexNet's unit
        h = F.relu(F.conv2d(x, w, padding=1, groups=2))
        return F.max_pool2d(F.local_response_norm(h, 3, alpha=0.5, beta=0.75, k=1.0), 3, stride=2)
    _check("conv(groups=2) -> relu -> lrn -> max_pool(3, 2)", block, (xs, w1), out)


CHAPTERS = {"conv": conv, "pool": pool, "lrn": lrn, "relu": relu, "dropout": dropout,
            "fc": fc, "alexnet": alexnet}


# --------------------------------------------------------------------------- training experiments


def load_digits_arrays(split="train", limit=None):
    """Bundled MNIST digits as (float32 NCHW in [0, 1], int64 labels); the first ``limit``
    samples of a class-balanced order (sample k of every class before sample k + 1)."""
    from .data import bundled_dataset
    ds = bundled_dataset("mnist5k", split)
    x = ds.images.astype(np.float32) * np.float32(ds.scale)
    y = ds.labels
    if limit is not None:
        rank = np.zeros(len(y), dtype=np.int64)      # position of each sample within its class
        for c in np.unique(y):
            rank[y == c] = np.arange(int((y == c).sum()))
        order = np.lexsort((y, rank))[:limit]
        x, y = x[order], y[order]
    return np.ascontiguousarray(x), y


def figure1_net(activation):
    """The small conv net of the Figure 1 reproduction: two conv/act/pool stages and a linear layer.

    (The paper used a four-layer convolutional net on CIFAR-10; this is the same kind of
    net at MNIST's 28x28.)"""
    from . import nn
    act = nn.ReLU if activation == "relu" else nn.Tanh
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), act(), nn.MaxPool2d(3, stride=2),     # 28 -> 13
        nn.Conv2d(8, 16, 5, padding=2), act(), nn.MaxPool2d(3, stride=2),    # 13 -> 6
        nn.Flatten(), nn.Linear(16 * 6 * 6, 10))


def train_epochs(model, x, y, epochs, lr, batch_size=50, momentum=0.9, seed=0, log=None):
    """Plain SGD over (x, y) for ``epochs`` epochs; returns each epoch's training error rate,
    counted on the mini-batches as they are trained (as the paper's Figure 1 does)."""
    from . import optim
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)
    errors = []
    model.train()
    for epoch in range(epochs):
        perm = rng.permutation(len(x))
        wrong = 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            logits = model(tensor(x[idx]))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            wrong += int((logits.array.argmax(axis=1) != y[idx]).sum())
        errors.append(wrong / len(x))
        if log is not None:
            log(f"  epoch {epoch + 1}: training error {errors[-1]:.3f}")
    return errors


def relu_vs_tanh(n_train=2000, epochs=8, lr=0.01, threshold=0.1, seed=0, log=None):
    """The paper's Figure 1, small: the same net with ReLU and with tanh, same initial seed,
    same data order.  Returns ``{activation: {"errors": [...], "epochs_to_threshold": k or None,
    "seconds": s}}``."""
    x, y = load_digits_arrays("train", n_train)
    x = x - x.mean()
    result = {}
    for act in ("relu", "tanh"):
        manual_seed(seed)
        model = figure1_net(act)
        t0 = time.perf_counter()
        errors = train_epochs(model, x, y, epochs, lr, seed=seed,
                              log=(lambda s, a=act: log(f"{a}{s}")) if log else None)
        hit = next((i + 1 for i, e in enumerate(errors) if e <= threshold), None)
        result[act] = {"errors": errors, "epochs_to_threshold": hit,
                       "seconds": time.perf_counter() - t0}
    return result


def train_small28(n_train=3500, epochs=2, lr=0.01, seed=0, log=None):
    """Train the small AlexNet (``alexnet(variant="small28")``) on the bundled digits with
    SGD + momentum 0.9; returns ``(model, test_accuracy, errors)``."""
    from .autograd import no_grad
    from .models import alexnet as build
    x, y = load_digits_arrays("train", n_train)
    mean = float(x.mean())
    manual_seed(seed)
    model = build(variant="small28")
    errors = train_epochs(model, x - mean, y, epochs, lr, seed=seed, log=log)
    xt, yt = load_digits_arrays("test")
    model.eval()
    with no_grad():
        pred = np.concatenate([model(tensor(xt[i:i + 200] - mean)).array.argmax(1)
                               for i in range(0, len(xt), 200)])
    model.input_mean = mean
    return model, float((pred == yt).mean()), errors


# --------------------------------------------------------------------------- 08 conv algorithms


def algos(out=print):
    """Chapter 08: one convolution three ways (direct, im2col, Winograd) and Winograd's float32 error."""
    from . import backends
    from .functional import conv_winograd as W
    BT, G, AT = W.transforms(2, 3, np.float64)
    d, g = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0])
    out("1-d F(2, 3): d = [1, 2, 3, 4], g = [1, 2, 3]")
    out(f"  direct, 6 multiplies: y = {_fmt([d[0:3] @ g, d[1:4] @ g], 1)}")
    out(f"  B^T d = {_fmt(BT @ d, 1)}, G g = {_fmt(G @ g, 1)}, 4 multiplies: {_fmt((BT @ d) * (G @ g), 1)}")
    out(f"  A^T of the products: y = {_fmt(AT @ ((BT @ d) * (G @ g)), 1)}")
    manual_seed(0)
    x = _randn(2, 8, 9, 11)
    x32 = tensor(x.array.astype(np.float32))
    previous = backends.conv_algorithm
    try:
        for k in W.KERNELS:
            w, b = _randn(6, 4, k, k, scale=1 / np.sqrt(4 * k * k)), _randn(6)
            p = k // 2
            ref = direct_conv2d(x.array, w.array, b.array, 1, p, 2)
            out(f"conv2d x (2, 8, 9, 11), weight (6, 4, {k}, {k}), padding {p}, groups 2, float64: "
                "|y - direct| <= 1e-12")
            for algo in ("im2col", "winograd2x2", "winograd4x4"):
                backends.conv_algorithm = algo
                y = F.conv2d(x, w, b, padding=p, groups=2)
                out(f"  {algo:12s} {bool(np.abs(y.array - ref).max() <= 1e-12)}")
            w32, b32 = tensor(w.array.astype(np.float32)), tensor(b.array.astype(np.float32))
            out("  the same in float32, largest error over largest |y| (vs float64), within the error model:")
            for algo, m in (("im2col", None), ("winograd2x2", 2), ("winograd4x4", 4)):
                backends.conv_algorithm = algo
                y = F.conv2d(x32, w32, b32, padding=p, groups=2).array
                err = np.abs(y - ref)
                order = 10 ** np.ceil(np.log10(err.max() / np.abs(ref).max()))
                line = f"  {algo:12s} error below {order:.0e}"
                if m is not None:
                    within = bool(np.all(err <= W.error_bound(x32.array, w32.array, (p, p), 2, m)))
                    line += f", within error_bound: {within}"
                out(line)
        backends.conv_algorithm = "winograd4x4"
        for k in W.KERNELS:
            xs, ws = _randn(1, 4, 5, 6, requires_grad=True), _randn(4, 2, k, k, requires_grad=True)
            _check(f"conv2d by Winograd F(4x4, {k}x{k}), groups 2",
                   lambda x, w, k=k: F.conv2d(x, w, padding=k // 2, groups=2), (xs, ws), out)
    finally:
        backends.conv_algorithm = previous


CHAPTERS["algos"] = algos


# --------------------------------------------------------------------------- command line


def build_parser(parser=None):
    """The ``walkthrough`` arguments (shared by ``tinyconv walkthrough`` and the example)."""
    parser = parser or argparse.ArgumentParser(
        prog="tinyconv walkthrough",
        description="Run one chapter of the walkthrough (docs/): a layer's forward, backward "
                    "and gradient check, printed.")
    parser.add_argument("layer", choices=LAYERS, help="the chapter to run")
    return parser


def run(layer, out=print):
    """Run chapter ``layer`` (one of ``LAYERS``), printing through ``out``."""
    if layer not in CHAPTERS:
        raise ValueError(f"walkthrough: unknown layer {layer!r}; expected one of {', '.join(LAYERS)}")
    CHAPTERS[layer](out)


def main(argv=None):
    args = build_parser().parse_args(argv)
    run(args.layer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
