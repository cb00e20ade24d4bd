"""CUDA launchers for ``loss.cu``: fused softmax cross-entropy (tinyconv/functional/loss.py's contract).

``softmax_cross_entropy_forward(logits, target, ignore_index=-100) -> (loss_per_sample, probs)``,
logits (N, K), target int64 (N,); ``softmax_cross_entropy_backward(gloss, probs, target,
ignore_index=-100) -> glogits``.  A sample whose target is ``ignore_index`` gets loss 0 and
gradient 0.  ``class_targets_check(target, K, ignore_index)`` checks the targets on the
device (see ``loss.cu``), so that the op need not read them back to the host.
"""
import numpy as np

from .cuda_loader import check, launch, xp_of

KERNELS = {"softmax_cross_entropy_forward_kernel": True, "softmax_cross_entropy_backward_kernel": True,
           "class_targets_check_kernel": False}
#: kernels whose threads cooperate through shared memory and barriers (one block per row)
COOPERATIVE = {"softmax_cross_entropy_forward_kernel", "class_targets_check_kernel"}
#: threads per block of the block-per-row kernels: TC_ROW_BLOCK in loss.cu
ROW_BLOCK = 256
MAX_ROWS_GRID = 65536


def _rows_grid(n):
    return max(1, min(int(n), MAX_ROWS_GRID))


def _targets(op, target, N):
    check(op, "target", target, shape=(N,))
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class indices as target, got dtype {target.dtype}")
    return xp_of(target).ascontiguousarray(target, dtype=np.int64)


def softmax_cross_entropy_forward(logits, target, ignore_index=-100):
    op = "softmax_cross_entropy_forward"
    xp = xp_of(logits)
    check(op, "logits", logits, ndim=2)
    N, K = logits.shape
    if K == 0:
        raise ValueError(f"{op}: expected at least one class, got logits of shape {(N, K)}")
    target = _targets(op, target, N)
    logits = xp.ascontiguousarray(logits)
    loss = xp.empty((N,), dtype=logits.dtype)
    probs = xp.empty_like(logits)
    launch("loss", "softmax_cross_entropy_forward_kernel", logits.dtype, N,
           (logits, target, loss, probs, np.int64(N), np.int32(K), np.int64(ignore_index)),
           grid=_rows_grid(N), block=ROW_BLOCK)
    return loss, probs


def softmax_cross_entropy_backward(gloss, probs, target, ignore_index=-100):
    op = "softmax_cross_entropy_backward"
    xp = xp_of(probs)
    check(op, "probs", probs, ndim=2)
    N, K = probs.shape
    check(op, "gloss", gloss)
    if gloss.shape not in ((), (1,), (N,)):
        raise ValueError(f"{op}: expected gloss of shape ({N},) (or a scalar), got {tuple(gloss.shape)}")
    target = _targets(op, target, N)
    probs = xp.ascontiguousarray(probs)
    gloss = xp.ascontiguousarray(xp.broadcast_to(gloss, (N,)), dtype=probs.dtype)
    g = xp.empty_like(probs)
    launch("loss", "softmax_cross_entropy_backward_kernel", probs.dtype, N,
           (gloss, probs, target, g, np.int64(N), np.int32(K), np.int64(ignore_index)),
           grid=_rows_grid(N), block=ROW_BLOCK)
    return g


def class_targets_check(target, K, ignore_index=-100):
    """int64 (3,) on the device: [first bad n (N if none), its target, count of not-ignored targets].

    A bad target lies outside [0, K) and is not ``ignore_index``.  One block, one launch;
    nothing is read back (the caller reads the record when it next syncs anyway).
    """
    op = "class_targets_check"
    check(op, "target", target, ndim=1)
    target = _targets(op, target, target.shape[0])
    out = xp_of(target).empty((3,), dtype=np.int64)
    launch("loss", "class_targets_check_kernel", None, 1,
           (target, out, np.int64(target.shape[0]), np.int64(K), np.int64(ignore_index)),
           grid=1, block=ROW_BLOCK)
    return out
