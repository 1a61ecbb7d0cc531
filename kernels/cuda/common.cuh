// Shared by every kernel file: NVRTC compiles "common.cuh + <family>.cu" as one program, so no
// toolkit header is needed (the GPU machine's include path is not assumed).
//
// Storage types: float, and bf16 as its raw 16 bits in a struct of our own (so overloads can
// tell it from an integer). Every kernel computes and accumulates in f32.

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;

struct bf16 {
    unsigned short bits;
};

// bf16 -> f32 is exact: the 16 bits are the top half of the f32.
__device__ __forceinline__ float to_f32(bf16 v) { return __uint_as_float(((u32)v.bits) << 16); }
__device__ __forceinline__ float to_f32(float v) { return v; }

// f32 -> bf16 rounds to nearest even (as PyTorch and `half::bf16::from_f32`); NaN stays NaN.
__device__ __forceinline__ bf16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (unsigned short)((u >> 16) | 0x40u);
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = (unsigned short)(u >> 16);
    return r;
}

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return f32_to_bf16(v); }

// Two bf16 packed in one 32-bit register (low half = first element), the operand format of mma.
__device__ __forceinline__ u32 pack_bf16x2(float lo, float hi) {
    return (u32)f32_to_bf16(lo).bits | ((u32)f32_to_bf16(hi).bits << 16);
}

// ---------------------------------------------------------------------------------------------
// Reductions. Warps are 32 lanes; block reductions use a 32-float shared scratch.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block; every thread gets the result. `scratch` holds >= 32 floats.
// blockDim.x must be a multiple of 32.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : __int_as_float(0xff800000);  // -inf
    return warp_max(v);
}

// ---------------------------------------------------------------------------------------------
// Activations (same formulas as kernels/src/cpu/activation.rs).
#define GELU_TANH_C 0.7978845608028654f  // sqrt(2/pi)
#define INV_SQRT2 0.7071067811865476f

__device__ __forceinline__ float gelu_tanh_f(float x) {
    float u = GELU_TANH_C * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
    float u = GELU_TANH_C * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    float du = GELU_TANH_C * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}
__device__ __forceinline__ float gelu_erf_f(float x) { return 0.5f * x * (1.0f + erff(x * INV_SQRT2)); }
__device__ __forceinline__ float gelu_erf_grad(float x) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    return 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * inv_sqrt_2pi * expf(-0.5f * x * x);
}

// ---------------------------------------------------------------------------------------------
// Counter-based random numbers (for dropout): a 64-bit mix of (seed, index), so any thread can
// draw element i's number without state. splitmix64's finaliser.
__device__ __forceinline__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
// Uniform in [0, 1) with 24 random bits.
__device__ __forceinline__ float uniform01(u64 seed, u64 i) {
    return (float)(mix64(seed + 0x9e3779b97f4a7c15ull * (i + 1)) >> 40) * (1.0f / 16777216.0f);
}

// ---------------------------------------------------------------------------------------------
// 16-byte vector access for the dense fast paths: 4 floats or 8 bf16 per load / store.
__device__ __forceinline__ bool aligned16(const void* p) { return ((u64)p & 15u) == 0; }
template <typename T> struct Vec16;
template <> struct Vec16<float> { static constexpr int N = 4; };
template <> struct Vec16<bf16> { static constexpr int N = 8; };
__device__ __forceinline__ void load16(const float* p, float* f) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    f[0] = v.x;
    f[1] = v.y;
    f[2] = v.z;
    f[3] = v.w;
}
__device__ __forceinline__ void load16(const bf16* p, float* f) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        f[2 * j] = __uint_as_float(w[j] << 16);  // the element at the lower address
        f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
}
__device__ __forceinline__ void store16(float* p, const float* f) {
    float4 v;
    v.x = f[0];
    v.y = f[1];
    v.z = f[2];
    v.w = f[3];
    *reinterpret_cast<float4*>(p) = v;
}
__device__ __forceinline__ void store16(bf16* p, const float* f) {
    uint4 v;
    v.x = pack_bf16x2(f[0], f[1]);
    v.y = pack_bf16x2(f[2], f[3]);
    v.z = pack_bf16x2(f[4], f[5]);
    v.w = pack_bf16x2(f[6], f[7]);
    *reinterpret_cast<uint4*>(p) = v;
}

// ---------------------------------------------------------------------------------------------
// Strided views: up to 6 dimensions' sizes and strides (elements), passed by value; matches
// `kernels::cuda::Dims6` on the host.
struct Dims6 {
    int rank;
    int pad;
    long long shape[6];
    long long stride[6];
};

// Row-major coordinates of linear index `idx` over d.shape (coord[k] = 0 for k >= rank), unrolled
// so that d (a kernel parameter) is only indexed by constants: no local-memory copy.
template <typename I>
__device__ __forceinline__ void unravel(I idx, const Dims6& d, I coord[6]) {
#pragma unroll
    for (int k = 5; k >= 1; --k) {
        if (k < d.rank) {
            const I size = (I)d.shape[k];
            const I q = idx / size;
            coord[k] = idx - q * size;
            idx = q;
        } else {
            coord[k] = 0;
        }
    }
    coord[0] = idx;
}

// Element offset of `coord` through d.stride (64-bit: views of large buffers).
template <typename I>
__device__ __forceinline__ long long offset_of(const I coord[6], const Dims6& d) {
    long long off = 0;
#pragma unroll
    for (int k = 0; k < 6; ++k) {
        if (k < d.rank) off += (long long)coord[k] * d.stride[k];
    }
    return off;
}
