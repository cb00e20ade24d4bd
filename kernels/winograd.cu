// Winograd F(m x m, r x r) tile transforms for the convolution on CUDA (the math, the layouts
// and the NumPy references are in tinyconv/functional/conv_winograd.py; kernels/winograd_cuda.py
// launches these; the a*a products between the transforms are one cuBLAS strided-batched GEMM
// per pass, kernels/gemm.py).
//
// Each kernel is a template on the element type T and the variant (M, R) = (m, r): F(2x2, 3x3),
// F(4x4, 3x3), F(2x2, 5x5), F(4x4, 5x5), a = M + R - 1.  The matrices B^T (a x a), G (a x r) and
// A^T (m x a) are compile-time constants (winograd_matrices.cuh, generated from the Python
// TRANSFORMS): with every loop unrolled, the tiles live in registers, each product by a
// matrix entry becomes an FMA with an immediate, and the zero entries (half of B^T's) and
// the ones cost nothing.
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
// tile in registers: the transforms are memory-bound (a few FLOPs per byte), and
// neighbouring threads take neighbouring p, so the a*a reads or writes of the (s, ., p)
// layouts are coalesced.  Each 2-d transform is two passes of a small matrix product
// (rows, then columns), as in the references' einsums.
#include "tinyconv_common.cuh"
#include "winograd_matrices.cuh"

// Tiles are held in T[TC_WINO_MAX_A][TC_WINO_MAX_A] arrays, of which a kernel uses a x a (or
// less): the largest a, 8, is F(4x4, 5x5)'s.  Unrolled, the unused entries cost nothing.
#define TC_WINO_MAX_A 8
template <typename T>
using tc_wino_regs = T[TC_WINO_MAX_A][TC_WINO_MAX_A];

// Which matrix of tc_wino<M, R> a pass multiplies by.
enum tc_wino_which { TC_WINO_BT, TC_WINO_G, TC_WINO_AT };

template <int M, int R, int W>
__device__ __forceinline__ double tc_wino_entry(int i, int j) {
    if constexpr (W == TC_WINO_BT) {
        return tc_wino<M, R>::bt(i, j);
    } else if constexpr (W == TC_WINO_G) {
        return tc_wino<M, R>::g(i, j);
    } else {
        return tc_wino<M, R>::at(i, j);
    }
}

// One pass of a 2-d transform: with L the P x S matrix `W` of F(M, R), or its transpose (`TR`:
// W stored S x P),
//   left:   out (P x Q) = L @ in (S x Q)         out[i][q] = sum_u L[i][u] in[u][q]
//   right:  out (Q x P) = in (Q x S) @ L^T       out[q][i] = sum_u in[q][u] L[i][u]
// Unrolled: every entry of L is a constant, and a zero entry adds no instruction.
template <typename T, int M, int R, int W, bool TR, bool RIGHT, int P, int S, int Q>
__device__ __forceinline__ void tc_wino_pass(const tc_wino_regs<T>& in, tc_wino_regs<T>& out) {
    static_assert(P <= TC_WINO_MAX_A && S <= TC_WINO_MAX_A && Q <= TC_WINO_MAX_A,
                  "a tile larger than the arrays");
    TC_UNROLL
    for (int i = 0; i < P; ++i) {
        TC_UNROLL
        for (int q = 0; q < Q; ++q) {
            T acc = T(0);
            TC_UNROLL
            for (int u = 0; u < S; ++u) {
                const double l = TR ? tc_wino_entry<M, R, W>(u, i) : tc_wino_entry<M, R, W>(i, u);
                if (l != 0.0) acc += T(l) * (RIGHT ? in[q][u] : in[u][q]);
            }
            (RIGHT ? out[q][i] : out[i][q]) = acc;
        }
    }
}

template <typename T, int M, int R, int W, bool TR, int P, int S, int Q>
__device__ __forceinline__ void tc_wino_left(const tc_wino_regs<T>& in, tc_wino_regs<T>& out) {
    tc_wino_pass<T, M, R, W, TR, false, P, S, Q>(in, out);
}

template <typename T, int M, int R, int W, bool TR, int P, int S, int Q>
__device__ __forceinline__ void tc_wino_right(const tc_wino_regs<T>& in, tc_wino_regs<T>& out) {
    tc_wino_pass<T, M, R, W, TR, true, P, S, Q>(in, out);
}

// Every (a*a, rows, cols) layout above keeps the a*a entries of one tile column `total` apart:
// with the thread's item idx = row*cols + col (its c*P + p, k*P + p or k*Cg + c), entry s sits
// at s*total + idx.  So neighbouring threads touch neighbouring addresses (coalesced).
template <typename T, int A>
__device__ __forceinline__ void tc_wino_load(const T* __restrict__ buf, i64 total, i64 idx,
                                            tc_wino_regs<T>& t) {
    TC_UNROLL
    for (int i = 0; i < A; ++i)
        TC_UNROLL
        for (int j = 0; j < A; ++j) t[i][j] = buf[(i64)(i * A + j) * total + idx];
}

template <typename T, int A>
__device__ __forceinline__ void tc_wino_store(T* __restrict__ buf, i64 total, i64 idx,
                                             const tc_wino_regs<T>& t) {
    TC_UNROLL
    for (int i = 0; i < A; ++i)
        TC_UNROLL
        for (int j = 0; j < A; ++j) buf[(i64)(i * A + j) * total + idx] = t[i][j];
}

// t[u][v] = plane[h0 + u][w0 + v] for the N x N patch at (h0, w0) of an H x W plane, zero
// where it passes the plane's edge: the input tile of x (with the padding), the m x m tile of
// gy (cut at OH x OW), and an r x r kernel (the whole of its plane).
template <typename T, int N>
__device__ __forceinline__ void tc_wino_read_patch(const T* __restrict__ plane, int H, int W, int h0, int w0,
                                                   tc_wino_regs<T>& t) {
    TC_UNROLL
    for (int u = 0; u < N; ++u) {
        const int h = h0 + u;
        TC_UNROLL
        for (int v = 0; v < N; ++v) {
            const int w = w0 + v;
            t[u][v] = (h >= 0 && h < H && w >= 0 && w < W) ? plane[(i64)h * W + w] : T(0);
        }
    }
}

// The tile (ty, tx) of image n that tile index p = (n*th + ty)*tw + tx names.
struct tc_wino_tile {
    int tx, ty;
    i64 n;
    __device__ tc_wino_tile(i64 p, int th, int tw)
        : tx((int)(p % tw)), ty((int)((p / tw) % th)), n(p / ((i64)tw * th)) {}
};

// V[s, c, p] = (B^T d B)[i, j] of the a x a input tile d of tile p, channel c.
// One thread per (c, p): idx = c*P + p.
template <typename T, int M, int R>
__global__ void winograd_input_transform_kernel(const T* __restrict__ x, T* __restrict__ V, i64 total, int C,
                                                int H, int W, int top, int left, int th, int tw) {
    constexpr int A = tc_wino<M, R>::A;
    tc_wino_regs<T> d, t;
    const i64 P = total / C;
    TC_KERNEL_LOOP(idx, total) {
        const i64 c = idx / P;
        const tc_wino_tile tile(idx % P, th, tw);
        // the a x a patch at the tile's corner in x, zero in the padding
        tc_wino_read_patch<T, A>(x + (tile.n * C + c) * H * W, H, W, tile.ty * M - top, tile.tx * M - left,
                                 d);
        tc_wino_left<T, M, R, TC_WINO_BT, false, A, A, A>(d, t);    // t = B^T d
        tc_wino_right<T, M, R, TC_WINO_BT, false, A, A, A>(t, d);   // d = t B   (B = (B^T)^T)
        tc_wino_store<T, A>(V, total, idx, d);
    }
}

// The adjoint of the input transform, first half: each tile's B gV B^T, written over gV in
// place (a thread reads its a*a entries before writing them).  idx = c*P + p.
template <typename T, int M, int R>
__global__ void winograd_input_adjoint_tiles_kernel(T* __restrict__ gV, i64 total) {
    constexpr int A = tc_wino<M, R>::A;
    tc_wino_regs<T> g, t;
    TC_KERNEL_LOOP(idx, total) {
        tc_wino_load<T, A>(gV, total, idx, g);
        tc_wino_left<T, M, R, TC_WINO_BT, true, A, A, A>(g, t);     // t = B gV    (B = (B^T)^T)
        tc_wino_right<T, M, R, TC_WINO_BT, true, A, A, A>(t, g);    // g = t B^T
        tc_wino_store<T, A>(gV, total, idx, g);
    }
}

// Second half: the overlap-add, in gather form.  One thread per pixel (n, c, h, w) of gx sums
// entry (u, v) of every tile that read it: tile row ty read padded row hp = h + top iff
// ty*m <= hp < ty*m + a, so ty runs from ceil((hp - a + 1)/m) to hp/m (within 0 ... th-1), and
// u = hp - ty*m (the columns likewise).  At most ceil(a/m)^2 tiles, in a fixed order: no two
// threads write one pixel, no atomics, deterministic.  idx = ((n*C + c)*H + h)*W + w.
template <typename T, int M, int R>
__global__ void winograd_input_adjoint_gather_kernel(const T* __restrict__ gd, T* __restrict__ gx, i64 total,
                                                     int C, int H, int W, int top, int left, int th, int tw) {
    constexpr int A = tc_wino<M, R>::A;
    const i64 P = (i64)th * tw * (total / ((i64)C * H * W));   // N*th*tw tiles
    TC_KERNEL_LOOP(idx, total) {
        const int w = (int)(idx % W), h = (int)((idx / W) % H);
        const i64 nc = idx / ((i64)W * H);
        const i64 n = nc / C, c = nc % C;
        const int hp = h + top, wp = w + left;
        const int ty_lo = (int)tc_max64(0, (hp - A + M) / M), ty_hi = (int)tc_min64(th - 1, hp / M);
        const int tx_lo = (int)tc_max64(0, (wp - A + M) / M), tx_hi = (int)tc_min64(tw - 1, wp / M);
        T acc = T(0);
        for (int ty = ty_lo; ty <= ty_hi; ++ty) {
            const int u = hp - ty * M;
            for (int tx = tx_lo; tx <= tx_hi; ++tx) {
                const int v = wp - tx * M;
                const i64 p = (n * th + ty) * tw + tx;
                acc += gd[((i64)(u * A + v) * C + c) * P + p];
            }
        }
        gx[idx] = acc;
    }
}

// U[s, k, c] = (G g G^T)[i, j] of the r x r kernel g = w[k, c].  One thread per (k, c):
// idx = k*Cg + c (so U's writes, along c, coalesce).
template <typename T, int M, int R>
__global__ void winograd_filter_transform_kernel(const T* __restrict__ w, T* __restrict__ U, i64 total) {
    constexpr int A = tc_wino<M, R>::A;
    tc_wino_regs<T> g, t;
    TC_KERNEL_LOOP(idx, total) {
        tc_wino_read_patch<T, R>(w + idx * R * R, R, R, 0, 0, g);  // w[k, c]: the idx-th r x r block of w
        tc_wino_left<T, M, R, TC_WINO_G, false, A, R, R>(g, t);     // t = G g        (a x r)
        tc_wino_right<T, M, R, TC_WINO_G, false, A, R, A>(t, g);    // g = t G^T      (a x a)
        tc_wino_store<T, A>(U, total, idx, g);
    }
}

// The adjoint of the filter transform: gw[k, c] (r x r) = G^T gU G.  idx = k*Cg + c.
template <typename T, int M, int R>
__global__ void winograd_filter_adjoint_kernel(const T* __restrict__ gU, T* __restrict__ gw, i64 total) {
    constexpr int A = tc_wino<M, R>::A;
    tc_wino_regs<T> g, t;
    TC_KERNEL_LOOP(idx, total) {
        tc_wino_load<T, A>(gU, total, idx, g);
        tc_wino_left<T, M, R, TC_WINO_G, true, R, A, A>(g, t);      // t = G^T gU     (r x a)
        tc_wino_right<T, M, R, TC_WINO_G, true, R, A, R>(t, g);     // g = t G        (r x r)
        T* kernel = gw + idx * R * R;
        TC_UNROLL
        for (int u = 0; u < R; ++u)
            TC_UNROLL
            for (int v = 0; v < R; ++v) kernel[u * R + v] = g[u][v];
    }
}

// y[n, k, ty*m + i, tx*m + j] = (A^T M A)[i, j] (+ bias[k]) for the rows and columns inside
// OH x OW.  One thread per (k, p): idx = k*P + p; `bias` is not read unless has_bias.
template <typename T, int M, int R>
__global__ void winograd_output_transform_kernel(const T* __restrict__ Mt, const T* __restrict__ bias,
                                                 T* __restrict__ y, i64 total, int K, int OH, int OW, int th,
                                                 int tw, int has_bias) {
    constexpr int A = tc_wino<M, R>::A;
    tc_wino_regs<T> g, t;
    const i64 P = total / K;
    TC_KERNEL_LOOP(idx, total) {
        const i64 k = idx / P;
        const tc_wino_tile tile(idx % P, th, tw);
        tc_wino_load<T, A>(Mt, total, idx, g);
        tc_wino_left<T, M, R, TC_WINO_AT, false, M, A, A>(g, t);    // t = A^T M      (m x a)
        tc_wino_right<T, M, R, TC_WINO_AT, false, M, A, M>(t, g);   // g = t A        (m x m)
        const T b = has_bias ? bias[k] : T(0);
        T* plane = y + (tile.n * K + k) * OH * OW;
        TC_UNROLL
        for (int i = 0; i < M; ++i) {
            const int oh = tile.ty * M + i;
            TC_UNROLL
            for (int j = 0; j < M; ++j) {
                const int ow = tile.tx * M + j;
                if (oh < OH && ow < OW) plane[(i64)oh * OW + ow] = g[i][j] + b;
            }
        }
    }
}

// The adjoint of the output transform: gM[s, k, p] = (A g A^T)[i, j] of the m x m tile g of gy
// (zero where the tile passes the edge).  idx = k*P + p.
template <typename T, int M, int R>
__global__ void winograd_output_adjoint_kernel(const T* __restrict__ gy, T* __restrict__ gM, i64 total, int K,
                                               int OH, int OW, int th, int tw) {
    constexpr int A = tc_wino<M, R>::A;
    tc_wino_regs<T> g, t;
    const i64 P = total / K;
    TC_KERNEL_LOOP(idx, total) {
        const i64 k = idx / P;
        const tc_wino_tile tile(idx % P, th, tw);
        tc_wino_read_patch<T, M>(gy + (tile.n * K + k) * OH * OW, OH, OW, tile.ty * M, tile.tx * M, g);
        tc_wino_left<T, M, R, TC_WINO_AT, true, A, M, M>(g, t);     // t = A g        (a x m; A = (A^T)^T)
        tc_wino_right<T, M, R, TC_WINO_AT, true, A, M, A>(t, g);    // g = t A^T      (a x a)
        tc_wino_store<T, A>(gM, total, idx, g);
    }
}
