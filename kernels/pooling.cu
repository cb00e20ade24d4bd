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

// ---------------------------------------------------------------------------- backward without geometry
// A parallel, deterministic gather that needs no window geometry, only the arg-maxes:
// 1. per output row (n, c, oh): the smallest and largest input row its arg-maxes point at;
//    per output column (n, c, ow): the same for input columns;
// 2. one thread per input pixel (n, c, h, w) visits the outputs whose row bounds hold h and
//    whose column bounds hold w, and sums gy where the arg-max is this pixel.
// Every output that points at (h, w) passes both bound tests, so nothing is missed; the sum
// runs in (oh, ow) order, the same order as the gather kernel and the plane kernel.
#define TC_INT_MAX 0x7fffffff

// One thread per (n, c, oh): rlo/rhi[(n*C + c)*OH + oh] = min/max of argmax/W over ow.
__global__ void max_pool2d_row_bounds_kernel(const i64* __restrict__ argmax, int* __restrict__ rlo,
                                             int* __restrict__ rhi, i64 rows, int W, int OW) {
    TC_KERNEL_LOOP(r, rows) {
        const i64* a = argmax + r * OW;                // output row r = nc*OH + oh
        int lo = TC_INT_MAX, hi = -1;
        for (int ow = 0; ow < OW; ++ow) {
            const int h = (int)(a[ow] / W);
            lo = h < lo ? h : lo;
            hi = h > hi ? h : hi;
        }
        rlo[r] = lo;
        rhi[r] = hi;
    }
}

// One thread per (n, c, ow): clo/chi[(n*C + c)*OW + ow] = min/max of argmax%W over oh.
__global__ void max_pool2d_col_bounds_kernel(const i64* __restrict__ argmax, int* __restrict__ clo,
                                             int* __restrict__ chi, i64 cols, int W, int OH, int OW) {
    TC_KERNEL_LOOP(k, cols) {
        const i64 nc = k / OW;
        const int ow = (int)(k % OW);
        const i64* a = argmax + nc * OH * OW + ow;     // column ow of plane nc, stride OW
        int lo = TC_INT_MAX, hi = -1;
        for (int oh = 0; oh < OH; ++oh) {
            const int w = (int)(a[(i64)oh * OW] % W);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        clo[k] = lo;
        chi[k] = hi;
    }
}

template <typename T>
__global__ void max_pool2d_backward_bounds_kernel(const T* __restrict__ gy, const i64* __restrict__ argmax,
                                                  const int* __restrict__ rlo, const int* __restrict__ rhi,
                                                  const int* __restrict__ clo, const int* __restrict__ chi,
                                                  T* __restrict__ gx, i64 total, int H, int W, int OH, int OW) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = (nc*H + h)*W + w
        const int w = (int)(idx % W);
        const int h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const i64 me = (i64)h * W + w;
        T acc = T(0);
        for (int oh = 0; oh < OH; ++oh) {
            const i64 r = nc * OH + oh;
            if (h < rlo[r] || h > rhi[r]) continue;    // no arg-max of this row is in row h
            for (int ow = 0; ow < OW; ++ow) {
                const i64 k = nc * OW + ow;
                if (w < clo[k] || w > chi[k]) continue;
                const i64 o = r * OW + ow;
                if (argmax[o] == me) acc += gy[o];
            }
        }
        gx[idx] = acc;
    }
}
