// ReLU and dropout (tinyconv/functional/activation.py holds the math and the references;
// kernels/activation_cuda.py launches these).
#include "tinyconv_common.cuh"

// ---------------------------------------------------------------------------- ReLU
// y = 0 where x < 0 else x (max(x, 0) with NaN and -0 passing through);  gx = 0 where y <= 0 else gy (so a NaN passes gy),
// as PyTorch.  One thread per element.
template <typename T>
__global__ void relu_forward_kernel(const T* __restrict__ x, T* __restrict__ y, i64 n) {
    TC_KERNEL_LOOP(i, n) {
        const T v = x[i];
        y[i] = v < T(0) ? T(0) : v;
    }
}

template <typename T>
__global__ void relu_backward_kernel(const T* __restrict__ gy, const T* __restrict__ y,
                                     T* __restrict__ gx, i64 n) {
    TC_KERNEL_LOOP(i, n) {
        gx[i] = y[i] <= T(0) ? T(0) : gy[i];
    }
}

// ---------------------------------------------------------------------------- Philox4x32-10
// The counter-based generator of Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3" (SC'11), as in Random123: a 128-bit counter and a 64-bit key give 128 random
// bits after 10 rounds, with no state to carry between calls.  Checked against Random123's
// known-answer vectors in tests/test_cuda_sources.py.
struct tc_uint4 {
    unsigned int x, y, z, w;
};

#define TC_PHILOX_M0 0xD2511F53u   // round multipliers
#define TC_PHILOX_M1 0xCD9E8D57u
#define TC_PHILOX_W0 0x9E3779B9u   // key bumps (golden ratio, sqrt(3) - 1)
#define TC_PHILOX_W1 0xBB67AE85u

__device__ __forceinline__ tc_uint4 tc_philox_round(tc_uint4 c, unsigned int k0, unsigned int k1) {
    const unsigned int hi0 = __umulhi(TC_PHILOX_M0, c.x), lo0 = TC_PHILOX_M0 * c.x;
    const unsigned int hi1 = __umulhi(TC_PHILOX_M1, c.z), lo1 = TC_PHILOX_M1 * c.z;
    tc_uint4 r;
    r.x = hi1 ^ c.y ^ k0;
    r.y = lo1;
    r.z = hi0 ^ c.w ^ k1;
    r.w = lo0;
    return r;
}

__device__ __forceinline__ tc_uint4 tc_philox4x32_10(tc_uint4 c, unsigned int k0, unsigned int k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {          // the key is bumped between rounds
            k0 += TC_PHILOX_W0;
            k1 += TC_PHILOX_W1;
        }
        c = tc_philox_round(c, k0, k1);
    }
    return c;
}

// For the known-answer test: out[4*t ... 4*t+3] = philox(ctr[4*t ...], key[2*t ...]).
__global__ void philox4x32_10_kernel(const unsigned int* __restrict__ ctr,
                                     const unsigned int* __restrict__ key,
                                     unsigned int* __restrict__ out, i64 n) {
    TC_KERNEL_LOOP(t, n) {
        tc_uint4 c;
        c.x = ctr[4 * t]; c.y = ctr[4 * t + 1]; c.z = ctr[4 * t + 2]; c.w = ctr[4 * t + 3];
        const tc_uint4 r = tc_philox4x32_10(c, key[2 * t], key[2 * t + 1]);
        out[4 * t] = r.x; out[4 * t + 1] = r.y; out[4 * t + 2] = r.z; out[4 * t + 3] = r.w;
    }
}

// ---------------------------------------------------------------------------- dropout
// Inverted dropout: y = x * keep / (1 - p), keep = (u >= p) with u uniform in [0, 1).
// The mask is never stored: element i's u comes from
//   philox(counter = (lo(i/4), hi(i/4), lo(offset), hi(offset)), key = (lo(seed), hi(seed)))
// word i%4, whose top 24 bits give u = (bits >> 8) * 2^-24.  The launcher takes (seed,
// offset) from tinyconv.random.philox_seed_offset, a fresh offset per call, and backward
// regenerates the same keep bits from the same (seed, offset).  Each thread handles the
// four elements of one Philox call.
__device__ __forceinline__ tc_uint4 tc_dropout_bits(i64 group, unsigned long long seed,
                                                     unsigned long long offset) {
    tc_uint4 c;
    c.x = (unsigned int)group;
    c.y = (unsigned int)((unsigned long long)group >> 32);
    c.z = (unsigned int)offset;
    c.w = (unsigned int)(offset >> 32);
    return tc_philox4x32_10(c, (unsigned int)seed, (unsigned int)(seed >> 32));
}

__device__ __forceinline__ bool tc_keep(unsigned int bits, double p) {
    return (double)(bits >> 8) * (1.0 / 16777216.0) >= p;
}

// gy plays x's part in backward: gx = gy * keep / (1 - p) with the same keep bits.
template <typename T>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, i64 n, double p,
                               unsigned long long seed, unsigned long long offset) {
    const T inv_keep = T(1.0 / (1.0 - p));
    TC_KERNEL_LOOP(g, (n + 3) / 4) {
        const tc_uint4 r = tc_dropout_bits(g, seed, offset);
        const unsigned int bits[4] = {r.x, r.y, r.z, r.w};
        for (int q = 0; q < 4; ++q) {
            const i64 i = 4 * g + q;
            if (i < n) y[i] = tc_keep(bits[q], p) ? x[i] * inv_keep : T(0);
        }
    }
}

// The keep mask itself as bytes (0/1), for tests and for users who ask to see it.
__global__ void dropout_mask_kernel(unsigned char* __restrict__ mask, i64 n, double p,
                                    unsigned long long seed, unsigned long long offset) {
    TC_KERNEL_LOOP(g, (n + 3) / 4) {
        const tc_uint4 r = tc_dropout_bits(g, seed, offset);
        const unsigned int bits[4] = {r.x, r.y, r.z, r.w};
        for (int q = 0; q < 4; ++q) {
            const i64 i = 4 * g + q;
            if (i < n) mask[i] = tc_keep(bits[q], p) ? 1 : 0;
        }
    }
}
