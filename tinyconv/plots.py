"""PNG plots of a training run: the learning curves, and the first layer's filters.

``plot_filters`` draws what the paper's Figure 3 shows: every kernel of the first
convolutional layer as a small image (RGB for colour input, grey for one channel),
each stretched to the full [0, 1] range on its own.

matplotlib is imported only when a plot is drawn (it is the optional ``demo``
extra), with the non-interactive Agg backend, so training works on a headless
machine and without matplotlib (then :func:`available` is False and the training
loop skips its plots with a note).
"""
import math

import numpy as np


def available():
    """True if matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("tinyconv.plots needs matplotlib: pip install matplotlib "
                          "(or pip install 'tinyconv[demo]')") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def plot_training_curves(history, path, title="training"):
    """Save loss, error and learning-rate curves per epoch as a PNG at ``path``.

    ``history`` is a dict of per-epoch lists as the training loop keeps it:
    ``train_loss``, ``val_loss``, ``train_error``, ``val_top1_error``,
    ``val_top5_error``, ``lr`` (any missing key is left out of the plot).
    """
    plt = _pyplot()
    epochs = np.arange(1, len(history.get("train_loss", [])) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        if history.get(key):
            ax.plot(epochs, history[key], marker="o", label=label)
    ax.set(title="cross-entropy loss", xlabel="epoch")
    ax.legend()
    ax = axes[1]
    for key, label in (("train_error", "train top-1"), ("val_top1_error", "validation top-1"),
                       ("val_top5_error", "validation top-5")):
        if history.get(key):
            ax.plot(epochs, 100 * np.asarray(history[key], dtype=float), marker="o", label=label)
    ax.set(title="error rate (%)", xlabel="epoch", ylim=(0, None))
    ax.legend()
    ax = axes[2]
    if history.get("lr"):
        ax.semilogy(epochs, history["lr"], marker="o")
    ax.set(title="learning rate", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        if len(epochs):
            ax.set_xticks(epochs if len(epochs) <= 20 else epochs[::max(1, len(epochs) // 10)])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def filter_grid(weight, columns=None, pad=1):
    """The kernels of a (O, C, kh, kw) weight as one image: (H, W, 3) for C == 3, else
    (H, W) (for C != 3 each kernel's channels are averaged).  Each kernel is min-max
    scaled to [0, 1] on its own; the padding between kernels is white."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: expected a (out, in, kh, kw) conv weight, got shape {w.shape}")
    o, c, kh, kw = w.shape
    k = w if c == 3 else w.mean(axis=1, keepdims=True)
    lo = k.min(axis=(1, 2, 3), keepdims=True)
    hi = k.max(axis=(1, 2, 3), keepdims=True)
    k = (k - lo) / np.where(hi > lo, hi - lo, 1.0)
    columns = columns or int(math.ceil(math.sqrt(o)))
    rows = int(math.ceil(o / columns))
    ch = k.shape[1]
    grid = np.ones((rows * (kh + pad) + pad, columns * (kw + pad) + pad, ch))
    for i in range(o):
        r, q = divmod(i, columns)
        top, left = pad + r * (kh + pad), pad + q * (kw + pad)
        grid[top:top + kh, left:left + kw] = k[i].transpose(1, 2, 0)     # CHW -> HWC
    return grid if ch == 3 else grid[:, :, 0]


def plot_filters(weight, path, title="first-layer filters", columns=None):
    """Save the first conv layer's kernels as a grid PNG (the paper's Figure 3)."""
    plt = _pyplot()
    w = np.asarray(weight)
    grid = filter_grid(w, columns)
    side = lambda px: float(np.clip(px / 10, 4, 12))     # noqa: E731  inches for a side of px pixels
    fig, ax = plt.subplots(figsize=(side(grid.shape[1]), side(grid.shape[0]) + 0.5))
    ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", interpolation="nearest", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(f"{title}: {w.shape[0]} kernels of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
