// Host emulation of the few CUDA built-ins tinyconv's kernels use, so that the very same
// .cu source compiles as C++ with g++ and its arithmetic runs on the CPU (loaded with ctypes).
//
// This is how the kernels are proven on machines without a GPU (tests/test_cuda_sources.py):
//
//   #include "cuda_host_emulation.h"
//   #include "conv.cu"
//   TC_HOST_EXPORT(tc_host_im2col_kernel__float, im2col_kernel<float>)
//
// compiles to a shared library with an extern "C" entry point
//
//   void tc_host_im2col_kernel__float(unsigned grid, unsigned block, void** args);
//
// that takes its arguments exactly as cuLaunchKernel does (an array of pointers, one per
// kernel parameter) and runs the kernel once for every (block, thread) of a 1-D launch,
// one after another.  The kernels are written grid-stride style with one thread per
// output and no shared memory, barriers or warp intrinsics, so a sequential walk over
// all (block, thread) pairs computes exactly what the GPU computes.  A kernel that used
// __syncthreads() would not be correct here; such kernels keep a plain twin that is.
#ifndef TINYCONV_CUDA_HOST_EMULATION_H
#define TINYCONV_CUDA_HOST_EMULATION_H

#include <math.h>
#include <stddef.h>

#include <tuple>
#include <utility>

#define TINYCONV_HOST_EMULATION 1

// Execution-space qualifiers mean nothing on the host.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// __restrict__ is understood by g++ as it is.

struct tc_dim3 {
    unsigned int x, y, z;
};
// The built-in variables: set by tc_host_launch before each emulated thread runs.
static thread_local tc_dim3 blockIdx, threadIdx, blockDim, gridDim;

// Device intrinsics used by the kernels, with their documented meaning.
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    // the high 32 bits of the 64-bit product a * b
    return (unsigned int)(((unsigned long long)a * (unsigned long long)b) >> 32);
}

// Run kernel k over a 1-D grid of `grid` blocks of `block` threads, one thread at a time.
template <typename... P>
static void tc_host_launch(void (*k)(P...), unsigned int grid, unsigned int block, P... args) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        for (unsigned int t = 0; t < block; ++t) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            k(args...);
        }
    }
}

// Unpack cuLaunchKernel-style arguments (args[i] points at the i-th parameter's value).
template <typename... P, size_t... I>
static void tc_host_launch_packed_(void (*k)(P...), unsigned int grid, unsigned int block, void** args,
                                   std::index_sequence<I...>) {
    tc_host_launch(k, grid, block, *static_cast<P*>(args[I])...);
}

template <typename... P>
static void tc_host_launch_packed(void (*k)(P...), unsigned int grid, unsigned int block, void** args) {
    tc_host_launch_packed_(k, grid, block, args, std::index_sequence_for<P...>{});
}

// An extern "C" entry point `symbol` running the kernel (or template instance) `expr`.
#define TC_HOST_EXPORT(symbol, ...)                                                    \
    extern "C" void symbol(unsigned int grid, unsigned int block, void** args) {       \
        tc_host_launch_packed(&__VA_ARGS__, grid, block, args);                        \
    }

#endif  // TINYCONV_CUDA_HOST_EMULATION_H
