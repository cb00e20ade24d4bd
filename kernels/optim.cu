// Fused optimizer steps, one pass over each parameter's arrays.
//
// sgd_update_kernel: SGD with momentum and weight decay, PyTorch's torch.optim.SGD update:
//   g  = grad + weight_decay * w
//   v  = momentum * v + (1 - dampening) * g       (v = g on the first step)
//   g  = g + momentum * v if nesterov else v      (when momentum != 0)
//   w  = w - lr * g
// One pass over w, grad and v instead of five separate elementwise kernels.
#include "tinyconv_common.cuh"

template <typename T>
__global__ void sgd_update_kernel(T* __restrict__ w, const T* __restrict__ grad, T* __restrict__ v,
                                  i64 n, double lr, double momentum, double dampening,
                                  double weight_decay, int nesterov, int first_step) {
    const T mom = T(momentum);
    TC_KERNEL_LOOP(i, n) {
        T g = grad[i] + T(weight_decay) * w[i];
        if (momentum != 0.0) {
            const T vi = first_step ? g : mom * v[i] + T(1.0 - dampening) * g;
            v[i] = vi;
            g = nesterov ? g + mom * vi : vi;
        }
        w[i] = w[i] - T(lr) * g;
    }
}

// adam_update_kernel: Adam / AdamW, PyTorch's torch.optim.Adam update (tinyconv/optim/adam.py):
//   g  = -grad if maximize else grad
//   w  = w * decay (decay = 1 - lr * weight_decay)  if decoupled (AdamW)  else  g = g + weight_decay * w
//   m  = m + (1 - beta1) * (g - m)
//   v  = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v), u = vmax  if amsgrad  else  u = v
//   w  = w - step_size * m / (sqrt(u) / bc2_sqrt + eps)
// step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) come from the launcher,
// computed once in double as PyTorch does in Python.  Element i of every array belongs
// to the same parameter entry, so one thread per i reads w, grad, m, v (vmax) once and
// writes w, m, v (vmax) once; vmax is an empty buffer and never touched when !amsgrad.
__device__ __forceinline__ float optim_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double optim_sqrt(double x) { return sqrt(x); }

template <typename T>
__global__ void adam_update_kernel(T* __restrict__ w, const T* __restrict__ grad, T* __restrict__ m,
                                   T* __restrict__ v, T* __restrict__ vmax, i64 n, double beta1,
                                   double beta2, double eps, double weight_decay, double decay,
                                   double step_size, double bc2_sqrt, int amsgrad, int maximize,
                                   int decoupled) {
    const T one_minus_beta1 = T(1.0 - beta1), b2 = T(beta2), one_minus_beta2 = T(1.0 - beta2);
    // grid-stride: thread (block b, lane t) takes i = b * blockDim + t, then i + gridDim * blockDim, ...
    TC_KERNEL_LOOP(i, n) {
        T g = maximize ? -grad[i] : grad[i];
        T wi = w[i];
        if (weight_decay != 0.0) {
            if (decoupled) {
                wi = wi * T(decay);
            } else {
                g = g + T(weight_decay) * wi;
            }
        }
        const T mi = m[i] + one_minus_beta1 * (g - m[i]);
        T vi = b2 * v[i] + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            T u = vmax[i];
            if (vi > u || vi != vi) u = vi;  // a NaN from either side stays, as torch.maximum
            vmax[i] = u;
            vi = u;
        }
        w[i] = wi - T(step_size) * (mi / (optim_sqrt(vi) / T(bc2_sqrt) + T(eps)));
    }
}
