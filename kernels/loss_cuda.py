"""CUDA launchers for ``loss.cu``: fused softmax cross-entropy (tinyconv/functional/loss.py's contract).

``softmax_cross_entropy_forward(logits, target) -> (loss_per_sample, probs)``, logits (N, K),
target int64 (N,); ``softmax_cross_entropy_backward(gloss, probs, target) -> glogits``.
"""
import numpy as np

from .cuda_loader import launch, xp_of

KERNELS = {"softmax_xent_forward_kernel": True, "softmax_xent_backward_kernel": True}


def softmax_cross_entropy_forward(logits, target):
    xp = xp_of(logits)
    logits = xp.ascontiguousarray(logits)
    target = xp.ascontiguousarray(target, dtype=np.int64)
    N, K = logits.shape
    loss = xp.empty((N,), dtype=logits.dtype)
    probs = xp.empty_like(logits)
    launch("loss", "softmax_xent_forward_kernel", logits.dtype, N,
           (logits, target, loss, probs, np.int64(N), np.int32(K)))
    return loss, probs


def softmax_cross_entropy_backward(gloss, probs, target):
    xp = xp_of(probs)
    probs = xp.ascontiguousarray(probs)
    gloss = xp.ascontiguousarray(xp.broadcast_to(gloss, (probs.shape[0],)), dtype=probs.dtype)
    target = xp.ascontiguousarray(target, dtype=np.int64)
    N, K = probs.shape
    g = xp.empty_like(probs)
    launch("loss", "softmax_xent_backward_kernel", probs.dtype, N * K,
           (gloss, probs, target, g, np.int64(N * K), np.int32(K)))
    return g
