// Shared by every tinyconv .cu file: the grid-stride loop and float/double math overloads.
//
// Compiled three ways from the same text: by NVRTC at run time (CuPy's RawModule, the
// GPU path), by nvcc in CI (warnings as errors), and as C++ by g++ with
// cuda_host_emulation.h (CPU execution of the arithmetic in the tests).  So it uses no
// header at all: NVRTC has no C/C++ standard library, and these built-ins need none.
#ifndef TINYCONV_COMMON_CUH
#define TINYCONV_COMMON_CUH

// 64-bit indices: AlexNet's im2col matrices at batch 256 have more than 2^31 elements.
typedef long long i64;

// Caffe's CUDA_KERNEL_LOOP: thread `blockIdx.x * blockDim.x + threadIdx.x` handles
// indices i, i + (all threads of the grid), ... so any grid size covers all n items.
#define TC_KERNEL_LOOP(i, n)                                                     \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n);       \
         i += (i64)blockDim.x * gridDim.x)

// `#pragma unroll` for the loop that follows (constant trip counts: the compiler unrolls it and
// keeps small arrays in registers); nothing in the host emulation, where g++ has no such pragma.
#ifdef TINYCONV_HOST_EMULATION
#define TC_UNROLL
#else
#define TC_UNROLL _Pragma("unroll")
#endif

// Overloads so a template body reads the same for float and double.
__device__ __forceinline__ float tc_exp(float x) { return expf(x); }
__device__ __forceinline__ double tc_exp(double x) { return exp(x); }
__device__ __forceinline__ float tc_log(float x) { return logf(x); }
__device__ __forceinline__ double tc_log(double x) { return log(x); }
__device__ __forceinline__ float tc_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double tc_pow(double x, double y) { return pow(x, y); }

template <typename T>
__device__ __forceinline__ T tc_max(T a, T b) { return a > b ? a : b; }
__device__ __forceinline__ i64 tc_min64(i64 a, i64 b) { return a < b ? a : b; }
__device__ __forceinline__ i64 tc_max64(i64 a, i64 b) { return a > b ? a : b; }

#endif  // TINYCONV_COMMON_CUH
