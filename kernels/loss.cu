// Softmax cross-entropy (tinyconv/functional/loss.py holds the math and the reference).
//   p_k   = exp(z_k - m) / sum_j exp(z_j - m),  m = max_j z_j   (shifted: no overflow)
//   loss  = -log p_t = log(sum_j exp(z_j - m)) + m - z_t
//   glogits = gloss * (p - onehot(t))
#include "tinyconv_common.cuh"

// One thread per sample n walks its row of K logits three times (max, sum, probs).
// Plain and deterministic; the rows are short (K = 1000 classes for AlexNet).
template <typename T>
__global__ void softmax_xent_forward_kernel(const T* __restrict__ logits, const i64* __restrict__ target,
                                            T* __restrict__ loss, T* __restrict__ probs, i64 N, int K) {
    TC_KERNEL_LOOP(n, N) {
        const T* z = logits + n * K;
        T* pr = probs + n * K;
        T m = z[0];
        for (int k = 1; k < K; ++k) m = tc_max(m, z[k]);
        T s = T(0);
        for (int k = 0; k < K; ++k) {
            const T e = tc_exp(z[k] - m);
            pr[k] = e;
            s += e;
        }
        const T inv = T(1) / s;
        for (int k = 0; k < K; ++k) pr[k] *= inv;
        loss[n] = tc_log(s) + m - z[target[n]];
    }
}

// One thread per element (n, k).
template <typename T>
__global__ void softmax_xent_backward_kernel(const T* __restrict__ gloss, const T* __restrict__ probs,
                                             const i64* __restrict__ target, T* __restrict__ glogits,
                                             i64 total, int K) {
    TC_KERNEL_LOOP(idx, total) {
        const i64 n = idx / K;
        const int k = (int)(idx % K);
        glogits[idx] = gloss[n] * (probs[idx] - (k == target[n] ? T(1) : T(0)));
    }
}
