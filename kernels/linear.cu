// Bias add for fully connected layers, and the reduction its backward needs: y is viewed
// as (rows, C), C the output features (the bias has C entries).
#include "tinyconv_common.cuh"

// y += b[c] in place; one thread per element (idx = row*C + c).
template <typename T>
__global__ void bias_add_kernel(T* __restrict__ y, const T* __restrict__ b, i64 total, int C) {
    TC_KERNEL_LOOP(idx, total) {
        y[idx] += b[(int)(idx % C)];
    }
}

// gb[c] = sum over the rows of gy[row, c].  One thread per feature, summing in a fixed
// order (deterministic); threads of neighbouring c read neighbouring addresses.
template <typename T>
__global__ void bias_grad_kernel(const T* __restrict__ gy, T* __restrict__ gb, i64 rows, int C) {
    TC_KERNEL_LOOP(c, C) {
        T acc = T(0);
        for (i64 r = 0; r < rows; ++r) acc += gy[r * C + c];
        gb[c] = acc;
    }
}
