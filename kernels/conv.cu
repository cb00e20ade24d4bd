// im2col and col2im for convolution as a GEMM (tinyconv/functional/conv.py holds the math
// and the NumPy reference; kernels/conv_cuda.py launches these).
//
// The column matrix: x is (N, C, H, W); entry (n, r, l) of the columns, with
//   row r = (c*kh + i)*kw + j,  column l = oh*OW + ow,
// is x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   (0 outside the image),
// (dh, dw) being the dilation: kernel taps dh rows and dw columns apart.  Where entry
// (n, r, l) sits in memory is the launcher's choice, given as two strides:
//   cols + n*sample_stride + r*row_stride + l
// * the kernel contract's (N, C*kh*kw, L):   sample_stride = C*kh*kw*L, row_stride = L
// * conv2d's batched GEMM layout (G, K, N*L), K = C*kh*kw/G, the samples side by side
//   in each row: row R = g*K + k of sample n is cols_b[g, k, n*L : (n+1)*L], at
//   (R*N + n)*L, so                         sample_stride = L,          row_stride = N*L
//   (independent of G: the group split is a reshape of the rows).
// Either way the L entries of one (n, r) are contiguous, which is what coalesces.
#include "tinyconv_common.cuh"

// One thread per (n, c, oh, ow): it copies the kh*kw patch under that output position
// into its column l.  Neighbouring threads have neighbouring ow, so every write of the
// inner loop is coalesced (consecutive l), as in Caffe's im2col_gpu_kernel.
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols, i64 total,
                              int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                              int dh, int dw, int OH, int OW, i64 sample_stride, i64 row_stride) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = ((n*C + c)*OH + oh)*OW + ow
        const int ow = (int)(idx % OW);
        const int oh = (int)((idx / OW) % OH);
        const i64 nc = idx / ((i64)OW * OH);           // n*C + c
        const i64 n = nc / C;
        const int c = (int)(nc % C);
        const int h0 = oh * sh - ph;                   // top-left of the patch in x
        const int w0 = ow * sw - pw;
        const T* xp = x + nc * H * W;                  // the (n, c) image plane
        // entry (n, r = c*kh*kw, l = oh*OW + ow); the tap (i, j) is row r + i*kw + j
        T* cp = cols + n * sample_stride + (i64)c * kh * kw * row_stride + (i64)oh * OW + ow;
        for (int i = 0; i < kh; ++i) {
            const int h = h0 + i * dh;                 // tap (i, j) of the dilated patch
            for (int j = 0; j < kw; ++j) {
                const int w = w0 + j * dw;
                const bool inside = h >= 0 && h < H && w >= 0 && w < W;
                *cp = inside ? xp[(i64)h * W + w] : T(0);
                cp += row_stride;                      // next row r of cols
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
// The strides are im2col's: the same kernel folds either layout.
template <typename T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ gx, i64 total,
                              int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                              int dh, int dw, int OH, int OW, i64 sample_stride, i64 row_stride) {
    TC_KERNEL_LOOP(idx, total) {
        // idx = ((n*C + c)*H + h)*W + w
        const int w = (int)(idx % W);
        const int h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const i64 n = nc / C;
        const int c = (int)(nc % C);
        const int hp = h + ph, wp = w + pw;            // position in the padded image
        // entry (n, r = c*kh*kw, l = 0): the kh*kw rows of this (n, c) follow at row_stride
        const T* cp = cols + n * sample_stride + (i64)c * kh * kw * row_stride;
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
                acc += cp[(i64)(i * kw + j) * row_stride + (i64)oh * OW + ow];
            }
        }
        gx[idx] = acc;
    }
}
