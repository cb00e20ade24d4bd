// Local response normalization across channels, PyTorch's definition
// (tinyconv/functional/lrn.py holds the math and the NumPy reference).
//
//   window(c) = channels c - size/2 ... c + (size-1)/2, clipped to [0, C)  (zero padding)
//   scale_c   = k + (alpha/size) * sum_{j in window(c)} x_j^2
//   y_c       = x_c * scale_c^-beta
// backward:
//   gx_c = gy_c * scale_c^-beta
//          - (2*alpha*beta/size) * x_c * sum_{j : c in window(j)} gy_j * y_j / scale_j
// where c in window(j)  <=>  j in c - (size-1)/2 ... c + size/2.
#include "tinyconv_common.cuh"

// One thread per element (n, c, p) with p = h*W + w; x is viewed as (N, C, HW).
// Channel neighbours of one pixel are HW apart; threads with neighbouring p read
// neighbouring addresses, so every load is coalesced.
template <typename T>
__global__ void lrn_forward_kernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ scale,
                                   i64 total, int C, i64 HW, int size, T alpha, T beta, T k) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = (n*C + c)*HW + p
        const i64 p = idx % HW;
        const int c = (int)((idx / HW) % C);
        const i64 n = idx / (HW * C);
        const T* xp = x + n * C * HW + p;              // x[n, 0, p]; channel j at xp[j*HW]
        const int j_lo = (int)tc_max64(c - size / 2, 0);
        const int j_hi = (int)tc_min64(c + (size - 1) / 2, C - 1);
        T sq = T(0);
        for (int j = j_lo; j <= j_hi; ++j) {
            const T v = xp[(i64)j * HW];
            sq += v * v;
        }
        const T s = k + alpha / T(size) * sq;
        scale[idx] = s;
        y[idx] = x[idx] * tc_pow(s, -beta);
    }
}

template <typename T>
__global__ void lrn_backward_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                    const T* __restrict__ y, const T* __restrict__ scale,
                                    T* __restrict__ gx, i64 total, int C, i64 HW, int size,
                                    T alpha, T beta) {
    TC_KERNEL_LOOP(idx, total) {
        const i64 p = idx % HW;
        const int c = (int)((idx / HW) % C);
        const i64 n = idx / (HW * C);
        const i64 plane0 = n * C * HW + p;             // offset of (n, 0, p)
        // the channels j whose window holds c
        const int j_lo = (int)tc_max64(c - (size - 1) / 2, 0);
        const int j_hi = (int)tc_min64(c + size / 2, C - 1);
        T acc = T(0);
        for (int j = j_lo; j <= j_hi; ++j) {
            const i64 o = plane0 + (i64)j * HW;
            acc += gy[o] * y[o] / scale[o];
        }
        gx[idx] = gy[idx] * tc_pow(scale[idx], -beta) - T(2) * alpha * beta / T(size) * x[idx] * acc;
    }
}
