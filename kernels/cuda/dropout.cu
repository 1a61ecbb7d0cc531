// Inverted dropout whose mask is never stored: element i is kept iff uniform01(seed, i) >= p
// (common.cuh's counter-based generator), so the forward, the backward and any fused consumer
// recompute the same mask from (seed, i). Kept elements are multiplied by scale = 1/(1-p)
// (computed on the host, as the CPU kernels take it), dropped ones become 0.
//
// Kernels (launchers in kernels/src/cuda/dropout.rs):
//   dropout_apply_{f32,bf16}   out = keep ? x * scale : 0   (forward on x, backward on dout)
//   dropout_keep_mask          out_u8[i] = keep ? 1 : 0
// Grid-stride over 16-byte vectors (4 f32 / 8 bf16) when both pointers are aligned, then a
// scalar tail; element i always draws uniform01(seed, i), whichever path handles it.

__device__ __forceinline__ bool dropout_keep(u64 seed, long long i, float p) { return uniform01(seed, (u64)i) >= p; }

// out, x: (n). out may be x (in place).
template <typename T>
__device__ __forceinline__ void dropout_apply(T* out, const T* x, long long n, float p, float scale, u64 seed) {
    constexpr int N = Vec16<T>::N;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)gridDim.x * blockDim.x;
    long long done = 0;
    if (aligned16(out) && aligned16(x)) {
        const long long nv = n / N;
        for (long long v = tid; v < nv; v += step) {
            float f[N];
            load16(x + v * N, f);
#pragma unroll
            for (int j = 0; j < N; ++j) f[j] = dropout_keep(seed, v * N + j, p) ? f[j] * scale : 0.0f;
            store16(out + v * N, f);
        }
        done = nv * N;
    }
    for (long long i = done + tid; i < n; i += step) {
        out[i] = from_f32<T>(dropout_keep(seed, i, p) ? to_f32(x[i]) * scale : 0.0f);
    }
}

extern "C" __global__ void dropout_apply_f32(float* out, const float* x, long long n, float p, float scale, u64 seed) {
    dropout_apply<float>(out, x, n, p, scale, seed);
}
extern "C" __global__ void dropout_apply_bf16(bf16* out, const bf16* x, long long n, float p, float scale, u64 seed) {
    dropout_apply<bf16>(out, x, n, p, scale, seed);
}

// out: (n) bytes, 1 where element i is kept. Vector step: 16 mask bytes per thread.
extern "C" __global__ void dropout_keep_mask(unsigned char* out, long long n, float p, u64 seed) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)gridDim.x * blockDim.x;
    long long done = 0;
    if (aligned16(out)) {
        const long long nv = n / 16;
        for (long long v = tid; v < nv; v += step) {
            u32 w[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                w[k] = 0;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (dropout_keep(seed, v * 16 + 4 * k + j, p)) w[k] |= 1u << (8 * j);
                }
            }
            uint4 o;
            o.x = w[0];
            o.y = w[1];
            o.z = w[2];
            o.w = w[3];
            reinterpret_cast<uint4*>(out)[v] = o;
        }
        done = nv * 16;
    }
    for (long long i = done + tid; i < n; i += step) out[i] = dropout_keep(seed, i, p) ? 1 : 0;
}
