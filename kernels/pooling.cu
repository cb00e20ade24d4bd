// Max pooling forward (with the arg-max) and backward (tinyconv/functional/pooling.py holds
// the math and the NumPy reference; kernels/pooling_cuda.py launches these).
//
// Contract: x is (N, C, H, W), y and argmax are (N, C, OH, OW); argmax holds the flat index
// h*W + w of the maximum inside its (n, c) plane (PyTorch's return_indices).  Tap (i, j) of
// output (oh, ow) is pixel (oh*sh - ph + i*dh, ow*sw - pw + j*dw), (dh, dw) the dilation.
// Padding acts as -inf; the first maximum in scan order (i, then j) wins ties.
#include "tinyconv_common.cuh"

// One thread per output (n, c, oh, ow) scans the kh x kw taps of its window, skipping
// those in the padding (-inf, so they never win).  The op guarantees every window has a
// tap inside the image, so best_i is always set.
template <typename T>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                          i64* __restrict__ argmax, i64 total, int H, int W,
                                          int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
                                          int dh, int dw) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = (nc*OH + oh)*OW + ow with nc = n*C + c
        const int ow = (int)(idx % OW);
        const int oh = (int)((idx / OW) % OH);
        const i64 nc = idx / ((i64)OW * OH);
        const int h0 = oh * sh - ph, w0 = ow * sw - pw;   // window's top-left (may be < 0)
        const T* xp = x + nc * H * W;
        i64 best_i = -1;
        T best = T(0);
        for (int i = 0; i < kh; ++i) {
            const int h = h0 + i * dh;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < kw; ++j) {
                const int w = w0 + j * dw;
                if (w < 0 || w >= W) continue;
                const T v = xp[(i64)h * W + w];
                // strict '>' keeps the first maximum; a NaN always takes over (v != v), as in
                // PyTorch, so the last NaN of the window is the one reported
                if (best_i < 0 || v > best || v != v) {
                    best = v;
                    best_i = (i64)h * W + w;
                }
            }
        }
        y[idx] = best;
        argmax[idx] = best_i;
    }
}

// Gather form of the scatter-add: one thread per input pixel (n, c, h, w) sums gy over
// the outputs that have a tap on it and whose arg-max is this pixel.  Tap i of output oh
// is row h when oh*sh = hp - i*dh with hp = h + ph (as in conv.cu's col2im): running i
// down from min(kh - 1, hp/dh) visits those oh in increasing order.
// Each thread owns its pixel: deterministic, no atomics.
template <typename T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ gy, const i64* __restrict__ argmax,
                                           T* __restrict__ gx, i64 total, int H, int W, int OH, int OW,
                                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = (nc*H + h)*W + w
        const int w = (int)(idx % W);
        const int h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const int hp = h + ph, wp = w + pw;
        const i64 me = (i64)h * W + w;                 // this pixel's index in its plane
        const i64 base = nc * OH * OW;
        T acc = T(0);
        for (int i = (int)tc_min64(hp / dh, kh - 1); i >= 0; --i) {
            const int hs = hp - i * dh;                // = oh*sh if tap row i of output oh is h
            if (hs % sh) continue;
            const int oh = hs / sh;
            if (oh >= OH) break;
            for (int j = (int)tc_min64(wp / dw, kw - 1); j >= 0; --j) {
                const int ws = wp - j * dw;
                if (ws % sw) continue;
                const int ow = ws / sw;
                if (ow >= OW) break;
                const i64 o = base + (i64)oh * OW + ow;
                if (argmax[o] == me) acc += gy[o];
            }
        }
        gx[idx] = acc;
    }
}
