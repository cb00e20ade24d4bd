"""Generate every figure of the walkthrough (docs/figures/*.png) in one run.

    python docs/make_figures.py                 # the committed figures (under a minute on 2 idle cores)
    python docs/make_figures.py --small --out /tmp/figs   # tiny settings, seconds (the tests use this)

Figures, with the chapter that shows them:

    im2col.png            01  how a 4x4 image's 3x3 patches become the columns of a matrix
    pooling_windows.png   02  AlexNet's overlapping 3x3 / stride 2 windows and the gradient routing
    lrn_response.png      03  LRN's output against its input for several levels of neighbour activity
    relu_vs_tanh.png      04  the paper's Figure 1, small: training error per epoch, ReLU vs tanh,
                              and epochs to 10% error over a sweep of learning rates
    conv1_filters.png     07  the first-layer filters the small AlexNet learned on the bundled digits
    feature_maps.png      07  a photograph through that network's first two convolution stages

The numbers behind the experiments (error curves, accuracy, seconds) are written to
``experiments.json`` beside the figures.  Everything is seeded; only the timings vary
from run to run.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import tinyconv  # noqa: E402
from tinyconv import walkthrough as wt  # noqa: E402
from tinyconv.functional.conv import im2col_reference  # noqa: E402

#: the settings of the committed figures and of ``--small``
FULL = dict(fig1_train=1500, fig1_epochs=8, fig1_lr=0.01, fig1_sweep=(0.005, 0.01, 0.02, 0.05),
            fig1_threshold=0.1, small28_train=3500, small28_epochs=8, small28_lr=0.02, photo=(120, 180))
SMALL = dict(fig1_train=100, fig1_epochs=2, fig1_lr=0.01, fig1_sweep=(0.01, 0.02), fig1_threshold=0.1,
             small28_train=100, small28_epochs=1, small28_lr=0.02, photo=(40, 60))


def _grid(ax, values, x0, y0, fmt="{:.0f}", colors=None, fontsize=9):
    """Draw a matrix of numbers as cells with their lower-left corner at (x0, y0) (row 0 on top)."""
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            face = colors[r][c] if colors is not None else "white"
            ax.add_patch(Rectangle((x0 + c, y0 + rows - 1 - r), 1, 1, facecolor=face,
                                   edgecolor="0.4", lw=0.8))
            ax.text(x0 + c + 0.5, y0 + rows - 0.5 - r, fmt.format(values[r, c]),
                    ha="center", va="center", fontsize=fontsize)


def figure_im2col(path):
    """A 1-channel 4x4 image, 3x3 kernel, stride 1, padding 0: 4 patches -> 4 columns of 9 rows."""
    x = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
    cols = im2col_reference(x, 3, 3, 1, 1, 0, 0)[0]          # (9, 4)
    palette = ["#f4a582", "#92c5de", "#b8e186", "#d6b4fc"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    # the image, with patch l = oh*OW + ow outlined in its colour
    _grid(ax, x[0, 0], 0, 2.5)
    for l, (oh, ow) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        inset = 0.08 * (l + 1)
        ax.add_patch(Rectangle((ow + inset, 2.5 + 1 - oh + inset), 3 - 2 * inset, 3 - 2 * inset,
                               fill=False, edgecolor=palette[l], lw=2.5))
    ax.text(2, 7.0, "x: 1 channel, 4x4\n3x3 windows, stride 1", ha="center", fontsize=10)
    # the column matrix: column l is patch l, read row by row (row r = i*kw + j)
    colors = [[palette[c] for c in range(4)] for _ in range(9)]
    _grid(ax, cols, 7, 0, colors=colors)
    for l in range(4):
        ax.text(7 + l + 0.5, 9.2, f"l={l}", ha="center", fontsize=8)
    for r in range(9):
        ax.text(6.7, 8.5 - r, f"r={r} (i={r // 3}, j={r % 3})", ha="right", va="center", fontsize=7)
    ax.text(9, 9.8, "cols = im2col(x): (C*kh*kw, OH*OW) = (9, 4)", ha="center", fontsize=10)
    ax.text(12.3, 4.5, "y = W (O, 9) @ cols (9, 4)\n= (O, 4), reshaped to\n(O, 2, 2)",
            va="center", fontsize=10)
    ax.set_xlim(-0.5, 16)
    ax.set_ylim(-0.5, 10.5)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_pooling(path):
    """The 5x5 plane of ``walkthrough pool``: four overlapping 3x3/2 windows and the gradient counts."""
    x = np.arange(25, dtype=np.float64).reshape(5, 5) % 7
    x[2, 2] = 9.0
    t = tinyconv.tensor(x[None, None], requires_grad=True)
    y, idx = tinyconv.functional.max_pool2d(t, 3, stride=2, return_indices=True)
    y.sum().backward()
    g = t.grad.array[0, 0]
    palette = ["#d7191c", "#2b83ba", "#1a9641", "#7b3294"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    ax = axes[0]
    _grid(ax, x, 0, 0)
    for k, (oh, ow) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        inset = 0.07 * (k + 1)
        ax.add_patch(Rectangle((2 * ow + inset, 5 - 2 * oh - 3 + inset), 3 - 2 * inset, 3 - 2 * inset,
                               fill=False, edgecolor=palette[k], lw=2.2))
    ax.set_title("x (5x5): windows 3x3, stride 2\nneighbours share a row/column", fontsize=10)
    ax = axes[1]
    _grid(ax, y.array[0, 0], 1.5, 1.5, fmt="{:.0f}",
          colors=[[palette[0], palette[1]], [palette[2], palette[3]]])
    ax.set_title(f"y = max_pool2d(x) (2x2)\nargmax = {idx.array.ravel().tolist()}", fontsize=10)
    ax = axes[2]
    _grid(ax, g, 0, 0, colors=[["#fdae61" if v else "white" for v in row] for row in g])
    ax.set_title("gradient of y.sum()\nrouted to each window's argmax", fontsize=10)
    for ax in axes:
        ax.set_xlim(-0.2, 5.2)
        ax.set_ylim(-0.2, 5.2)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    fig.subplots_adjust(top=0.82)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_lrn(path):
    """y_c against x_c with the paper's constants, for several sums of squares of the neighbours."""
    from tinyconv.functional.lrn import ALEXNET_LRN
    xs = np.linspace(0, 300, 301)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for neighbours in (0.0, 1e4, 1e5, 1e6):
        # a 5-channel column: the centre channel is x, the four neighbours share `neighbours`
        x = np.zeros((1, 5, len(xs), 1))
        x[0, 2, :, 0] = xs
        x[0, [0, 1, 3, 4], :, 0] = np.sqrt(neighbours / 4)
        y = tinyconv.functional.local_response_norm(tinyconv.tensor(x), **ALEXNET_LRN).array[0, 2, :, 0]
        ax.plot(xs, y, label=f"neighbours' sum of squares = {neighbours:g}")
    ax.plot(xs, xs * 2 ** -0.75, "k:", lw=1, label="x * k^-beta (alpha = 0: only the constant k)")
    ax.set_xlabel("input activity x_c")
    ax.set_ylabel("output y_c")
    ax.set_title("LRN with the paper's k=2, n=5, alpha=1e-4, beta=0.75", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_relu_vs_tanh(path, s, log):
    """The paper's Figure 1 rerun small, at one shared learning rate and over a sweep of
    learning rates (the paper tuned each net's rate); returns the experiment's numbers."""
    sweep = {}
    for lr in s["fig1_sweep"]:
        sweep[str(lr)] = wt.relu_vs_tanh(s["fig1_train"], s["fig1_epochs"], lr, s["fig1_threshold"],
                                         log=log if lr == s["fig1_lr"] else None)
    res = sweep[str(s["fig1_lr"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    z = np.linspace(-4, 4, 201)
    ax = axes[0]
    ax.plot(z, np.maximum(z, 0), label="ReLU  max(x, 0)")
    ax.plot(z, np.tanh(z), "--", label="tanh(x)")
    ax.plot(z, (z > 0).astype(float), color="C0", alpha=0.4, lw=1, label="ReLU'  (1 for x > 0)")
    ax.plot(z, 1 - np.tanh(z) ** 2, "--", color="C1", alpha=0.4, lw=1, label="tanh'  (1 - tanh^2)")
    ax.set_ylim(-1.2, 2.2)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("the two activations and their derivatives", fontsize=10)
    ax = axes[1]
    epochs = np.arange(1, s["fig1_epochs"] + 1)
    ax.plot(epochs, res["relu"]["errors"], "o-", label="ReLU")
    ax.plot(epochs, res["tanh"]["errors"], "s--", label="tanh")
    ax.axhline(s["fig1_threshold"], color="k", lw=0.8, ls=":",
               label=f"threshold {s['fig1_threshold']:.0%}")
    ax.set_xticks(epochs)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error rate")
    ax.set_ylim(0, max(max(res["relu"]["errors"]), max(res["tanh"]["errors"])) * 1.05)
    ax.set_title(f"same net, init and data ({s['fig1_train']} digits), learning rate {s['fig1_lr']}",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    lrs = [float(lr) for lr in sweep]
    never = s["fig1_epochs"] + 1            # drawn above the axis' last epoch: not reached
    for act, style in (("relu", "o-"), ("tanh", "s--")):
        k = [sweep[str(lr)][act]["epochs_to_threshold"] or never for lr in s["fig1_sweep"]]
        ax.plot(lrs, k, style, label="ReLU" if act == "relu" else "tanh")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(lrs)
    ax.set_xticklabels([f"{lr:g}" for lr in lrs])
    ax.set_yticks(range(1, never + 1))
    ax.set_yticklabels([str(e) for e in range(1, never)] + [f">{never - 1}"])
    ax.set_xlabel("learning rate (SGD, momentum 0.9)")
    ax.set_ylabel(f"epochs to {s['fig1_threshold']:.0%} training error")
    ax.set_title("each activation at several learning rates", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"shared_lr": res, "sweep": sweep}


def figure_filters(path, model):
    """The trained small AlexNet's conv1 filters (24 of 1x5x5), each scaled to its own range."""
    w = model.features[0].weight.array[:, 0]
    n = w.shape[0]
    cols = 8
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, 0.9 * rows + 0.4))
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(w[k], cmap="gray", interpolation="nearest")
    fig.suptitle("small28 conv1: 24 learned 5x5 filters", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_feature_maps(path, model, photo_size):
    """A photograph through conv1 -> ReLU -> LRN and conv2 -> ReLU of the trained model.

    The photo is made grey and inverted (1 - grey): MNIST digits are bright strokes on a
    dark ground, so the inverted photo's dark structures are what the filters know as strokes.
    """
    photo = wt.sample_photo(photo_size)
    if photo is None:
        print("feature_maps.png: skipped (needs scikit-learn's sample photograph: pip install scikit-learn)")
        return None
    grey = (1.0 - photo.mean(axis=2))[None] - model.input_mean
    maps = dict(wt.feature_maps(model, grey, upto=6))
    conv1 = maps["features.2 (LocalResponseNorm)"]
    conv2 = maps["features.5 (ReLU)"]
    fig, axes = plt.subplots(3, 6, figsize=(12, 5.6))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(photo)
    axes[0, 0].set_title("photo (china.jpg)", fontsize=8)
    axes[0, 1].imshow(grey[0], cmap="gray")
    axes[0, 1].set_title(f"input: grey, inverted, {grey.shape[1]}x{grey.shape[2]}", fontsize=8)
    # the six maps of each stage that vary most across the image (most structure), in that order
    for row, (name, m) in enumerate((("conv1 + ReLU + LRN", conv1), ("conv2 + ReLU", conv2)), start=1):
        order = np.argsort(-m.reshape(len(m), -1).std(axis=1))[:6]
        for k, ax in enumerate(axes[row]):
            ax.imshow(m[order[k]], cmap="magma")
            ax.set_title(f"{name} #{order[k]}", fontsize=7)
    for k, ax in enumerate(axes[0, 2:]):
        ax.imshow(model.features[0].weight.array[k, 0], cmap="gray", interpolation="nearest")
        ax.set_title(f"conv1 filter #{k}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"photo_shape": list(photo.shape), "conv1_maps": list(conv1.shape),
            "conv2_maps": list(conv2.shape)}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate the walkthrough's figures (docs/figures/*.png).")
    ap.add_argument("--small", action="store_true", help="tiny settings for a quick test run")
    ap.add_argument("--out", default=os.path.join(DOCS, "figures"),
                    help="output folder (default docs/figures)")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch log")
    args = ap.parse_args(argv)
    s = SMALL if args.small else FULL
    os.makedirs(args.out, exist_ok=True)
    log = None if args.quiet else print
    t_all = time.perf_counter()
    record = {"settings": "small" if args.small else "full", "params": s}

    figure_im2col(os.path.join(args.out, "im2col.png"))
    figure_pooling(os.path.join(args.out, "pooling_windows.png"))
    figure_lrn(os.path.join(args.out, "lrn_response.png"))
    fig1 = figure_relu_vs_tanh(os.path.join(args.out, "relu_vs_tanh.png"), s, log)
    record["relu_vs_tanh"], record["relu_vs_tanh_sweep"] = fig1["shared_lr"], fig1["sweep"]
    res = fig1["shared_lr"]
    if log:
        for act in ("relu", "tanh"):
            log(f"{act}: epochs to {s['fig1_threshold']:.0%} training error: "
                f"{res[act]['epochs_to_threshold']}, {res[act]['seconds']:.1f} s")

    t0 = time.perf_counter()
    model, acc, errors = wt.train_small28(s["small28_train"], s["small28_epochs"], s["small28_lr"], log=log)
    record["small28"] = {"test_accuracy": acc, "train_errors": errors, "seconds": time.perf_counter() - t0}
    if log:
        log(f"small28: test accuracy {acc:.3f} after {s['small28_epochs']} epoch(s) "
            f"on {s['small28_train']} digits")
    figure_filters(os.path.join(args.out, "conv1_filters.png"), model)
    record["feature_maps"] = figure_feature_maps(os.path.join(args.out, "feature_maps.png"), model,
                                                 s["photo"])
    record["seconds_total"] = time.perf_counter() - t_all
    with open(os.path.join(args.out, "experiments.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote the figures to {args.out} in {record['seconds_total']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
