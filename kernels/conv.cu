// im2col and col2im for convolution as a GEMM (tinyconv/functional/conv.py holds the math
// and the NumPy reference; kernels/conv_cuda.py launches these).
//
// Layout (the kernel contract): x is (N, C, H, W); cols is (N, C*kh*kw, OH*OW) with
//   row r = (c*kh + i)*kw + j,  column l = oh*OW + ow,
//   cols[n, r, l] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   (0 outside the image),
// (dh, dw) being the dilation: kernel taps dh rows and dw columns apart.
#include "tinyconv_common.cuh"

// One thread per (n, c, oh, ow): it copies the kh*kw patch under that output position
// into its column l.  Neighbouring threads have neighbouring ow, so every write of the
// inner loop is coalesced (consecutive l), as in Caffe's im2col_gpu_kernel.
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols, i64 total,
                              int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                              int dh, int dw, int OH, int OW) {
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
            const int h = h0 + i * dh;                 // tap (i, j) of the dilated patch
            for (int j = 0; j < kw; ++j) {
                const int w = w0 + j * dw;
                const bool inside = h >= 0 && h < H && w >= 0 && w < W;
                *cp = inside ? xp[(i64)h * W + w] : T(0);
                cp += L;                               // next row r of cols
            }
        }
    }
}

// The adjoint of im2col in gather form: one thread per input pixel (n, c, h, w) sums
// every cols entry that im2col copied from it.  Entry (i, j, oh, ow) came from (h, w)
// when h = oh*sh - ph + i*dh and w = ow*sw - pw + j*dw, i.e. with hp = h + ph,
//   oh*sh = hp - i*dh:  kernel row i reached this pixel iff hp - i*dh is >= 0, a multiple
//   of sh, and below OH*sh  (the same for the columns with wp = w + pw).
// The loops run i from its largest candidate min(kh - 1, hp/dh) down to 0, so oh grows
// and the first oh >= OH ends them; each pixel sums in (oh, ow) order.
// No two threads write one pixel: deterministic, no atomics (Caffe's col2im_gpu_kernel).
template <typename T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ gx, i64 total,
                              int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                              int dh, int dw, int OH, int OW) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = ((n*C + c)*H + h)*W + w
        const int w = (int)(idx % W);
        const int h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const int hp = h + ph, wp = w + pw;            // position in the padded image
        const i64 L = (i64)OH * OW;
        const T* cp = cols + nc * kh * kw * L;         // rows of this (n, c)
        T acc = T(0);
        for (int i = (int)tc_min64(hp / dh, kh - 1); i >= 0; --i) {
            const int hs = hp - i * dh;                // = oh*sh if kernel row i saw (h, w)
            if (hs % sh) continue;
            const int oh = hs / sh;
            if (oh >= OH) break;                       // a smaller i only gives a larger oh
            for (int j = (int)tc_min64(wp / dw, kw - 1); j >= 0; --j) {
                const int ws = wp - j * dw;
                if (ws % sw) continue;
                const int ow = ws / sw;
                if (ow >= OW) break;
                acc += cp[(i64)(i * kw + j) * L + (i64)oh * OW + ow];
            }
        }
        gx[idx] = acc;
    }
}
