// Fused SGD step with momentum and weight decay, PyTorch's torch.optim.SGD update:
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
