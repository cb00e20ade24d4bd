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
// one after another.  Most kernels are written grid-stride style with one thread per
// output and no shared memory or barriers, so a sequential walk over all (block, thread)
// pairs computes exactly what the GPU computes.
//
// Kernels that cooperate within a block (__shared__ memory and __syncthreads(), e.g. the
// block-per-row softmax of loss.cu) are exported with TC_HOST_EXPORT_COOPERATIVE instead:
// each thread of a block then runs as a coroutine (ucontext) with its own stack, and
// __syncthreads() switches to the next thread.  The block's threads run round by round,
// each until its next barrier, so no thread passes barrier k before every thread has
// reached it, as on the GPU; __shared__ variables are static (one copy, shared by the
// block's threads, blocks run one after another).  A barrier reached by some threads
// while others have finished is a divergent __syncthreads() (undefined on the GPU): it
// aborts.  No warp intrinsics are emulated.
#ifndef TINYCONV_CUDA_HOST_EMULATION_H
#define TINYCONV_CUDA_HOST_EMULATION_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <tuple>
#include <utility>

#define TINYCONV_HOST_EMULATION 1

// Execution-space qualifiers mean nothing on the host.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
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

// ---------------------------------------------------------------------------- barriers

// The coroutines of one cooperative block: the scheduler's context, the threads', which
// thread runs, and which have returned.
struct tc_coop_state {
    ucontext_t scheduler;
    ucontext_t* threads = nullptr;
    bool* done = nullptr;
    unsigned int current = 0;
    bool active = false;
};
static tc_coop_state tc_coop;

static inline void __syncthreads() {
    if (!tc_coop.active) {
        fprintf(stderr, "cuda_host_emulation: __syncthreads() in a kernel exported with TC_HOST_EXPORT; "
                        "export it with TC_HOST_EXPORT_COOPERATIVE\n");
        abort();
    }
    // back to the scheduler; it resumes this thread in the next round
    swapcontext(&tc_coop.threads[tc_coop.current], &tc_coop.scheduler);
}

// The body every coroutine runs: the launch's kernel call for the current thread.
static void (*tc_coop_body)(void*) = nullptr;
static void* tc_coop_body_arg = nullptr;

static inline void tc_coop_entry() {
    tc_coop_body(tc_coop_body_arg);
    tc_coop.done[tc_coop.current] = true;   // then uc_link returns to the scheduler
}

// A fresh coroutine running tc_coop_entry on `stack` (its own function: getcontext
// returns twice, which would clobber the caller's loop variables).
__attribute__((noinline)) static void tc_coop_make(ucontext_t* c, char* stack, size_t size) {
    getcontext(c);
    c->uc_stack.ss_sp = stack;
    c->uc_stack.ss_size = size;
    c->uc_link = &tc_coop.scheduler;
    makecontext(c, tc_coop_entry, 0);
}

// Run body(arg) as every thread of a `grid` x `block` launch, block by block, each block's
// threads as coroutines switching at __syncthreads().
static inline void tc_host_launch_cooperative(void (*body)(void*), void* arg, unsigned int grid, unsigned int block) {
    const size_t stack = 256 * 1024;
    char* stacks = (char*)malloc(stack * block);
    ucontext_t* threads = (ucontext_t*)calloc(block, sizeof(ucontext_t));
    bool* done = (bool*)calloc(block, sizeof(bool));
    if (!stacks || !threads || !done) abort();
    tc_coop.threads = threads;
    tc_coop.done = done;
    tc_coop.active = true;
    tc_coop_body = body;
    tc_coop_body_arg = arg;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned int t = 0; t < block; ++t) {
            done[t] = false;
            tc_coop_make(&threads[t], stacks + (size_t)t * stack, stack);
        }
        for (;;) {   // one round: every live thread runs to its next barrier or its end
            unsigned int finished = 0;
            for (unsigned int t = 0; t < block; ++t) {
                if (done[t]) {
                    ++finished;
                    continue;
                }
                tc_coop.current = t;
                threadIdx = {t, 0, 0};
                swapcontext(&tc_coop.scheduler, &threads[t]);
                if (done[t]) ++finished;
            }
            if (finished == block) break;
            if (finished != 0) {
                fprintf(stderr, "cuda_host_emulation: divergent __syncthreads() in block %u (%u of %u threads "
                                "returned while the others wait at a barrier)\n", b, finished, block);
                abort();
            }
        }
    }
    tc_coop.active = false;
    free(stacks);
    free(threads);
    free(done);
}

// ---------------------------------------------------------------------------- launches

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

// One thread's kernel call for a cooperative launch: unpack the packed arguments and call.
template <typename... P>
struct tc_coop_call {
    void (*k)(P...);
    void** args;
    template <size_t... I>
    void run(std::index_sequence<I...>) { k(*static_cast<P*>(args[I])...); }
    static void body(void* self) { static_cast<tc_coop_call*>(self)->run(std::index_sequence_for<P...>{}); }
};

template <typename... P>
static void tc_host_launch_packed_cooperative(void (*k)(P...), unsigned int grid, unsigned int block,
                                              void** args) {
    tc_coop_call<P...> call{k, args};
    tc_host_launch_cooperative(&tc_coop_call<P...>::body, &call, grid, block);
}

// An extern "C" entry point `symbol` running the kernel (or template instance) `expr`.
#define TC_HOST_EXPORT(symbol, ...)                                                    \
    extern "C" void symbol(unsigned int grid, unsigned int block, void** args) {       \
        tc_host_launch_packed(&__VA_ARGS__, grid, block, args);                        \
    }

// The same for a kernel whose threads cooperate (__shared__ memory, __syncthreads()).
#define TC_HOST_EXPORT_COOPERATIVE(symbol, ...)                                        \
    extern "C" void symbol(unsigned int grid, unsigned int block, void** args) {       \
        tc_host_launch_packed_cooperative(&__VA_ARGS__, grid, block, args);            \
    }

#endif  // TINYCONV_CUDA_HOST_EMULATION_H
