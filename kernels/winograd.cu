// Winograd F(m x m, r x r) tile transforms for the convolution on CUDA (the math, the layouts
// and the NumPy references are in tinyconv/functional/conv_winograd.py; kernels/winograd_cuda.py
// launches these; the a*a products between the transforms are one cuBLAS strided-batched GEMM
// per pass, kernels/gemm.py).
//
// Sizes: a = m + r - 1 <= TC_WINO_MAX_A (8: F(4x4, 5x5)); the transform matrices are small
// row-major arrays in global memory (read through the cache by every thread):
//   BT (a x a), G (a x r), AT (m x a).
// Layouts, with position s = i*a + j in the a x a tile and tile p = (n*th + ty)*tw + tx
// (P = N*th*tw tiles of the output, th x tw per image):
//   V, gV  (a*a, C, P)    input tiles:   V[s, c, p]  at (s*C + c)*P + p
//   U, gU  (a*a, K, Cg)   filter tiles:  U[s, k, c]  at (s*K + k)*Cg + c
//   M, gM  (a*a, K, P)    output tiles:  M[s, k, p]  at (s*K + k)*P + p
// Tile (ty, tx) reads input rows ty*m - top + u, u = 0 ... a-1 (columns tx*m - left + v),
// zero outside the image: ``top`` / ``left`` is the padding.  It gives output rows
// ty*m + i, i = 0 ... m-1, those below OH (and OW) kept.
//
// Every kernel is one thread per tile column (c or k, p) or per pixel, grid-stride, with the
// tile in a local a x a array: the transforms are memory-bound (a few FLOPs per byte), and
// neighbouring threads take neighbouring p, so the a*a reads or writes of the (s, ., p)
// layouts are coalesced.  Each 2-d transform is two passes of a small matrix product
// (rows, then columns), as in the references' einsums.
#include "tinyconv_common.cuh"

#define TC_WINO_MAX_A 8

// out (R x Q) = L (R x S, row-major, ld S) @ in (S x Q, ld TC_WINO_MAX_A), or with L^T when
// `transpose` (L stored S x R): the one small product every pass below is made of.
template <typename T>
__device__ __forceinline__ void tc_wino_left(const T* __restrict__ L, bool transpose, int R, int S, int Q,
                                            const T (*in)[TC_WINO_MAX_A], T (*out)[TC_WINO_MAX_A]) {
    for (int i = 0; i < R; ++i) {
        for (int q = 0; q < Q; ++q) {
            T acc = T(0);
            for (int u = 0; u < S; ++u) acc += (transpose ? L[u * R + i] : L[i * S + u]) * in[u][q];
            out[i][q] = acc;
        }
    }
}

// out (Q x R) = in (Q x S) @ L^T (L stored R x S), or @ L when `transpose` (L stored S x R).
template <typename T>
__device__ __forceinline__ void tc_wino_right(const T* __restrict__ L, bool transpose, int R, int S, int Q,
                                             const T (*in)[TC_WINO_MAX_A], T (*out)[TC_WINO_MAX_A]) {
    for (int q = 0; q < Q; ++q) {
        for (int j = 0; j < R; ++j) {
            T acc = T(0);
            for (int v = 0; v < S; ++v) acc += in[q][v] * (transpose ? L[v * R + j] : L[j * S + v]);
            out[q][j] = acc;
        }
    }
}

// V[s, c, p] = (B^T d B)[i, j] of the a x a input tile d of tile p, channel c.
// One thread per (c, p): idx = c*P + p.
template <typename T>
__global__ void winograd_input_transform_kernel(const T* __restrict__ x, const T* __restrict__ BT,
                                                T* __restrict__ V, i64 total, int C, int H, int W, int a,
                                                int m, int top, int left, int th, int tw) {
    T d[TC_WINO_MAX_A][TC_WINO_MAX_A], t[TC_WINO_MAX_A][TC_WINO_MAX_A];
    const i64 P = total / C;
    TC_KERNEL_LOOP(idx, total) {
        const i64 c = idx / P, p = idx % P;
        const int tx = (int)(p % tw), ty = (int)((p / tw) % th);
        const i64 n = p / ((i64)tw * th);
        const T* plane = x + (n * C + c) * H * W;
        const int h0 = ty * m - top, w0 = tx * m - left;   // the tile's corner in x
        for (int u = 0; u < a; ++u) {
            const int h = h0 + u;
            for (int v = 0; v < a; ++v) {
                const int w = w0 + v;
                d[u][v] = (h >= 0 && h < H && w >= 0 && w < W) ? plane[(i64)h * W + w] : T(0);
            }
        }
        tc_wino_left(BT, false, a, a, a, d, t);            // t = B^T d
        tc_wino_right(BT, false, a, a, a, t, d);           // d = t B  (B = (B^T)^T: rows of BT)
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) V[((i64)(i * a + j) * C + c) * P + p] = d[i][j];
    }
}

// The adjoint of the input transform, first half: each tile's B gV B^T, written over gV in
// place (a thread reads its a*a entries before writing them).  idx = c*P + p.
template <typename T>
__global__ void winograd_input_adjoint_tiles_kernel(T* __restrict__ gV, const T* __restrict__ BT, i64 total,
                                                    int C, int a) {
    T g[TC_WINO_MAX_A][TC_WINO_MAX_A], t[TC_WINO_MAX_A][TC_WINO_MAX_A];
    const i64 P = total / C;
    TC_KERNEL_LOOP(idx, total) {
        const i64 c = idx / P, p = idx % P;
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) g[i][j] = gV[((i64)(i * a + j) * C + c) * P + p];
        tc_wino_left(BT, true, a, a, a, g, t);             // t = B gV      (B = BT^T)
        tc_wino_right(BT, true, a, a, a, t, g);            // g = t B^T
        for (int u = 0; u < a; ++u)
            for (int v = 0; v < a; ++v) gV[((i64)(u * a + v) * C + c) * P + p] = g[u][v];
    }
}

// Second half: the overlap-add, in gather form.  One thread per pixel (n, c, h, w) of gx sums
// entry (u, v) of every tile that read it: tile row ty read padded row hp = h + top iff
// ty*m <= hp < ty*m + a, so ty runs from ceil((hp - a + 1)/m) to hp/m (within 0 ... th-1), and
// u = hp - ty*m (the columns likewise).  At most ceil(a/m)^2 tiles, in a fixed order: no two
// threads write one pixel, no atomics, deterministic.  idx = ((n*C + c)*H + h)*W + w.
template <typename T>
__global__ void winograd_input_adjoint_gather_kernel(const T* __restrict__ gd, T* __restrict__ gx, i64 total,
                                                     int C, int H, int W, int a, int m, int top, int left,
                                                     int th, int tw) {
    TC_KERNEL_LOOP(idx, total) {
        const int w = (int)(idx % W), h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const i64 n = nc / C, c = nc % C;
        const i64 P = (i64)th * tw * (total / ((i64)C * H * W));
        const int hp = h + top, wp = w + left;
        const int ty_lo = (int)tc_max64(0, (hp - a + m) / m), ty_hi = (int)tc_min64(th - 1, hp / m);
        const int tx_lo = (int)tc_max64(0, (wp - a + m) / m), tx_hi = (int)tc_min64(tw - 1, wp / m);
        T acc = T(0);
        for (int ty = ty_lo; ty <= ty_hi; ++ty) {
            const int u = hp - ty * m;
            for (int tx = tx_lo; tx <= tx_hi; ++tx) {
                const int v = wp - tx * m;
                const i64 p = (n * th + ty) * tw + tx;
                acc += gd[((i64)(u * a + v) * C + c) * P + p];
            }
        }
        gx[idx] = acc;
    }
}

// U[s, k, c] = (G g G^T)[i, j] of the r x r kernel g = w[k, c].  One thread per (k, c):
// idx = k*Cg + c (so U's writes, along c, coalesce).
template <typename T>
__global__ void winograd_filter_transform_kernel(const T* __restrict__ w, const T* __restrict__ G,
                                                 T* __restrict__ U, i64 total, int a, int r) {
    T g[TC_WINO_MAX_A][TC_WINO_MAX_A], t[TC_WINO_MAX_A][TC_WINO_MAX_A];
    TC_KERNEL_LOOP(idx, total) {
        const T* kernel = w + idx * r * r;                 // w[k, c]: the idx-th r x r block of w
        for (int u = 0; u < r; ++u)
            for (int v = 0; v < r; ++v) g[u][v] = kernel[u * r + v];
        tc_wino_left(G, false, a, r, r, g, t);             // t = G g          (a x r)
        tc_wino_right(G, false, a, r, a, t, g);            // g = t G^T        (a x a)
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) U[(i64)(i * a + j) * total + idx] = g[i][j];
    }
}

// The adjoint of the filter transform: gw[k, c] (r x r) = G^T gU G.  idx = k*Cg + c.
template <typename T>
__global__ void winograd_filter_adjoint_kernel(const T* __restrict__ gU, const T* __restrict__ G,
                                               T* __restrict__ gw, i64 total, int a, int r) {
    T g[TC_WINO_MAX_A][TC_WINO_MAX_A], t[TC_WINO_MAX_A][TC_WINO_MAX_A];
    TC_KERNEL_LOOP(idx, total) {
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) g[i][j] = gU[(i64)(i * a + j) * total + idx];
        tc_wino_left(G, true, r, a, a, g, t);              // t = G^T gU       (r x a)
        tc_wino_right(G, true, r, a, r, t, g);             // g = t G         (r x r)
        T* kernel = gw + idx * r * r;
        for (int u = 0; u < r; ++u)
            for (int v = 0; v < r; ++v) kernel[u * r + v] = g[u][v];
    }
}

// y[n, k, ty*m + i, tx*m + j] = (A^T M A)[i, j] (+ bias[k]) for the rows and columns inside
// OH x OW.  One thread per (k, p): idx = k*P + p; `bias` may be null (has_bias = 0).
template <typename T>
__global__ void winograd_output_transform_kernel(const T* __restrict__ M, const T* __restrict__ AT,
                                                 const T* __restrict__ bias, T* __restrict__ y, i64 total,
                                                 int K, int OH, int OW, int a, int m, int th, int tw,
                                                 int has_bias) {
    T g[TC_WINO_MAX_A][TC_WINO_MAX_A], t[TC_WINO_MAX_A][TC_WINO_MAX_A];
    const i64 P = total / K;
    TC_KERNEL_LOOP(idx, total) {
        const i64 k = idx / P, p = idx % P;
        const int tx = (int)(p % tw), ty = (int)((p / tw) % th);
        const i64 n = p / ((i64)tw * th);
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) g[i][j] = M[((i64)(i * a + j) * K + k) * P + p];
        tc_wino_left(AT, false, m, a, a, g, t);            // t = A^T M       (m x a)
        tc_wino_right(AT, false, m, a, m, t, g);           // g = t A         (m x m)
        const T b = has_bias ? bias[k] : T(0);
        T* plane = y + (n * K + k) * OH * OW;
        for (int i = 0; i < m; ++i) {
            const int oh = ty * m + i;
            if (oh >= OH) break;
            for (int j = 0; j < m; ++j) {
                const int ow = tx * m + j;
                if (ow >= OW) break;
                plane[(i64)oh * OW + ow] = g[i][j] + b;
            }
        }
    }
}

// The adjoint of the output transform: gM[s, k, p] = (A g A^T)[i, j] of the m x m tile g of gy
// (zero where the tile passes the edge).  idx = k*P + p.
template <typename T>
__global__ void winograd_output_adjoint_kernel(const T* __restrict__ gy, const T* __restrict__ AT,
                                               T* __restrict__ gM, i64 total, int K, int OH, int OW, int a,
                                               int m, int th, int tw) {
    T g[TC_WINO_MAX_A][TC_WINO_MAX_A], t[TC_WINO_MAX_A][TC_WINO_MAX_A];
    const i64 P = total / K;
    TC_KERNEL_LOOP(idx, total) {
        const i64 k = idx / P, p = idx % P;
        const int tx = (int)(p % tw), ty = (int)((p / tw) % th);
        const i64 n = p / ((i64)tw * th);
        const T* plane = gy + (n * K + k) * OH * OW;
        for (int i = 0; i < m; ++i) {
            const int oh = ty * m + i;
            for (int j = 0; j < m; ++j) {
                const int ow = tx * m + j;
                g[i][j] = (oh < OH && ow < OW) ? plane[(i64)oh * OW + ow] : T(0);
            }
        }
        tc_wino_left(AT, true, a, m, m, g, t);             // t = A g         (a x m; A = AT^T)
        tc_wino_right(AT, true, a, m, a, t, g);            // g = t A^T       (a x a)
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j) gM[((i64)(i * a + j) * K + k) * P + p] = g[i][j];
    }
}
