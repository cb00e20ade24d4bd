"""CPU kernels (Numba) for the ``loss`` family: softmax cross-entropy, fused row by row.

Must equal ``softmax_cross_entropy_forward_reference`` / ``..._backward_reference`` in
``tinyconv/functional/loss.py`` to float rounding (the exponentials are summed in
float64 here, in the logits' dtype there).  Contract::

    softmax_cross_entropy_forward(logits (N, K), target int64 (N,)) -> (loss (N,), probs (N, K))
        loss_i = logsumexp(logits_i) - logits_i[target_i],  probs = softmax(logits) row-wise
    softmax_cross_entropy_backward(gloss (N,), probs, target) -> glogits = gloss_i * (probs_i - onehot)

Each row is one task: its max (so every exponential is <= 1), the sum of
exponentials, then the probabilities, in two passes over the row instead of the
reference's half-dozen full-size temporaries.  Targets were checked by the op.
"""
import numpy as np
from numba import njit, prange

from ._numba_dtypes import float16_via_float32
from ._numba_threads import threads_for


@njit(cache=True, parallel=True)
def _sce_fwd(logits, target, loss, probs):
    N, K = logits.shape
    for i in prange(N):
        row = logits[i]
        m = row[0]
        for k in range(1, K):                      # row max: exp(row - m) <= 1 never overflows
            if row[k] > m:
                m = row[k]
        s = 0.0
        for k in range(K):                         # e_k = exp(x_k - m), summed in float64
            e = np.exp(row[k] - m)
            probs[i, k] = e
            s += e
        lse = np.log(s)                            # logsumexp(row) - m
        loss[i] = lse - (row[target[i]] - m)
        inv = 1.0 / s
        for k in range(K):
            probs[i, k] = probs[i, k] * inv


@float16_via_float32
def softmax_cross_entropy_forward(logits, target):
    """(loss per row, softmax probabilities); equals ``softmax_cross_entropy_forward_reference``."""
    logits = np.ascontiguousarray(logits)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"softmax_cross_entropy_forward: expected logits (N, K) with K >= 1, "
                         f"got shape {logits.shape}")
    target = np.ascontiguousarray(target, dtype=np.int64)
    loss = np.empty(logits.shape[0], dtype=logits.dtype)
    probs = np.empty_like(logits)
    with threads_for(logits.size):
        _sce_fwd(logits, target, loss, probs)
    return loss, probs


@njit(cache=True, parallel=True)
def _sce_bwd(gloss, probs, target, g):
    N, K = probs.shape
    for i in prange(N):
        gi = gloss[i]
        for k in range(K):
            g[i, k] = probs[i, k] * gi
        g[i, target[i]] -= gi                      # the one-hot term


@float16_via_float32
def softmax_cross_entropy_backward(gloss, probs, target):
    """glogits = gloss_i * (probs_i - onehot(target_i)); equals the backward reference."""
    gloss = np.ascontiguousarray(gloss)
    probs = np.ascontiguousarray(probs)
    target = np.ascontiguousarray(target, dtype=np.int64)
    g = np.empty_like(probs)
    with threads_for(probs.size):
        _sce_bwd(gloss, probs, target, g)
    return g
