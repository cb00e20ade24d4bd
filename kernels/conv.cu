// im2col and col2im for convolution as a GEMM (tinyconv/functional/conv.py holds the math
// and the NumPy reference; kernels/conv_cuda.py launches these).
//
// Layout (the kernel contract): x is (N, C, H, W); cols is (N, C*kh*kw, OH*OW) with
//   row r = (c*kh + i)*kw + j,  column l = oh*OW + ow,
//   cols[n, r, l] = x[n, c, oh*sh - ph + i, ow*sw - pw + j]   (0 outside the image).
#include "tinyconv_common.cuh"

// One thread per (n, c, oh, ow): it copies the kh*kw patch under that output position
// into its column l.  Neighbouring threads have neighbouring ow, so every write of the
// inner loop is coalesced (consecutive l), as in Caffe's im2col_gpu_kernel.
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols, i64 total,
                              int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                              int OH, int OW) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = ((n*C + c)*OH + oh)*OW + ow
        const int ow = (int)(idx % OW);
        const int oh = (int)((idx / OW) % OH);
        const i64 nc = idx / ((i64)OW * OH);           // n*C + c
        const int h0 = oh * sh - ph;                   // top-left of the patch in x
        const int w0 = ow * sw - pw;
        const T* xp = x + nc * H * W;                  // the (n, c) image plane
        const i64 L = (i64)OH * OW;
        // cols[n, c*kh*kw + i*kw + j, oh*OW + ow]; rows of one (n, c) are contiguous in cols
        // because (n*C + c)*kh*kw + r' = n*(C*kh*kw) + c*kh*kw + r'.
        T* cp = cols + nc * kh * kw * L + (i64)oh * OW + ow;
        for (int i = 0; i < kh; ++i) {
            const int h = h0 + i;
            for (int j = 0; j < kw; ++j) {
                const int w = w0 + j;
                const bool inside = h >= 0 && h < H && w >= 0 && w < W;
                *cp = inside ? xp[(i64)h * W + w] : T(0);
                cp += L;                               // next row r of cols
            }
        }
    }
}

// The adjoint of im2col in gather form: one thread per input pixel (n, c, h, w) sums
// every cols entry that im2col copied from it.  Entry (i, j, oh, ow) came from (h, w)
// when h = oh*sh - ph + i and w = ow*sw - pw + j, i.e. i = hp - oh*sh with hp = h + ph;
// 0 <= i < kh gives  (hp - kh)/sh < oh <= hp/sh,  so
//   oh from  (hp < kh ? 0 : (hp - kh)/sh + 1)  to  min(hp/sh, OH - 1)   (same for ow).
// No two threads write one pixel: deterministic, no atomics (Caffe's col2im_gpu_kernel).
template <typename T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ gx, i64 total,
                              int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                              int OH, int OW) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = ((n*C + c)*H + h)*W + w
        const int w = (int)(idx % W);
        const int h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const int hp = h + ph, wp = w + pw;            // position in the padded image
        const int oh_start = hp < kh ? 0 : (hp - kh) / sh + 1;
        const int oh_end = (int)tc_min64(hp / sh + 1, OH);  // exclusive
        const int ow_start = wp < kw ? 0 : (wp - kw) / sw + 1;
        const int ow_end = (int)tc_min64(wp / sw + 1, OW);
        const i64 L = (i64)OH * OW;
        const T* cp = cols + nc * kh * kw * L;         // rows of this (n, c)
        T acc = T(0);
        for (int oh = oh_start; oh < oh_end; ++oh) {
            const int i = hp - oh * sh;                // kernel row that saw (h, w)
            for (int ow = ow_start; ow < ow_end; ++ow) {
                const int j = wp - ow * sw;
                acc += cp[(i64)(i * kw + j) * L + (i64)oh * OW + ow];
            }
        }
        gx[idx] = acc;
    }
}
