// Implicit-GEMM convolution: the three products of conv2d without a column matrix in global
// memory (tinyconv/functional/conv.py holds the math; kernels/conv_implicit_gemm_cuda.py
// launches these).  The columns of im2col are formed tile by tile in shared memory, as
// cuDNN's implicit-GEMM algorithms do: each block computes a BM x BN tile of one GEMM, and
// the im2col (or col2im) index arithmetic happens while its threads load the tiles.
//
// Per group g (M = O/G output channels, Cg = C/G input channels, K = Cg*kh*kw, L = OH*OW):
//   forward          y[n, gM+m, l]     = sum_k W[gM+m, k] * cols(n, g, k, l)        (+ b)
//                    a GEMM (M x K) @ (K x N*L), column j = n*L + l, written NCHW directly
//   backward-filter  gW[gM+m, k]       = sum_{n, l} gy[n, gM+m, l] * cols(n, g, k, l)
//                    a GEMM (M x N*L) @ (N*L x K): the reduction over N*L is split in S
//                    ranges (split-K), each written to its own slice of a (S, O, K) buffer;
//                    a second kernel sums the S slices in order (deterministic, no atomics)
//   backward-data    gx[n, gCg+c, h, w] = sum over (o, i, j) that reach (h, w) of
//                    W[gM+o, c, i, j] * gy[n, gM+o, oh, ow]  with  oh*sh = h + ph - i*dh
//                    (the transposed convolution, a gather: no two blocks write one pixel)
// with cols(n, g, k = (c*kh + i)*kw + j, l = oh*OW + ow) = x[n, gCg+c, oh*sh - ph + i*dh,
// ow*sw - pw + j*dw] (0 in the padding), conv.cu's im2col entry, never stored.
//
// backward-data by stride phase.  A pixel h is reached by kernel row i iff h + ph - i*dh is
// a multiple of sh (and the quotient oh is in [0, OH)).  Which i qualify depends only on
// the phase r = (h + ph) mod sh: those with i*dh = r (mod sh), an arithmetic progression
// i0, i0 + si, ... (si = sh / gcd(sh, dh)).  So the launch is split by phase (rh, rw): a
// block takes pixels of one phase only and reduces over M * ni * nj taps, the ones that
// can reach them, instead of M*kh*kw of which (sh*sw - 1)/(sh*sw) would be zero (AlexNet's
// conv1, 11x11 stride 4: 9 or 6 of 121 taps per pixel).  A pixel no tap reaches (stride
// larger than the dilated kernel) gets an empty reduction: gx = 0 there, as col2im gives.
//
// The tile loop (tc_igemm_mainloop): 256 threads, a BM x BN tile of C, BK = 8 deep steps
// along the reduction; thread (ty, tx) owns the TM x TN register tile of rows ty + r*BM/TM
// and columns tx + c*BN/TN (strided, so that a warp's shared-memory reads of B are
// consecutive and its reads of A broadcast, and its stores along columns coalesce).
// Shared memory is double-buffered: the next step's tiles are fetched from global memory
// into registers before this step's multiply-adds, and stored into the other buffer after
// them, one __syncthreads() per step.  Three tile shapes (the launcher picks by M, the
// rows of each GEMM): wide 128 x 128 (8 x 8 per thread), mid 64 x 128 (4 x 8), narrow
// 4 x 256 (4 x 1: AlexNet conv1's backward-data has M = C = 3 rows).
// Every load is bounds-checked (edge tiles read 0), every store too, so any size works.
#include "tinyconv_common.cuh"

#define TC_IGEMM_THREADS 256
#define TC_IGEMM_BK 8

// Loader protocol.  A loader describes one operand of the GEMM, A (rows x reduction) or
// B (reduction x columns).  Each thread fetches the same rows (A) or columns (B) of every
// tile, so the part of the index arithmetic that depends only on that row / column is done
// once, by `line(index)`, into a small `Line` struct; `at(line, k)` then gives the element
// at reduction index k (0 outside the operand, e.g. in the padding).

// The tile loop: acc[r][c] += sum over k in [k_begin, k_end) of A(m0 + row_r, k) * B(k, j0 + col_c).
// B_RED_FASTEST: B's memory runs along the reduction (backward-filter), so consecutive threads
// fetch consecutive k of one column; otherwise consecutive columns of one k (forward,
// backward-data).  A's memory always runs along the reduction.
template <typename T, int BM, int BN, int TM, int TN, bool B_RED_FASTEST, class LA, class LB>
__device__ __forceinline__ void tc_igemm_mainloop(const LA& la, const LB& lb, int m0, i64 j0, i64 k_begin,
                                                  i64 k_end, T (&acc)[TM][TN]) {
    constexpr int NT = TC_IGEMM_THREADS, BK = TC_IGEMM_BK;
    static_assert((BM / TM) * (BN / TN) == NT, "one register tile per thread");
    static_assert((BN * BK) % NT == 0, "B tile: whole elements per thread");
    constexpr int A_PER = (BM * BK + NT - 1) / NT, B_PER = BN * BK / NT;
    __shared__ T As[2][BK][BM];   // As[buffer][k][row]
    __shared__ T Bs[2][BK][BN];   // Bs[buffer][k][column]
    const int t = threadIdx.x;

    // this thread's fetch slots: element (a_m, a_k) of every A tile, (b_k, b_j) of every B tile
    int a_m[A_PER], a_k[A_PER], b_k[B_PER], b_j[B_PER];
    bool a_on[A_PER];
    typename LA::Line a_line[A_PER];
    typename LB::Line b_line[B_PER];
    for (int e = 0; e < A_PER; ++e) {
        const int idx = t + NT * e;
        a_on[e] = idx < BM * BK;                       // the narrow tile has fewer A elements than threads
        a_m[e] = idx / BK;
        a_k[e] = idx % BK;
        a_line[e] = la.line(m0 + a_m[e]);
    }
    for (int e = 0; e < B_PER; ++e) {
        const int idx = t + NT * e;
        b_k[e] = B_RED_FASTEST ? idx % BK : idx / BN;
        b_j[e] = B_RED_FASTEST ? idx / BK : idx % BN;
        b_line[e] = lb.line(j0 + b_j[e]);
    }
    T ra[A_PER] = {}, rb[B_PER] = {};                  // the next tiles, in flight in registers
    const int tx = t % (BN / TN), ty = t / (BN / TN);
    const i64 steps = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;

    for (i64 s = -1; s < steps; ++s) {                 // s = -1: fetch the first tiles only
        const int buf = (int)(s & 1);
        if (s + 1 < steps) {                           // fetch step s + 1 (global -> registers)
            const i64 k0 = k_begin + (s + 1) * BK;
            for (int e = 0; e < A_PER; ++e) {
                const i64 k = k0 + a_k[e];
                ra[e] = a_on[e] && k < k_end ? la.at(a_line[e], k) : T(0);
            }
            for (int e = 0; e < B_PER; ++e) {
                const i64 k = k0 + b_k[e];
                rb[e] = k < k_end ? lb.at(b_line[e], k) : T(0);
            }
        }
        if (s >= 0) {                                  // multiply step s out of shared memory
            for (int kk = 0; kk < BK; ++kk) {
                T a[TM], b[TN];
                for (int r = 0; r < TM; ++r) a[r] = As[buf][kk][ty + r * (BM / TM)];
                for (int c = 0; c < TN; ++c) b[c] = Bs[buf][kk][tx + c * (BN / TN)];
                for (int r = 0; r < TM; ++r)
                    for (int c = 0; c < TN; ++c) acc[r][c] += a[r] * b[c];
            }
        }
        if (s + 1 < steps) {                           // the other buffer, last read in step s - 1
            for (int e = 0; e < A_PER; ++e)
                if (a_on[e]) As[buf ^ 1][a_k[e]][a_m[e]] = ra[e];
            for (int e = 0; e < B_PER; ++e) Bs[buf ^ 1][b_k[e]][b_j[e]] = rb[e];
        }
        __syncthreads();                               // step s + 1's tiles are complete
    }
}

// The thread's output rows and columns (the strided register tile of tc_igemm_mainloop).
template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ int tc_igemm_row(int r) { return (int)(threadIdx.x / (BN / TN)) + r * (BM / TM); }
template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ int tc_igemm_col(int c) { return (int)(threadIdx.x % (BN / TN)) + c * (BN / TN); }

// ---------------------------------------------------------------------------- forward

// A(m, k) = W[g*M + m, k]: `w` already points at row g*M.
template <typename T>
struct tc_weight_rows {
    const T* w;
    int M;
    i64 K;
    struct Line { const T* p; };
    __device__ Line line(int m) const { return Line{m < M ? w + (i64)m * K : nullptr}; }
    __device__ T at(const Line& l, i64 k) const { return l.p ? l.p[k] : T(0); }
};

// B(k, j) = cols(n, g, k, l), j = n*L + l: the im2col of x, formed here.  `x` points at
// channel g*Cg of sample 0.
template <typename T>
struct tc_im2col_columns {
    const T* x;
    int C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OW;
    i64 L, NL;
    struct Line { const T* p; int h0, w0; };           // sample plane, top-left of the patch
    __device__ Line line(i64 j) const {
        if (j >= NL) return Line{nullptr, 0, 0};
        const i64 n = j / L;
        const int l = (int)(j - n * L), oh = l / OW, ow = l - oh * OW;
        return Line{x + n * C * H * W, oh * sh - ph, ow * sw - pw};
    }
    __device__ T at(const Line& l, i64 k) const {
        if (!l.p) return T(0);
        // k = (c*kh + i)*kw + j: channel c (of the group), tap (i, j) of the dilated patch
        const int taps = kh * kw, c = (int)(k / taps), r = (int)(k - (i64)c * taps);
        const int i = r / kw, j = r - i * kw;
        const int h = l.h0 + i * dh, w = l.w0 + j * dw;
        return h >= 0 && h < H && w >= 0 && w < W ? l.p[((i64)c * H + h) * W + w] : T(0);
    }
};

// One block per (group, row tile, column tile), flattened: block b = (g*mt + tm)*nt + tn.
template <typename T, int BM, int BN, int TM, int TN>
__device__ __forceinline__ void tc_igemm_forward(const T* __restrict__ x, const T* __restrict__ w,
                                                 const T* __restrict__ bias, int has_bias, T* __restrict__ y,
                                                 int N, int C, int H, int W, int O, int G, int kh, int kw,
                                                 int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW) {
    const int M = O / G, Cg = C / G;
    const i64 K = (i64)Cg * kh * kw, L = (i64)OH * OW, NL = N * L;
    const i64 nt = (NL + BN - 1) / BN, mt = (M + BM - 1) / BM;
    const i64 b = blockIdx.x;
    const i64 tn = b % nt, tm = (b / nt) % mt, g = b / (nt * mt);
    const int m0 = (int)(tm * BM);
    const i64 j0 = tn * BN;
    const tc_weight_rows<T> la{w + g * M * K, M, K};
    const tc_im2col_columns<T> lb{x + g * Cg * H * W, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OW, L, NL};
    T acc[TM][TN] = {};
    tc_igemm_mainloop<T, BM, BN, TM, TN, false>(la, lb, m0, j0, 0, K, acc);
    for (int c = 0; c < TN; ++c) {
        const i64 j = j0 + tc_igemm_col<BM, BN, TM, TN>(c);
        if (j >= NL) continue;
        const i64 n = j / L, l = j - n * L;
        for (int r = 0; r < TM; ++r) {
            const int m = m0 + tc_igemm_row<BM, BN, TM, TN>(r);
            if (m >= M) continue;
            const i64 o = g * M + m;
            y[(n * O + o) * L + l] = acc[r][c] + (has_bias ? bias[o] : T(0));   // NCHW, no layout pass
        }
    }
}

// ---------------------------------------------------------------------------- backward-filter

// A(m, r) = gy[n, g*M + m, l], r = n*L + l: `gy` points at channel g*M of sample 0.
template <typename T>
struct tc_gy_rows {
    const T* gy;
    int M, O;
    i64 L;
    struct Line { const T* p; };
    __device__ Line line(int m) const { return Line{m < M ? gy + (i64)m * L : nullptr}; }
    __device__ T at(const Line& l, i64 r) const {
        if (!l.p) return T(0);
        const i64 n = r / L;
        return l.p[n * O * L + (r - n * L)];
    }
};

// B(r, k) = cols(n, g, k, l), r = n*L + l: the same im2col, now with the filter index k as
// the column (fixed per thread) and the pixel as the reduction.  `x` points at channel g*Cg.
template <typename T>
struct tc_im2col_rows {
    const T* x;
    int C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OW;
    i64 L, K;
    struct Line { const T* p; int di, dj; };           // channel plane, tap offset minus padding
    __device__ Line line(i64 k) const {
        if (k >= K) return Line{nullptr, 0, 0};
        const int taps = kh * kw, c = (int)(k / taps), r = (int)(k - (i64)c * taps);
        const int i = r / kw, j = r - i * kw;
        return Line{x + (i64)c * H * W, i * dh - ph, j * dw - pw};
    }
    __device__ T at(const Line& l, i64 r) const {
        if (!l.p) return T(0);
        const i64 n = r / L;
        const int p = (int)(r - n * L), oh = p / OW, ow = p - oh * OW;
        const int h = oh * sh + l.di, w = ow * sw + l.dj;
        return h >= 0 && h < H && w >= 0 && w < W ? l.p[n * C * H * W + (i64)h * W + w] : T(0);
    }
};

// One block per (split, group, row tile, column tile): b = ((s*G + g)*mt + tm)*nt + tn.
// Split s reduces over r in [s*chunk, min(N*L, (s+1)*chunk)) into part[s] (O x K, that is
// gW's layout; with one split `part` is gW itself).
template <typename T, int BM, int BN, int TM, int TN>
__device__ __forceinline__ void tc_igemm_backward_filter(const T* __restrict__ gy, const T* __restrict__ x,
                                                         T* __restrict__ part, i64 chunk, int N, int C, int H,
                                                         int W, int O, int G, int kh, int kw, int sh, int sw,
                                                         int ph, int pw, int dh, int dw, int OH, int OW) {
    const int M = O / G, Cg = C / G;
    const i64 K = (i64)Cg * kh * kw, L = (i64)OH * OW, NL = N * L;
    const i64 nt = (K + BN - 1) / BN, mt = (M + BM - 1) / BM;
    const i64 b = blockIdx.x;
    const i64 tn = b % nt, tm = (b / nt) % mt, g = (b / (nt * mt)) % G, s = b / (nt * mt * G);
    const int m0 = (int)(tm * BM);
    const i64 j0 = tn * BN;
    const i64 r0 = tc_min64(NL, s * chunk), r1 = tc_min64(NL, r0 + chunk);
    const tc_gy_rows<T> la{gy + g * M * L, M, O, L};
    const tc_im2col_rows<T> lb{x + g * Cg * H * W, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OW, L, K};
    T acc[TM][TN] = {};
    tc_igemm_mainloop<T, BM, BN, TM, TN, true>(la, lb, m0, j0, r0, r1, acc);
    T* out = part + s * (i64)O * K;
    for (int r = 0; r < TM; ++r) {
        const int m = m0 + tc_igemm_row<BM, BN, TM, TN>(r);
        if (m >= M) continue;
        for (int c = 0; c < TN; ++c) {
            const i64 k = j0 + tc_igemm_col<BM, BN, TM, TN>(c);
            if (k < K) out[(g * M + m) * K + k] = acc[r][c];
        }
    }
}

// ---------------------------------------------------------------------------- backward-data

// The taps of one stride phase along one axis: kernel rows i = i0 + a*step, a < count,
// are those with i*d = r (mod s) (see the header).  count = 0: no tap reaches this phase.
struct tc_phase_taps {
    int i0, step, count;
};
__device__ __forceinline__ tc_phase_taps tc_taps_of_phase(int r, int k, int s, int d) {
    int step = 1;                                      // the least step > 0 with step*d = 0 (mod s)
    while ((step * d) % s) ++step;
    for (int i = 0; i < k && i < step; ++i)            // a solution exists iff one lies below step
        if ((i * d) % s == r) return tc_phase_taps{i, step, (k - 1 - i) / step + 1};
    return tc_phase_taps{0, step, 0};
}

// A(c, q) = W[g*M + o, c, i, j] over the phase's taps, q = (o*ni + a)*nj + b.  `w` points at
// filter g*M.
template <typename T>
struct tc_weight_taps {
    const T* w;
    int Cg, kh, kw;
    tc_phase_taps ti, tj;
    struct Line { const T* p; };
    __device__ Line line(int c) const { return Line{c < Cg ? w + (i64)c * kh * kw : nullptr}; }
    __device__ T at(const Line& l, i64 q) const {
        if (!l.p) return T(0);
        const int taps = ti.count * tj.count, o = (int)(q / taps), r = (int)(q - (i64)o * taps);
        const int a = r / tj.count, bb = r - a * tj.count;
        return l.p[(i64)o * Cg * kh * kw + (ti.i0 + a * ti.step) * kw + tj.i0 + bb * tj.step];
    }
};

// B(q, p) = gy[n, g*M + o, oh, ow] with oh*sh = h + ph - i*dh (exact in this phase), 0 where
// oh or ow falls outside; column p = (n*Hp + u)*Wp + v is pixel (h0 + u*sh, w0 + v*sw) of
// the phase.  `gy` points at channel g*M of sample 0.
template <typename T>
struct tc_gy_gather {
    const T* gy;
    int O, OH, OW, Hp, Wp, h0, w0, ph, pw, sh, sw, dh, dw;
    i64 NP;
    tc_phase_taps ti, tj;
    struct Line { const T* p; int hp, wp; };           // sample's gy, pixel in the padded image
    __device__ Line line(i64 p) const {
        if (p >= NP) return Line{nullptr, 0, 0};
        const i64 n = p / ((i64)Hp * Wp);
        const int r = (int)(p - n * Hp * Wp), u = r / Wp, v = r - u * Wp;
        return Line{gy + n * O * OH * OW, h0 + u * sh + ph, w0 + v * sw + pw};
    }
    __device__ T at(const Line& l, i64 q) const {
        if (!l.p) return T(0);
        const int taps = ti.count * tj.count, o = (int)(q / taps), r = (int)(q - (i64)o * taps);
        const int a = r / tj.count, bb = r - a * tj.count;
        const int hs = l.hp - (ti.i0 + a * ti.step) * dh, ws = l.wp - (tj.i0 + bb * tj.step) * dw;
        if (hs < 0 || ws < 0) return T(0);             // above / left of every output
        const int oh = hs / sh, ow = ws / sw;          // exact: the phase makes hs a multiple of sh
        return oh < OH && ow < OW ? l.p[((i64)o * OH + oh) * OW + ow] : T(0);
    }
};

// One block per (group, phase, row tile, column tile): b = ((g*sh*sw + phase)*mt + tm)*nt + tn,
// nt sized for the largest phase (ceil(H/sh) * ceil(W/sw) pixels per sample); a block past
// its phase's pixels returns at once (the whole block: no barrier is left waiting).
template <typename T, int BM, int BN, int TM, int TN>
__device__ __forceinline__ void tc_igemm_backward_data(const T* __restrict__ gy, const T* __restrict__ w,
                                                       T* __restrict__ gx, int N, int C, int H, int W, int O,
                                                       int G, int kh, int kw, int sh, int sw, int ph, int pw,
                                                       int dh, int dw, int OH, int OW) {
    const int M = O / G, Cg = C / G;
    const i64 per_sample = (i64)((H + sh - 1) / sh) * ((W + sw - 1) / sw);
    const i64 nt = (N * per_sample + BN - 1) / BN, mt = (Cg + BM - 1) / BM;
    const i64 b = blockIdx.x;
    const i64 tn = b % nt, tm = (b / nt) % mt, phase = (b / (nt * mt)) % ((i64)sh * sw);
    const i64 g = b / (nt * mt * sh * sw);
    const int rh = (int)(phase / sw), rw = (int)(phase % sw);
    // the phase's pixels: h = h0, h0 + sh, ... with (h + ph) mod sh = rh (likewise w)
    const int h0 = ((rh - ph) % sh + sh) % sh, w0 = ((rw - pw) % sw + sw) % sw;
    const int Hp = h0 < H ? (H - h0 + sh - 1) / sh : 0, Wp = w0 < W ? (W - w0 + sw - 1) / sw : 0;
    const i64 NP = (i64)N * Hp * Wp, j0 = tn * BN;
    if (j0 >= NP) return;
    const tc_phase_taps ti = tc_taps_of_phase(rh, kh, sh, dh), tj = tc_taps_of_phase(rw, kw, sw, dw);
    const int m0 = (int)(tm * BM);
    const tc_weight_taps<T> la{w + g * M * Cg * kh * kw, Cg, kh, kw, ti, tj};
    const tc_gy_gather<T> lb{gy + g * M * OH * OW, O, OH, OW, Hp, Wp, h0, w0, ph, pw, sh, sw, dh, dw, NP, ti, tj};
    T acc[TM][TN] = {};
    tc_igemm_mainloop<T, BM, BN, TM, TN, false>(la, lb, m0, j0, 0, (i64)M * ti.count * tj.count, acc);
    for (int c = 0; c < TN; ++c) {
        const i64 p = j0 + tc_igemm_col<BM, BN, TM, TN>(c);
        if (p >= NP) continue;
        const i64 n = p / ((i64)Hp * Wp);
        const int r = (int)(p - n * Hp * Wp), u = r / Wp, v = r - u * Wp;
        const i64 pix = (i64)(h0 + u * sh) * W + w0 + v * sw;
        for (int rr = 0; rr < TM; ++rr) {
            const int cc = m0 + tc_igemm_row<BM, BN, TM, TN>(rr);
            if (cc < Cg) gx[(n * C + g * Cg + cc) * H * W + pix] = acc[rr][c];
        }
    }
}

// ---------------------------------------------------------------------------- the kernels
// One per pass and tile shape (wide 128x128/8x8, mid 64x128/4x8, narrow 4x256/4x1), 256
// threads each, grid as the launcher computes it.  Written out rather than generated by a
// macro: the loader names each as `name<T>`, and the tests read every kernel's parameter
// list from this text (to check the launchers' argument types against it).

template <typename T>
__global__ void igemm_forward_wide_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ bias, int has_bias, T* __restrict__ y, int N,
                                          int C, int H, int W, int O, int G, int kh, int kw, int sh, int sw,
                                          int ph, int pw, int dh, int dw, int OH, int OW) {
    tc_igemm_forward<T, 128, 128, 8, 8>(x, w, bias, has_bias, y, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh,
                                        dw, OH, OW);
}

template <typename T>
__global__ void igemm_forward_mid_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                         const T* __restrict__ bias, int has_bias, T* __restrict__ y, int N,
                                         int C, int H, int W, int O, int G, int kh, int kw, int sh, int sw,
                                         int ph, int pw, int dh, int dw, int OH, int OW) {
    tc_igemm_forward<T, 64, 128, 4, 8>(x, w, bias, has_bias, y, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh,
                                       dw, OH, OW);
}

template <typename T>
__global__ void igemm_forward_narrow_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                            const T* __restrict__ bias, int has_bias, T* __restrict__ y, int N,
                                            int C, int H, int W, int O, int G, int kh, int kw, int sh, int sw,
                                            int ph, int pw, int dh, int dw, int OH, int OW) {
    tc_igemm_forward<T, 4, 256, 4, 1>(x, w, bias, has_bias, y, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh,
                                      dw, OH, OW);
}

template <typename T>
__global__ void igemm_backward_data_wide_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                T* __restrict__ gx, int N, int C, int H, int W, int O, int G,
                                                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                                int OH, int OW) {
    tc_igemm_backward_data<T, 128, 128, 8, 8>(gy, w, gx, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, OH,
                                              OW);
}

template <typename T>
__global__ void igemm_backward_data_mid_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                               T* __restrict__ gx, int N, int C, int H, int W, int O, int G,
                                               int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                               int OH, int OW) {
    tc_igemm_backward_data<T, 64, 128, 4, 8>(gy, w, gx, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, OH,
                                             OW);
}

template <typename T>
__global__ void igemm_backward_data_narrow_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                  T* __restrict__ gx, int N, int C, int H, int W, int O, int G,
                                                  int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                                  int OH, int OW) {
    tc_igemm_backward_data<T, 4, 256, 4, 1>(gy, w, gx, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, OH,
                                            OW);
}

template <typename T>
__global__ void igemm_backward_filter_wide_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                                  T* __restrict__ part, i64 chunk, int N, int C, int H, int W,
                                                  int O, int G, int kh, int kw, int sh, int sw, int ph, int pw,
                                                  int dh, int dw, int OH, int OW) {
    tc_igemm_backward_filter<T, 128, 128, 8, 8>(gy, x, part, chunk, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw,
                                                dh, dw, OH, OW);
}

template <typename T>
__global__ void igemm_backward_filter_mid_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                                 T* __restrict__ part, i64 chunk, int N, int C, int H, int W,
                                                 int O, int G, int kh, int kw, int sh, int sw, int ph, int pw,
                                                 int dh, int dw, int OH, int OW) {
    tc_igemm_backward_filter<T, 64, 128, 4, 8>(gy, x, part, chunk, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw,
                                               dh, dw, OH, OW);
}

template <typename T>
__global__ void igemm_backward_filter_narrow_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                                    T* __restrict__ part, i64 chunk, int N, int C, int H, int W,
                                                    int O, int G, int kh, int kw, int sh, int sw, int ph, int pw,
                                                    int dh, int dw, int OH, int OW) {
    tc_igemm_backward_filter<T, 4, 256, 4, 1>(gy, x, part, chunk, N, C, H, W, O, G, kh, kw, sh, sw, ph, pw,
                                              dh, dw, OH, OW);
}

// The second pass of split-K: gw[e] = part[0][e] + part[1][e] + ... in that order, one thread
// per weight: deterministic, bit for bit the same every run.
template <typename T>
__global__ void igemm_splitk_sum_kernel(const T* __restrict__ part, T* __restrict__ gw, i64 total, int splits) {
    TC_KERNEL_LOOP(e, total) {
        T acc = T(0);
        for (int s = 0; s < splits; ++s) acc += part[s * total + e];
        gw[e] = acc;
    }
}
