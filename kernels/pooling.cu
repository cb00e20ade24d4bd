// Max pooling forward (with the arg-max) and backward (tinyconv/functional/pooling.py holds
// the math and the NumPy reference; kernels/pooling_cuda.py launches these).
//
// Contract: x is (N, C, H, W), y and argmax are (N, C, OH, OW); argmax holds the flat index
// h*W + w of the maximum inside its (n, c) plane (PyTorch's return_indices).  Padding acts
// as -inf; the first maximum in scan order (i, then j) wins ties.
#include "tinyconv_common.cuh"

// One thread per output (n, c, oh, ow) scans its kh x kw window, clipped to the image
// (padded cells are -inf, so they never win and can simply be skipped).
template <typename T>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                          i64* __restrict__ argmax, i64 total, int H, int W,
                                          int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = (nc*OH + oh)*OW + ow with nc = n*C + c
        const int ow = (int)(idx % OW);
        const int oh = (int)((idx / OW) % OH);
        const i64 nc = idx / ((i64)OW * OH);
        const int h0 = oh * sh - ph, w0 = ow * sw - pw;   // window's top-left (may be < 0)
        const int h_lo = (int)tc_max64(h0, 0), h_hi = (int)tc_min64(h0 + kh, H);
        const int w_lo = (int)tc_max64(w0, 0), w_hi = (int)tc_min64(w0 + kw, W);
        const T* xp = x + nc * H * W;
        i64 best_i = -1;
        T best = T(0);
        for (int h = h_lo; h < h_hi; ++h) {
            for (int w = w_lo; w < w_hi; ++w) {
                const T v = xp[(i64)h * W + w];
                // strict '>' keeps the first maximum; a NaN always takes over (v != v), as in
                // PyTorch, so the last NaN of the window is the one reported
                if (best_i < 0 || v > best || v != v) {
                    best = v;
                    best_i = (i64)h * W + w;
                }
            }
        }
        y[idx] = best;        // a window always holds a real pixel when padding <= kernel/2
        argmax[idx] = best_i;
    }
}

// Gather form of the scatter-add: one thread per input pixel (n, c, h, w) sums gy over
// the outputs whose window covers it and whose arg-max is this pixel.  Output oh covers h
// when oh*sh - ph <= h < oh*sh - ph + kh, i.e. with hp = h + ph:
//   oh from (hp < kh ? 0 : (hp - kh)/sh + 1) to min(hp/sh, OH - 1).
// Each thread owns its pixel: deterministic, no atomics.
template <typename T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ gy, const i64* __restrict__ argmax,
                                           T* __restrict__ gx, i64 total, int H, int W, int OH, int OW,
                                           int kh, int kw, int sh, int sw, int ph, int pw) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = (nc*H + h)*W + w
        const int w = (int)(idx % W);
        const int h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const int hp = h + ph, wp = w + pw;
        const int oh_start = hp < kh ? 0 : (hp - kh) / sh + 1;
        const int oh_end = (int)tc_min64(hp / sh + 1, OH);
        const int ow_start = wp < kw ? 0 : (wp - kw) / sw + 1;
        const int ow_end = (int)tc_min64(wp / sw + 1, OW);
        const i64 me = (i64)h * W + w;                 // this pixel's index in its plane
        const i64 base = nc * OH * OW;
        T acc = T(0);
        for (int oh = oh_start; oh < oh_end; ++oh) {
            for (int ow = ow_start; ow < ow_end; ++ow) {
                const i64 o = base + (i64)oh * OW + ow;
                if (argmax[o] == me) acc += gy[o];
            }
        }
        gx[idx] = acc;
    }
}

// Backward when the window geometry is unknown (the contract's max_pool2d_backward(gy,
// argmax, x_shape) does not carry it): gx arrives zeroed (a coalesced fill by the
// launcher), and one thread per (n, c) plane walks the plane's outputs in order, adding
// each gy to its arg-max pixel.  Each thread owns a plane: deterministic, no atomics, but
// only N*C threads, so the gather kernel above is used whenever the geometry is passed.
template <typename T>
__global__ void max_pool2d_backward_plane_kernel(const T* __restrict__ gy, const i64* __restrict__ argmax,
                                                 T* __restrict__ gx, i64 planes, i64 HW, i64 L) {
    TC_KERNEL_LOOP(nc, planes) {
        T* g = gx + nc * HW;                           // this thread's plane of gx
        for (i64 o = nc * L; o < (nc + 1) * L; ++o) g[argmax[o]] += gy[o];
    }
}
