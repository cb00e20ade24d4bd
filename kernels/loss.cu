// Softmax cross-entropy (tinyconv/functional/loss.py holds the math and the reference).
//   p_k   = exp(z_k - m) / sum_j exp(z_j - m),  m = max_j z_j   (shifted: no overflow)
//   loss  = -log p_t = log(sum_j exp(z_j - m)) + m - z_t
//   glogits = gloss * (p - onehot(t))
// A target equal to ignore_index contributes loss 0 and gradient 0 (PyTorch's
// ignore_index).  A target outside [0, K) that is not ignore_index is never read
// through: its row's loss is NaN, and the op reports the error from
// class_targets_check_kernel's record (read lazily, at the next host read).
#include "tinyconv_common.cuh"

// Threads per block of the block-per-row kernels (a power of two; the launcher passes
// exactly this many, loss_cuda.ROW_BLOCK).
#define TC_ROW_BLOCK 256

struct tc_max_op {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return tc_max(a, b); }
};
struct tc_min_op {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return a < b ? a : b; }
};
struct tc_sum_op {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

// Combine one value per thread over the block with `op`; every thread gets the result.
// A tree in shared memory: at each level thread t < half combines s[t] with s[t + half],
// a barrier between levels.  The pairs are fixed, so the result is deterministic.
// `s` holds TC_ROW_BLOCK entries; the trailing barrier lets the caller reuse it at once.
template <typename T, typename Op>
__device__ T tc_block_reduce(T v, T* s, Op op) {
    const int t = (int)threadIdx.x;
    s[t] = v;
    __syncthreads();
    for (int half = TC_ROW_BLOCK / 2; half > 0; half >>= 1) {
        if (t < half) s[t] = op(s[t], s[t + half]);
        __syncthreads();
    }
    const T r = s[0];
    __syncthreads();
    return r;
}

// A quiet NaN computed at run time (0/0; no header provides NAN under NVRTC).
template <typename T>
__device__ __forceinline__ T tc_nan_like(T x) {
    const T zero = x - x;
    return zero / zero;
}

// Forward: one block per sample n (grid-stride over the samples).  The block's threads
// stride over the row's K logits: (1) a block max m, (2) e_k = exp(z_k - m) written to
// probs and a block sum s, (3) probs scaled by 1/s; thread 0 writes the loss.  K = 1000
// classes is 4 logits per thread instead of one thread walking 3000 of them.
template <typename T>
__global__ void softmax_cross_entropy_forward_kernel(const T* __restrict__ logits, const i64* __restrict__ target,
                                                     T* __restrict__ loss, T* __restrict__ probs, i64 N, int K,
                                                     i64 ignore_index) {
    __shared__ T s[TC_ROW_BLOCK];
    for (i64 n = blockIdx.x; n < N; n += gridDim.x) {
        const T* z = logits + n * K;
        T* pr = probs + n * K;
        T m = z[0];
        for (int k = (int)threadIdx.x; k < K; k += TC_ROW_BLOCK) m = tc_max(m, z[k]);
        m = tc_block_reduce(m, s, tc_max_op());
        T part = T(0);
        for (int k = (int)threadIdx.x; k < K; k += TC_ROW_BLOCK) {
            const T e = tc_exp(z[k] - m);
            pr[k] = e;
            part += e;
        }
        const T sum = tc_block_reduce(part, s, tc_sum_op());
        const T inv = T(1) / sum;
        for (int k = (int)threadIdx.x; k < K; k += TC_ROW_BLOCK) pr[k] *= inv;
        if (threadIdx.x == 0) {
            const i64 t = target[n];
            loss[n] = t == ignore_index ? T(0)
                      : (t >= 0 && t < K) ? tc_log(sum) + m - z[t]
                                          : tc_nan_like(m);
        }
    }
}

// Backward: one block per sample n, its threads striding over the K classes (no
// reduction: each element is gloss_n * (p_nk - [k == t_n]), 0 for an ignored sample).
template <typename T>
__global__ void softmax_cross_entropy_backward_kernel(const T* __restrict__ gloss, const T* __restrict__ probs,
                                                      const i64* __restrict__ target, T* __restrict__ glogits,
                                                      i64 N, int K, i64 ignore_index) {
    for (i64 n = blockIdx.x; n < N; n += gridDim.x) {
        const i64 t = target[n];
        const T g = gloss[n];
        const bool ignored = t == ignore_index;
        for (int k = (int)threadIdx.x; k < K; k += (int)blockDim.x) {
            const i64 idx = n * K + k;
            glogits[idx] = ignored ? T(0) : g * (probs[idx] - (k == t ? T(1) : T(0)));
        }
    }
}

// The class-target check, on the device so that a training step needs no host sync.
// One block over the N targets; it writes
//   out[0] = the first n whose target is outside [0, K) and not ignore_index (N if none),
//   out[1] = that target (0 if none),
//   out[2] = how many targets are not ignore_index (the divisor of the mean loss).
__global__ void class_targets_check_kernel(const i64* __restrict__ target, i64* __restrict__ out, i64 N, i64 K,
                                           i64 ignore_index) {
    __shared__ i64 s[TC_ROW_BLOCK];
    i64 first = N, ignored = 0;
    for (i64 n = threadIdx.x; n < N; n += TC_ROW_BLOCK) {
        const i64 t = target[n];
        if (t == ignore_index) {
            ++ignored;
        } else if ((t < 0 || t >= K) && n < first) {
            first = n;
        }
    }
    first = tc_block_reduce(first, s, tc_min_op());
    ignored = tc_block_reduce(ignored, s, tc_sum_op());
    if (threadIdx.x == 0) {
        out[0] = first;
        out[1] = first < N ? target[first] : 0;
        out[2] = N - ignored;
    }
}
